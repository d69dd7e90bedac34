#include "eventlog/event_log.h"

#include <algorithm>
#include <array>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"

namespace okrd::eventlog {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("eventlog_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<EventLog> Open(
      size_t run_ids = 200000,
      size_t whole_filter_ids = Options().whole_filter_ids,
      size_t id_filter_ids = Options().id_filter_ids) {
    auto log = EventLog::Open({.path = dir_.string(),
                               .sync = false,
                               .id_run_ids = run_ids,
                               .whole_filter_ids = whole_filter_ids,
                               .id_filter_ids = id_filter_ids,
                               .id_filter_delay = absl::ZeroDuration()});
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  // Adds a measurement to `batch`.
  static Batch::Candidate& Event(Batch& batch, const std::string& id,
                                 double value, int64_t offset) {
    Batch::Candidate& c = batch.AddCandidate();
    c.event().set_event_id(id);
    c.event().set_kpi("signups");
    c.event().set_subject("team-a");
    c.event().set_value(value);
    c.event().mutable_event_time()->set_seconds(1795634360);
    c.position().set_topic("kpi-events");
    c.position().set_partition(0);
    c.position().set_offset(offset);
    c.raw = batch.Keep("raw-" + id);
    return c;
  }

  // Stores an empty snapshot at `sequence` under `hash`.
  static void PutSnapshot(EventLog& log, uint64_t sequence,
                          const std::string& hash) {
    okrd::v1::ProjectionSnapshot snapshot;
    snapshot.set_sequence(sequence);
    snapshot.set_config_hash(hash);
    ASSERT_TRUE(log.PutSnapshot(snapshot).ok());
  }

  // Appends `n` events with ids e-1 .. e-n, one batch.
  static void AppendEvents(EventLog& log, int n) {
    Batch batch;
    for (int i = 1; i <= n; ++i) Event(batch, absl::StrCat("e-", i), i, i - 1);
    batch.next_offsets[{"kpi-events", 0}] = n;
    ASSERT_TRUE(log.Append(std::move(batch)).ok());
  }

  std::filesystem::path dir_;
};

TEST_F(EventLogTest, AppendsEventsWithOffsetsAtomically) {
  auto log = Open();
  Batch batch;
  Event(batch, "a", 1, 0);
  Event(batch, "b", 2, 1);
  batch.next_offsets[{"kpi-events", 0}] = 2;
  auto result = log->Append(std::move(batch));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->appended.size(), 2u);
  EXPECT_EQ(result->appended[0]->sequence(), 1u);
  EXPECT_EQ(result->appended[1]->sequence(), 2u);
  EXPECT_EQ(log->last_sequence(), 2u);
  EXPECT_EQ(log->Offsets().at({"kpi-events", 0}), 2);

  auto got = log->GetByEventId("b");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->sequence(), 2u);
  EXPECT_EQ((*got)->event().value(), 2);
}

// Per-partition counts and where each partition began survive a reopen:
// across instances they make exact totals (README, "Scale-out").
TEST_F(EventLogTest, CountsPerPartitionAndKeepsFirstOffsets) {
  {
    auto log = Open();
    Batch batch;
    Event(batch, "a", 1, 7);  // history before offset 7 is gone
    Event(batch, "b", 2, 8);
    Event(batch, "a", 1, 9);  // duplicate
    Batch::Candidate& other = Event(batch, "c", 3, 0);
    other.position().set_partition(1);
    okrd::v1::RejectedRecord& bad = batch.rejects.emplace_back();
    bad.set_reason("malformed");
    bad.mutable_position()->set_topic("kpi-events");
    bad.mutable_position()->set_partition(1);
    bad.mutable_position()->set_offset(1);
    batch.next_offsets[{"kpi-events", 0}] = 10;
    batch.next_offsets[{"kpi-events", 1}] = 2;
    batch.first_offsets[{"kpi-events", 0}] = 7;
    batch.first_offsets[{"kpi-events", 1}] = 0;
    auto result = log->Append(std::move(batch));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->next_offsets.at({"kpi-events", 0}), 10);
    // A later batch does not move where a partition began.
    Batch later;
    Event(later, "d", 4, 10);
    later.next_offsets[{"kpi-events", 0}] = 11;
    later.first_offsets[{"kpi-events", 0}] = 10;
    ASSERT_TRUE(log->Append(std::move(later)).ok());
  }
  auto log = Open();
  const Stats stats = log->GetStats();
  using Counters = std::map<CounterKey, uint64_t>;
  EXPECT_EQ(stats.partition_counters.at({"kpi-events", 0}),
            (Counters{{{"accepted", ""}, 3}, {{"duplicate", ""}, 1}}));
  EXPECT_EQ(stats.partition_counters.at({"kpi-events", 1}),
            (Counters{{{"accepted", ""}, 1}, {{"rejected", "malformed"}, 1}}));
  EXPECT_EQ(stats.first_offsets.at({"kpi-events", 0}), 7);
  EXPECT_EQ(stats.first_offsets.at({"kpi-events", 1}), 0);
  // The totals are the sums over partitions.
  EXPECT_EQ(stats.counters.at({"accepted", ""}), 4u);
}

// A log of `batches` batches of 500 events, closed.
void WriteLog(const std::filesystem::path& dir, int batches, int first = 0) {
  auto log = EventLog::Open({.path = dir.string(), .sync = false});
  ASSERT_TRUE(log.ok()) << log.status();
  for (int b = first; b < first + batches; ++b) {
    Batch batch;
    for (int i = 0; i < 500; ++i) {
      const int64_t offset = b * 500 + i;
      Batch::Candidate& c = batch.AddCandidate();
      c.event().set_event_id(absl::StrCat("id-", offset));
      c.event().set_kpi("signups");
      c.event().set_subject("team-a");
      c.event().set_value(static_cast<double>(offset));
      c.event().mutable_event_time()->set_seconds(1795634360);
      c.position().set_topic("kpi-events");
      c.position().set_partition(0);
      c.position().set_offset(offset);
    }
    batch.next_offsets[{"kpi-events", 0}] = (b + 1) * 500;
    ASSERT_TRUE((*log)->Append(std::move(batch)).ok());
  }
}

// The one file of `dir` whose name matches.
std::filesystem::path FileOf(
    const std::filesystem::path& dir,
    const std::function<bool(const std::string&)>& is) {
  std::vector<std::filesystem::path> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (is(entry.path().filename().string())) found.push_back(entry.path());
  }
  EXPECT_EQ(found.size(), 1u);
  return found.empty() ? dir / "none" : found[0];
}

TEST_F(EventLogTest, HealthyLogVerifies) {
  WriteLog(dir_, 4);
  auto log = Open();
  ASSERT_NE(log, nullptr);
  uint64_t reported = 0;
  absl::Status s = log->Verify(
      [&](absl::string_view, uint64_t done, uint64_t) { reported = done; });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(reported, 2000u);
}

// Each of these used to start silently on part of the log, or on none of
// it, and then count re-sent events again.
TEST_F(EventLogTest, RefusesATruncatedManifest) {
  WriteLog(dir_, 4);
  const auto manifest = FileOf(
      dir_, [](const std::string& n) { return n.starts_with("MANIFEST-"); });
  std::filesystem::resize_file(manifest,
                               std::filesystem::file_size(manifest) / 2);
  auto log = EventLog::Open({.path = dir_.string(), .sync = false});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("damaged"), std::string::npos)
      << log.status();
}

TEST_F(EventLogTest, RefusesGarbageInTheMiddleOfTheWal) {
  WriteLog(dir_, 8);
  const auto wal =
      FileOf(dir_, [](const std::string& n) { return n.ends_with(".log"); });
  const auto size = std::filesystem::file_size(wal);
  ASSERT_GT(size, 256u << 10);
  {
    std::FILE* f = std::fopen(wal.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, static_cast<long>(size / 2), SEEK_SET);
    const std::string garbage(64 << 10, '\x5a');
    std::fwrite(garbage.data(), 1, garbage.size(), f);
    std::fclose(f);
  }
  auto log = EventLog::Open({.path = dir_.string(), .sync = false});
  ASSERT_FALSE(log.ok()) << "opened, with last sequence "
                         << (*log)->last_sequence();
  EXPECT_NE(log.status().message().find("damaged"), std::string::npos)
      << log.status();
}

// A write cut short at the end of the WAL (a crash mid-write) is dropped by
// recovery, as it was never confirmed; the log says how much it dropped.
TEST_F(EventLogTest, SaysWhenRecoveryDropsAnUnfinishedWrite) {
  WriteLog(dir_, 8);
  {
    auto log = Open();
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->GetStats().recovery_dropped_bytes, 0u);
  }
  WriteLog(dir_, 0);  // reopened once more: still nothing dropped
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->GetStats().recovery_dropped_bytes, 0u);
  log.reset();

  // Two more batches of 500 (sequences to 5000), the second one cut short.
  WriteLog(dir_, 2, /*first=*/8);
  // The newest write-ahead log: RocksDB names them by a rising number.
  std::filesystem::path newest;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".log") &&
        (newest.empty() || name > newest.filename().string())) {
      newest = entry.path();
    }
  }
  ASSERT_FALSE(newest.empty());
  const auto size = std::filesystem::file_size(newest);
  ASSERT_GT(size, 300u);
  std::filesystem::resize_file(newest, size - 300);
  log = Open();
  ASSERT_NE(log, nullptr);
  // The last batch is gone whole, and the drop is counted.
  EXPECT_EQ(log->last_sequence(), 4500u);
  EXPECT_GT(log->GetStats().recovery_dropped_bytes, 0u);
  EXPECT_LT(log->GetStats().recovery_dropped_bytes, size);
  EXPECT_EQ(log->Verify([](absl::string_view, uint64_t, uint64_t) {}),
            absl::OkStatus());
}

TEST_F(EventLogTest, RefusesALogWithoutCurrent) {
  WriteLog(dir_, 1);
  std::filesystem::remove(dir_ / "CURRENT");
  auto log = EventLog::Open({.path = dir_.string(), .sync = false});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("no CURRENT"), std::string::npos)
      << log.status();
}

TEST_F(EventLogTest, DuplicateIsCountedNotApplied) {
  auto log = Open();
  Batch first;
  Event(first, "a", 1, 0);
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  Batch second;
  // Same id and payload from a later offset, and twice within one batch.
  Event(second, "a", 1, 5);
  Event(second, "c", 3, 6);
  Event(second, "c", 3, 7);
  auto result = log->Append(std::move(second));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->appended.size(), 1u);
  EXPECT_EQ(result->duplicates, 2u);
  EXPECT_TRUE(result->rejected.empty());
  const Stats stats = log->GetStats();
  EXPECT_EQ(stats.counters.at({"accepted", ""}), 2u);
  EXPECT_EQ(stats.counters.at({"duplicate", ""}), 2u);
  EXPECT_EQ(stats.last_sequence, 2u);
}

TEST_F(EventLogTest, SameIdDifferentPayloadIsAConflict) {
  auto log = Open();
  Batch first;
  Event(first, "a", 1, 0);
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  Batch second;
  Event(second, "a", 99, 1);
  Event(second, "b", 1, 2);
  Event(second, "b", 7, 3);
  auto result = log->Append(std::move(second));
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->rejected.size(), 2u);
  EXPECT_EQ(result->rejected[0].reason(), "conflict");
  EXPECT_EQ(result->rejected[0].raw(), "raw-a");
  EXPECT_EQ(result->rejected[0].position().offset(), 1);
  EXPECT_EQ(result->rejected[1].raw(), "raw-b");
  EXPECT_EQ(log->GetStats().counters.at({"rejected", "conflict"}), 2u);
  // The first payload stays the logged one.
  EXPECT_EQ((*log->GetByEventId("a"))->event().value(), 1);

  int stored = 0;
  ASSERT_TRUE(log->ForEachRejected(1,
                                   [&](const okrd::v1::RejectedRecord& r) {
                                     EXPECT_EQ(r.sequence(),
                                               static_cast<uint64_t>(++stored));
                                     return true;
                                   })
                  .ok());
  EXPECT_EQ(stored, 2);
}

// Ingest looks a batch's ids up while the batches before it are still
// being appended: Append() settles them against those appends.
TEST_F(EventLogTest, PreparedBeforeEarlierAppendsStillDeduplicates) {
  auto log = Open();
  Batch later;
  Event(later, "a", 1, 10);   // same as in `earlier`: a duplicate
  Event(later, "b", 99, 11);  // other payload than in `earlier`: a conflict
  Event(later, "c", 3, 12);   // new
  ASSERT_TRUE(log->Prepare(later).ok());

  Batch earlier;
  Event(earlier, "a", 1, 0);
  Event(earlier, "b", 2, 1);
  ASSERT_TRUE(log->Append(std::move(earlier)).ok());
  auto result = log->Append(std::move(later));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, 1u);
  ASSERT_EQ(result->rejected.size(), 1u);
  EXPECT_EQ(result->rejected[0].reason(), "conflict");
  EXPECT_EQ(result->rejected[0].raw(), "raw-b");
  ASSERT_EQ(result->appended.size(), 1u);
  EXPECT_EQ(result->appended[0]->event().event_id(), "c");
  EXPECT_EQ(log->last_sequence(), 3u);
}

// A lookup made before a full table of the id index went to disk and was
// dropped is made again: the id is then found in the run.
TEST_F(EventLogTest, PreparedBeforeARunWentInIsLookedUpAgain) {
  auto log = Open(/*run_ids=*/2);
  Batch stale;
  Event(stale, "a", 1, 10);
  Event(stale, "z", 9, 11);
  ASSERT_TRUE(log->Prepare(stale).ok());
  Batch first;
  Event(first, "a", 1, 0);
  Event(first, "b", 2, 1);
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  log->AwaitIdRuns();
  EXPECT_EQ(log->id_index_stats().runs_written, 1u);
  EXPECT_EQ(log->id_index_stats().covered_sequence, 2u);
  auto result = log->Append(std::move(stale));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, 1u);
  ASSERT_EQ(result->appended.size(), 1u);
  EXPECT_EQ(result->appended[0]->event().event_id(), "z");
}

// A batch prepared in parts as its events come (the consumer does so while
// it waits for the next message) settles each event once: the parts looked
// up in the runs and the events added after the last part alike.
TEST_F(EventLogTest, BatchPreparedInPartsDeduplicatesEveryEvent) {
  auto log = Open(/*run_ids=*/2);
  Batch first;
  Event(first, "a", 1, 0);
  Event(first, "b", 2, 1);
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  log->AwaitIdRuns();
  ASSERT_EQ(log->id_index_stats().runs_written, 1u);  // "a" and "b" on disk
  Batch parts;
  Event(parts, "a", 1, 2);  // a duplicate, found in the run
  ASSERT_TRUE(log->Prepare(parts).ok());
  EXPECT_TRUE(parts.events[0].looked_up);
  EXPECT_TRUE(parts.events[0].logged);
  Event(parts, "b", 7, 3);  // a conflict, found in the run
  Event(parts, "c", 3, 4);  // new
  ASSERT_TRUE(log->Prepare(parts).ok());
  Event(parts, "c", 3, 5);  // the same again in the batch: a duplicate
  Event(parts, "d", 4, 6);  // added after the last part
  EXPECT_FALSE(parts.events[4].looked_up);
  auto result = log->Append(std::move(parts));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, 2u);
  ASSERT_EQ(result->rejected.size(), 1u);
  EXPECT_EQ(result->rejected[0].reason(), "conflict");
  ASSERT_EQ(result->appended.size(), 2u);
  EXPECT_EQ(result->appended[0]->event().event_id(), "c");
  EXPECT_EQ(result->appended[1]->event().event_id(), "d");
}

// The first part of a batch was looked up before a table went to disk and
// was dropped; a later part after. The whole batch is looked up again.
TEST_F(EventLogTest, BatchPartPreparedBeforeARunWentInIsLookedUpAgain) {
  auto log = Open(/*run_ids=*/2);
  Batch parts;
  Event(parts, "a", 1, 10);
  ASSERT_TRUE(log->Prepare(parts).ok());
  Batch first;
  Event(first, "a", 1, 0);
  Event(first, "b", 2, 1);
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  log->AwaitIdRuns();
  ASSERT_EQ(log->id_index_stats().runs_written, 1u);
  Event(parts, "z", 9, 11);
  ASSERT_TRUE(log->Prepare(parts).ok());
  auto result = log->Append(std::move(parts));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, 1u);
  ASSERT_EQ(result->appended.size(), 1u);
  EXPECT_EQ(result->appended[0]->event().event_id(), "z");
}

// Ids are found wherever they are: in memory, in runs written meanwhile,
// after a reopen that rebuilds the in-memory tables from the log's tail.
TEST_F(EventLogTest, IdsAreFoundInRunsAndAfterReopen) {
  constexpr int kIds = 40;
  auto append_all = [&](EventLog& log, int offset) {
    uint64_t duplicates = 0;
    uint64_t conflicts = 0;
    for (int b = 0; b < kIds / 4; ++b) {
      Batch batch;
      for (int i = b * 4; i < b * 4 + 4; ++i) {
        // Every fifth id comes back with another value: a conflict.
        Event(batch, absl::StrCat("id-", i),
              offset > 0 && i % 5 == 0 ? 100 + i : i, offset + i);
      }
      batch.next_offsets[{"kpi-events", 0}] = offset + b * 4 + 4;
      auto result = log.Append(std::move(batch));
      EXPECT_TRUE(result.ok()) << result.status();
      if (!result.ok()) return std::pair<uint64_t, uint64_t>{0, 0};
      duplicates += result->duplicates;
      conflicts += result->rejected.size();
    }
    return std::pair{duplicates, conflicts};
  };
  {
    auto log = Open(/*run_ids=*/7);
    EXPECT_EQ(append_all(*log, 0), (std::pair<uint64_t, uint64_t>{0, 0}));
    log->AwaitIdRuns();
    const EventLog::IdIndexStats stats = log->id_index_stats();
    EXPECT_EQ(stats.runs_written, 5u);  // at 8, 16, 24, 32 and 40 ids
    EXPECT_EQ(stats.covered_sequence, 40u);
    // All the same again in the same process: all found.
    EXPECT_EQ(append_all(*log, 100), (std::pair<uint64_t, uint64_t>{32, 8}));
  }
  {
    // Five of them again in a table that was not yet full at the close.
    auto log = Open(/*run_ids=*/7);
    Batch batch;
    for (int i = 0; i < 5; ++i)
      Event(batch, absl::StrCat("new-", i), 1, 200 + i);
    batch.next_offsets[{"kpi-events", 0}] = 205;
    ASSERT_TRUE(log->Append(std::move(batch)).ok());
    EXPECT_EQ(log->id_index_stats().memory_ids, 5u);
  }
  auto log = Open(/*run_ids=*/7);
  const EventLog::IdIndexStats reopened = log->id_index_stats();
  EXPECT_EQ(reopened.memory_ids, 5u);  // rebuilt from the tail
  EXPECT_EQ(reopened.covered_sequence, 40u);
  // The runs' filters, which grow with the history, are in the block cache
  // (within storage.memory_mb), not held beside it: their top levels from
  // the open on.
  EXPECT_GT(reopened.run_cached_bytes, 0u);
  EXPECT_EQ(append_all(*log, 300), (std::pair<uint64_t, uint64_t>{32, 8}));
  Batch again;
  for (int i = 0; i < 5; ++i) Event(again, absl::StrCat("new-", i), 1, 400 + i);
  again.next_offsets[{"kpi-events", 0}] = 405;
  auto result = log->Append(std::move(again));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->duplicates, 5u);
  for (const std::string id : {"id-0", "id-39", "new-4"}) {
    auto found = log->GetByEventId(id);
    ASSERT_TRUE(found.ok() && found->has_value()) << id;
    EXPECT_EQ((*found)->event().event_id(), id);
  }
  EXPECT_FALSE(*log->GetByEventId("id-40"));
  EXPECT_EQ(log->Verify([](absl::string_view, uint64_t, uint64_t) {}),
            absl::OkStatus());
}

// A log written by okrd 17dc1b7, before the id index's runs (every id in
// the `dedup` column family): opened as it is, its ids still found.
TEST_F(EventLogTest, OpensALogFromBeforeTheIdRuns) {
  std::filesystem::create_directories(dir_);
  const std::string untar = absl::StrCat(
      "tar xzf " OKRD_SOURCE_DIR "/tests/testdata/eventlog-17dc1b7.tar.gz -C ",
      dir_.string());
  ASSERT_EQ(std::system(untar.c_str()), 0);
  okrd::v1::StoredEvent first;
  {
    auto log = Open();
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->last_sequence(), 137u);
    EXPECT_EQ(log->id_index_stats().covered_sequence, 137u);
    EXPECT_EQ(log->id_index_stats().memory_ids, 0u);
    auto got = log->Get(1);
    ASSERT_TRUE(got.ok() && got->has_value());
    first = **got;
  }
  auto log = Open(/*run_ids=*/2);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->Verify([](absl::string_view, uint64_t, uint64_t) {}),
            absl::OkStatus());
  // The filter in front of the runs holds the ids of the old layout too:
  // the duplicate and the conflict below pass it.
  log->AwaitIdRuns();
  ASSERT_GT(log->id_index_stats().filter_parts, 0u);
  size_t events = 0;
  ASSERT_TRUE(log->ForEach(1,
                           [&](const okrd::v1::StoredEvent& e) {
                             events += e.has_event() ? 1 : 0;
                             return true;
                           })
                  .ok());
  EXPECT_EQ(events, 136u);  // and a tick
  EXPECT_EQ(log->id_index_stats().filter_ids, events);
  auto found = log->GetByEventId(first.event().event_id());
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->sequence(), 1u);

  Batch batch;
  Batch::Candidate& same = batch.AddCandidate();
  same.event() = first.event();
  Batch::Candidate& other = batch.AddCandidate();
  other.event() = first.event();
  other.event().set_value(first.event().value() + 1);
  Event(batch, "after-upgrade-1", 1, 0);
  Event(batch, "after-upgrade-2", 1, 1);
  batch.next_offsets[{"kpi-events", 0}] = 2;
  auto result = log->Append(std::move(batch));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, 1u);
  ASSERT_EQ(result->rejected.size(), 1u);
  EXPECT_EQ(result->rejected[0].reason(), "conflict");
  log->AwaitIdRuns();
  EXPECT_EQ(log->id_index_stats().covered_sequence, 139u);
  EXPECT_EQ(log->Verify([](absl::string_view, uint64_t, uint64_t) {}),
            absl::OkStatus());

  // Reopened, it reads its old records and then the blocks after them.
  log.reset();
  log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_sequence(), 139u);
  std::vector<std::string> ids;
  ASSERT_TRUE(log->ForEach(136,
                           [&](const okrd::v1::StoredEvent& e) {
                             ids.push_back(e.has_event() ? e.event().event_id()
                                                         : "tick");
                             return true;
                           })
                  .ok());
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[2], "after-upgrade-1");
  EXPECT_EQ(ids[3], "after-upgrade-2");
  for (const std::string& id :
       {first.event().event_id(), std::string("after-upgrade-2")}) {
    auto by_id = log->GetByEventId(id);
    ASSERT_TRUE(by_id.ok() && by_id->has_value()) << id;
  }
  EXPECT_EQ(log->Verify([](absl::string_view, uint64_t, uint64_t) {}),
            absl::OkStatus());
}

// As in ingest: one thread prepares the next batches while another appends,
// and ids repeat across neighbouring batches. Every id is accepted once and
// every repeat counted as a duplicate, whichever appends each lookup saw.
TEST_F(EventLogTest, ConcurrentPrepareAndAppendCountEachIdOnce) {
  auto log = Open();
  constexpr int kBatches = 200;
  constexpr int kPerBatch = 50;
  absl::Mutex mu;
  std::deque<Batch> ready;         // guarded by mu; at most two, as in ingest
  std::set<std::string> distinct;  // the preparing thread's
  std::thread preparer([&] {
    std::mt19937 random(7);
    for (int b = 0; b < kBatches; ++b) {
      Batch batch;
      for (int i = 0; i < kPerBatch; ++i) {
        // A third of the ids come from the last three batches.
        const int from =
            random() % 3 == 0 && b > 0
                ? b - 1 - static_cast<int>(random() % std::min(b, 3))
                : b;
        const std::string id =
            absl::StrCat("e", from, "-", random() % kPerBatch);
        distinct.insert(id);
        // The same id always carries the same payload.
        Event(batch, id,
              static_cast<double>(std::hash<std::string>()(id) % 1000), 0);
      }
      EXPECT_TRUE(log->Prepare(batch).ok());
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](std::deque<Batch>* q) { return q->size() < 2; }, &ready));
      ready.push_back(std::move(batch));
    }
  });
  uint64_t accepted = 0;
  uint64_t duplicates = 0;
  for (int b = 0; b < kBatches; ++b) {
    Batch batch;
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](std::deque<Batch>* q) { return !q->empty(); }, &ready));
      batch = std::move(ready.front());
      ready.pop_front();
    }
    auto result = log->Append(std::move(batch));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(result->rejected.empty());
    accepted += result->appended.size();
    duplicates += result->duplicates;
  }
  preparer.join();
  EXPECT_EQ(accepted, distinct.size());
  EXPECT_EQ(accepted + duplicates, uint64_t{kBatches} * kPerBatch);
  EXPECT_EQ(log->last_sequence(), distinct.size());
}

TEST_F(EventLogTest, RejectsAreStoredWithReasonAndRawBytes) {
  auto log = Open();
  Batch batch;
  okrd::v1::RejectedRecord r;
  r.set_reason("malformed");
  r.set_detail("not protobuf");
  r.set_raw(std::string("\xff\x00\x01", 3));
  batch.rejects.push_back(r);
  batch.next_offsets[{"kpi-events", 3}] = 10;
  ASSERT_TRUE(log->Append(std::move(batch)).ok());
  std::vector<okrd::v1::RejectedRecord> seen;
  ASSERT_TRUE(log->ForEachRejected(1,
                                   [&](const okrd::v1::RejectedRecord& x) {
                                     seen.push_back(x);
                                     return true;
                                   })
                  .ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].raw(), std::string("\xff\x00\x01", 3));
  EXPECT_EQ(log->GetStats().counters.at({"rejected", "malformed"}), 1u);
}

TEST_F(EventLogTest, StateSurvivesReopen) {
  {
    auto log = Open();
    Batch batch;
    Event(batch, "a", 1, 0);
    Event(batch, "a", 1, 1);
    batch.next_offsets[{"kpi-events", 0}] = 2;
    ASSERT_TRUE(log->Append(std::move(batch)).ok());
  }
  auto log = Open();
  const Stats stats = log->GetStats();
  EXPECT_EQ(stats.last_sequence, 1u);
  EXPECT_EQ(stats.counters.at({"accepted", ""}), 1u);
  EXPECT_EQ(stats.counters.at({"duplicate", ""}), 1u);
  EXPECT_EQ(stats.offsets.at({"kpi-events", 0}), 2);
  // Dedup survives too.
  Batch again;
  Event(again, "a", 1, 2);
  auto result = log->Append(std::move(again));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->duplicates, 1u);
  int count = 0;
  ASSERT_TRUE(log->ForEach(1,
                           [&](const okrd::v1::StoredEvent&) {
                             ++count;
                             return true;
                           })
                  .ok());
  EXPECT_EQ(count, 1);
}

// Scans run as a reader thread and a parsing caller: across many batches
// the records come in order, and a caller that stops early stops the reader.
TEST_F(EventLogTest, ScansInOrderAcrossBatchesAndStopsEarly) {
  auto log = Open();
  constexpr int kEvents = 5000;
  Batch batch;
  for (int i = 0; i < kEvents; ++i) {
    Event(batch, "e" + std::to_string(i), i, i);
  }
  ASSERT_TRUE(log->Append(std::move(batch)).ok());
  uint64_t expected = 1;
  ASSERT_TRUE(log->ForEach(1,
                           [&](const okrd::v1::StoredEvent& e) {
                             EXPECT_EQ(e.sequence(), expected);
                             EXPECT_EQ(e.event().value(),
                                       static_cast<double>(expected - 1));
                             ++expected;
                             return true;
                           })
                  .ok());
  EXPECT_EQ(expected, kEvents + 1u);
  int seen = 0;
  ASSERT_TRUE(log->ForEach(2500,
                           [&](const okrd::v1::StoredEvent& e) {
                             ++seen;
                             return e.sequence() < 2600;
                           })
                  .ok());
  EXPECT_EQ(seen, 101);
}

// A batch is stored as blocks of about 32 KiB: every event is found by its
// sequence and its id wherever in a block it sits, scans start inside a
// block, and a reopened log finds its newest record at the end of the last
// block.
TEST_F(EventLogTest, FindsEventsInsideTheirBlocks) {
  constexpr int kPerBatch = 3000;  // ~100 bytes each: ten blocks a batch
  {
    auto log = Open();
    for (int b = 0; b < 2; ++b) {
      Batch batch;
      for (int i = 0; i < kPerBatch; ++i) {
        const int n = b * kPerBatch + i;
        Event(batch, absl::StrCat("block-", n), n, n);
      }
      batch.next_offsets[{"kpi-events", 0}] = (b + 1) * kPerBatch;
      batch.tick = true;
      ASSERT_TRUE(log->Append(std::move(batch)).ok());
    }
  }
  auto log = Open();
  ASSERT_NE(log, nullptr);
  // Two batches of events, each followed by its tick.
  const uint64_t last = 2 * (kPerBatch + 1);
  EXPECT_EQ(log->last_sequence(), last);
  for (uint64_t sequence :
       {uint64_t{1}, uint64_t{2}, uint64_t{299}, uint64_t{300}, uint64_t{1777},
        uint64_t{3000}, uint64_t{3001}, uint64_t{3002}, last}) {
    auto got = log->Get(sequence);
    ASSERT_TRUE(got.ok() && got->has_value()) << sequence;
    EXPECT_EQ((*got)->sequence(), sequence);
    if (sequence == kPerBatch + 1 || sequence == last) {
      EXPECT_TRUE((*got)->has_tick()) << sequence;
      continue;
    }
    // The second batch's events come after the first one's tick.
    const uint64_t n = sequence <= kPerBatch ? sequence - 1 : sequence - 2;
    EXPECT_EQ((*got)->event().event_id(), absl::StrCat("block-", n));
    auto by_id = log->GetByEventId(absl::StrCat("block-", n));
    ASSERT_TRUE(by_id.ok() && by_id->has_value());
    EXPECT_EQ((*by_id)->sequence(), sequence);
  }
  auto beyond = log->Get(last + 1);
  ASSERT_TRUE(beyond.ok());
  EXPECT_FALSE(beyond->has_value());
  uint64_t expected = 1777;
  ASSERT_TRUE(log->ForEach(1777,
                           [&](const okrd::v1::StoredEvent& e) {
                             EXPECT_EQ(e.sequence(), expected);
                             ++expected;
                             return true;
                           })
                  .ok());
  EXPECT_EQ(expected, last + 1);
  EXPECT_EQ(log->Verify([](absl::string_view, uint64_t, uint64_t) {}),
            absl::OkStatus());
}

TEST_F(EventLogTest, SecondWriterIsRefused) {
  auto log = Open();
  auto second = EventLog::Open({.path = dir_.string()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another okrd"),
            absl::string_view::npos);
  // Readers are allowed beside the writer.
  auto reader = EventLog::Open({.path = dir_.string(), .read_only = true});
  ASSERT_TRUE(reader.ok()) << reader.status();
}

TEST_F(EventLogTest, TicksTakeASequenceAfterTheBatchEvents) {
  auto log = Open();
  Batch batch;
  Event(batch, "a", 1, 0);
  batch.ingest_time = absl::FromUnixSeconds(1795634400);
  batch.tick = true;
  auto result = log->Append(std::move(batch));
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->appended.size(), 2u);
  EXPECT_TRUE(result->appended[0]->has_event());
  const okrd::v1::StoredEvent& tick = *result->appended[1];
  EXPECT_EQ(tick.sequence(), 2u);
  EXPECT_FALSE(tick.has_event());
  EXPECT_EQ(tick.tick().wall_time_us(), 1795634400000000);
  // Ticks are not messages: the outcome counters do not see them.
  EXPECT_EQ(log->GetStats().counters.at({"accepted", ""}), 1u);
  auto stored = log->Get(2);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_TRUE((*stored)->has_tick());
}

// Adds a correction or retraction of `target` to `batch`.
Batch::Candidate& Amend(Batch& batch, const std::string& id,
                        const std::string& target, okrd::v1::EventKind kind,
                        double value) {
  Batch::Candidate& c = batch.AddCandidate();
  c.event().set_event_id(id);
  c.event().set_kpi("signups");
  c.event().set_subject("team-a");
  c.event().set_value(value);
  c.event().set_kind(kind);
  c.event().set_corrects_event_id(target);
  c.event().mutable_event_time()->set_seconds(1795700000);
  return c;
}

TEST_F(EventLogTest, CorrectionsCarryTheValueTheyReplace) {
  auto log = Open();
  Batch first;
  Event(first, "m1", 10, 0);
  // Corrects a measurement of the same batch.
  Amend(first, "c1", "m1", okrd::v1::CORRECTION, 12);
  auto r1 = log->Append(std::move(first));
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(r1->appended.size(), 2u);
  const okrd::v1::Amendment& a1 = r1->appended[1]->amends();
  EXPECT_EQ(a1.target_sequence(), 1u);
  EXPECT_EQ(a1.previous_value(), 10);
  EXPECT_EQ(a1.target_event_time().seconds(), 1795634360);

  Batch second;
  Amend(second, "c2", "m1", okrd::v1::CORRECTION, 15);
  Amend(second, "r1", "m1", okrd::v1::RETRACTION, 0);
  auto r2 = log->Append(std::move(second));
  ASSERT_TRUE(r2.ok());
  ASSERT_EQ(r2->appended.size(), 2u);
  EXPECT_EQ(r2->appended[0]->amends().previous_value(), 12);
  EXPECT_EQ(r2->appended[1]->amends().previous_value(), 15);
}

TEST_F(EventLogTest, BadCorrectionTargetsAreRejected) {
  auto log = Open();
  Batch setup;
  Event(setup, "m1", 10, 0);
  Amend(setup, "r1", "m1", okrd::v1::RETRACTION, 0);
  ASSERT_TRUE(log->Append(std::move(setup)).ok());
  Batch batch;
  Amend(batch, "c1", "nope", okrd::v1::CORRECTION, 1);
  Amend(batch, "c2", "m1", okrd::v1::CORRECTION, 1);
  Amend(batch, "c3", "r1", okrd::v1::CORRECTION, 1);
  Event(batch, "m2", 5, 1);
  Amend(batch, "c4", "m2", okrd::v1::CORRECTION, 1)
      .event()
      .set_subject("team-b");
  // A correction naming itself: its own id is not taken before its target
  // is found.
  Amend(batch, "c5", "c5", okrd::v1::CORRECTION, 1);
  auto result = log->Append(std::move(batch));
  ASSERT_TRUE(result.ok());
  std::vector<std::string> reasons;
  for (const auto& r : result->rejected) reasons.push_back(r.reason());
  EXPECT_EQ(reasons,
            (std::vector<std::string>{
                "unknown_correction_target", "retracted_target",
                "invalid_correction_target", "invalid_correction_target",
                "unknown_correction_target"}));
  ASSERT_EQ(result->appended.size(), 1u);
  EXPECT_EQ(result->appended[0]->event().event_id(), "m2");

  // A rejected correction's id stays free: the same id, now valid, goes in.
  Batch again;
  Amend(again, "c1", "m2", okrd::v1::CORRECTION, 7);
  auto retried = log->Append(std::move(again));
  ASSERT_TRUE(retried.ok());
  ASSERT_EQ(retried->appended.size(), 1u);
  EXPECT_EQ(retried->appended[0]->amends().previous_value(), 5);
  EXPECT_EQ(retried->duplicates, 0u);
}

// Append() writes each record from the event's sealed bytes instead of
// serializing it again: what it stores must read back as what it returned.
TEST_F(EventLogTest, StoredRecordsReadBackAsAppended) {
  auto log = Open();
  Batch batch;
  Event(batch, "m1", 10, 4);
  Batch::Candidate& tagged = Event(batch, "m2", -2.5, 5);
  (*tagged.event().mutable_attributes())["region"] = "emea";
  (*tagged.event().mutable_attributes())["channel"] = "web";
  // Sealed ahead, as ingest does.
  batch.Seal(tagged);
  Amend(batch, "c1", "m1", okrd::v1::CORRECTION, 12);
  batch.ingest_time = absl::FromUnixMicros(1795634400123456);
  batch.tick = true;
  auto result = log->Append(std::move(batch));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->appended.size(), 4u);
  EXPECT_TRUE(result->appended[2]->has_amends());
  for (const okrd::v1::StoredEvent* appended : result->appended) {
    auto stored = log->Get(appended->sequence());
    ASSERT_TRUE(stored.ok() && stored->has_value()) << appended->sequence();
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(**stored, *appended))
        << "stored:   " << (*stored)->ShortDebugString()
        << "\nappended: " << appended->ShortDebugString();
  }
}

// The record writer is protobuf's serialization, byte for byte, at the edges
// of every field it writes by hand.
TEST(SerializeRecordTest, WritesWhatProtobufWrites) {
  okrd::v1::KpiEvent event;
  event.set_event_id("e-1");
  event.set_kpi("signups");
  event.set_value(3);
  struct Position {
    std::string topic;
    int32_t partition;
    int64_t offset;
  };
  for (const Position& p : std::vector<Position>{
           {"", 0, 0},
           {"kpi-events", 0, 0},
           {"kpi-events", 7, 1},
           {"", -1, -1},
           {std::string(200, 't'), std::numeric_limits<int32_t>::max(),
            std::numeric_limits<int64_t>::max()},
           {"k\xc3\xa9", std::numeric_limits<int32_t>::min(),
            std::numeric_limits<int64_t>::min()}}) {
    for (bool with_amends : {false, true}) {
      okrd::v1::StoredEvent record;
      record.set_sequence(42);
      *record.mutable_event() = event;
      record.mutable_position()->set_topic(p.topic);
      record.mutable_position()->set_partition(p.partition);
      record.mutable_position()->set_offset(p.offset);
      record.set_ingest_time_us(1795634400123456);
      if (with_amends) {
        record.mutable_amends()->set_target_sequence(7);
        record.mutable_amends()->set_previous_value(1.5);
        record.set_schema_id(3);
      }
      record.ByteSizeLong();  // caches the sizes the writer reads
      std::string written;
      SerializeRecord(record, event.SerializeAsString(), &written);
      EXPECT_EQ(written, record.SerializeAsString())
          << record.ShortDebugString();
    }
  }
  okrd::v1::StoredEvent bare;
  bare.set_sequence(1);
  bare.mutable_event()->set_event_id("e-2");
  bare.ByteSizeLong();
  std::string written;
  SerializeRecord(bare, bare.event().SerializeAsString(), &written);
  EXPECT_EQ(written, bare.SerializeAsString());
}

// Seal() serializes the record's event and position once, for Append() to
// store as they are: with the sequence and the rest around them, the bytes
// are protobuf's serialization of the record, and the id it hands the id
// index is the event's.
TEST(BatchSealTest, BodyIsTheRecordsEventAndPosition) {
  for (const std::string& id :
       {std::string("e-1"), std::string(300, 'x'), std::string("")}) {
    for (bool with_position : {true, false}) {
      Batch batch;
      Batch::Candidate& c = batch.AddCandidate();
      c.event().set_event_id(id);
      c.event().set_kpi("signups");
      c.event().set_value(2.5);
      (*c.event().mutable_attributes())["region"] = "eu";
      if (with_position) {
        c.position().set_topic("kpi-events");
        c.position().set_partition(3);
        c.position().set_offset(17);
      }
      batch.Seal(c);
      EXPECT_EQ(c.id, id);
      std::string deterministic;
      {
        google::protobuf::io::StringOutputStream stream(&deterministic);
        google::protobuf::io::CodedOutputStream coded(&stream);
        coded.SetSerializationDeterministic(true);
        c.event().SerializeToCodedStream(&coded);
      }
      EXPECT_EQ(c.event_bytes, deterministic);
      if (!id.empty()) {
        // A view into the body, not the event's own string.
        EXPECT_TRUE(c.id.data() >= c.body.data() &&
                    c.id.data() + c.id.size() <= c.body.data() + c.body.size());
      }
      okrd::v1::StoredEvent record = *c.record;
      record.set_sequence(9);
      record.set_ingest_time_us(1795634400123456);
      okrd::v1::StoredEvent before, after;
      before.set_sequence(record.sequence());
      after.set_ingest_time_us(record.ingest_time_us());
      okrd::v1::StoredEvent parsed;
      ASSERT_TRUE(parsed.ParseFromString(absl::StrCat(
          before.SerializeAsString(), c.body, after.SerializeAsString())));
      EXPECT_TRUE(
          google::protobuf::util::MessageDifferencer::Equals(parsed, record))
          << parsed.ShortDebugString() << " against "
          << record.ShortDebugString();
    }
  }
}

TEST_F(EventLogTest, KeepsTheNewestSnapshotsAndMatchesTheirHash) {
  auto log = Open();
  AppendEvents(*log, 50);
  for (uint64_t sequence : {10u, 20u, 30u, 40u}) {
    PutSnapshot(*log, sequence, sequence == 40 ? "new" : "old");
  }
  auto old_hash = log->LatestSnapshot("old");
  ASSERT_TRUE(old_hash.ok() && old_hash->has_value());
  EXPECT_EQ((*old_hash)->sequence(), 30u);
  auto new_hash = log->LatestSnapshot("new");
  ASSERT_TRUE(new_hash.ok() && new_hash->has_value());
  EXPECT_EQ((*new_hash)->sequence(), 40u);
  auto none = log->LatestSnapshot("other");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  // Only three are kept: sequence 10 is gone.
  log.reset();
  auto reopened = Open();
  for (uint64_t sequence : {50u}) {
    PutSnapshot(*reopened, sequence, "new");
  }
  auto oldest = reopened->LatestSnapshot("old");
  ASSERT_TRUE(oldest.ok() && oldest->has_value());
  EXPECT_EQ((*oldest)->sequence(), 30u);  // 20 dropped as well now
}

// A snapshot bigger than a chunk comes back whole, after a reopen too, and
// leaves no file behind in the data directory.
TEST_F(EventLogTest, StoresLargeSnapshotsInChunks) {
  auto log = Open();
  AppendEvents(*log, 3);
  okrd::v1::ProjectionSnapshot snapshot;
  snapshot.set_sequence(3);
  snapshot.set_config_hash("h");
  for (int i = 0; i < 60000; ++i) {
    okrd::v1::SubjectSnapshot* s = snapshot.add_subjects();
    s->set_kpi("churn_rate");
    s->set_subject(absl::StrCat("subject-", i));
    okrd::v1::PeriodSnapshot* p = s->add_periods();
    p->set_count(static_cast<uint64_t>(i));
    p->add_latest_value(i * 0.5);
  }
  ASSERT_GT(snapshot.ByteSizeLong(), 2u << 20);
  ASSERT_TRUE(log->PutSnapshot(snapshot).ok());
  log.reset();
  log = Open();
  auto got = log->LatestSnapshot("h");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(**got, snapshot));
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with("snapshot-"))
        << entry.path();
  }
}

// A snapshot is never trusted past the log: after a lost tail, sequences
// it covered will be given to other events.
TEST_F(EventLogTest, IgnoresASnapshotPastTheLog) {
  auto log = Open();
  AppendEvents(*log, 5);
  PutSnapshot(*log, 4, "h");
  PutSnapshot(*log, 6, "h");
  auto got = log->LatestSnapshot("h");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->sequence(), 4u);
}

// Logs written before chunked snapshots kept each one whole under its bare
// sequence: those are still read, and dropped as newer ones come.
TEST_F(EventLogTest, ReadsAndDropsSnapshotsOfTheEarlierLayout) {
  {
    auto log = Open();
    AppendEvents(*log, 9);
  }
  {
    rocksdb::DBOptions options;
    std::vector<std::string> names;
    ASSERT_TRUE(
        rocksdb::DB::ListColumnFamilies(options, dir_.string(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names) {
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(options, dir_.string(), descriptors, &handles, &raw)
            .ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const auto at = std::find(names.begin(), names.end(), "snapshots");
    ASSERT_NE(at, names.end());
    okrd::v1::ProjectionSnapshot whole;
    whole.set_sequence(2);
    whole.set_config_hash("old");
    ASSERT_TRUE(db->Put({}, handles[at - names.begin()],
                        std::string("\0\0\0\0\0\0\0\2", 8),
                        whole.SerializeAsString())
                    .ok());
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    }
  }
  auto log = Open();
  auto got = log->LatestSnapshot("old");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->sequence(), 2u);
  for (uint64_t sequence : {3u, 4u}) {
    PutSnapshot(*log, sequence, "new");
  }
  got = log->LatestSnapshot("old");
  ASSERT_TRUE(got.ok() && got->has_value());  // still among the newest three
  PutSnapshot(*log, 5, "new");
  got = log->LatestSnapshot("old");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  got = log->LatestSnapshot("new");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->sequence(), 5u);
}

TEST(EventBytesTest, IgnoresAttributeOrderAndSeesValueChanges) {
  okrd::v1::KpiEvent a;
  a.set_event_id("x");
  (*a.mutable_attributes())["k1"] = "v1";
  (*a.mutable_attributes())["k2"] = "v2";
  okrd::v1::KpiEvent b;
  b.set_event_id("x");
  (*b.mutable_attributes())["k2"] = "v2";
  (*b.mutable_attributes())["k1"] = "v1";
  EXPECT_EQ(EventBytes(a), EventBytes(b));
  b.set_value(1);
  EXPECT_NE(EventBytes(a), EventBytes(b));
}

// The log stores, and compares repeated ids against, the deterministic
// serialization, with and without the map field that makes it differ from
// the plain one.
TEST(EventBytesTest, IsTheDeterministicSerialization) {
  okrd::v1::KpiEvent event;
  event.set_event_id("evt-1");
  event.set_kpi("signups");
  event.set_subject("team-a");
  event.set_value(42.5);
  event.set_unit("count");
  event.mutable_event_time()->set_seconds(1767225600);
  for (bool with_attributes : {false, true}) {
    if (with_attributes) {
      for (int i = 0; i < 20; ++i) {
        (*event.mutable_attributes())[absl::StrCat("key-", i)] = "v";
      }
    }
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      ASSERT_TRUE(event.SerializeToCodedStream(&coded));
    }
    EXPECT_EQ(EventBytes(event), bytes)
        << "with attributes: " << with_attributes;
  }
}

// A repeated id is told apart by comparing its event with the one the log
// holds: attributes in another order are the same event, another value of
// one of them is not.
TEST_F(EventLogTest, ComparesRepeatedIdsWithTheLoggedEvent) {
  auto log = Open(/*run_ids=*/3);
  auto with_attributes =
      [](Batch& batch, const std::string& id,
         const std::vector<std::pair<std::string, std::string>>& attributes,
         int64_t offset) {
        Batch::Candidate& c = Event(batch, id, 1, offset);
        for (const auto& [key, value] : attributes) {
          (*c.event().mutable_attributes())[key] = value;
        }
      };
  Batch first;
  with_attributes(first, "a", {{"k1", "v1"}, {"k2", "v2"}, {"k3", "v3"}}, 0);
  with_attributes(first, "b", {{"k1", "v1"}}, 1);
  for (int i = 0; i < 4; ++i)
    Event(first, absl::StrCat("filler-", i), i, 2 + i);
  first.next_offsets[{"kpi-events", 0}] = 6;
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  log->AwaitIdRuns();  // "a" and "b" are now found in a run
  for (bool after_reopen : {false, true}) {
    if (after_reopen) {
      log.reset();
      log = Open(/*run_ids=*/3);
    }
    Batch again;
    with_attributes(again, "a", {{"k3", "v3"}, {"k1", "v1"}, {"k2", "v2"}}, 10);
    with_attributes(again, "b", {{"k1", "other"}}, 11);
    again.next_offsets[{"kpi-events", 0}] = 12;
    auto result = log->Append(std::move(again));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->duplicates, 1u);
    ASSERT_EQ(result->rejected.size(), 1u);
    EXPECT_EQ(result->rejected[0].reason(), "conflict");
    EXPECT_EQ(result->rejected[0].raw(), "raw-b");
  }
}

// A log written by an older build may hold an event serialized with its
// attributes in another order (protobuf's plain serialization leaves a map's
// order open): the same event again is still a duplicate.
TEST_F(EventLogTest, RepeatedIdMatchesAnEventStoredInAnotherOrder) {
  auto log = Open();
  Batch first;
  Batch::Candidate& c = Event(first, "a", 1, 0);
  (*c.event().mutable_attributes())["k1"] = "v1";
  (*c.event().mutable_attributes())["k2"] = "v2";
  first.Seal(c);
  // The same event with "k2" before "k1": two serializations, which parse
  // as one message.
  okrd::v1::KpiEvent without_k1 = c.event();
  without_k1.mutable_attributes()->erase("k1");
  okrd::v1::KpiEvent only_k1;
  (*only_k1.mutable_attributes())["k1"] = "v1";
  const std::string reordered =
      without_k1.SerializeAsString() + only_k1.SerializeAsString();
  ASSERT_NE(reordered, EventBytes(c.event()));
  ASSERT_LT(reordered.size(), 128u);  // a one-byte size below
  okrd::v1::StoredEvent position_only;
  *position_only.mutable_position() = c.record->position();
  const std::string body =
      absl::StrCat("\x12", std::string(1, static_cast<char>(reordered.size())),
                   reordered, position_only.SerializeAsString());
  c.body = first.Keep(body);
  c.event_bytes = c.body.substr(2, reordered.size());
  first.next_offsets[{"kpi-events", 0}] = 1;
  ASSERT_TRUE(log->Append(std::move(first)).ok());
  auto stored = log->Get(1);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->event().SerializeAsString().size(), reordered.size());

  Batch again;
  for (const std::string k2 : {"v2", "other"}) {
    Batch::Candidate& repeat = Event(again, "a", 1, k2 == "v2" ? 1 : 2);
    (*repeat.event().mutable_attributes())["k2"] = k2;
    (*repeat.event().mutable_attributes())["k1"] = "v1";
  }
  again.next_offsets[{"kpi-events", 0}] = 3;
  auto result = log->Append(std::move(again));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, 1u);
  ASSERT_EQ(result->rejected.size(), 1u);
  EXPECT_EQ(result->rejected[0].reason(), "conflict");
  EXPECT_EQ(result->rejected[0].position().offset(), 2);
}

// A producer that sends a long stretch again: each repeat is read back from
// the log (a few hundred records at a time), whether the first events are in
// the in-memory tables, in runs or in an earlier part of the same batch.
TEST_F(EventLogTest, TellsDuplicatesFromConflictsInALongResentStretch) {
  constexpr int kEvents = 700;
  auto log = Open(/*run_ids=*/250);
  for (int b = 0; b < kEvents / 100; ++b) {
    Batch batch;
    for (int i = b * 100; i < (b + 1) * 100; ++i) {
      Event(batch, absl::StrCat("e-", i), i, i);
    }
    ASSERT_TRUE(log->Append(std::move(batch)).ok());
  }
  log->AwaitIdRuns();
  // Frozen at 300 and 600 ids: runs up to 600, the rest in memory.
  EXPECT_EQ(log->id_index_stats().covered_sequence, 600u);
  EXPECT_EQ(log->id_index_stats().memory_ids, 100u);
  Batch again;
  for (int i = 0; i < kEvents; ++i) {
    // Three of them with another value, at the edges of what is read at once.
    const bool changed = i == 0 || i == 256 || i == kEvents - 1;
    Event(again, absl::StrCat("e-", i), changed ? -i - 1 : i, kEvents + i);
  }
  Event(again, "new", 1, 2 * kEvents);
  Event(again, "new", 1, 2 * kEvents + 1);
  Event(again, "new", 2, 2 * kEvents + 2);
  auto result = log->Append(std::move(again));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->appended.size(), 1u);
  EXPECT_EQ(result->duplicates, static_cast<uint64_t>(kEvents - 3 + 1));
  ASSERT_EQ(result->rejected.size(), 4u);
  for (const auto& r : result->rejected) EXPECT_EQ(r.reason(), "conflict");
  EXPECT_EQ(result->rejected[0].raw(), "raw-e-0");
  EXPECT_EQ(result->rejected[1].raw(), "raw-e-256");
  EXPECT_EQ(result->rejected[2].raw(), absl::StrCat("raw-e-", kEvents - 1));
  EXPECT_EQ(result->rejected[3].raw(), "raw-new");

  // And far apart, backwards: each read back on its own.
  Batch scattered;
  for (int k = kEvents - 1; k >= 0; --k) {
    const int i = k * 37 % kEvents;
    Event(scattered, absl::StrCat("e-", i), i == 5 ? 0.5 : i, 3 * kEvents + k);
  }
  result = log->Append(std::move(scattered));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->duplicates, static_cast<uint64_t>(kEvents - 1));
  ASSERT_EQ(result->rejected.size(), 1u);
  EXPECT_EQ(result->rejected[0].raw(), "raw-e-5");
}

// Small runs hold their bloom filter whole, larger ones (and logs written
// before 2026-12-03) in partitions: a log holding both kinds still tells
// new ids, duplicates and conflicts apart in either.
TEST_F(EventLogTest, FindsIdsInRunsWithWholeAndPartitionedFilters) {
  // Which of the log's tables hold a filter of each kind, by the name
  // RocksDB gives the filter's block in each table's meta-index.
  auto tables_with = [this](const std::string& kind) {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().extension() != ".sst") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      if (bytes.find(kind + "filter.rocksdb.BuiltinBloomFilter") !=
          std::string::npos) {
        ++count;
      }
    }
    return count;
  };
  int64_t offset = 0;
  auto append_range = [&](EventLog& log, int from, int to) {
    Batch batch;
    for (int i = from; i < to; ++i) {
      Event(batch, absl::StrCat("e-", i), i, offset++);
    }
    batch.next_offsets[{"kpi-events", 0}] = offset;
    auto result = log.Append(std::move(batch));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->appended.size(), static_cast<size_t>(to - from));
    log.AwaitIdRuns();
  };
  auto log = Open(/*run_ids=*/100, /*whole_filter_ids=*/0);
  append_range(*log, 0, 250);  // one run of 250 ids, partitioned
  log.reset();
  log = Open(/*run_ids=*/100, /*whole_filter_ids=*/1000);
  append_range(*log, 250, 450);  // one run of 200, whole
  EXPECT_EQ(log->id_index_stats().covered_sequence, 450u);
  EXPECT_EQ(log->id_index_stats().memory_ids, 0u);
  EXPECT_EQ(tables_with("partitioned"), 1);
  EXPECT_EQ(tables_with("full"), 1);

  for (bool after_reopen : {false, true}) {
    if (after_reopen) {
      log.reset();
      log = Open(/*run_ids=*/100, /*whole_filter_ids=*/1000);
    }
    Batch again;
    for (int i : {5, 150, 260, 390, 420}) {
      Event(again, absl::StrCat("e-", i), i, offset++);
    }
    for (int i : {6, 300}) {
      Event(again, absl::StrCat("e-", i), -1, offset++);
    }
    Event(again, absl::StrCat("new-", after_reopen), 1, offset++);
    again.next_offsets[{"kpi-events", 0}] = offset;
    auto result = log->Append(std::move(again));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->duplicates, 5u);
    ASSERT_EQ(result->rejected.size(), 2u);
    EXPECT_EQ(result->rejected[0].raw(), "raw-e-6");
    EXPECT_EQ(result->rejected[1].raw(), "raw-e-300");
    EXPECT_EQ(result->appended.size(), 1u);
  }
}

// The filter over the runs' ids sends only its "maybe"s to the runs: new
// ids are settled in memory, ids in the runs are still found, across the
// parts it gains as it fills and after a reopen, which builds it from the
// runs.
TEST_F(EventLogTest, TheRunsFilterSettlesNewIdsAndGrowsWithTheRuns) {
  int64_t offset = 0;
  // Appends ids `prefix`from .. `prefix`to-1 in batches of 100, the ones
  // whose number is a multiple of `conflict_every` with another value;
  // returns {duplicates, conflicts, appended}.
  auto append_range = [&](EventLog& log, const std::string& prefix, int from,
                          int to, int conflict_every = 0) {
    std::array<size_t, 3> counts{};
    for (int b = from; b < to; b += 100) {
      Batch batch;
      for (int i = b; i < std::min(b + 100, to); ++i) {
        const bool conflict = conflict_every > 0 && i % conflict_every == 0;
        Event(batch, absl::StrCat(prefix, i), conflict ? i + 0.5 : i, offset++);
      }
      batch.next_offsets[{"kpi-events", 0}] = offset;
      auto result = log.Append(std::move(batch));
      EXPECT_TRUE(result.ok()) << result.status();
      if (!result.ok()) return counts;
      counts[0] += result->duplicates;
      counts[1] += result->rejected.size();
      counts[2] += result->appended.size();
      log.AwaitIdRuns();
    }
    return counts;
  };
  using Counts = std::array<size_t, 3>;
  auto log = Open(/*run_ids=*/100, Options().whole_filter_ids,
                  /*id_filter_ids=*/150);
  EXPECT_EQ(append_range(*log, "a-", 0, 1000), (Counts{0, 0, 1000}));
  EventLog::IdIndexStats stats = log->id_index_stats();
  EXPECT_EQ(stats.runs_written, 10u);
  ASSERT_GT(stats.filter_parts, 0u);
  // Built at the open with room for 150 ids (or after the first run, when
  // that came first), then grown twice by a part with room for twice what
  // the filter held, never read from the runs again.
  EXPECT_EQ(stats.filters_built, 1u);
  EXPECT_EQ(stats.filter_parts, 3u);
  EXPECT_GE(stats.filter_capacity, 1000u);
  EXPECT_EQ(stats.filter_ids, 1000u);
  // kBitsPerId bits per id of its room, in whole 32-byte blocks per part.
  EXPECT_GE(stats.filter_bytes,
            stats.filter_capacity * IdFilter::kBitsPerId / 8);
  EXPECT_LE(stats.filter_bytes,
            stats.filter_capacity * IdFilter::kBitsPerId / 8 + 32 * 3);
  EXPECT_EQ(log->memory_use().id_filter, stats.filter_bytes);

  // 1000 new ids: a few false "maybe"s go to the runs, not 1000 lookups.
  const uint64_t lookups_before = stats.run_lookups;
  EXPECT_EQ(append_range(*log, "b-", 0, 1000), (Counts{0, 0, 1000}));
  EXPECT_LT(log->id_index_stats().run_lookups - lookups_before, 50u);

  for (bool after_reopen : {false, true}) {
    if (after_reopen) {
      log.reset();
      log = Open(/*run_ids=*/100, Options().whole_filter_ids,
                 /*id_filter_ids=*/150);
      log->AwaitIdRuns();
      stats = log->id_index_stats();
      ASSERT_GT(stats.filter_parts, 0u);
      EXPECT_EQ(stats.filter_ids, 2000u);  // every id, read from the runs
      EXPECT_EQ(stats.filter_capacity, 4000u);
      EXPECT_EQ(stats.filter_parts, 1u);
    }
    // Every id again, every seventh with another value: each found in its
    // run, none appended.
    EXPECT_EQ(append_range(*log, "a-", 0, 1000, 7), (Counts{857, 143, 0}));
    EXPECT_EQ(append_range(*log, "b-", 0, 1000, 7), (Counts{857, 143, 0}));
  }
}

}  // namespace
}  // namespace okrd::eventlog
