// replay_bench: how fast the projection is rebuilt from the log, and how
// soon a restarted okrd can serve a consistent scrape when a snapshot exists.
//
//   replay_bench [--events N] [--subjects S] [--tail T] [--dir DIR]
//
// Loads N events (4 KPIs, S subjects, two months) into a fresh log, then
// measures: (1) a full replay (log read + fold) in records/s; (2) storing a
// snapshot; (3) start-up as okrd does it: open the log, restore the newest
// snapshot, fold the T records after it, render /metrics.

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "config/config.h"
#include "core/args.h"
#include "core/log.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "export/metrics.h"
#include "projection/kpi_projection.h"

namespace okrd {
namespace {

std::shared_ptr<const config::Config> BenchConfig() {
  auto config = std::make_shared<config::Config>();
  for (auto [id, aggregation] :
       {std::pair{"signups", config::Aggregation::kSum},
        std::pair{"churn", config::Aggregation::kLatest},
        std::pair{"revenue", config::Aggregation::kSum},
        std::pair{"lead_time", config::Aggregation::kMean}}) {
    config::KpiOptions kpi;
    kpi.id = id;
    kpi.aggregation = aggregation;
    config->kpis.push_back(kpi);
  }
  return config;
}

double Seconds(absl::Time since) {
  return absl::ToDoubleSeconds(absl::Now() - since);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "replay_bench: %s\n", std::string(s.message()).c_str());
  return 1;
}

int Main(int argc, char** argv) {
  (void)InitLogging("warn");
  Args args({"events", "subjects", "tail", "dir"}, {});
  if (absl::Status s =
          args.Parse(std::vector<std::string>(argv + 1, argv + argc));
      !s.ok()) {
    return Fail(s);
  }
  long long events = 0, subjects = 0, tail = 0;
  for (auto [name, fallback, out] : {std::tuple{"events", 1000000LL, &events},
                                     std::tuple{"subjects", 1000LL, &subjects},
                                     std::tuple{"tail", 10000LL, &tail}}) {
    if (absl::Status s = args.GetInt(name, 1, 1000000000, fallback, out);
        !s.ok()) {
      return Fail(s);
    }
  }
  const std::filesystem::path dir =
      args.Get("dir").value_or((std::filesystem::temp_directory_path() /
                                absl::StrCat("okrd-replay-bench-", getpid()))
                                   .string());
  std::filesystem::remove_all(dir);
  const auto config = BenchConfig();

  // Load.
  absl::Time start = absl::Now();
  {
    auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = false});
    if (!log.ok()) return Fail(log.status());
    const absl::Time base = absl::FromUnixSeconds(1793491200);  // 2026-11-01
    for (long long i = 0; i < events;) {
      eventlog::Batch batch;
      batch.ingest_time = base + absl::Seconds(i / 100);
      for (int b = 0; b < 10000 && i < events; ++b, ++i) {
        okrd::v1::KpiEvent& e = batch.AddCandidate().event();
        e.set_event_id(absl::StrCat("e", i));
        e.set_kpi(config->kpis[i % 4].id);
        e.set_subject(absl::StrCat("subject-", (i / 4) % subjects));
        e.set_value(static_cast<double>(i % 97));
        // Spread over October and November.
        ToProto(base - absl::Hours(24 * 30) +
                    absl::Seconds((i * 5184000LL / events)),
                e.mutable_event_time());
      }
      auto result = (*log)->Append(std::move(batch));
      if (!result.ok()) return Fail(result.status());
    }
  }
  std::printf("load:    %lld events in %.1f s (%.0f events/s)\n", events,
              Seconds(start), static_cast<double>(events) / Seconds(start));

  // The load closed without flushing: opening recovers the WAL, as after a
  // crash.
  start = absl::Now();
  auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = true});
  if (!log.ok()) return Fail(log.status());
  std::printf("recover: WAL of the load replayed by open in %.2f s\n",
              Seconds(start));

  // Full replay.
  start = absl::Now();
  projection::KpiProjection full(config);
  uint64_t records = 0;
  absl::Status s = (*log)->ForEach(1, [&](const okrd::v1::StoredEvent& e) {
    full.Apply(e);
    ++records;
    return true;
  });
  if (!s.ok()) return Fail(s);
  std::printf(
      "replay:  %llu records in %.2f s (%.0f records/s), %zu KPI/subject "
      "pairs\n",
      static_cast<unsigned long long>(records), Seconds(start),
      static_cast<double>(records) / Seconds(start), full.subject_count());

  // Snapshot at (last - tail), so that start-up has a tail to fold.
  projection::KpiProjection partial(config);
  const uint64_t cut =
      records > static_cast<uint64_t>(tail) ? records - tail : 0;
  s = (*log)->ForEach(1, [&](const okrd::v1::StoredEvent& e) {
    if (e.sequence() > cut) return false;
    partial.Apply(e);
    return true;
  });
  if (!s.ok()) return Fail(s);
  start = absl::Now();
  const okrd::v1::ProjectionSnapshot snapshot = partial.Snapshot();
  s = (*log)->PutSnapshot(snapshot);
  if (!s.ok()) return Fail(s);
  std::printf("snapshot: %zu bytes stored in %.3f s\n", snapshot.ByteSizeLong(),
              Seconds(start));
  log->reset();

  // Start-up with the snapshot: open, restore, fold the tail, first scrape.
  start = absl::Now();
  log = eventlog::EventLog::Open({.path = dir.string(), .sync = true});
  if (!log.ok()) return Fail(log.status());
  projection::KpiProjection restarted(config);
  auto found = (*log)->LatestSnapshot(projection::ConfigHash(*config));
  if (!found.ok() || !found->has_value()) return Fail(found.status());
  if (s = restarted.Restore(**found); !s.ok()) return Fail(s);
  s = (*log)->ForEach(restarted.sequence() + 1,
                      [&](const okrd::v1::StoredEvent& e) {
                        restarted.Apply(e);
                        return true;
                      });
  if (!s.ok()) return Fail(s);
  exporter::DaemonState state;
  state.log = (*log)->GetStats();
  const std::string scrape = exporter::RenderMetrics(restarted, state);
  std::printf(
      "start-up with snapshot: first consistent scrape after %.3f s "
      "(%lld-record tail, %zu-byte scrape)\n",
      Seconds(start), tail, scrape.size());
  if (exporter::RenderBusinessMetrics(restarted) !=
      exporter::RenderBusinessMetrics(full)) {
    std::fprintf(stderr, "replay_bench: restarted state differs from replay\n");
    return 1;
  }
  log->reset();
  if (!args.Get("dir")) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace okrd

int main(int argc, char** argv) { return okrd::Main(argc, argv); }
