#include "ingest/kafka_ingest.h"

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "ingest/embedded_broker.h"
#include "ingest/producer.h"

namespace okrd::ingest {
namespace {

constexpr char kTopic[] = "kpi-events";
constexpr int kPartitions = 3;

// Records what the ingest hands over, and on which threads, and stops the
// run once `expected` messages were accounted for.
class RecordingSink final : public BatchSink, public SeriesGate {
 public:
  RecordingSink(uint64_t expected, std::atomic<bool>* stop)
      : expected_(expected), stop_(stop) {}

  void OnAppended(const eventlog::AppendResult& result) override {
    absl::MutexLock lock(&mu_);
    sink_threads_.insert(std::this_thread::get_id());
    for (const okrd::v1::StoredEvent* e : result.appended) {
      if (e->sequence() <= last_sequence_) out_of_order_ = true;
      last_sequence_ = e->sequence();
      if (!e->has_event()) continue;
      ++accepted_;
      ++per_subject_[e->event().subject()];
    }
    for (const okrd::v1::RejectedRecord& r : result.rejected) {
      ++rejected_[r.reason()];
    }
    duplicates_ += result.duplicates;
    if (accepted_ + duplicates_ + RejectedCount() >= expected_) {
      stop_->store(true);
    }
  }

  bool Admit(const okrd::v1::KpiEvent& event, std::string* detail) override {
    absl::MutexLock lock(&mu_);
    gate_threads_.insert(std::this_thread::get_id());
    if (event.subject() != "team-refused") return true;
    *detail = "test refuses team-refused";
    return false;
  }

  mutable absl::Mutex mu_;
  std::set<std::thread::id> sink_threads_;
  std::set<std::thread::id> gate_threads_;
  std::map<std::string, uint64_t> per_subject_;
  std::map<std::string, uint64_t> rejected_;
  uint64_t accepted_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t last_sequence_ = 0;
  bool out_of_order_ = false;

 private:
  uint64_t RejectedCount() const {
    uint64_t n = 0;
    for (const auto& [reason, count] : rejected_) n += count;
    return n;
  }
  uint64_t expected_;
  std::atomic<bool>* stop_;
};

std::string Event(const std::string& id, const std::string& subject,
                  double value) {
  okrd::v1::KpiEvent e;
  e.set_event_id(id);
  e.set_kpi("signups");
  e.set_subject(subject);
  e.set_value(value);
  ToProto(absl::Now() - absl::Minutes(1), e.mutable_event_time());
  return e.SerializeAsString();
}

// Many small batches through the pipeline: every message is accounted for
// exactly once, in log order; the gate and the sink run on threads of
// their own; the log's offsets reach the end of each partition.
TEST(KafkaIngestTest, PipelinedBatchesAccountForEveryMessageOnce) {
  auto broker = EmbeddedBroker::Start(kPartitions, {kTopic});
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto producer = Producer::Create((*broker)->bootstrap(), {});
  ASSERT_TRUE(producer.ok()) << producer.status();
  constexpr int kEvents = 3000;
  uint64_t sent = 0;
  for (int i = 0; i < kEvents; ++i) {
    const std::string subject = absl::StrCat("team-", i % 7);
    const std::string payload = Event(absl::StrCat("e", i), subject, 1);
    ASSERT_TRUE((*producer)->Send(kTopic, subject, payload, {}).ok());
    ++sent;
    if (i % 100 == 0) {
      // A redelivery; two malformed messages whose header and quoted bytes
      // are not UTF-8; a refusal.
      ASSERT_TRUE((*producer)->Send(kTopic, subject, payload, {}).ok());
      ASSERT_TRUE((*producer)
                      ->Send(kTopic, subject, "\xff\xff",
                             {{"content-type", "application/x-protobuf\xfe"}})
                      .ok());
      ASSERT_TRUE((*producer)
                      ->Send(kTopic, subject, "{\"eventId\":\"j\xff\"}",
                             {{"content-type", "application/json"}})
                      .ok());
      ASSERT_TRUE((*producer)
                      ->Send(kTopic, "team-refused",
                             Event(absl::StrCat("r", i), "team-refused", 1), {})
                      .ok());
      sent += 4;
    }
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());

  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrCat("kafka_ingest_", getpid());
  std::filesystem::remove_all(dir);
  // With sync, so each batch's fsync runs beside the next one's append.
  auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = true});
  ASSERT_TRUE(log.ok()) << log.status();

  auto config = std::make_shared<config::Config>();
  config->kafka.topics = {kTopic};
  config->kafka.batch_max_messages = 97;  // many batches, odd boundaries
  config->kafka.properties = {{"session.timeout.ms", "6000"},
                              {"heartbeat.interval.ms", "500"}};
  config->exporter.max_series = 1000;  // so the gate is asked
  config::KpiOptions kpi;
  kpi.id = "signups";
  kpi.aggregation = config::Aggregation::kSum;
  config->kpis.push_back(kpi);

  std::atomic<bool> stop{false};
  RecordingSink sink(sent, &stop);
  auto ingest = KafkaIngest::Create(config, (*broker)->bootstrap(), log->get(),
                                    &sink, &Clock::Real(), &sink);
  ASSERT_TRUE(ingest.ok()) << ingest.status();
  std::thread watchdog([&] {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!stop.load() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    stop.store(true);
  });
  const absl::Status run = (*ingest)->Run(stop);
  watchdog.join();
  ASSERT_TRUE(run.ok()) << run;

  absl::MutexLock lock(&sink.mu_);
  EXPECT_EQ(sink.accepted_, static_cast<uint64_t>(kEvents));
  EXPECT_EQ(sink.duplicates_, 30u);
  EXPECT_EQ(sink.rejected_["malformed"], 60u);
  EXPECT_EQ(sink.rejected_["series_limit"], 30u);
  EXPECT_EQ(sink.per_subject_.count("team-refused"), 0u);
  EXPECT_FALSE(sink.out_of_order_);
  ASSERT_EQ(sink.sink_threads_.size(), 1u);
  ASSERT_EQ(sink.gate_threads_.size(), 1u);
  EXPECT_NE(*sink.sink_threads_.begin(), *sink.gate_threads_.begin());
  EXPECT_FALSE(sink.sink_threads_.contains(std::this_thread::get_id()));
  EXPECT_FALSE(sink.gate_threads_.contains(std::this_thread::get_id()));

  const eventlog::Stats stats = (*log)->GetStats();
  EXPECT_EQ((stats.counters.at({"accepted", ""})), uint64_t{kEvents});
  int64_t next_offsets = 0;
  for (int p = 0; p < kPartitions; ++p) {
    auto it = stats.offsets.find({kTopic, p});
    ASSERT_NE(it, stats.offsets.end()) << "partition " << p;
    next_offsets += it->second;
  }
  EXPECT_EQ(next_offsets, static_cast<int64_t>(sent));
  // Every rejection reads back, whatever bytes its message carried.
  uint64_t stored_rejections = 0;
  const absl::Status read =
      (*log)->ForEachRejected(0, [&](const okrd::v1::RejectedRecord& r) {
        ++stored_rejections;
        if (r.reason() == "malformed" && !r.content_type().empty() &&
            r.content_type() != "application/json") {
          EXPECT_EQ(r.content_type(), "application/x-protobuf?");
        }
        return true;
      });
  EXPECT_TRUE(read.ok()) << read;
  EXPECT_EQ(stored_rejections, 90u);
  log->reset();
  std::filesystem::remove_all(dir);
}

// Group commit: a batch goes to the log as soon as the appender is free,
// not when kafka.batch_max_wait runs out, so a quiet stream is not held
// back. Ownership reports the assigned partitions, caught up once folded.
TEST(KafkaIngestTest, QuietStreamDoesNotWaitForTheBatchTimer) {
  auto broker = EmbeddedBroker::Start(kPartitions, {kTopic});
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrCat("kafka_ingest_quiet_", getpid());
  std::filesystem::remove_all(dir);
  auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = true});
  ASSERT_TRUE(log.ok()) << log.status();
  auto config = std::make_shared<config::Config>();
  config->kafka.topics = {kTopic};
  config->kafka.batch_max_wait = absl::Minutes(10);
  config::KpiOptions kpi;
  kpi.id = "signups";
  config->kpis.push_back(kpi);

  std::atomic<bool> stop{false};
  RecordingSink sink(1, &stop);
  auto ingest = KafkaIngest::Create(config, (*broker)->bootstrap(), log->get(),
                                    &sink, &Clock::Real());
  ASSERT_TRUE(ingest.ok()) << ingest.status();
  absl::Status run;
  std::thread runner([&] { run = (*ingest)->Run(stop); });
  // Bounded waits: the test fails, rather than hangs, if one never comes.
  auto wait_until = [&](const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!done() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    return done();
  };
  const std::map<eventlog::PartitionKey, int64_t> nothing_folded;
  EXPECT_TRUE(wait_until([&] {
    return (*ingest)->assigned() &&
           (*ingest)->Ownership(nothing_folded).owned().size() == kPartitions &&
           (*ingest)->Ownership(nothing_folded).current();
  })) << "the empty partitions never counted as caught up";

  auto producer = Producer::Create((*broker)->bootstrap(), {});
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE(
      (*producer)->Send(kTopic, "team-a", Event("q1", "team-a", 1), {}).ok());
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  const bool arrived = wait_until([&] {
    absl::MutexLock lock(&sink.mu_);
    return sink.accepted_ == 1;
  });
  stop.store(true);
  runner.join();
  EXPECT_TRUE(arrived) << "held back by the 10-minute batch timer";
  EXPECT_TRUE(run.ok()) << run;
  log->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace okrd::ingest
