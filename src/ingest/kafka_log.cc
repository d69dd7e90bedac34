#include "ingest/kafka_log.h"

namespace okrd::ingest {
namespace {

// librdkafka uses syslog(3) severities.
constexpr int kSeverityError = 3;
constexpr int kSeverityWarning = 4;

}  // namespace

spdlog::level::level_enum KafkaLogLevel(KafkaClient client, int severity,
                                        absl::string_view facility) {
  if (facility == "FAIL") return spdlog::level::debug;
  if (client == KafkaClient::kProducer && facility == "CONFWARN") {
    return spdlog::level::debug;
  }
  if (severity <= kSeverityError) return spdlog::level::err;
  if (severity <= kSeverityWarning) return spdlog::level::warn;
  return spdlog::level::debug;
}

}  // namespace okrd::ingest
