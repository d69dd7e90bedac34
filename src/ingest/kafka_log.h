#ifndef OKRD_INGEST_KAFKA_LOG_H_
#define OKRD_INGEST_KAFKA_LOG_H_

// How librdkafka's own log lines and error events reach okrd's log: each
// thing that happens to a Kafka client is logged once, at a level that says
// whether an operator needs to act.

#include "absl/strings/string_view.h"
#include "spdlog/common.h"

namespace okrd::ingest {

// Which okrd client a librdkafka event comes from.
enum class KafkaClient {
  kConsumer,
  // The dead-letter or okrctl producer. It is given the consumer's
  // kafka.properties, so its warnings about consumer-only properties are
  // expected and not worth an operator's attention.
  kProducer,
};

// The level at which okrd logs one of librdkafka's log lines, from its
// syslog `severity` (0 emergency .. 7 debug) and `facility` ("FAIL",
// "CONFWARN", ...).
//
// A broker connection failure comes twice, as a FAIL log line and as an error
// event with the same text. The error event is the one logged (at warn); the
// log line goes to debug.
spdlog::level::level_enum KafkaLogLevel(KafkaClient client, int severity,
                                        absl::string_view facility);

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_KAFKA_LOG_H_
