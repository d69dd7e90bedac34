// ingest_bench: durable end-to-end ingest throughput, broker -> validation ->
// RocksDB event log -> KPI projection, with storage.sync on and off, beside
// kcat's raw consume rate from the same embedded broker in the same run.
//
//   ingest_bench [--events N] [--partitions P] [--subjects S] [--batch B]
//                [--runs R] [--kafka-property KEY=VALUE]... [--random-ids]
//                [--format protobuf|json|protobuf,json]
//                [--latency-fractions F,F...]
//                [--latency-base live|catch-up|R]
//                [--latency-seconds S] [--latency-max-events M]
//
// With --latency-seconds, it then measures the maximum: M events (N by
// default) produced flat out by this process while a durable ingest consumes
// them, so that the producer and the broker take the share of the machine
// they take at the fixed rates (--latency-base catch-up uses the durable rate
// measured before, with the topic loaded beforehand, instead; a rate R is
// taken as the maximum, which gives two builds the same rates). N events go
// through in a second or two, which leaves out what a longer run also pays
// for (the id index's sorted runs, RocksDB's flushes): to hold the rates for
// S seconds, give M about S seconds' worth (the producer stays at most 100k
// events ahead of the consumer, which the embedded broker's partitions
// hold). Then it produces at fixed rates (1k/s, and --latency-fractions of
// that maximum, 0.5,0.9 by default) for S seconds each, and prints percentiles
// (after one untimed event has gone through, and 0.5 s of warm-up) of the time
// from each send to the event's fold into the projection, which is when the
// next /metrics scrape shows it, and the share of the machine's CPU time the
// host gave to other guests meanwhile (steal). Before each rate, a floor line:
// the same producer and consumer settings with the messages only consumed and
// decoded, which is what the broker, the client library and the machine's load
// cost at that rate. Keep the partitions few for these (8 is the default): the
// embedded broker finds a fetch's offset by walking the partition's message
// sets from its oldest, and paced sending makes the sets small, so at 32
// partitions that walk took more of the machine than okrd (rdk:mock 5.6
// us/event against the floor consumer's 1.1, at 130k/s).
//
// --format json sends the events as proto3 JSON on a topic listed in
// kafka.json_topics (about 2.5 times the bytes: fewer fit the embedded
// broker's partitions). --format protobuf,json loads both inputs and
// measures them in turns within each run, then prints JSON's rate over
// protobuf's, run by run. Event ids are "bench-N" by default; --random-ids
// makes them 32 random hex digits, as UUID-keyed producers send, which scatters
// each batch's dedup entries over the whole index.
//
// A third line is the floor that durability alone costs: the same consumer
// settings and batch size, writing each poll batch's raw message bytes with
// its next offsets as one fsynced RocksDB WriteBatch: no decoding, no dedup,
// no projection, one thread. okrd's rate over it is what its own work costs.
//
// The clock starts when the first durable batch is in the projection, so the
// consumer group join (about 3 s on the embedded broker) is not counted.
// Over the same window it reads each thread's CPU time, and prints it per
// event: rates swing between runs on a shared machine, costs less so.
// The embedded broker keeps about 5 MB per partition and drops older
// messages, so inputs past ~400k events need more partitions.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "config/config.h"
#include "core/args.h"
#include "core/log.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "export/metrics.h"
#include "google/protobuf/util/json_util.h"
#include "ingest/embedded_broker.h"
#include "ingest/kafka_ingest.h"
#include "ingest/producer.h"
#include "librdkafka/rdkafkacpp.h"
#include "projection/kpi_projection.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace okrd {
namespace {

constexpr char kTopic[] = "bench";
constexpr char kSecondTopic[] = "bench-2";

// CPU seconds used so far by this process's threads, summed by thread name
// (utime + stime from /proc/self/task/*/stat).
using ThreadCpu = std::map<std::string, double>;
ThreadCpu ReadThreadCpu() {
  ThreadCpu cpu;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "stat");
    const std::string stat{std::istreambuf_iterator<char>(in), {}};
    // "pid (name) state ...": the name may hold spaces, so split after it.
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos ||
        close + 2 > stat.size()) {
      continue;
    }
    const std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ');
    double utime = 0, stime = 0;  // fields 14 and 15 of proc(5)
    if (fields.size() > 12 && absl::SimpleAtod(fields[11], &utime) &&
        absl::SimpleAtod(fields[12], &stime)) {
      cpu[stat.substr(open + 1, close - open - 1)] += (utime + stime) / ticks;
    }
  }
  return cpu;
}

// CPU seconds each thread used between two readings; a thread started
// after `before` counts from zero.
ThreadCpu CpuBetween(const ThreadCpu& before, const ThreadCpu& after) {
  ThreadCpu used;
  for (const auto& [name, seconds] : after) {
    auto first = before.find(name);
    used[name] = seconds - (first == before.end() ? 0 : first->second);
  }
  return used;
}

// The machine's CPU time so far, all CPUs, and the part of it the
// hypervisor gave to other guests ("steal", /proc/stat), in ticks. On a
// shared host a window with much steal measures the neighbours too.
struct MachineTicks {
  double total = 0, steal = 0;
};
MachineTicks ReadMachineTicks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  MachineTicks ticks;
  in >> cpu;  // "cpu": user nice system idle iowait irq softirq steal ...
  for (int field = 0; field < 8 && in; ++field) {
    double value = 0;
    in >> value;
    ticks.total += value;
    if (field == 7) ticks.steal = value;
  }
  return ticks;
}

// Folds batches into a projection and notes when the expected count arrived.
class TimingSink final : public ingest::BatchSink {
 public:
  TimingSink(std::shared_ptr<const config::Config> config, uint64_t expected,
             std::atomic<bool>* stop)
      : projection_(std::move(config)), expected_(expected), stop_(stop) {}

  void OnAppended(const eventlog::AppendResult& result) override {
    uint64_t n = result.rejected.size() + result.duplicates;
    for (const okrd::v1::StoredEvent* e : result.appended) {
      projection_.Apply(*e);
      if (e->has_event()) ++n;
    }
    if (seen_ == 0) {
      first_ = absl::Now();
      first_batch_ = n;
      cpu_first_ = ReadThreadCpu();
    }
    seen_ += n;
    if (seen_ >= expected_ && last_ == absl::InfinitePast()) {
      // Read before stopping: the pipeline's threads end with the run.
      cpu_last_ = ReadThreadCpu();
      last_ = absl::Now();
      stop_->store(true);
    }
  }

  // CPU seconds per thread name between the first and the last batch.
  ThreadCpu Cpu() const { return CpuBetween(cpu_first_, cpu_last_); }
  uint64_t timed_events() const { return seen_ - first_batch_; }
  double timed_seconds() const { return absl::ToDoubleSeconds(last_ - first_); }

  // Events per second after the first batch.
  double Rate() const {
    const double secs = timed_seconds();
    return secs > 0 ? static_cast<double>(timed_events()) / secs : 0;
  }
  uint64_t seen() const { return seen_; }
  const projection::KpiProjection& projection() const { return projection_; }

 private:
  projection::KpiProjection projection_;
  uint64_t expected_;
  std::atomic<bool>* stop_;
  uint64_t seen_ = 0;
  uint64_t first_batch_ = 0;
  absl::Time first_;
  absl::Time last_ = absl::InfinitePast();
  ThreadCpu cpu_first_;
  ThreadCpu cpu_last_;
};

// CPU time summed over runs, printed per event and thread.
struct CpuTally {
  ThreadCpu seconds;
  uint64_t events = 0;
  double wall_seconds = 0;

  void Add(const TimingSink& sink) {
    for (const auto& [name, used] : sink.Cpu()) seconds[name] += used;
    events += sink.timed_events();
    wall_seconds += sink.timed_seconds();
  }
  void Add(const CpuTally& other) {
    for (const auto& [name, used] : other.seconds) seconds[name] += used;
    events += other.events;
    wall_seconds += other.wall_seconds;
  }

  // "okrd-append 3.06, ...; total 5.92 us/event, 1.69 cores busy": us per
  // event by thread, busiest first, leaving out threads under 0.05 us.
  std::string Describe() const {
    if (events == 0 || wall_seconds <= 0) return "no timed events";
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (const auto& [name, used] : seconds) {
      total += used;
      const double us = 1e6 * used / static_cast<double>(events);
      if (us >= 0.05) rows.emplace_back(us, name);
    }
    std::sort(rows.rbegin(), rows.rend());
    std::string out;
    for (const auto& [us, name] : rows) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", name,
                      absl::StrFormat(" %.2f", us));
    }
    return absl::StrFormat("%s; total %.2f us/event, %.2f cores busy", out,
                           1e6 * total / static_cast<double>(events),
                           total / wall_seconds);
  }
};

// Runs kcat over the whole topic; returns messages per second, or 0.
// It stops at the last message (-c), as okrd's clock stops at its last
// event, rather than at the end of every partition (-e): waiting for the
// ends costs kcat about half a second, longer than consuming 400k messages
// takes, and would flatter okrd.
double KcatRate(const std::string& brokers, const std::string& topic,
                long long events) {
  const std::string cmd =
      absl::StrCat("timeout 300 kcat -C -b ", brokers, " -t ", topic,
                   " -o beginning -c ", events, " -q > /dev/null 2>&1");
  const absl::Time start = absl::Now();
  const int rc = std::system(cmd.c_str());
  const absl::Duration took = absl::Now() - start;
  if (rc != 0) return 0;
  return static_cast<double>(events) / absl::ToDoubleSeconds(took);
}

// A consumer of `topic` in group `group`, set as KafkaIngest sets its own,
// for the floors; null if librdkafka refuses a setting.
std::unique_ptr<RdKafka::KafkaConsumer> FloorConsumer(
    const config::Config& config, const std::string& brokers,
    const std::string& group, const std::string& topic) {
  std::unique_ptr<RdKafka::Conf> conf(
      RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", brokers},
      {"group.id", group},
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "false"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"auto.offset.reset", "earliest"}};
  // okrd's own consumer settings, so that the floors differ from okrd only
  // in the work done per message.
  settings.merge(okrd::ingest::ConsumerTuning());
  for (const auto& [key, value] : config.kafka.properties) {
    settings[key] = value;
  }
  for (const auto& [key, value] : settings) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) return nullptr;
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer || consumer->subscribe({topic}) != RdKafka::ERR_NO_ERROR) {
    return nullptr;
  }
  return consumer;
}

// The durability floor (see the top): messages per second after the first
// batch, or -1. Also adds its CPU time per thread to `cpu`.
double FloorRate(const config::Config& config, const std::string& brokers,
                 long long events, const std::string& run, CpuTally* cpu) {
  const std::string& topic = config.kafka.topics.front();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat("okrd-floor-", getpid(), "-", run);
  std::filesystem::remove_all(dir);
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw_db = nullptr;
  if (!rocksdb::DB::Open(options, dir.string(), &raw_db).ok()) return -1;
  std::unique_ptr<rocksdb::DB> db(raw_db);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer =
      FloorConsumer(config, brokers, absl::StrCat("floor-", run), topic);
  if (!consumer) return -1;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  uint64_t seen = 0;
  uint64_t first_batch = 0;
  absl::Time first;
  absl::Time last;
  ThreadCpu cpu_first;
  ThreadCpu cpu_last;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  const absl::Duration wait = config.kafka.batch_max_wait;
  while (seen < static_cast<uint64_t>(events) && absl::Now() < deadline) {
    rocksdb::WriteBatch batch;
    std::map<std::pair<std::string, int32_t>, int64_t> next;
    int taken = 0;
    const absl::Time batch_deadline = absl::Now() + wait;
    while (taken < config.kafka.batch_max_messages) {
      const int64_t left = std::max<int64_t>(
          0, absl::ToInt64Milliseconds(batch_deadline - absl::Now()));
      std::unique_ptr<RdKafka::Message> msg(
          consumer->consume(taken == 0 ? 100 : static_cast<int>(left)));
      if (msg->err() == RdKafka::ERR_NO_ERROR) {
        const uint64_t key = seen + taken;
        char encoded[8];
        for (int i = 0; i < 8; ++i)
          encoded[i] = static_cast<char>(key >> (56 - 8 * i));
        batch.Put(rocksdb::Slice(encoded, 8),
                  rocksdb::Slice(static_cast<const char*>(msg->payload()),
                                 msg->len()));
        next[{msg->topic_name(), msg->partition()}] = msg->offset() + 1;
        ++taken;
      } else if (taken > 0 || absl::Now() >= batch_deadline) {
        break;
      }
      if (taken > 0 && absl::Now() >= batch_deadline) break;
    }
    if (taken == 0) continue;
    for (const auto& [partition, offset] : next) {
      batch.Put(absl::StrCat("offset/", partition.first, "/", partition.second),
                absl::StrCat(offset));
    }
    if (!db->Write(sync, &batch).ok()) return -1;
    if (seen == 0) {
      first = absl::Now();
      first_batch = static_cast<uint64_t>(taken);
      cpu_first = ReadThreadCpu();
    }
    seen += static_cast<uint64_t>(taken);
  }
  cpu_last = ReadThreadCpu();
  last = absl::Now();
  consumer->close();
  db.reset();
  std::filesystem::remove_all(dir);
  if (seen < static_cast<uint64_t>(events)) return -1;
  const uint64_t timed = seen - first_batch;
  const double secs = absl::ToDoubleSeconds(last - first);
  cpu->Add({.seconds = CpuBetween(cpu_first, cpu_last),
            .events = timed,
            .wall_seconds = secs});
  return secs > 0 ? static_cast<double>(timed) / secs : 0;
}

// Events sent before this (Unix microseconds) are warm-up: the consumer's
// first fetches, not its pace. Set by the latency producer.
std::atomic<int64_t> count_from_us{std::numeric_limits<int64_t>::max()};

bool Counted(const okrd::v1::KpiEvent& e) {
  return absl::ToUnixMicros(FromProto(e.event_time())) >= count_from_us.load();
}

// Per event seen, the time since its event_time, which the latency
// producer sets to the moment it sends the event. Thread-safe.
class Latencies {
 public:
  void Add(const okrd::v1::KpiEvent& e, absl::Time now) {
    absl::MutexLock lock(&mu_);
    ++seen_;
    if (Counted(e)) {
      ms_.push_back(
          absl::ToDoubleMilliseconds(now - FromProto(e.event_time())));
    }
  }
  size_t seen() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  std::vector<double> ms() const {
    absl::MutexLock lock(&mu_);
    return ms_;
  }

 private:
  mutable absl::Mutex mu_;
  size_t seen_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<double> ms_ ABSL_GUARDED_BY(mu_);
};

// Folds batches and records each event's latency at its fold.
class LatencySink final : public ingest::BatchSink {
 public:
  explicit LatencySink(std::shared_ptr<const config::Config> config)
      : projection_(std::move(config)) {}
  void OnAppended(const eventlog::AppendResult& result) override {
    for (const okrd::v1::StoredEvent* e : result.appended) {
      projection_.Apply(*e);
    }
    const absl::Time now = absl::Now();
    for (const okrd::v1::StoredEvent* e : result.appended) {
      if (e->has_event()) latencies.Add(e->event(), now);
    }
  }
  Latencies latencies;

 private:
  projection::KpiProjection projection_;  // on the publisher thread only
};

// The latency floor's consumer: KafkaIngest's consumer settings, each
// message decoded and its send-to-consume time recorded, nothing stored.
class RawLatencyConsumer {
 public:
  static std::unique_ptr<RawLatencyConsumer> Start(const config::Config& config,
                                                   const std::string& brokers,
                                                   const std::string& topic) {
    auto self = std::make_unique<RawLatencyConsumer>();
    self->consumer_ =
        FloorConsumer(config, brokers, absl::StrCat("latency-", topic), topic);
    if (!self->consumer_) return nullptr;
    self->thread_ = std::thread([raw = self.get()] {
      pthread_setname_np(pthread_self(), "floor-consume");
      raw->Loop();
    });
    return self;
  }
  ~RawLatencyConsumer() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (consumer_) consumer_->close();
  }
  bool assigned() const { return assigned_.load(); }
  Latencies latencies;

 private:
  void Loop() {
    okrd::v1::KpiEvent e;
    while (!stop_.load()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      if (!assigned_.load()) {
        std::vector<RdKafka::TopicPartition*> assignment;
        if (!consumer_->assignment(assignment) && !assignment.empty()) {
          assigned_.store(true);
        }
        RdKafka::TopicPartition::destroy(assignment);
      }
      if (msg->err() != RdKafka::ERR_NO_ERROR) continue;
      if (!e.ParseFromArray(msg->payload(), static_cast<int>(msg->len()))) {
        continue;
      }
      latencies.Add(e, absl::Now());
    }
  }

  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> assigned_{false};
};

// The first events of each rate are not counted (see count_from_us).
constexpr absl::Duration kWarmUp = absl::Milliseconds(500);
// How far a flat-out producer may run ahead of the consumer, in events:
// about half a second of okrd's durable ingest here beside the producer,
// within what 4 partitions of the embedded broker hold (~2.5 MB each).
constexpr long long kMaxLead = 100000;

// What one latency run saw.
struct LatencyRun {
  bool ok = false;
  double p50 = 0, p99 = 0, max = 0;  // ms, events after the warm-up
  size_t counted = 0;
  double cores_busy = 0;  // the whole process, first send to last arrival
  double stolen = 0;      // of the machine's CPU time meanwhile (steal)
  double rate = 0;        // events sent / (last arrival - first send)
  CpuTally cpu;           // by thread, first send to last arrival

  std::string Describe() const {
    if (!ok) return "failed";
    if (counted == 0) return "no events after the first 0.5 s";
    return absl::StrFormat(
        "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%zu events after the first "
        "0.5 s); %.2f cores busy, %.0f%% stolen by the host",
        p50, p99, max, counted, cores_busy, 100 * stolen);
  }
  // Where the machine's time went: the producer (this process's main
  // thread, its rdk: threads named like the consumer's), the embedded
  // broker (rdk:mock) and the consumer.
  std::string DescribeCpu() const { return ok ? cpu.Describe() : "failed"; }
};

// Produces `total` events into a fresh topic that a durable ingest (sync on)
// consumes, or with `floor` the raw consumer above, `rate` events a second
// or, with `rate` 0, as fast as the producer can send them; returns the
// send to fold (or consume) latencies and the rate achieved.
LatencyRun LatencyAt(const std::shared_ptr<config::Config>& config,
                     const std::string& brokers, const std::string& topic,
                     double rate, long long total, long long subjects,
                     bool floor) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat("okrd-latency-", getpid(), "-", topic);
  std::filesystem::remove_all(dir);
  auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = true});
  if (!log.ok()) return {};
  auto run_config = std::make_shared<config::Config>(*config);
  run_config->kafka.topics = {topic};
  run_config->kafka.group_id = absl::StrCat("latency-", topic);
  LatencySink sink(run_config);
  std::unique_ptr<RawLatencyConsumer> raw;
  absl::StatusOr<std::unique_ptr<ingest::KafkaIngest>> ingest =
      absl::UnavailableError("not started");
  if (floor) {
    raw = RawLatencyConsumer::Start(*run_config, brokers, topic);
    if (!raw) return {};
  } else {
    ingest = ingest::KafkaIngest::Create(run_config, brokers, log->get(), &sink,
                                         &Clock::Real());
    if (!ingest.ok()) return {};
  }
  std::atomic<bool> stop{false};
  absl::Status status;
  std::thread runner([&] {
    pthread_setname_np(pthread_self(), "okrd-consume");
    if (!floor) status = (*ingest)->Run(stop);
  });
  auto assigned = [&] {
    return floor ? raw->assigned() : (*ingest)->assigned();
  };
  const Latencies& latencies = floor ? raw->latencies : sink.latencies;
  const absl::Time joined_by = absl::Now() + absl::Seconds(30);
  while (!assigned() && absl::Now() < joined_by) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  auto producer = ingest::Producer::Create(brokers, {{"linger.ms", "1"}});
  ThreadCpu cpu_before;
  MachineTicks machine_before;
  absl::Time sending_started = absl::InfinitePast();
  // One event first, untimed, and its arrival awaited: a new producer holds
  // its first sends until it has the topic's metadata, and a new consumer
  // starts fetching only after looking up its offsets; together up to a
  // second here, a start-up cost rather than latency.
  const size_t expected = static_cast<size_t>(total) + 1;
  okrd::v1::KpiEvent e;
  e.set_kpi("signups");
  e.set_unit("count");
  if (producer.ok()) {
    e.set_event_id(absl::StrCat(topic, "-first"));
    e.set_subject("subject-0");
    e.set_value(1);
    count_from_us.store(std::numeric_limits<int64_t>::max());
    ToProto(absl::Now(), e.mutable_event_time());
    const absl::Time first_by = absl::Now() + absl::Seconds(30);
    if ((*producer)->Send(topic, e.subject(), e.SerializeAsString(), {}).ok()) {
      while (latencies.seen() < 1 && absl::Now() < first_by) {
        absl::SleepFor(absl::Milliseconds(1));
      }
    }
  }
  if (producer.ok() && latencies.seen() == 1) {
    std::string payload;
    const absl::Time start = absl::Now();
    count_from_us.store(absl::ToUnixMicros(start + kWarmUp));
    cpu_before = ReadThreadCpu();
    machine_before = ReadMachineTicks();
    sending_started = start;
    for (long long i = 0; i < total; ++i) {
      // Paced in steps of a millisecond, the producer's linger: sleeping
      // before each event (every 7 us at 137k/s) cost the producer three
      // times its sending, the machine's time the consumers need.
      if (rate > 0) {
        const absl::Time due =
            start + absl::Seconds(static_cast<double>(i) / rate);
        const absl::Time now = absl::Now();
        if (due - now >= absl::Milliseconds(1)) absl::SleepFor(due - now);
      } else if (i % 1024 == 0) {
        // Flat out, but at most kMaxLead events ahead of the consumer: the
        // embedded broker drops a partition's oldest messages past ~5 MB,
        // and a run long enough to include the id index's runs and
        // RocksDB's flushes would otherwise outgrow it.
        while (static_cast<long long>(i + 1) -
                       static_cast<long long>(latencies.seen()) >
                   kMaxLead &&
               absl::Now() < start + absl::Minutes(5)) {
          absl::SleepFor(absl::Milliseconds(1));
        }
      }
      e.set_event_id(absl::StrCat(topic, "-", i));
      e.set_subject(absl::StrCat("subject-", i % subjects));
      e.set_value(1);
      ToProto(absl::Now(), e.mutable_event_time());
      e.SerializeToString(&payload);
      if (!(*producer)->Send(topic, e.subject(), payload, {}).ok()) break;
    }
    (void)(*producer)->Flush(absl::Seconds(30));
  }
  const absl::Time done_by = absl::Now() + absl::Seconds(60);
  while (latencies.seen() < expected && absl::Now() < done_by) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  // The whole process (producer, broker and consumer) from the first send
  // to the last event's arrival.
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - sending_started);
  const MachineTicks machine_after = ReadMachineTicks();
  CpuTally cpu{.seconds = CpuBetween(cpu_before, ReadThreadCpu()),
               .events = static_cast<uint64_t>(total),
               .wall_seconds = elapsed};
  double busy_seconds = 0;
  for (const auto& [name, used] : cpu.seconds) busy_seconds += used;
  stop.store(true);
  runner.join();
  std::vector<double> ms = latencies.ms();
  const size_t seen_all = latencies.seen();
  raw.reset();
  if (ingest.ok()) ingest->reset();
  log->reset();
  std::filesystem::remove_all(dir);
  if (!status.ok() || seen_all < expected) return {};
  LatencyRun run;
  run.ok = true;
  // A short flat-out run may be over before the warm-up is: a rate, no
  // percentiles.
  if (!ms.empty()) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) {
      return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
    };
    run.p50 = at(0.5);
    run.p99 = at(0.99);
    run.max = ms.back();
    run.counted = ms.size();
  }
  run.cores_busy = elapsed > 0 ? busy_seconds / elapsed : 0;
  const double ticks = machine_after.total - machine_before.total;
  run.stolen =
      ticks > 0 ? (machine_after.steal - machine_before.steal) / ticks : 0;
  run.rate = elapsed > 0 ? static_cast<double>(total) / elapsed : 0;
  run.cpu = std::move(cpu);
  return run;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// " (min-max)" over more than one run, else "".
std::string Range(const std::vector<double>& values) {
  if (values.size() < 2) return "";
  const auto [min, max] = std::minmax_element(values.begin(), values.end());
  return absl::StrFormat(" (%.0f-%.0f)", *min, *max);
}

// One durable ingest of the whole topic into a fresh log, in its own
// consumer group; events per second after the first batch, or -1.
double IngestRate(const std::shared_ptr<config::Config>& config,
                  const std::string& brokers, long long events, bool sync,
                  const std::string& run, size_t* series, CpuTally* cpu) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat("okrd-bench-", getpid(), "-", run);
  std::filesystem::remove_all(dir);
  auto log = eventlog::EventLog::Open({.path = dir.string(), .sync = sync});
  if (!log.ok()) return -1;
  auto run_config = std::make_shared<config::Config>(*config);
  run_config->kafka.group_id = absl::StrCat("bench-", run);
  std::atomic<bool> stop{false};
  TimingSink sink(run_config, static_cast<uint64_t>(events), &stop);
  auto ingest = ingest::KafkaIngest::Create(run_config, brokers, log->get(),
                                            &sink, &Clock::Real());
  if (!ingest.ok()) return -1;
  std::thread watchdog([&] {
    const absl::Time deadline = absl::Now() + absl::Minutes(5);
    while (!stop.load() && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(50));
    stop.store(true);
  });
  // Run() consumes on this thread (in okrd, the main one): named beside
  // okrd-append and okrd-publish for the CPU lines and profiles.
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  pthread_setname_np(pthread_self(), "okrd-consume");
  const absl::Status status = (*ingest)->Run(stop);
  pthread_setname_np(pthread_self(), name);
  watchdog.join();
  if (!status.ok() || sink.seen() < static_cast<uint64_t>(events)) {
    std::fprintf(stderr, "ingest_bench: only %llu of %lld events arrived\n",
                 static_cast<unsigned long long>(sink.seen()), events);
    return -1;
  }
  *series = sink.projection().subject_count();
  cpu->Add(sink);
  ingest->reset();
  log->reset();
  std::filesystem::remove_all(dir);
  return sink.Rate();
}

int Main(int argc, char** argv) {
  (void)InitLogging("warn");
  Args args({"events", "partitions", "subjects", "batch", "runs",
             "kafka-property", "latency-seconds", "latency-fractions",
             "latency-base", "latency-max-events", "format"},
            {"random-ids"});
  if (absl::Status s =
          args.Parse(std::vector<std::string>(argv + 1, argv + argc));
      !s.ok()) {
    std::fprintf(stderr, "ingest_bench: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  long long events = 0, partitions = 0, subjects = 0, batch = 0, runs = 0,
            max_events = 0;
  for (auto [name, fallback, out] :
       {std::tuple{"events", 200000LL, &events},
        std::tuple{"partitions", 8LL, &partitions},
        std::tuple{"subjects", 1000LL, &subjects},
        std::tuple{"batch", 5000LL, &batch}, std::tuple{"runs", 1LL, &runs},
        std::tuple{"latency-max-events", 0LL, &max_events}}) {
    if (absl::Status s = args.GetInt(name, 1, 100000000, fallback, out);
        !s.ok()) {
      std::fprintf(stderr, "ingest_bench: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
  }
  if (max_events == 0) max_events = events;
  // Latency rates as fractions of the durable rate, after the fixed 1k/s.
  std::vector<double> fractions;
  for (absl::string_view part :
       absl::StrSplit(args.Get("latency-fractions").value_or("0.5,0.9"), ',')) {
    double fraction = 0;
    if (!absl::SimpleAtod(part, &fraction) || fraction <= 0 || fraction > 1) {
      std::fprintf(stderr,
                   "ingest_bench: --latency-fractions: \"%s\" is not a "
                   "fraction in (0, 1]\n",
                   std::string(part).c_str());
      return 2;
    }
    fractions.push_back(fraction);
  }
  const std::string latency_base =
      std::string(args.Get("latency-base").value_or("live"));
  double given_base = 0;  // events/s, from --latency-base R
  if (latency_base != "live" && latency_base != "catch-up" &&
      (!absl::SimpleAtod(latency_base, &given_base) || given_base <= 0)) {
    std::fprintf(stderr,
                 "ingest_bench: --latency-base: must be live, catch-up or a "
                 "rate in events/s\n");
    return 2;
  }
  const bool catch_up_base = latency_base != "live";
  // The latency runs (a floor and okrd per rate) each read a topic of their
  // own from its start.
  std::vector<std::string> topics = {kTopic, kSecondTopic};
  for (size_t i = 0; i < 2 * (fractions.size() + 1); ++i) {
    topics.push_back(absl::StrCat("latency-", i));
  }
  if (!catch_up_base) {
    for (long long r = 0; r < runs; ++r) {
      topics.push_back(absl::StrCat("latency-max-", r));
    }
  }
  auto broker =
      ingest::EmbeddedBroker::Start(static_cast<int>(partitions), topics);
  if (!broker.ok()) return 1;
  const std::string brokers = (*broker)->bootstrap();

  // One input per format, each on a topic of its own; with two formats
  // every run measures both, one after the other.
  struct Format {
    std::string name;
    std::shared_ptr<config::Config> config;
    size_t bytes = 0;
    std::vector<double> kcat, floor, sync_on, sync_off;
    CpuTally floor_cpu, sync_on_cpu, sync_off_cpu;
    size_t series = 0;
  };
  std::vector<Format> formats;
  for (absl::string_view name :
       absl::StrSplit(args.Get("format").value_or("protobuf"), ',')) {
    if (name != "protobuf" && name != "json") {
      std::fprintf(stderr,
                   "ingest_bench: --format: must be protobuf, json or "
                   "protobuf,json\n");
      return 2;
    }
    Format& f = formats.emplace_back();
    f.name = std::string(name);
    f.config = std::make_shared<config::Config>();
    f.config->kafka.topics = {formats.size() == 1 ? kTopic : kSecondTopic};
    if (name == "json") f.config->kafka.json_topics = f.config->kafka.topics;
    f.config->kafka.batch_max_messages = static_cast<int>(batch);
    if (absl::Status s =
            args.GetPairs("kafka-property", &f.config->kafka.properties);
        !s.ok()) {
      std::fprintf(stderr, "ingest_bench: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
    config::KpiOptions kpi;
    kpi.id = "signups";
    kpi.unit = "count";
    kpi.aggregation = config::Aggregation::kSum;
    f.config->kpis.push_back(kpi);
  }
  if (formats.size() > 2 ||
      (formats.size() == 2 && formats[0].name == formats[1].name)) {
    std::fprintf(stderr, "ingest_bench: --format: at most one of each\n");
    return 2;
  }
  const std::shared_ptr<config::Config>& config = formats.front().config;

  // Load the topics.
  const bool random_ids = args.Has("random-ids");
  for (Format& f : formats) {
    auto producer = ingest::Producer::Create(brokers, {{"linger.ms", "20"}});
    if (!producer.ok()) return 1;
    okrd::v1::KpiEvent e;
    e.set_kpi("signups");
    e.set_unit("count");
    e.set_source("bench");
    ToProto(absl::Now() - absl::Minutes(1), e.mutable_event_time());
    std::string payload;
    std::mt19937_64 random(42);
    const std::string& topic = f.config->kafka.topics.front();
    for (long long i = 0; i < events; ++i) {
      e.set_event_id(random_ids
                         ? absl::StrCat(absl::Hex(random(), absl::kZeroPad16),
                                        absl::Hex(random(), absl::kZeroPad16))
                         : absl::StrCat("bench-", i));
      e.set_subject(absl::StrCat("subject-", i % subjects));
      e.set_value(static_cast<double>(i % 100));
      if (f.name == "json") {
        payload.clear();
        if (!google::protobuf::util::MessageToJsonString(e, &payload).ok()) {
          return 1;
        }
      } else {
        e.SerializeToString(&payload);
      }
      if (!(*producer)->Send(topic, e.subject(), payload, {}).ok()) return 1;
    }
    if (!(*producer)->Flush(absl::Seconds(60)).ok()) return 1;
    f.bytes = payload.size();
    std::printf(
        "input: %lld %s events of %zu bytes, %s ids, %lld subjects, %lld "
        "partitions, batch %lld\n",
        events, f.name.c_str(), f.bytes, random_ids ? "random" : "sequential",
        subjects, partitions, batch);
  }

  // Rates swing between runs on a shared machine: each figure is the
  // median of --runs runs, with the range beside it. The formats take
  // turns within each run.
  for (long long r = 0; r < runs; ++r) {
    for (Format& f : formats) {
      const std::string run = absl::StrCat(f.name, "-", r);
      f.kcat.push_back(
          KcatRate(brokers, f.config->kafka.topics.front(), events));
      const double floor =
          FloorRate(*f.config, brokers, events, run, &f.floor_cpu);
      if (floor < 0) return 1;
      f.floor.push_back(floor);
      for (bool sync : {true, false}) {
        const double rate = IngestRate(f.config, brokers, events, sync,
                                       absl::StrCat(sync, "-", run), &f.series,
                                       sync ? &f.sync_on_cpu : &f.sync_off_cpu);
        if (rate < 0) return 1;
        (sync ? f.sync_on : f.sync_off).push_back(rate);
      }
    }
  }
  for (Format& f : formats) {
    if (formats.size() > 1) std::printf("%s:\n", f.name.c_str());
    const double kcat = Median(f.kcat);
    std::printf("kcat raw consume:            %10.0f events/s%s\n", kcat,
                Range(f.kcat).c_str());
    const double floor = Median(f.floor);
    std::printf(
        "floor, raw bytes + offsets, sync: %5.0f events/s (%.0f%% of kcat)%s\n",
        floor, kcat > 0 ? 100 * floor / kcat : 0, Range(f.floor).c_str());
    std::printf("  cpu, us/event by thread:   %s\n",
                f.floor_cpu.Describe().c_str());
    for (bool sync : {true, false}) {
      const std::vector<double>& rates = sync ? f.sync_on : f.sync_off;
      const double rate = Median(rates);
      std::printf(
          "okrd ingest, sync %-3s:       %10.0f events/s (%.0f%% of kcat, "
          "%.0f%% of the floor), %zu series%s\n",
          sync ? "on" : "off", rate, kcat > 0 ? 100 * rate / kcat : 0,
          floor > 0 ? 100 * rate / floor : 0, f.series, Range(rates).c_str());
      std::printf("  cpu, us/event by thread:   %s\n",
                  (sync ? f.sync_on_cpu : f.sync_off_cpu).Describe().c_str());
    }
  }
  if (formats.size() == 2) {
    // Each run's second format over its first, measured back to back.
    std::vector<std::string> paired;
    std::vector<double> ratios;
    for (long long r = 0; r < runs; ++r) {
      ratios.push_back(formats[1].sync_on[r] / formats[0].sync_on[r]);
      paired.push_back(absl::StrFormat("%.2f", ratios.back()));
    }
    std::printf("%s / %s, sync on: %.2f (per run: %s)\n",
                formats[1].name.c_str(), formats[0].name.c_str(),
                Median(ratios), absl::StrJoin(paired, ", ").c_str());
  }
  const double sync_rate = Median(formats.front().sync_on);
  long long latency_seconds = 0;
  if (absl::Status s =
          args.GetInt("latency-seconds", 0, 600, 0, &latency_seconds);
      !s.ok()) {
    std::fprintf(stderr, "ingest_bench: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  if (latency_seconds > 0) {
    // The maximum the rates are fractions of. By default the rate durable
    // ingest keeps up with while this process also produces, flat out: the
    // producer and the broker then take their share of the machine, as they
    // do at every fixed rate below. --latency-base catch-up takes the rate
    // measured above instead, reading a topic loaded beforehand.
    double base = given_base > 0 ? given_base : sync_rate;
    if (!catch_up_base) {
      std::vector<double> live;
      CpuTally cpu;
      for (long long r = 0; r < runs; ++r) {
        const LatencyRun run =
            LatencyAt(config, brokers, absl::StrCat("latency-max-", r), 0,
                      max_events, subjects, /*floor=*/false);
        if (!run.ok) continue;
        live.push_back(run.rate);
        cpu.Add(run.cpu);
      }
      if (live.empty()) {
        std::fprintf(stderr,
                     "ingest_bench: the maximum beside the producer "
                     "could not be measured\n");
        return 1;
      }
      base = Median(live);
      std::printf(
          "maximum beside the producer, sync on: %.0f events/s%s over %lld "
          "events (catch-up without it: %.0f)\n",
          base, Range(live).c_str(), max_events, sync_rate);
      std::printf("  cpu, us/event by thread:   %s\n", cpu.Describe().c_str());
    }
    std::vector<std::pair<std::string, double>> latency_rates = {
        {"1k/s", 1000.0}};
    for (double fraction : fractions) {
      latency_rates.emplace_back(
          absl::StrFormat("%.0f%% of max", 100 * fraction), fraction * base);
    }
    int n = 0;
    for (const auto& [label, rate] : latency_rates) {
      // The floor first: the same producer and consumer settings, the
      // messages only decoded, which is what the broker and the client
      // library cost at this rate on this machine.
      for (bool raw_only : {true, false}) {
        const std::string topic = absl::StrCat("latency-", n++);
        const LatencyRun run = LatencyAt(
            config, brokers, topic, rate,
            static_cast<long long>(rate * static_cast<double>(latency_seconds)),
            subjects, raw_only);
        std::printf(
            "%s %-10s (%6.0f/s): %s\n",
            raw_only ? "send -> consume, floor:" : "send -> fold, sync on:",
            label.c_str(), rate, run.Describe().c_str());
        std::printf("  cpu, us/event by thread:   %s\n",
                    run.DescribeCpu().c_str());
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace okrd

int main(int argc, char** argv) { return okrd::Main(argc, argv); }
