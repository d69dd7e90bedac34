// replay_bench: how fast the projection is rebuilt from the log, and how
// soon a restarted okrd can serve a consistent scrape when a snapshot exists.
//
//   replay_bench [--events N] [--subjects S] [--days D] [--pip 0|1]
//                [--tail T] [--crash-tail K] [--dir DIR] [--memory-mb M]
//
// Loads N events (4 monthly KPIs, S subjects, spread over D days from
// 2026-10-02, 61 by default; with --pip 1, a PIP policy watching every
// subject's revenue and a clock tick after each batch of 10000, as okrd
// logs them) into a fresh log, folding them as okrd does and
// printing the resident memory and the periods held after each million
// (RocksDB within storage.memory_mb = M, 256 by default), then
// measures: (1) a full replay (log read + fold) in records/s; (2) storing a
// snapshot; (3) start-up as okrd does it: open the log, restore the newest
// snapshot, fold the T records after it, render /metrics. With --crash-tail,
// (4): a child appends K more events and exits as kill -9 leaves it (no
// close, nothing flushed), and the start-up of (3) is timed again: WAL
// replay, the id index's rebuild from the tail, the snapshot, T + K records
// folded, first scrape; its state is checked against a full replay.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

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

std::shared_ptr<const config::Config> BenchConfig(bool pip) {
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
  if (pip) {
    // Revenue values are 0..96 summed over thousands of events a month:
    // a subject breaches when its month is thin.
    config::PipPolicyOptions policy;
    policy.id = "revenue-below";
    policy.kpi = "revenue";
    policy.trigger = 1000;
    policy.recovery = 2000;
    config->pip_policies.push_back(policy);
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

// Appends events [from, to) of a load of `events` events in batches of
// 10000, as the load below spreads them; folds them into `fold` when set.
absl::Status AppendEvents(eventlog::EventLog& log, const config::Config& config,
                          long long from, long long to, long long events,
                          long long subjects, long long days, bool ticks,
                          projection::KpiProjection* fold = nullptr) {
  const absl::Time base = absl::FromUnixSeconds(1793491200);  // 2026-11-01
  for (long long i = from; i < to;) {
    eventlog::Batch batch;
    batch.ingest_time = base + absl::Seconds(i / 100);
    batch.tick = ticks;
    for (int b = 0; b < 10000 && i < to; ++b, ++i) {
      // As consumed from one partition, whose offsets the batch carries.
      eventlog::Batch::Candidate& c = batch.AddCandidate();
      c.position().set_topic("kpi-events");
      c.position().set_offset(i);
      batch.next_offsets[{"kpi-events", 0}] = i + 1;
      okrd::v1::KpiEvent& e = c.event();
      e.set_event_id(absl::StrCat("e", i));
      e.set_kpi(config.kpis[i % 4].id);
      e.set_subject(absl::StrCat("subject-", (i / 4) % subjects));
      e.set_value(static_cast<double>(i % 97));
      // Spread over `days` from October 2.
      ToProto(base - absl::Hours(24 * 30) +
                  absl::Seconds(i * (days * 86400) / events),
              e.mutable_event_time());
    }
    auto result = log.Append(std::move(batch));
    if (!result.ok()) return result.status();
    if (fold != nullptr) {
      for (const okrd::v1::StoredEvent* record : result->appended) {
        fold->Apply(*record);
      }
    }
  }
  return absl::OkStatus();
}

long ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// Start-up as okrd does it: open the log, restore the newest snapshot, fold
// the records after it, render a scrape. Returns the projection.
absl::StatusOr<std::unique_ptr<projection::KpiProjection>> StartUp(
    const std::filesystem::path& dir,
    const std::shared_ptr<const config::Config>& config, size_t* scrape_bytes,
    uint64_t* folded) {
  auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = true});
  if (!log.ok()) return log.status();
  auto restarted = std::make_unique<projection::KpiProjection>(config);
  auto found = (*log)->LatestSnapshot(projection::ConfigHash(*config));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return absl::NotFoundError("no snapshot");
  if (absl::Status s = restarted->Restore(**found); !s.ok()) return s;
  *folded = 0;
  absl::Status s = (*log)->ForEach(restarted->sequence() + 1,
                                   [&](const okrd::v1::StoredEvent& e) {
                                     restarted->Apply(e);
                                     ++*folded;
                                     return true;
                                   });
  if (!s.ok()) return s;
  exporter::DaemonState state;
  state.log = (*log)->GetStats();
  *scrape_bytes = exporter::RenderMetrics(*restarted, state).size();
  return restarted;
}

int Main(int argc, char** argv) {
  (void)InitLogging("warn");
  Args args({"events", "subjects", "days", "pip", "tail", "crash-tail", "dir",
             "memory-mb"},
            {});
  if (absl::Status s =
          args.Parse(std::vector<std::string>(argv + 1, argv + argc));
      !s.ok()) {
    return Fail(s);
  }
  long long events = 0, subjects = 0, days = 0, pip = 0, tail = 0,
            crash_tail = 0, memory_mb = 0;
  for (auto [name, least, fallback, out] :
       {std::tuple{"events", 1LL, 1000000LL, &events},
        std::tuple{"subjects", 1LL, 1000LL, &subjects},
        std::tuple{"days", 1LL, 61LL, &days}, std::tuple{"pip", 0LL, 0LL, &pip},
        std::tuple{"tail", 1LL, 10000LL, &tail},
        std::tuple{"crash-tail", 0LL, 0LL, &crash_tail},
        std::tuple{
            "memory-mb", 16LL,
            static_cast<long long>(eventlog::Options().memory_bytes >> 20),
            &memory_mb}}) {
    if (absl::Status s = args.GetInt(name, least, 1000000000, fallback, out);
        !s.ok()) {
      return Fail(s);
    }
  }
  const std::filesystem::path dir =
      args.Get("dir").value_or((std::filesystem::temp_directory_path() /
                                absl::StrCat("okrd-replay-bench-", getpid()))
                                   .string());
  std::filesystem::remove_all(dir);
  const auto config = BenchConfig(pip != 0);

  // Load, folded as okrd folds, with the process's resident memory after
  // each million events.
  absl::Time start = absl::Now();
  {
    auto log = eventlog::EventLog::Open(
        {.path = dir.string(),
         .sync = false,
         .memory_bytes = static_cast<size_t>(memory_mb) << 20});
    if (!log.ok()) return Fail(log.status());
    projection::KpiProjection live(config);
    live.SetHistory(std::bind_front(&eventlog::EventLog::ForEach, log->get()));
    constexpr long long kStep = 1000000;
    for (long long from = 0; from < events; from += kStep) {
      const long long to = std::min(events, from + kStep);
      if (absl::Status s = AppendEvents(**log, *config, from, to, events,
                                        subjects, days, pip != 0, &live);
          !s.ok()) {
        return Fail(s);
      }
      std::printf(
          "load:    %lld events, RSS %.0f MB (RocksDB memtables and "
          "cache within %lld MB), %zu periods held for %zu pairs, %zu PIP "
          "transitions\n",
          to, static_cast<double>(ResidentBytes()) / 1e6, memory_mb,
          live.period_count(), live.subject_count(),
          live.pip_transitions().size());
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
  full.SetHistory(std::bind_front(&eventlog::EventLog::ForEach, log->get()));
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
  partial.SetHistory(std::bind_front(&eventlog::EventLog::ForEach, log->get()));
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
  size_t scrape_bytes = 0;
  uint64_t folded = 0;
  auto restarted = StartUp(dir, config, &scrape_bytes, &folded);
  if (!restarted.ok()) return Fail(restarted.status());
  std::printf(
      "start-up with snapshot: first consistent scrape after %.3f s "
      "(%llu-record tail, %zu-byte scrape)\n",
      Seconds(start), static_cast<unsigned long long>(folded), scrape_bytes);
  if (exporter::RenderBusinessMetrics(**restarted) !=
      exporter::RenderBusinessMetrics(full)) {
    std::fprintf(stderr, "replay_bench: restarted state differs from replay\n");
    return 1;
  }
  restarted->reset();

  if (crash_tail > 0) {
    // A child appends the crash tail and exits without closing the log, as
    // kill -9 would leave it: the tail is only in the WAL.
    const pid_t child = fork();
    if (child == 0) {
      auto writer =
          eventlog::EventLog::Open({.path = dir.string(), .sync = true});
      if (!writer.ok() ||
          !AppendEvents(**writer, *config, events, events + crash_tail, events,
                        subjects, days, pip != 0)
               .ok()) {
        _exit(1);
      }
      _exit(0);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "replay_bench: the crash-tail writer failed\n");
      return 1;
    }
    start = absl::Now();
    restarted = StartUp(dir, config, &scrape_bytes, &folded);
    if (!restarted.ok()) return Fail(restarted.status());
    std::printf(
        "start-up after kill -9: first consistent scrape after %.3f s (%lld "
        "events unflushed, %llu records folded after the snapshot)\n",
        Seconds(start), crash_tail, static_cast<unsigned long long>(folded));
    projection::KpiProjection all(config);
    auto reopened =
        eventlog::EventLog::Open({.path = dir.string(), .sync = true});
    if (!reopened.ok()) return Fail(reopened.status());
    s = (*reopened)->ForEach(1, [&](const okrd::v1::StoredEvent& e) {
      all.Apply(e);
      return true;
    });
    if (!s.ok()) return Fail(s);
    if (exporter::RenderBusinessMetrics(**restarted) !=
        exporter::RenderBusinessMetrics(all)) {
      std::fprintf(stderr,
                   "replay_bench: state after the crash differs from replay\n");
      return 1;
    }
  }
  if (!args.Get("dir")) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace okrd

int main(int argc, char** argv) { return okrd::Main(argc, argv); }
