#include "app/daemon.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "core/args.h"
#include "core/fold_queue.h"
#include "core/log.h"
#include "core/time_util.h"
#include "core/version.h"
#include "eventlog/event_log.h"
#include "export/http_server.h"
#include "export/metrics.h"
#include "ingest/embedded_broker.h"
#include "ingest/kafka_ingest.h"
#include "ingest/producer.h"
#include "projection/kpi_projection.h"
#include "spdlog/spdlog.h"

namespace okrd::app {
namespace {

constexpr char kUsage[] = R"(usage: okrd --config FILE [options]

okrd consumes KPI events from Kafka into a durable event log and exports
KPI and OKR projections as Prometheus metrics.

options:
  --config FILE        YAML config (required); check it with `okrctl config check`
  --brokers ADDR       override kafka.brokers ("embedded" or host:port,...)
  --data-dir DIR       override storage.path
  --listen HOST:PORT   override http.listen
  --web.config.file F  TLS and basic auth for the HTTP endpoints, in the
                       Prometheus exporter-toolkit format
  --log-level LEVEL    trace, debug, info (default), warn, error
  --help               print this help
  --version            print the version

signals: SIGTERM/SIGINT finish the current batch and stop (exit 0); SIGHUP
re-reads the config and rebuilds the projection in the background.
)";

// jemalloc's control interface where okrd runs on jemalloc (the default
// build); null on glibc malloc and under the sanitizers.
extern "C" int mallctl(const char* name, void* old_value, size_t* old_size,
                       void* new_value, size_t new_size) __attribute__((weak));

// Returns the allocator's freed pages to the system.
void ReleaseFreedMemory() {
  if (mallctl != nullptr) {
    // 4096 is MALLCTL_ARENAS_ALL: every arena.
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
  } else {
    malloc_trim(0);
  }
}

std::atomic<bool> g_stop{false};

std::atomic<bool> g_reload{false};

extern "C" void OnStopSignal(int) { g_stop.store(true); }
extern "C" void OnReloadSignal(int) { g_reload.store(true); }

// Owns the projection and the daemon state under one mutex: ingest writes,
// scrapes read, and a scrape always sees one log sequence.
class State final : public ingest::BatchSink,
                    public ingest::SeriesGate,
                    public exporter::SnapshotSource {
 public:
  State(std::shared_ptr<const config::Config> config, eventlog::EventLog* log)
      : log_(log),
        config_(config),
        projection_(std::make_unique<projection::KpiProjection>(config)) {
    // Until the group says what this instance owns, it exports nothing of
    // what its log holds: another instance may own it by now.
    daemon_.ownership = projection::Ownership({}, false);
  }

  void set_ingest(ingest::KafkaIngest* ingest) {
    absl::MutexLock lock(&mu_);
    ingest_ = ingest;
  }

  // Builds the start-up projection from the newest matching snapshot and
  // the log's tail, reporting progress.
  absl::Status Rebuild(const std::atomic<bool>& cancel) {
    const absl::Time started = absl::Now();
    std::shared_ptr<const config::Config> config;
    {
      absl::MutexLock lock(&mu_);
      config = config_;
    }
    absl::StatusOr<Built> built = Build(config, cancel);
    if (!built.ok()) return built.status();
    absl::MutexLock lock(&mu_);
    projection_ = std::move(built->projection);
    LogNewConflicts();
    daemon_.log = log_->GetStats();
    folded_offsets_ = daemon_.log.offsets;
    daemon_.rebuild_seconds = absl::ToDoubleSeconds(absl::Now() - started);
    last_snapshot_sequence_ = built->snapshot_sequence;
    last_snapshot_time_ = absl::Now();
    laid_out_pairs_ = projection_->subject_count();
    rebuilt_ = true;
    return absl::OkStatus();
  }

  // Rebuilds the projection for a changed `config` from the whole log while
  // the current one keeps serving, then switches atomically.
  absl::Status Reload(std::shared_ptr<const config::Config> config,
                      const std::atomic<bool>& cancel) {
    const absl::Time started = absl::Now();
    absl::StatusOr<Built> built = Build(config, cancel);
    if (!built.ok()) return built.status();
    ingest::KafkaIngest* ingest = nullptr;
    uint64_t sequence = 0;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = SwitchTo(*built); !s.ok()) return s;
      config_ = config;
      daemon_.rebuild_seconds = absl::ToDoubleSeconds(absl::Now() - started);
      // Snapshot the new projection at the next batch.
      last_snapshot_sequence_ = built->snapshot_sequence;
      last_snapshot_time_ = absl::InfinitePast();
      ingest = ingest_;
      sequence = projection_->sequence();
    }
    // Outside the lock: the consume loop finishes its batch, whose fold
    // takes that lock, before it takes the new config.
    if (ingest != nullptr) ingest->UpdateConfig(config);
    spdlog::info(
        "reload done: projection at sequence {} under the new config "
        "after {}",
        sequence, absl::FormatDuration(absl::Now() - started));
    return absl::OkStatus();
  }

  // Whether the projection should be laid out again (Relayout); asks once.
  bool TakeRelayout() {
    absl::MutexLock lock(&mu_);
    return std::exchange(relayout_wanted_, false);
  }

  // Pairs are kept where they were first made, so a projection that grew
  // while folding events is spread over memory in the order subjects
  // arrived, while scrapes walk it in subject order: measured on 100k
  // subjects, a scrape took 1.5-2x as long as on the same projection
  // restored from its snapshot, which lays pairs out in subject order. This
  // builds that restored projection from the newest snapshot and the log's
  // tail beside ingest, without the lock, and switches to it as a reload
  // does; a reload that came meanwhile wins.
  absl::Status Relayout(const std::atomic<bool>& cancel) {
    const absl::Time started = absl::Now();
    std::shared_ptr<const config::Config> config;
    uint64_t generation = 0;
    {
      absl::MutexLock lock(&mu_);
      config = config_;
      generation = generation_;
    }
    absl::StatusOr<Built> built = Build(config, cancel, /*quiet=*/true);
    if (!built.ok()) return built.status();
    size_t pairs = 0;
    uint64_t meanwhile = 0;
    {
      absl::MutexLock lock(&mu_);
      if (generation_ != generation) return absl::OkStatus();
      if (absl::Status s = SwitchTo(*built, &meanwhile); !s.ok()) return s;
      laid_out_pairs_ = pairs = projection_->subject_count();
    }
    built->projection.reset();
    // The old projection's memory goes back to the system now rather than
    // waiting in the allocator for a growth that may not come.
    ReleaseFreedMemory();
    spdlog::info(
        "projection laid out again in subject order: {} pairs in {}, {} "
        "records logged meanwhile folded in",
        pairs, absl::FormatDuration(absl::Now() - started), meanwhile);
    return absl::OkStatus();
  }

  // export.max_series: an event that would open a new KPI series is admitted
  // only while kSeriesPerKpiSubject more series fit. Admitted pairs count
  // until their batch is folded. The refusal is logged
  // once per KPI; each refused event is counted and kept as series_limit.
  bool Admit(const okrd::v1::KpiEvent& event, std::string* detail) override {
    // Shared: a scrape's render does not hold this up.
    absl::ReaderMutexLock lock(&mu_);
    const size_t max = config_->exporter.max_series;
    if (max == 0 || projection_->Tracks(event.kpi(), event.subject())) {
      return true;
    }
    std::pair<std::string, std::string> key{event.kpi(), event.subject()};
    absl::MutexLock admit_lock(&admit_mu_);
    if (admitted_.contains(key)) return true;
    const size_t pairs = projection_->subject_count() + admitted_.size();
    if ((pairs + 1) * config::kSeriesPerKpiSubject <= max) {
      admitted_.insert(std::move(key));
      return true;
    }
    *detail =
        absl::StrCat("export.max_series (", max,
                     ") reached: no new series for KPI \"", event.kpi(), "\"");
    if (series_limited_kpis_.insert(event.kpi()).second) {
      spdlog::warn(
          "{}; further events opening series of it are rejected as "
          "series_limit",
          *detail);
    }
    return false;
  }

  // Called by the ingest once a batch is durable. The batch is folded now
  // unless a read (a scrape's render) holds the projection; then the read
  // folds it when it ends, and ingest goes on meanwhile.
  void OnAppended(const eventlog::AppendResult& result) override {
    to_fold_.Push(Appended{result.arena, result.appended, result.next_offsets});
    if (!to_fold_.LockToFold(mu_)) return;
    FoldLocked();
    std::optional<okrd::v1::ProjectionSnapshot> snapshot;
    const config::ProjectionOptions& options = projection_->config().projection;
    const uint64_t sequence = projection_->sequence();
    const absl::Time now = absl::Now();
    // Snapshots grow with the state: however often they are asked for,
    // they take at most a tenth of this thread's time.
    if (sequence > last_snapshot_sequence_ &&
        (sequence - last_snapshot_sequence_ >=
             static_cast<uint64_t>(options.snapshot_every_records) ||
         now - last_snapshot_time_ >= options.snapshot_interval) &&
        now - last_snapshot_time_ >= 9 * snapshot_cost_) {
      snapshot = projection_->Snapshot();
      last_snapshot_sequence_ = sequence;
      last_snapshot_time_ = now;
    }
    mu_.Unlock();
    // Written outside the lock: scrapes go on meanwhile.
    if (snapshot) {
      const bool stored = StoreSnapshot(*snapshot);
      absl::MutexLock lock(&mu_);
      snapshot_cost_ = absl::Now() - last_snapshot_time_;
      // Laid out again from the snapshot just stored once a fifth of the
      // pairs are new since the last layout: the work stays within a few
      // times what the pairs cost to make.
      const size_t pairs = projection_->subject_count();
      if (stored && pairs >= kRelayoutMinPairs &&
          pairs * 4 >= laid_out_pairs_ * 5) {
        relayout_wanted_ = true;
      }
    }
  }

  // Folds the batches waiting in to_fold_, oldest first.
  void FoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::deque<Appended> batches = to_fold_.TakeAll();
    if (batches.empty()) return;
    for (const Appended& batch : batches) {
      for (const okrd::v1::StoredEvent* e : batch.records) {
        // A reload may already have folded this batch from the log.
        if (e->sequence() <= projection_->sequence()) continue;
        projection_->Apply(*e);
      }
      for (const auto& [key, offset] : batch.next_offsets) {
        folded_offsets_[key] = offset;
      }
    }
    // A batch went in: the log is writable again.
    if (!write_error_.empty()) {
      spdlog::info("event log writable again; ingest resumed");
      write_error_.clear();
    }
    LogNewConflicts();
    ForgetTrackedAdmissions();
    daemon_.log = log_->GetStats();
  }

  // Producers should key messages by subject (README, "Scale-out"); each
  // pair that is not is logged once.
  void LogNewConflicts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [kpi, subject] : projection_->TakeNewConflicts()) {
      spdlog::warn(
          "KPI {} subject {} came on more than one Kafka partition: key "
          "messages by subject, or instances split its values "
          "(okrd_subject_partition_conflicts_total)",
          kpi, exporter::SubjectLabel(projection_->config(), subject));
    }
  }

  // Drops the admitted series the projection now counts itself; the others
  // may belong to batches appended but not yet folded, and stay. Admit()
  // relies on admitted_ holding no tracked series.
  void ForgetTrackedAdmissions() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::MutexLock lock(&admit_mu_);
    for (auto it = admitted_.begin(); it != admitted_.end();) {
      if (projection_->Tracks(it->first, it->second)) {
        admitted_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  // Stores a snapshot of the current state unless one exists for it.
  void SnapshotNow() {
    okrd::v1::ProjectionSnapshot snapshot;
    {
      absl::MutexLock lock(&mu_);
      FoldLocked();
      if (!rebuilt_ || projection_->sequence() == last_snapshot_sequence_) {
        return;
      }
      snapshot = projection_->Snapshot();
      last_snapshot_sequence_ = snapshot.sequence();
    }
    StoreSnapshot(snapshot);
  }

  void Read(
      const std::function<void(const projection::KpiProjection&,
                               const exporter::DaemonState&)>& fn) override {
    // Before the lock: the log takes its own locks, which a failing append
    // holds while it reports to this state.
    const eventlog::EventLog::MemoryUse log_memory = log_->memory_use();
    // Under mu_ shared with admissions: batches logged meanwhile wait in
    // to_fold_, and this read folds them at its end.
    to_fold_.Read(
        mu_,
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          exporter::DaemonState state = daemon_;
          state.write_errors = write_errors_;
          state.log_memory = log_memory;
          if (ingest_ != nullptr) {
            state.lag = ingest_->Lag();
            state.ownership = ingest_->Ownership(folded_offsets_);
          }
          fn(*projection_, state);
        },
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { FoldLocked(); });
  }

  // PIP transitions not yet handed to the outbound topic, oldest first, with
  // the generation they belong to. Transitions change only with the
  // projection, so a projection already looked at at its current sequence
  // is not looked at again.
  struct Unpublished {
    uint64_t generation = 0;
    std::vector<okrd::v1::PipTransition> transitions;
  };
  Unpublished UnpublishedTransitions() {
    Unpublished out;
    absl::MutexLock lock(&mu_);
    const std::pair<uint64_t, uint64_t> at = {generation_,
                                              projection_->sequence()};
    if (!rebuilt_ || at == evaluated_) return out;
    evaluated_ = at;
    out.generation = generation_;
    const std::vector<projection::FiredTransition>& fired =
        projection_->pip_transitions();
    for (size_t i = published_; i < fired.size(); ++i) {
      okrd::v1::PipTransition m = projection_->PipTransitionRecord(fired[i]);
      m.set_subject(exporter::SubjectLabel(projection_->config(), m.subject()));
      out.transitions.push_back(std::move(m));
    }
    return out;
  }

  // The oldest unpublished transition of `generation` was sent. Sends go in
  // the projection's order, so the published ones are a prefix.
  void MarkPublished(uint64_t generation) {
    absl::MutexLock lock(&mu_);
    if (generation == generation_) ++published_;
  }

  // After a failed send: evaluate again next time, so nothing is skipped.
  void RetryPublishing() {
    absl::MutexLock lock(&mu_);
    evaluated_ = {};
  }

  // EventLog::Options::on_write_error: a batch could not be written (most
  // often a full disk). Ingest pauses, holding the batch, /readyz says why,
  // and the write is tried again with backoff until it succeeds or okrd
  // stops; the batch's offsets advance only with it.
  bool OnWriteError(const absl::Status& error, int attempt) {
    {
      absl::MutexLock lock(&mu_);
      ++write_errors_;
      write_error_ = std::string(error.message());
    }
    // Logged at the first failure, then about once a minute.
    if (attempt == 1 || attempt % 12 == 0) {
      spdlog::error(
          "event log write failed (attempt {}), ingest paused until it "
          "succeeds: {}",
          attempt, error.message());
    }
    const absl::Duration backoff =
        std::min(absl::Milliseconds(100) * (int64_t{1} << std::min(attempt, 6)),
                 absl::Seconds(5));
    for (absl::Time until = absl::Now() + backoff; absl::Now() < until;) {
      if (g_stop.load()) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return !g_stop.load();
  }

  exporter::Readiness GetReadiness() const override {
    absl::ReaderMutexLock lock(&mu_);
    const projection::Ownership ownership =
        ingest_ != nullptr ? ingest_->Ownership(folded_offsets_)
                           : daemon_.ownership;
    return exporter::Readiness{
        .log_open = true,
        .consumer_assigned = ingest_ != nullptr && ingest_->assigned(),
        .rebuild_done = rebuilt_,
        .caught_up = ownership.current(),
        .standby = ownership.standby(),
        .write_error = write_error_};
  }

 private:
  eventlog::EventLog* log_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const config::Config> config_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<projection::KpiProjection> projection_ ABSL_GUARDED_BY(mu_);
  exporter::DaemonState daemon_ ABSL_GUARDED_BY(mu_);
  // Next offset per partition of what projection_ has folded: whether an
  // owned partition has caught up is judged against these.
  std::map<eventlog::PartitionKey, int64_t> folded_offsets_
      ABSL_GUARDED_BY(mu_);
  uint64_t write_errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::string write_error_ ABSL_GUARDED_BY(mu_);
  ingest::KafkaIngest* ingest_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Series admitted by Admit() and not yet folded (the ingest appends
  // ahead of the fold, by a batch or two, or by what came during a render);
  // KPIs already logged as having hit export.max_series. Admit() holds mu_
  // shared, so these have a lock of their own.
  absl::Mutex admit_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::flat_hash_set<std::pair<std::string, std::string>> admitted_
      ABSL_GUARDED_BY(admit_mu_);
  absl::flat_hash_set<std::string> series_limited_kpis_
      ABSL_GUARDED_BY(admit_mu_);
  // A durable batch on its way into the projection.
  struct Appended {
    std::shared_ptr<google::protobuf::Arena> arena;  // holds `records`
    std::vector<const okrd::v1::StoredEvent*> records;
    std::map<eventlog::PartitionKey, int64_t> next_offsets;
  };
  FoldQueue<Appended> to_fold_;
  struct Built {
    std::unique_ptr<projection::KpiProjection> projection;
    uint64_t snapshot_sequence = 0;
  };

  // Folds into `built` what was logged while it was built and makes it the
  // projection; a new generation, as the old one's transitions were checked.
  // `meanwhile`, when given, is set to the count of those records.
  absl::Status SwitchTo(Built& built, uint64_t* meanwhile = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Records logged while the rebuild ran; OnAppended skips them later.
    const uint64_t caught_up_from = built.projection->sequence() + 1;
    // Taken before the fold below, which may see more, never less.
    std::map<eventlog::PartitionKey, int64_t> folded = log_->Offsets();
    uint64_t folded_now = 0;
    absl::Status s =
        log_->ForEach(caught_up_from, [&](const okrd::v1::StoredEvent& e) {
          built.projection->Apply(e);
          ++folded_now;
          return true;
        });
    if (!s.ok()) return s;
    if (meanwhile != nullptr) *meanwhile = folded_now;
    std::swap(projection_, built.projection);
    // Sent transitions stay sent where the new projection fired the same
    // ones first, as a relayout or an unchanged reload does; any others
    // are sent again with their ids, as after a restart.
    published_ = SentBefore(*built.projection, *projection_, published_);
    folded_offsets_ = std::move(folded);
    ForgetTrackedAdmissions();
    ++generation_;
    return absl::OkStatus();
  }

  // How many of `now`'s first transitions are `before`'s first `sent`, by id.
  static size_t SentBefore(const projection::KpiProjection& before,
                           const projection::KpiProjection& now, size_t sent) {
    const std::vector<projection::FiredTransition>& a =
        before.pip_transitions();
    const std::vector<projection::FiredTransition>& b = now.pip_transitions();
    size_t same = 0;
    while (same < sent && same < a.size() && same < b.size() &&
           before.PipTransitionIdOf(a[same]) ==
               now.PipTransitionIdOf(b[same])) {
      ++same;
    }
    return same;
  }

  // Restores the newest snapshot matching `config` and folds the rest of the
  // log. Reads only the log, so it runs beside ingest without the lock.
  absl::StatusOr<Built> Build(std::shared_ptr<const config::Config> config,
                              const std::atomic<bool>& cancel,
                              bool quiet = false) const {
    const absl::Time started = absl::Now();
    Built built{std::make_unique<projection::KpiProjection>(config), 0};
    built.projection->SetHistory(
        std::bind_front(&eventlog::EventLog::ForEach, log_));
    absl::StatusOr<std::optional<okrd::v1::ProjectionSnapshot>> snapshot =
        log_->LatestSnapshot(projection::ConfigHash(*config));
    if (!snapshot.ok()) return snapshot.status();
    if (snapshot->has_value()) {
      if (absl::Status s = built.projection->Restore(**snapshot); !s.ok()) {
        return s;
      }
      built.snapshot_sequence = (*snapshot)->sequence();
      if (!quiet) {
        spdlog::info("loaded projection snapshot at sequence {}",
                     built.snapshot_sequence);
      }
    }
    const uint64_t from = built.projection->sequence() + 1;
    const uint64_t last = log_->last_sequence();
    const uint64_t total = last >= from ? last - from + 1 : 0;
    if (!quiet) {
      spdlog::info("replaying {} log records from sequence {}", total, from);
    }
    absl::Time next_report = started + absl::Seconds(1);
    uint64_t applied = 0;
    absl::Status s = log_->ForEach(from, [&](const okrd::v1::StoredEvent& e) {
      if (e.sequence() > last) return false;
      built.projection->Apply(e);
      if ((++applied & 0xffff) == 0) {
        if (cancel.load()) return false;
        if (absl::Now() >= next_report) {
          next_report = absl::Now() + absl::Seconds(1);
          spdlog::info("rebuild progress: {}/{} records ({:.1f}%)", applied,
                       total,
                       100.0 * static_cast<double>(applied) /
                           static_cast<double>(std::max<uint64_t>(total, 1)));
        }
      }
      return true;
    });
    if (!s.ok()) return s;
    if (cancel.load()) return absl::CancelledError("rebuild cancelled");
    if (!quiet) {
      spdlog::info("rebuild done: {} records in {}", applied,
                   absl::FormatDuration(absl::Now() - started));
    }
    return built;
  }

  bool rebuilt_ ABSL_GUARDED_BY(mu_) = false;
  // Counts projection switches (reloads); with the sequence it names the
  // state UnpublishedTransitions() last evaluated. Generations start at 1.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  std::pair<uint64_t, uint64_t> evaluated_ ABSL_GUARDED_BY(mu_);
  // How many of the projection's transitions, first to last, were sent to
  // the outbound topic.
  size_t published_ ABSL_GUARDED_BY(mu_) = 0;
  // Pairs the projection held when it was last laid out in subject order
  // (restored from a snapshot); Relayout() is wanted from kRelayoutMinPairs
  // pairs on, when a fifth of them are newer than that.
  static constexpr size_t kRelayoutMinPairs = 4096;
  size_t laid_out_pairs_ ABSL_GUARDED_BY(mu_) = 0;
  bool relayout_wanted_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_snapshot_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_snapshot_time_ ABSL_GUARDED_BY(mu_);
  // What the last snapshot cost, taken and stored.
  absl::Duration snapshot_cost_ ABSL_GUARDED_BY(mu_);

  bool StoreSnapshot(const okrd::v1::ProjectionSnapshot& snapshot) {
    const absl::Time started = absl::Now();
    if (absl::Status s = log_->PutSnapshot(snapshot); !s.ok()) {
      // Only costs a longer replay at the next start.
      spdlog::warn("projection snapshot at sequence {} not stored: {}",
                   snapshot.sequence(), s.message());
      return false;
    }
    spdlog::info("stored projection snapshot at sequence {} ({} bytes, {})",
                 snapshot.sequence(), snapshot.ByteSizeLong(),
                 absl::FormatDuration(absl::Now() - started));
    return true;
  }
};

// The config file with the command line's overrides applied.
absl::StatusOr<std::shared_ptr<const config::Config>> LoadWithOverrides(
    const std::string& path, const Args& args) {
  absl::StatusOr<std::shared_ptr<const config::Config>> loaded =
      config::LoadConfig(path);
  if (!loaded.ok()) return loaded.status();
  auto effective = std::make_shared<config::Config>(**loaded);
  if (auto v = args.Get("brokers")) effective->kafka.brokers = *v;
  if (auto v = args.Get("data-dir")) effective->storage.path = *v;
  if (auto v = args.Get("listen")) effective->http.listen = *v;
  return std::shared_ptr<const config::Config>(std::move(effective));
}

// Produces new PIP transitions to pip.outbound_topic, keyed by subject, once
// a second until stop.
void PublishLoop(const config::Config& config, const std::string& brokers,
                 State& state) {
  absl::StatusOr<std::unique_ptr<ingest::Producer>> producer =
      ingest::Producer::Create(brokers, config.kafka.properties);
  if (!producer.ok()) {
    spdlog::error("pip.outbound_topic: {}", producer.status().message());
    return;
  }
  while (!g_stop.load()) {
    const State::Unpublished unpublished = state.UnpublishedTransitions();
    for (const okrd::v1::PipTransition& t : unpublished.transitions) {
      absl::Status s = (*producer)->Send(config.pip.outbound_topic, t.subject(),
                                         t.SerializeAsString(), {});
      if (!s.ok()) {
        spdlog::warn("pip.outbound_topic: {}", s.message());
        state.RetryPublishing();
        break;
      }
      spdlog::info("PIP transition {} -> {}", t.id(),
                   config.pip.outbound_topic);
      state.MarkPublished(unpublished.generation);
    }
    absl::SleepFor(absl::Seconds(1));
  }
  if (absl::Status s = (*producer)->Flush(absl::Seconds(5)); !s.ok()) {
    spdlog::warn("pip.outbound_topic: {}", s.message());
  }
}

// Re-reads the config on SIGHUP and rebuilds the projection under it in the
// background; a bad file is logged and the running config kept.
void ReloadLoop(const std::string& path, const Args& args, State& state,
                std::shared_ptr<const config::Config> running) {
  while (!g_stop.load()) {
    if (!g_reload.exchange(false)) {
      if (state.TakeRelayout()) {
        if (absl::Status s = state.Relayout(g_stop);
            !s.ok() && !absl::IsCancelled(s)) {
          spdlog::warn("projection not laid out again: {}", s.message());
        }
        continue;
      }
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    spdlog::info("SIGHUP: reloading {}", path);
    absl::StatusOr<std::shared_ptr<const config::Config>> next =
        LoadWithOverrides(path, args);
    if (!next.ok()) {
      spdlog::error("reload failed, keeping the running config: {}",
                    next.status().message());
      continue;
    }
    const config::Config& a = *running;
    const config::Config& b = **next;
    if (a.kafka.brokers != b.kafka.brokers ||
        a.kafka.topics != b.kafka.topics ||
        a.kafka.group_id != b.kafka.group_id ||
        a.kafka.dlq_topic != b.kafka.dlq_topic ||
        a.kafka.properties != b.kafka.properties ||
        a.storage.path != b.storage.path || a.http.listen != b.http.listen) {
      spdlog::warn(
          "reload: kafka, storage and http changes take effect at the next "
          "restart; KPIs, objectives and limits apply now");
    }
    if (absl::Status s = state.Reload(*next, g_stop); !s.ok()) {
      spdlog::error("reload failed, keeping the running config: {}",
                    s.message());
      continue;
    }
    running = *next;
  }
}

// One clear line on stderr, as okrd's usage and config errors are.
int UsageError(absl::string_view message) {
  std::fprintf(stderr, "okrd: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return 2;
}

}  // namespace

int RunDaemon(int argc, char** argv) {
  Args args({"config", "brokers", "data-dir", "listen", "log-level",
             "web.config.file"},
            {"help", "version"});
  if (absl::Status s =
          args.Parse(std::vector<std::string>(argv + 1, argv + argc));
      !s.ok()) {
    return UsageError(s.message());
  }
  if (args.Has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.Has("version")) {
    std::printf("okrd %s\n", Version());
    return 0;
  }
  if (!args.positional().empty()) {
    return UsageError(absl::StrCat("unexpected argument \"",
                                   args.positional().front(),
                                   "\" (see --help)"));
  }
  if (absl::Status s = InitLogging(args.Get("log-level").value_or("info"));
      !s.ok()) {
    return UsageError(absl::StrCat("--log-level: ", s.message()));
  }
  const std::optional<std::string> config_path = args.Get("config");
  if (!config_path) return UsageError("--config FILE is required (see --help)");
  if (auto v = args.Get("listen")) {
    std::string host;
    int port = 0;
    if (absl::Status s = config::ParseHostPort(*v, &host, &port); !s.ok()) {
      return UsageError(absl::StrCat("--listen: ", s.message()));
    }
  }
  absl::StatusOr<std::shared_ptr<const config::Config>> loaded =
      LoadWithOverrides(*config_path, args);
  if (!loaded.ok()) return UsageError(loaded.status().message());
  std::shared_ptr<const config::Config> config = std::move(*loaded);
  std::optional<config::WebConfig> web;
  if (auto path = args.Get("web.config.file")) {
    absl::StatusOr<config::WebConfig> w = config::LoadWebConfig(*path);
    if (!w.ok()) return UsageError(w.status().message());
    web = std::move(*w);
  }

  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  struct sigaction reload = {};
  reload.sa_handler = OnReloadSignal;
  sigemptyset(&reload.sa_mask);
  sigaction(SIGHUP, &reload, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  spdlog::info("okrd {} starting with config {} ({} KPIs)", Version(),
               *config_path, config->kpis.size());
  // Set once the state exists; the log writes nothing before ingest starts.
  State* writer = nullptr;
  absl::StatusOr<std::unique_ptr<eventlog::EventLog>> log =
      eventlog::EventLog::Open(
          {.path = config->storage.path,
           .sync = config->storage.sync,
           .on_write_error =
               [&writer](const absl::Status& error, int attempt) {
                 return writer != nullptr &&
                        writer->OnWriteError(error, attempt);
               },
           .id_run_ids =
               static_cast<size_t>(config->storage.id_index_memory_ids),
           .memory_bytes = static_cast<size_t>(config->storage.memory_mb)
                           << 20});
  if (!log.ok()) {
    spdlog::critical("{}", log.status().message());
    return 1;
  }
  State state(config, log->get());
  writer = &state;
  absl::StatusOr<std::unique_ptr<exporter::HttpServer>> http =
      exporter::HttpServer::Start(config->http.listen, &state,
                                  web ? &*web : nullptr);
  if (!http.ok()) {
    if (absl::IsInvalidArgument(http.status())) {
      return UsageError(http.status().message());
    }
    spdlog::critical("{}", http.status().message());
    return 1;
  }
  const bool tls = web && web->tls();
  spdlog::info("serving {}://{}/metrics (port {}{})", tls ? "https" : "http",
               config->http.listen, (*http)->port(),
               web && !web->users.empty() ? ", basic auth" : "");
  if (absl::Status s = state.Rebuild(g_stop); !s.ok()) {
    if (absl::IsCancelled(s)) {
      spdlog::info("stopped during the start-up rebuild");
      return 0;
    }
    spdlog::critical("rebuild failed: {}", s.message());
    return 1;
  }

  std::unique_ptr<ingest::EmbeddedBroker> embedded;
  std::string brokers = config->kafka.brokers;
  if (brokers == "embedded") {
    std::vector<std::string> topics = config->kafka.topics;
    for (const std::string* extra :
         {&config->kafka.dlq_topic, &config->pip.outbound_topic}) {
      if (!extra->empty()) topics.push_back(*extra);
    }
    absl::StatusOr<std::unique_ptr<ingest::EmbeddedBroker>> started =
        ingest::EmbeddedBroker::Start(config->kafka.embedded_partitions,
                                      topics);
    if (!started.ok()) {
      spdlog::critical("{}", started.status().message());
      return 1;
    }
    embedded = std::move(*started);
    brokers = embedded->bootstrap();
    spdlog::info("embedded broker: bootstrap {}", brokers);
  }
  absl::StatusOr<std::unique_ptr<ingest::KafkaIngest>> ingest =
      ingest::KafkaIngest::Create(config, brokers, log->get(), &state,
                                  &Clock::Real(), &state);
  if (!ingest.ok()) {
    if (absl::IsInvalidArgument(ingest.status())) {
      return UsageError(
          absl::StrCat(*config_path, ": ", ingest.status().message()));
    }
    spdlog::critical("{}", ingest.status().message());
    return 1;
  }
  state.set_ingest(ingest->get());
  std::thread reloader(ReloadLoop, *config_path, std::cref(args),
                       std::ref(state), config);
  std::thread publisher;
  if (!config->pip.outbound_topic.empty()) {
    publisher =
        std::thread(PublishLoop, std::cref(*config), brokers, std::ref(state));
  }
  const absl::Status run = (*ingest)->Run(g_stop);
  g_stop.store(true);  // ends the reload loop after a fatal error too
  reloader.join();
  if (publisher.joinable()) publisher.join();
  state.set_ingest(nullptr);
  ingest->reset();
  state.SnapshotNow();
  if (!run.ok()) {
    spdlog::critical("stopping: {}", run.message());
    return 1;
  }
  spdlog::info("stopped cleanly at log sequence {}", (*log)->last_sequence());
  return 0;
}

}  // namespace okrd::app
