// id_index_bench: what the event log's id index costs at scale.
//
//   id_index_bench [--ids N] [--batch B] [--dir DIR] [--run-ids R] [--sync]
//
// A child process appends N events with distinct random ids (32 hex digits,
// as UUID-keyed producers send) in batches of B, straight to an EventLog,
// prints the append rate and the id index's memory (its in-memory tables
// and RocksDB's readers of its runs, which hold the bloom filters), per id,
// and then exits without closing anything, as kill -9 would leave it. The
// parent reopens the log and prints how long that took (WAL replay and the
// rebuild of the in-memory tables from the tail), then the cost of looking
// up ids that are new and ids that are logged (duplicates), both through
// Prepare() and Append() as ingest does.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/args.h"
#include "core/log.h"
#include "eventlog/event_log.h"

namespace okrd {
namespace {

// Resident set size of this process, in bytes.
size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0;
  size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// SplitMix64's output function: a cheap, well-mixed 64-bit value of `x`.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The id of event `i` of a run seeded with `seed`: 32 hex digits. Cheap, so
// that the append rate measures the log rather than the ids' making (a
// seeded std::mt19937_64 per id cost more than the append).
std::string Id(uint64_t seed, uint64_t i) {
  const uint64_t high = Mix((seed << 40) ^ i);
  return absl::StrFormat("%016x%016x", high, Mix(high));
}

// Event `i` of a run: the same payload whenever it is sent again.
void AddEvent(eventlog::Batch& batch, uint64_t seed, uint64_t i,
              int64_t offset) {
  eventlog::Batch::Candidate& c = batch.AddCandidate();
  c.event().set_event_id(Id(seed, i));
  c.event().set_kpi("signups");
  c.event().set_subject(absl::StrCat("subject-", i % 1000));
  c.event().set_value(static_cast<double>(i % 100));
  c.event().set_unit("count");
  c.event().mutable_event_time()->set_seconds(1795634360 +
                                              static_cast<int64_t>(i % 100000));
  c.position().set_topic("bench");
  c.position().set_partition(0);
  c.position().set_offset(offset);
  batch.Seal(c);
}

// Appends ids [from, to) of `seed` in batches; returns events per second
// and counts duplicates. With `scatter`, the i-th id sent is id
// i * scatter.stride % scatter.ids instead: ids logged far apart.
struct Scatter {
  uint64_t stride = 1;
  uint64_t ids = 0;  // 0: not scattered
};
double AppendRange(eventlog::EventLog& log, uint64_t seed, uint64_t from,
                   uint64_t to, size_t batch_size, int64_t* offset,
                   uint64_t* duplicates, bool progress, Scatter scatter = {}) {
  const absl::Time start = absl::Now();
  for (uint64_t i = from; i < to;) {
    eventlog::Batch batch;
    for (size_t k = 0; k < batch_size && i < to; ++k, ++i) {
      AddEvent(batch, seed,
               scatter.ids == 0 ? i : i * scatter.stride % scatter.ids,
               (*offset)++);
    }
    batch.next_offsets[{"bench", 0}] = *offset;
    batch.ingest_time = absl::Now();
    if (absl::Status s = log.Prepare(batch); !s.ok()) {
      std::fprintf(stderr, "prepare: %s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
    auto result = log.Append(std::move(batch));
    if (!result.ok()) {
      std::fprintf(stderr, "append: %s\n",
                   std::string(result.status().message()).c_str());
      std::exit(1);
    }
    *duplicates += result->duplicates;
    if (progress && i % 1000000 < batch_size) {
      std::fprintf(stderr, "  %llu of %llu ids appended\n",
                   static_cast<unsigned long long>(i),
                   static_cast<unsigned long long>(to));
    }
  }
  return static_cast<double>(to - from) /
         absl::ToDoubleSeconds(absl::Now() - start);
}

int Main(int argc, char** argv) {
  Args args({"ids", "batch", "dir", "run-ids"}, {"sync"});
  if (absl::Status s =
          args.Parse(std::vector<std::string>(argv + 1, argv + argc));
      !s.ok()) {
    std::fprintf(stderr, "id_index_bench: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  long long ids_flag = 0;
  long long batch_flag = 0;
  long long run_ids_flag = 0;
  for (const auto& [name, out, fallback] :
       {std::tuple{"ids", &ids_flag, 1000000LL},
        std::tuple{"batch", &batch_flag, 2000LL},
        std::tuple{"run-ids", &run_ids_flag,
                   static_cast<long long>(eventlog::Options().id_run_ids)}}) {
    if (absl::Status s = args.GetInt(name, 1, 1LL << 40, fallback, out);
        !s.ok()) {
      std::fprintf(stderr, "id_index_bench: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
  }
  const uint64_t ids = static_cast<uint64_t>(ids_flag);
  const size_t batch_size = static_cast<size_t>(batch_flag);
  const size_t run_ids = static_cast<size_t>(run_ids_flag);
  const std::string dir = args.Get("dir").value_or("/tmp/okrd-id-index-bench");
  const bool sync = args.Has("sync");
  if (!InitLogging("warn").ok()) return 1;
  std::filesystem::remove_all(dir);
  const eventlog::Options options{
      .path = dir, .sync = sync, .id_run_ids = run_ids};
  constexpr uint64_t kSeed = 1;

  const pid_t child = fork();
  if (child == 0) {
    auto log = eventlog::EventLog::Open(options);
    if (!log.ok()) {
      std::fprintf(stderr, "open: %s\n",
                   std::string(log.status().message()).c_str());
      _exit(1);
    }
    const size_t rss_before = ResidentBytes();
    int64_t offset = 0;
    uint64_t duplicates = 0;
    const double rate = AppendRange(**log, kSeed, 0, ids, batch_size, &offset,
                                    &duplicates, true);
    (*log)->AwaitIdRuns();
    const eventlog::EventLog::IdIndexStats stats = (*log)->id_index_stats();
    const double n = static_cast<double>(ids);
    std::printf("append   %llu distinct ids, batch %zu, sync %s: %.0f ids/s\n",
                static_cast<unsigned long long>(ids), batch_size,
                sync ? "on" : "off", rate);
    std::printf(
        "memory   in-memory tables %zu ids, %.1f MB; run readers %.1f MB, "
        "their bloom filters and indexes in the block cache %.1f MB; the "
        "filter in front of the runs %.1f MB; %.2f B/id (process RSS grew "
        "%.1f MB)\n",
        stats.memory_ids, static_cast<double>(stats.memory_bytes) / 1e6,
        static_cast<double>(stats.run_reader_bytes) / 1e6,
        static_cast<double>(stats.run_cached_bytes) / 1e6,
        static_cast<double>(stats.filter_bytes) / 1e6,
        static_cast<double>(stats.memory_bytes + stats.run_reader_bytes +
                            stats.run_cached_bytes + stats.filter_bytes) /
            n,
        (static_cast<double>(ResidentBytes()) -
         static_cast<double>(rss_before)) /
            1e6);
    std::printf("runs     %llu written, ids up to sequence %llu in them\n",
                static_cast<unsigned long long>(stats.runs_written),
                static_cast<unsigned long long>(stats.covered_sequence));
    std::fflush(stdout);
    _exit(duplicates == 0 ? 0 : 3);  // as kill -9 leaves it: nothing closed
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "id_index_bench: the appending process failed\n");
    return 1;
  }

  const absl::Time start = absl::Now();
  auto log = eventlog::EventLog::Open(options);
  if (!log.ok()) {
    std::fprintf(stderr, "reopen: %s\n",
                 std::string(log.status().message()).c_str());
    return 1;
  }
  const eventlog::EventLog::IdIndexStats stats = (*log)->id_index_stats();
  std::printf(
      "reopen   after an exit without close: %.0f ms, %zu ids rebuilt into "
      "memory\n",
      absl::ToDoubleMilliseconds(absl::Now() - start), stats.memory_ids);
  // The filter in front of the runs is built in the background after the
  // open; the lookups below are timed with it in place.
  const absl::Time filter_start = absl::Now();
  (*log)->AwaitIdRuns();
  std::printf("filter   built from the runs' %zu ids %.0f ms after the open\n",
              (*log)->id_index_stats().filter_ids,
              absl::ToDoubleMilliseconds(absl::Now() - filter_start));

  const uint64_t kLookups = std::min<uint64_t>(ids, 200000);
  int64_t offset = static_cast<int64_t>(ids);
  uint64_t duplicates = 0;
  const double fresh = AppendRange(**log, kSeed + 1, 0, kLookups, batch_size,
                                   &offset, &duplicates, false);
  const double logged = AppendRange(**log, kSeed, 0, kLookups, batch_size,
                                    &offset, &duplicates, false);
  // Duplicates of ids logged far apart (a prime stride through the log):
  // each one's event is read back from a block of its own.
  const uint64_t kScattered = std::min<uint64_t>(ids, 20000);
  const double scattered =
      AppendRange(**log, kSeed, 0, kScattered, batch_size, &offset, &duplicates,
                  false, {.stride = 7919, .ids = ids});
  std::printf(
      "lookups  %llu new ids: %.0f ids/s; %llu logged ids (duplicates): "
      "%.0f ids/s; %llu logged ids far apart: %.0f ids/s\n",
      static_cast<unsigned long long>(kLookups), fresh,
      static_cast<unsigned long long>(kLookups), logged,
      static_cast<unsigned long long>(kScattered), scattered);
  if (duplicates != kLookups + kScattered) {
    std::fprintf(stderr, "id_index_bench: %llu duplicates, expected %llu\n",
                 static_cast<unsigned long long>(duplicates),
                 static_cast<unsigned long long>(kLookups + kScattered));
    return 1;
  }
  log->reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace okrd

int main(int argc, char** argv) { return okrd::Main(argc, argv); }
