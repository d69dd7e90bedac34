#include "app/daemon.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "core/args.h"
#include "core/log.h"
#include "core/time_util.h"
#include "core/version.h"
#include "eventlog/event_log.h"
#include "export/http_server.h"
#include "export/metrics.h"
#include "ingest/embedded_broker.h"
#include "ingest/kafka_ingest.h"
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
  --log-level LEVEL    trace, debug, info (default), warn, error
  --help               print this help
  --version            print the version
)";

std::atomic<bool> g_stop{false};

extern "C" void OnStopSignal(int) { g_stop.store(true); }

// Owns the projection and the daemon state under one mutex: ingest writes,
// scrapes read, and a scrape always sees one log sequence.
class State final : public ingest::BatchSink, public exporter::SnapshotSource {
 public:
  State(std::shared_ptr<const config::Config> config, eventlog::EventLog* log)
      : log_(log),
        projection_(std::make_unique<projection::KpiProjection>(config)) {}

  void set_ingest(const ingest::KafkaIngest* ingest) {
    absl::MutexLock lock(&mu_);
    ingest_ = ingest;
  }

  // Loads the newest matching snapshot and folds the log's tail into the
  // projection, reporting progress.
  absl::Status Rebuild() {
    const absl::Time started = absl::Now();
    absl::MutexLock lock(&mu_);
    const std::string hash = projection::ConfigHash(projection_->config());
    absl::StatusOr<std::optional<okrd::v1::ProjectionSnapshot>> snapshot =
        log_->LatestSnapshot(hash);
    if (!snapshot.ok()) return snapshot.status();
    if (snapshot->has_value()) {
      if (absl::Status s = projection_->Restore(**snapshot); !s.ok()) return s;
      spdlog::info("loaded projection snapshot at sequence {}",
                   projection_->sequence());
    }
    const uint64_t from = projection_->sequence() + 1;
    const uint64_t last = log_->last_sequence();
    const uint64_t total = last >= from ? last - from + 1 : 0;
    spdlog::info("replaying {} log records from sequence {}", total, from);
    absl::Time next_report = started + absl::Seconds(1);
    uint64_t applied = 0;
    absl::Status s = log_->ForEach(from, [&](const okrd::v1::StoredEvent& e) {
      projection_->Apply(e);
      if ((++applied & 0xffff) == 0 && absl::Now() >= next_report) {
        next_report = absl::Now() + absl::Seconds(1);
        spdlog::info("rebuild progress: {}/{} records ({:.1f}%)", applied,
                     total,
                     100.0 * static_cast<double>(applied) /
                         static_cast<double>(std::max<uint64_t>(total, 1)));
      }
      return true;
    });
    if (!s.ok()) return s;
    daemon_.log = log_->GetStats();
    daemon_.rebuild_seconds = absl::ToDoubleSeconds(absl::Now() - started);
    last_snapshot_sequence_ =
        snapshot->has_value() ? (*snapshot)->sequence() : 0;
    last_snapshot_time_ = absl::Now();
    rebuilt_ = true;
    spdlog::info("rebuild done: {} records in {}", applied,
                 absl::FormatDuration(absl::Now() - started));
    return absl::OkStatus();
  }

  void OnAppended(const eventlog::AppendResult& result) override {
    std::optional<okrd::v1::ProjectionSnapshot> snapshot;
    {
      absl::MutexLock lock(&mu_);
      for (const okrd::v1::StoredEvent& e : result.appended) {
        projection_->Apply(e);
      }
      daemon_.log = log_->GetStats();
      const config::ProjectionOptions& options =
          projection_->config().projection;
      const uint64_t sequence = projection_->sequence();
      if (sequence > last_snapshot_sequence_ &&
          (sequence - last_snapshot_sequence_ >=
               static_cast<uint64_t>(options.snapshot_every_records) ||
           absl::Now() - last_snapshot_time_ >= options.snapshot_interval)) {
        snapshot = projection_->Snapshot();
        last_snapshot_sequence_ = sequence;
        last_snapshot_time_ = absl::Now();
      }
    }
    // Written outside the lock: scrapes go on meanwhile.
    if (snapshot) StoreSnapshot(*snapshot);
  }

  // Stores a snapshot of the current state unless one exists for it.
  void SnapshotNow() {
    okrd::v1::ProjectionSnapshot snapshot;
    {
      absl::MutexLock lock(&mu_);
      if (!rebuilt_ || projection_->sequence() == last_snapshot_sequence_) {
        return;
      }
      snapshot = projection_->Snapshot();
      last_snapshot_sequence_ = snapshot.sequence();
    }
    StoreSnapshot(snapshot);
  }

  void Read(const std::function<void(const projection::KpiProjection&,
                                     const exporter::DaemonState&)>& fn)
      const override {
    absl::MutexLock lock(&mu_);
    exporter::DaemonState state = daemon_;
    if (ingest_ != nullptr) state.lag = ingest_->Lag();
    fn(*projection_, state);
  }

  exporter::Readiness GetReadiness() const override {
    absl::MutexLock lock(&mu_);
    return exporter::Readiness{
        .log_open = true,
        .consumer_assigned = ingest_ != nullptr && ingest_->assigned(),
        .rebuild_done = rebuilt_};
  }

 private:
  eventlog::EventLog* log_;
  mutable absl::Mutex mu_;
  std::unique_ptr<projection::KpiProjection> projection_ ABSL_GUARDED_BY(mu_);
  exporter::DaemonState daemon_ ABSL_GUARDED_BY(mu_);
  const ingest::KafkaIngest* ingest_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool rebuilt_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_snapshot_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_snapshot_time_ ABSL_GUARDED_BY(mu_);

  void StoreSnapshot(const okrd::v1::ProjectionSnapshot& snapshot) {
    const absl::Time started = absl::Now();
    if (absl::Status s = log_->PutSnapshot(snapshot); !s.ok()) {
      // Only costs a longer replay at the next start.
      spdlog::warn("projection snapshot at sequence {} not stored: {}",
                   snapshot.sequence(), s.message());
      return;
    }
    spdlog::info("stored projection snapshot at sequence {} ({} bytes, {})",
                 snapshot.sequence(), snapshot.ByteSizeLong(),
                 absl::FormatDuration(absl::Now() - started));
  }
};

// One clear line on stderr, as okrd's usage and config errors are.
int UsageError(absl::string_view message) {
  std::fprintf(stderr, "okrd: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return 2;
}

}  // namespace

int RunDaemon(int argc, char** argv) {
  Args args({"config", "brokers", "data-dir", "listen", "log-level"},
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
  absl::StatusOr<std::shared_ptr<const config::Config>> loaded =
      config::LoadConfig(*config_path);
  if (!loaded.ok()) return UsageError(loaded.status().message());
  auto effective = std::make_shared<config::Config>(**loaded);
  if (auto v = args.Get("brokers")) effective->kafka.brokers = *v;
  if (auto v = args.Get("data-dir")) effective->storage.path = *v;
  if (auto v = args.Get("listen")) {
    std::string host;
    int port = 0;
    if (absl::Status s = config::ParseHostPort(*v, &host, &port); !s.ok()) {
      return UsageError(absl::StrCat("--listen: ", s.message()));
    }
    effective->http.listen = *v;
  }
  std::shared_ptr<const config::Config> config = std::move(effective);

  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  spdlog::info("okrd {} starting with config {} ({} KPIs)", Version(),
               *config_path, config->kpis.size());
  absl::StatusOr<std::unique_ptr<eventlog::EventLog>> log =
      eventlog::EventLog::Open(
          {.path = config->storage.path, .sync = config->storage.sync});
  if (!log.ok()) {
    spdlog::critical("{}", log.status().message());
    return 1;
  }
  State state(config, log->get());
  absl::StatusOr<std::unique_ptr<exporter::HttpServer>> http =
      exporter::HttpServer::Start(config->http.listen, &state);
  if (!http.ok()) {
    spdlog::critical("{}", http.status().message());
    return 1;
  }
  spdlog::info("serving http://{}/metrics (port {})", config->http.listen,
               (*http)->port());
  if (absl::Status s = state.Rebuild(); !s.ok()) {
    spdlog::critical("rebuild failed: {}", s.message());
    return 1;
  }

  std::unique_ptr<ingest::EmbeddedBroker> embedded;
  std::string brokers = config->kafka.brokers;
  if (brokers == "embedded") {
    std::vector<std::string> topics = config->kafka.topics;
    if (!config->kafka.dlq_topic.empty()) {
      topics.push_back(config->kafka.dlq_topic);
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
                                  &Clock::Real());
  if (!ingest.ok()) {
    if (absl::IsInvalidArgument(ingest.status())) {
      return UsageError(
          absl::StrCat(*config_path, ": ", ingest.status().message()));
    }
    spdlog::critical("{}", ingest.status().message());
    return 1;
  }
  state.set_ingest(ingest->get());
  const absl::Status run = (*ingest)->Run(g_stop);
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
