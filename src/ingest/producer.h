#ifndef OKRD_INGEST_PRODUCER_H_
#define OKRD_INGEST_PRODUCER_H_

// A small Kafka producer used for the dead-letter topic and by okrctl to
// send events. Delivery is asynchronous; Flush() waits for outstanding
// messages and reports whether any failed.
//
// Thread-safety: Send() and Flush() may be called from any thread.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace okrd::ingest {

using Headers = std::vector<std::pair<std::string, std::string>>;

class Producer {
 public:
  // `properties` pass through to librdkafka (TLS/SASL settings and such).
  static absl::StatusOr<std::unique_ptr<Producer>> Create(
      const std::string& brokers,
      const std::map<std::string, std::string>& properties);

  virtual ~Producer() = default;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Queues one message, waiting while the local queue is full.
  virtual absl::Status Send(const std::string& topic, absl::string_view key,
                            absl::string_view payload,
                            const Headers& headers) = 0;
  // Waits up to `timeout` for every queued message to be delivered.
  virtual absl::Status Flush(absl::Duration timeout) = 0;
  // Messages whose delivery failed so far.
  virtual uint64_t failed() const = 0;

 protected:
  Producer() = default;
};

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_PRODUCER_H_
