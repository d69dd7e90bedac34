#ifndef OKRD_EVENTLOG_EVENT_LOG_H_
#define OKRD_EVENTLOG_EVENT_LOG_H_

// EventLog is okrd's durable source of truth on its node: a RocksDB database
// with the column families
//   event_blocks big-endian u64 sequence -> a block of StoredEvents with
//             consecutive sequences from there on (below)
//   events    big-endian u64 sequence -> StoredEvent: the events of a log
//             written before the blocks, read as they are
//   dedup     event_id -> u64 sequence of its event: the id index, written
//             in sorted runs (below). Runs written before 2026-12-03 follow
//             the sequence with a SHA-256 of the event, which is not read.
//   offsets   topic NUL partition -> next Kafka offset to consume
//   rejected  big-endian u64 sequence -> RejectedRecord (raw bytes + reason)
//   snapshots big-endian u64 sequence -> ProjectionSnapshot
//   meta      last sequences and the outcome counters
//   amendments event_id of an amended measurement -> its current value
//   layout    "id_index_covered" -> u64: every event up to this sequence is
//             in `dedup`. Its presence marks the layout: a build from
//             before it refuses such a log instead of missing ids.
//
// Events are stored in blocks: each appended batch writes its records (the
// events, then the tick) as a few RocksDB records of about 32 KiB, each
// record size-prefixed, rather than one RocksDB record per event; reading
// one event seeks to the block at or before its sequence. A build from
// before the blocks refuses the log (RocksDB will not open it without the
// `event_blocks` column family); a log from before them keeps its events in
// `events` and appends blocks after them.
//
// The id index answers "was this event_id logged, and where?" over the
// whole history; an id found again has its event compared byte for byte with
// the one the log holds at that sequence (duplicate or conflict). The ids of
// recent events live in memory (IdTable), not in the WriteBatch: once
// Options::id_run_ids of them have gathered, a background thread sorts them
// into an SST file, ingests it into `dedup` (bloom filters answer the common
// "never seen" without reading a block) and then advances `id_index_covered`.
// One more bloom filter in memory (IdFilter) holds every id of the runs, so
// that a new id is settled by one probe instead of a RocksDB lookup probing
// each run; the same thread builds it from the runs at open, and once its
// newest part is full adds another with room for twice what all hold.
// The table is derived: at open it is rebuilt from the events after
// `id_index_covered`, so it never holds more than the log and a crash costs
// only that replay of the tail. A log written before this layout (every id in
// `dedup` in the batch that appended it) is taken over at open as covered up to
// its last sequence.
//
// Corrections and retractions are checked here, where the log is: their
// target must be a logged measurement of the same KPI and subject that is not
// retracted (else reasons unknown_correction_target,
// invalid_correction_target, retracted_target). The stored record carries the
// target's sequence, event time and value before the amendment.
//
// Append() writes one consumer poll batch as ONE atomic WriteBatch: the new
// events, rejected records, the consumers' next offsets and the updated
// counters. Either all of it survives a crash or none of it, so a restarted
// consumer that seeks to Offsets() neither loses nor repeats an event.
//
// Thread-safety: Append() must be called from one thread at a time. Read
// methods, Prepare() and SyncWal() may run concurrently with Append() and
// with each other. Reads, Offsets() and GetStats() see a batch once it is
// appended, which with Durable::kAtSyncWal is before its fsync.

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "eventlog/id_filter.h"
#include "eventlog/id_table.h"
#include "google/protobuf/arena.h"
#include "okrd/v1/records.pb.h"
#include "okrd/v1/snapshot.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
struct ReadOptions;
}  // namespace rocksdb

namespace okrd::eventlog {

struct Options {
  std::string path;
  // fsync each batch (WAL stays on either way). Default true.
  bool sync = true;
  // Open without taking the single-writer lock, for inspection tools.
  bool read_only = false;
  // Called when writing a batch failed with an I/O error (a full disk, most
  // often), after the failed attempt number `attempt` (1, 2, ...). Returns
  // true to have Append() try the same write again after asking RocksDB to
  // resume, false to give up and return the error. May wait (back off)
  // before returning. Unset: Append() returns the first error.
  std::function<bool(const absl::Status& error, int attempt)> on_write_error =
      nullptr;
  // Ids the id index keeps in memory before writing them as a sorted run;
  // the start-up replay of the tail is bounded by about twice this.
  size_t id_run_ids = 200000;
  // A run of at most this many ids gets its bloom filter whole instead of
  // in 4 KiB partitions: a lookup then probes it without first seeking the
  // partitions' index, which took 7-11% of ingest's CPU at 1M events
  // (five runs). Larger runs, and what compaction merges runs into, keep
  // partitions, so that filters outgrowing the cache are read back 4 KiB
  // at a time (see IdIndexOptions() in event_log.cc).
  size_t whole_filter_ids = 1000000;
  // The id filter (see IdFilter) has room for at least this many ids, at
  // IdFilter::kBitsPerId bits each; once its newest part holds more than
  // its room, a part with room for twice what all its parts hold is added.
  size_t id_filter_ids = 2000000;
  // How long after the open the filter is first built from runs of more
  // than 1M ids (fewer are read at once, in about half a second): its read
  // of every id slowed the start-up's replay (the first consistent scrape
  // after a restart at 10M ids: 0.12 s instead of 0.06), and lookups go to
  // the runs meanwhile.
  absl::Duration id_filter_delay = absl::Seconds(2);
  // RocksDB's memtables and block cache together stay within this; the
  // memtables are flushed once they hold half of it. The id index's filters
  // and indexes (about 1.6 bytes per id on disk) and its in-memory tables
  // come on top.
  size_t memory_bytes = size_t{256} << 20;
};

// Receives a stored record's sequence and bytes; returns false to stop.
using RawRecordFn =
    std::function<bool(uint64_t sequence, absl::string_view record)>;

// (topic, partition)
using PartitionKey = std::pair<std::string, int32_t>;

// What ingest hands to Append() for one poll batch. Its events live on the
// batch's protobuf arena, so that a batch is a few large allocations instead
// of a dozen small ones per event, and appending moves no event.
struct Batch {
  Batch();
  // Moved, never copied: a copy would share the arena and its records.
  Batch(Batch&&) = default;
  Batch& operator=(Batch&&) = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  struct Candidate {
    // On the batch's arena. The caller fills the event and its position;
    // Append() sets the rest.
    okrd::v1::StoredEvent* record = nullptr;
    // The message's bytes, on the arena too (see Batch::Keep): a
    // conflicting duplicate is stored with them.
    absl::string_view raw;
    std::string content_type;
    // Set by Batch::Seal(), after which the record's event and position
    // must not change.
    bool sealed = false;
    // Fields 2 (EventBytes(event)) and 3 (the position) of
    // the record serialized, on the arena: Append() writes them as they are.
    absl::string_view body;
    absl::string_view event_bytes;  // in `body`
    absl::string_view id;           // the event's id, in `body` if it can be
    bool amends = false;            // a correction or a retraction
    // Set by EventLog::Prepare(): whether it looked the id up, whether the
    // id index's runs held it, and the sequence they hold for it.
    bool looked_up = false;
    bool logged = false;
    uint64_t logged_sequence = 0;

    okrd::v1::KpiEvent& event() { return *record->mutable_event(); }
    const okrd::v1::KpiEvent& event() const { return record->event(); }
    okrd::v1::SourcePosition& position() { return *record->mutable_position(); }
  };
  // A candidate with an empty record on the arena, not yet in `events`.
  Candidate NewCandidate();
  // NewCandidate(), appended to `events`.
  Candidate& AddCandidate();
  // A copy of `bytes` on the arena, freed with it.
  absl::string_view Keep(absl::string_view bytes);
  // Serializes the record's event and position, which Append() then stores
  // as they are; neither must change afterwards.
  // EventLog::Prepare() seals what the caller has not, on the thread that
  // calls it.
  void Seal(Candidate& candidate);

  std::shared_ptr<google::protobuf::Arena> arena;
  std::vector<Candidate> events;
  // Set by EventLog::Prepare(): how many in-memory tables of the id index
  // had been dropped (after their run was ingested) when it first looked
  // ids of this batch up.
  bool looked_up_any = false;
  uint64_t prepared_after = 0;
  std::vector<okrd::v1::RejectedRecord> rejects;
  // Next offset to consume per partition, after this batch.
  std::map<PartitionKey, int64_t> next_offsets;
  // Offset of the batch's first message per partition. The log keeps it for
  // a partition it has never taken a message from (Stats::first_offsets).
  std::map<PartitionKey, int64_t> first_offsets;
  absl::Time ingest_time;
  // Also append a clock tick at `ingest_time`, after the events.
  bool tick = false;
};

struct AppendResult {
  // Holds the records `appended` points to: the batch's arena.
  std::shared_ptr<google::protobuf::Arena> arena;
  // Accepted events and the tick, stored in sequence order, ready for the
  // projection.
  std::vector<const okrd::v1::StoredEvent*> appended;
  // Everything rejected in this batch, including conflicts, as stored.
  std::vector<okrd::v1::RejectedRecord> rejected;
  uint64_t duplicates = 0;
  // The batch's next offsets: once the result is folded, the projection
  // reflects each of these partitions up to here.
  std::map<PartitionKey, int64_t> next_offsets;
};

// Counter key: (outcome, reason). Outcomes: accepted, duplicate, rejected.
using CounterKey = std::pair<std::string, std::string>;

// Every reason a message is rejected for (README, "Rejection reasons").
inline constexpr std::array<std::string_view, 16> kRejectionReasons = {
    "malformed",
    "bad_frame",
    "unknown_schema",
    "missing_field",
    "non_finite",
    "unknown_kpi",
    "unit_mismatch",
    "oversize",
    "future_event_time",
    "invalid_event_time",
    "too_late",
    "conflict",
    "unknown_correction_target",
    "invalid_correction_target",
    "retracted_target",
    "series_limit"};

// `counters` with the ones known before any message (accepted, duplicate,
// each rejection reason) added at 0 where absent, as Prometheus expects of
// counters whose labels are known in advance: rate() and increase() then
// see their first step.
std::map<CounterKey, uint64_t> WithKnownCounters(
    std::map<CounterKey, uint64_t> counters);

struct Stats {
  uint64_t last_sequence = 0;
  uint64_t last_rejected_sequence = 0;
  std::map<CounterKey, uint64_t> counters;
  std::map<PartitionKey, int64_t> offsets;
  // The same counters per source partition. Every instance that takes a
  // partition reads it from the same start, so across instances the largest
  // count of a partition is its exact count (README, "Scale-out").
  std::map<PartitionKey, std::map<CounterKey, uint64_t>> partition_counters;
  // Offset of the first message the log took from each partition; past 0
  // means the partition's earlier history was gone when okrd first read it.
  // Absent for partitions first read by a build that did not record it.
  std::map<PartitionKey, int64_t> first_offsets;
  // Bytes of an unfinished write at the end of the write-ahead log that
  // this open's recovery dropped (batches never confirmed durable).
  uint64_t recovery_dropped_bytes = 0;
};

class EventLog {
 public:
  // Opens or creates the log. Fails with FailedPrecondition when another
  // process holds the directory.
  static absl::StatusOr<std::unique_ptr<EventLog>> Open(const Options& options);

  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // When an appended batch is durable: on return (fsynced if the log was
  // opened with sync), or at the next SyncWal(), so that the fsync of one
  // batch can overlap the work on the next.
  enum class Durable { kOnReturn, kAtSyncWal };

  // Deduplicates and appends one batch. Same event_id and payload as a
  // logged event: counted as duplicate, dropped. Same id, other payload:
  // rejected with reason "conflict". On error nothing was written. The
  // batch's events and rejects move into the result, which shares the
  // batch's arena; what is left of the batch stays the caller's to free.
  // Batches become durable in order: a crash keeps a prefix of them, each
  // whole.
  absl::StatusOr<AppendResult> Append(Batch&& batch,
                                      Durable durable = Durable::kOnReturn);
  // Seals the batch's events and looks their ids up in the id index's
  // runs ahead of Append(), so that another thread can do it while Append()
  // writes the batches before, or while the batch still fills. Each call
  // takes the events no call took before: a batch may be prepared in parts
  // as its events come. Append() prepares what is left, settles the rest
  // against the ids in memory, and looks up again when a table it would
  // need was dropped since the first part. May run concurrently with
  // Append() and the read methods.
  absl::Status Prepare(Batch& batch) const;
  // Fsyncs every batch appended so far, when the log was opened with sync.
  absl::Status SyncWal();

  // Calls `fn` for each stored event with sequence >= `from`, in order, until
  // it returns false.
  absl::Status ForEach(
      uint64_t from,
      const std::function<bool(const okrd::v1::StoredEvent&)>& fn) const;

  absl::StatusOr<std::optional<okrd::v1::StoredEvent>> Get(
      uint64_t sequence) const;
  absl::StatusOr<std::optional<okrd::v1::StoredEvent>> GetByEventId(
      const std::string& event_id) const;
  absl::Status ForEachRejected(
      uint64_t from,
      const std::function<bool(const okrd::v1::RejectedRecord&)>& fn) const;

  // Stores a projection snapshot (one ingested table file, after the
  // events it covers are durable) and keeps only the newest kKeptSnapshots.
  absl::Status PutSnapshot(const okrd::v1::ProjectionSnapshot& snapshot);
  // The newest snapshot with `config_hash` and a sequence the log holds,
  // if any.
  absl::StatusOr<std::optional<okrd::v1::ProjectionSnapshot>> LatestSnapshot(
      const std::string& config_hash) const;
  static constexpr int kKeptSnapshots = 3;

  // Checks every invariant of the log: sequences contiguous, every event
  // found by its id, counters equal to a recount of the records, offsets
  // rising within each partition and the stored next offsets past them.
  // Reads the whole log; calls `progress(what, done, total)` now and then.
  // DataLoss names the first problem found.
  absl::Status Verify(
      const std::function<void(absl::string_view what, uint64_t done,
                               uint64_t total)>& progress) const;

  struct IdIndexStats {
    uint64_t covered_sequence = 0;  // ids up to here are in written runs
    size_t memory_ids = 0;          // ids in the in-memory tables
    size_t memory_bytes = 0;        // what those tables hold
    size_t run_reader_bytes = 0;    // RocksDB's readers of the runs
    size_t run_cached_bytes = 0;    // their filters and indexes in the cache
    uint64_t runs_written = 0;      // by this process
    // The filter over the runs' ids: no parts until the run writer has
    // built it.
    size_t filter_parts = 0;
    size_t filter_ids = 0;       // ids added to it
    size_t filter_capacity = 0;  // ids it has room for
    size_t filter_bytes = 0;
    uint64_t filters_built = 0;  // from the runs, by this process
    // Ids of appended events looked up in the runs (the filter's "maybe"s,
    // or every id while there is no filter), since the log was opened.
    uint64_t run_lookups = 0;
  };
  IdIndexStats id_index_stats() const;

  // Memory the log holds, by where (bytes); RocksDB's from its own
  // accounting.
  struct MemoryUse {
    size_t memtables = 0;      // every column family's, flushing ones too
    size_t block_cache = 0;    // data blocks, and the memtables charged to it
    size_t table_readers = 0;  // filters and indexes held outside the cache
    size_t id_tables = 0;      // the id index's tables in memory
    size_t id_filter = 0;      // the filter over the id index's runs
  };
  MemoryUse memory_use() const;
  // Waits until every full in-memory table is written as a run and the id
  // filter is built (tests, benchmarks); returns at once on a read-only log.
  void AwaitIdRuns() const;

  // The next offset to consume for every partition this log has seen.
  std::map<PartitionKey, int64_t> Offsets() const;
  Stats GetStats() const;
  uint64_t last_sequence() const;

 private:
  EventLog() = default;
  absl::Status Load();
  // What must hold of a log okrd writes to: its newest records are the ones
  // its metadata names, its counters fit them, the newest event is in the
  // dedup index. Cheap: a few seeks, whatever the log's size.
  absl::Status CheckAtStart() const;
  absl::StatusOr<uint64_t> LastKey(int cf) const;
  // The sequence of the newest stored event record, 0 when there is none.
  absl::StatusOr<uint64_t> LastEventSequence() const;
  // The block of event records that holds `sequence`, and its first
  // sequence: for a record from before the blocks, a block of it alone;
  // empty when the log holds no such record.
  absl::Status ReadBlockHolding(uint64_t sequence, uint64_t* first,
                                std::string* bytes) const;
  // Calls `fn` for each stored event record from `from` on, in order, until
  // it returns false: the ones in `events`, then the blocks.
  absl::Status ForEachRecord(uint64_t from, const rocksdb::ReadOptions& read,
                             const RawRecordFn& fn) const;
  // A full table of the id index, waiting for its run to be written.
  struct FrozenTable {
    std::unique_ptr<IdTable> table;
    uint64_t covered = 0;  // every id up to this sequence is in it or older
    bool written = false;
  };
  // Builds the in-memory tables from the events after the covered sequence.
  absl::Status RebuildIdIndex() ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  // Read-only logs build the tables at their first lookup by id.
  absl::Status EnsureIdIndex() const;
  // Moves the active table to the frozen ones once full.
  void MaybeFreeze(uint64_t covered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  // The entry of `id` in the in-memory tables, newest first, or nothing.
  std::optional<IdTable::Entry> FindInMemory(absl::string_view id) const
      ABSL_SHARED_LOCKS_REQUIRED(index_mu_);
  // The same in the frozen tables only.
  std::optional<IdTable::Entry> FindInFrozen(absl::string_view id) const
      ABSL_SHARED_LOCKS_REQUIRED(index_mu_);
  // The sequence of `id` in the runs on disk.
  absl::StatusOr<std::optional<uint64_t>> FindInRuns(
      absl::string_view id) const;
  // The sequence of `id` anywhere in the index.
  absl::StatusOr<std::optional<uint64_t>> FindId(absl::string_view id) const
      ABSL_SHARED_LOCKS_REQUIRED(index_mu_);
  // The oldest frozen table whose run is not written yet, or null.
  std::shared_ptr<FrozenTable> Unwritten() const
      ABSL_SHARED_LOCKS_REQUIRED(index_mu_);
  // Ids and bytes of the id tables in memory: the active one and the frozen
  // ones whose runs are not written yet.
  std::pair<size_t, size_t> IdTablesInMemory() const
      ABSL_SHARED_LOCKS_REQUIRED(index_mu_);
  // How many frozen tables wait for their runs; 0 without a run writer.
  size_t UnwrittenTables() const ABSL_SHARED_LOCKS_REQUIRED(index_mu_);
  // The background thread that writes frozen tables as runs.
  void WriteRuns();
  absl::Status WriteRun(const IdTable& table, uint64_t covered);
  // The id filter's parts, oldest first: an id of the runs is in one of
  // them. Each part is filled until it holds more than its room; readers
  // probe every part.
  using IdFilterParts = std::vector<std::shared_ptr<IdFilter>>;
  // Builds the id filter from every id in the runs, as one part, and puts it
  // in place. Runs on the run writer's thread, between runs. Returns
  // Cancelled once the writer is asked to stop.
  absl::Status BuildIdFilter();
  // The filter over the runs' ids; null before it is built.
  std::shared_ptr<const IdFilterParts> id_filter() const;
  // Adds a part once the newest one holds more than its room: a filter
  // cannot grow, and building a larger one from the runs read every id
  // again (seconds of the run writer at 10M ids).
  void GrowIdFilter();
  // Ids the runs hold, as RocksDB counts them: exact for ingested runs (the
  // sum of their tables' entry counts).
  uint64_t IdsInRuns() const;
  // The snapshots a new one replaces, beyond the newest kKeptSnapshots, by
  // sequence and layout, in key order.
  struct DroppedSnapshots {
    std::vector<uint64_t> chunked;
    std::vector<uint64_t> whole;  // stored by builds before chunks
  };
  absl::StatusOr<DroppedSnapshots> SnapshotsToDrop() const;

  // Finds what `event` (a correction or retraction) amends. Sets `reason`
  // and `detail` when it must be rejected; errors only on I/O failures.
  // Targets in the batch being appended are after `before`.
  absl::Status ResolveAmendment(
      const okrd::v1::KpiEvent& event, const AppendResult& batch,
      uint64_t before,
      const absl::flat_hash_map<std::string, okrd::v1::AmendmentState>& amended,
      okrd::v1::Amendment* amendment, std::string* reason,
      std::string* detail) const ABSL_SHARED_LOCKS_REQUIRED(index_mu_);

  Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  // By column family; null for one a read-only log lacks.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  // Events from this sequence on are in blocks, the ones before in
  // `events`. Set at open.
  uint64_t blocks_from_ = 1;

  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // The id index in memory: the table appends go to, then the full ones
  // whose runs are being written, oldest first.
  mutable absl::Mutex index_mu_;
  mutable bool index_built_ ABSL_GUARDED_BY(index_mu_) = false;
  mutable std::unique_ptr<IdTable> active_ ABSL_GUARDED_BY(index_mu_);
  mutable std::deque<std::shared_ptr<FrozenTable>> frozen_
      ABSL_GUARDED_BY(index_mu_);
  uint64_t covered_ ABSL_GUARDED_BY(index_mu_) = 0;
  uint64_t runs_written_ ABSL_GUARDED_BY(index_mu_) = 0;
  bool stop_writer_ ABSL_GUARDED_BY(index_mu_) = false;
  // The last run write failed: appends do not wait for runs then.
  bool run_failing_ ABSL_GUARDED_BY(index_mu_) = false;
  // What the id tables held after the last append (memory_use()).
  std::atomic<size_t> id_table_bytes_{0};
  // The run writer has the filter to build before waiting for tables.
  bool filter_due_ ABSL_GUARDED_BY(index_mu_) = true;
  uint64_t filters_built_ ABSL_GUARDED_BY(index_mu_) = 0;
  // Frozen tables dropped after their run went in; read by Prepare().
  std::atomic<uint64_t> tables_dropped_{0};
  // Holds every id of the runs of tables dropped so far: the run writer
  // adds a run's ids to the newest part before marking its table written.
  // Replaced whole when a part is added.
  mutable absl::Mutex filter_mu_;
  std::shared_ptr<const IdFilterParts> filter_ ABSL_GUARDED_BY(filter_mu_);
  mutable std::atomic<uint64_t> run_lookups_{0};
  std::thread run_writer_;
};

// The rejected record of a candidate refused with `reason`, with its raw
// bytes, content type and position.
okrd::v1::RejectedRecord RejectCandidate(const Batch::Candidate& candidate,
                                         std::string reason,
                                         std::string detail);

// The bytes the log stores for `event`, and compares a repeated id's event
// against: its deterministic serialization, equal for the same event whether
// it arrived as binary protobuf or JSON.
std::string EventBytes(const okrd::v1::KpiEvent& event);

// Into `*out`, the serialization of `record`, whose event serializes to
// `event_bytes`: byte for byte what protobuf writes, without serializing the
// event again.
void SerializeRecord(const okrd::v1::StoredEvent& record,
                     absl::string_view event_bytes, std::string* out);

}  // namespace okrd::eventlog

#endif  // OKRD_EVENTLOG_EVENT_LOG_H_
