#ifndef OKRD_INGEST_KAFKA_INGEST_H_
#define OKRD_INGEST_KAFKA_INGEST_H_

// KafkaIngest is okrd's consumer: it reads the configured topics in a consumer
// group, decodes and validates each message, and hands each poll batch to the
// EventLog as one atomic append together with the next offsets. Offsets are
// owned by the log: on (incremental) assignment the consumer seeks to the
// offsets stored there, so a crash between consume and append replays the
// batch and a crash after the append does not repeat it. Kafka's committed
// offsets are written too, for lag monitoring only.
//
// Rejected messages are logged, counted and stored by the EventLog and, when
// kafka.dlq_topic is set, produced there with the reason in headers.
//
// Run() works on three threads, each on its own batch: the calling one
// consumes, decodes, validates and, while the appender is busy, looks the
// event ids up in the log's dedup index; an appender does that lookup when
// it was idle, settles duplicates and writes to the log; a
// publisher waits for that write to be durable (one fsync covers every batch
// written before it) and hands the batch to the BatchSink.
//
// Ownership (DESIGN.md, Scale): a partition counts as caught up once the
// batches folded into the projection reach the high watermark it had when
// it was assigned; only then are its series exported. A partition the log
// has never held is read from its earliest offset, and when that is past 0
// a warning says its history is gone.
//
// Thread-safety: Run() on one thread; assigned(), Ownership() and Lag()
// from any thread.

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "projection/ownership.h"

namespace okrd::ingest {

// Receives every durably appended batch, in log order, on Run()'s publisher
// thread.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  virtual void OnAppended(const eventlog::AppendResult& result) = 0;
};

// Decides, on Run()'s appender thread just before a batch is appended,
// whether a valid event may open a new KPI series (export.max_series); asked
// only while the batch's config sets a cap. The BatchSink may not have
// folded the batch or two appended before. Events it refuses are rejected
// as series_limit with `detail`.
class SeriesGate {
 public:
  virtual ~SeriesGate() = default;
  virtual bool Admit(const okrd::v1::KpiEvent& event, std::string* detail) = 0;
};

// The librdkafka consumer settings okrd uses unless kafka.properties says
// otherwise: fetch wait and prefetch bounds tuned for ingest and
// event-to-metric latency (README, `kafka.properties`).
std::map<std::string, std::string> ConsumerTuning();

class KafkaIngest {
 public:
  // `brokers` is the bootstrap list to use (the config's, or the embedded
  // broker's). `log`, `sink`, `clock` and `gate` (optional) must outlive the
  // ingest.
  static absl::StatusOr<std::unique_ptr<KafkaIngest>> Create(
      std::shared_ptr<const config::Config> config, const std::string& brokers,
      eventlog::EventLog* log, BatchSink* sink, const Clock* clock,
      SeriesGate* gate = nullptr);

  ~KafkaIngest();
  KafkaIngest(const KafkaIngest&) = delete;
  KafkaIngest& operator=(const KafkaIngest&) = delete;

  // Consumes until `stop` is set, then finishes the batch in hand, closes the
  // consumer and returns OK. Returns an error on a fatal Kafka error or when
  // the log cannot be written (nothing of the failed batch is then lost: it
  // is consumed again after a restart).
  absl::Status Run(const std::atomic<bool>& stop);

  // Validates messages against `config` from the next batch on, and returns
  // once the consume loop has taken it (at most a batch wait), so that what
  // arrives afterwards is validated under it. Only KPI definitions and
  // limits take effect; Kafka settings need a restart.
  void UpdateConfig(std::shared_ptr<const config::Config> config);

  // True while the group has told this member what it owns: after an
  // assignment (which may be empty), not between a revocation and the
  // assignment that completes the rebalance.
  bool assigned() const;
  // The partitions this member owns, each with whether it has caught up:
  // `folded` (the next offsets of what the projection has folded, from
  // AppendResult::next_offsets and the log at start) has reached the
  // partition's high watermark as it was just after the assignment. Until
  // then its series would be stale. Once caught up, a partition stays so
  // while it is owned.
  projection::Ownership Ownership(
      const std::map<eventlog::PartitionKey, int64_t>& folded) const;
  // Messages behind the high watermark, per assigned partition.
  std::map<eventlog::PartitionKey, int64_t> Lag() const;

 private:
  class Impl;
  explicit KafkaIngest(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_KAFKA_INGEST_H_
