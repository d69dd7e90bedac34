#include "ingest/kafka_log.h"

#include "gtest/gtest.h"

namespace okrd::ingest {
namespace {

// syslog(3) severities, as librdkafka reports them.
constexpr int kError = 3;
constexpr int kWarning = 4;
constexpr int kNotice = 5;
constexpr int kDebug = 7;

TEST(KafkaLogTest, SeverityMapsToALevel) {
  for (KafkaClient client : {KafkaClient::kConsumer, KafkaClient::kProducer}) {
    EXPECT_EQ(KafkaLogLevel(client, kError, "SSL"), spdlog::level::err);
    EXPECT_EQ(KafkaLogLevel(client, kWarning, "PROTOERR"), spdlog::level::warn);
    EXPECT_EQ(KafkaLogLevel(client, kNotice, "CGRPOP"), spdlog::level::debug);
    EXPECT_EQ(KafkaLogLevel(client, kDebug, "FETCH"), spdlog::level::debug);
  }
}

// librdkafka reports a broker connection failure as a FAIL log line and as an
// error event with the same text; only the error event is worth a line.
TEST(KafkaLogTest, ConnectionFailureLineIsLeftToTheErrorEvent) {
  EXPECT_EQ(KafkaLogLevel(KafkaClient::kConsumer, kError, "FAIL"),
            spdlog::level::debug);
  EXPECT_EQ(KafkaLogLevel(KafkaClient::kProducer, kError, "FAIL"),
            spdlog::level::debug);
}

// The producer shares the consumer's kafka.properties, so its complaints about
// consumer-only properties are expected; the consumer's own are not.
TEST(KafkaLogTest, ConfigWarningsAreTheConsumersToReport) {
  EXPECT_EQ(KafkaLogLevel(KafkaClient::kConsumer, kWarning, "CONFWARN"),
            spdlog::level::warn);
  EXPECT_EQ(KafkaLogLevel(KafkaClient::kProducer, kWarning, "CONFWARN"),
            spdlog::level::debug);
}

}  // namespace
}  // namespace okrd::ingest
