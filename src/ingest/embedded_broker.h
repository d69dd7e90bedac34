#ifndef OKRD_INGEST_EMBEDDED_BROKER_H_
#define OKRD_INGEST_EMBEDDED_BROKER_H_

// An in-process Kafka broker for demos and tests: librdkafka's mock cluster,
// listening on a real 127.0.0.1 port so any Kafka client (kcat,
// kafka-python) can produce to and consume from it. Holds its data in memory
// only: it is gone when the object is destroyed.
//
// Thread-safety: immutable after Start(); the cluster runs its own threads.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace okrd::ingest {

class EmbeddedBroker {
 public:
  // Starts a one-broker cluster and creates `topics` with `partitions` each.
  static absl::StatusOr<std::unique_ptr<EmbeddedBroker>> Start(
      int partitions, const std::vector<std::string>& topics);

  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // "127.0.0.1:PORT", for bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  struct Handles;
  EmbeddedBroker() = default;
  std::unique_ptr<Handles> handles_;
  std::string bootstrap_;
};

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_EMBEDDED_BROKER_H_
