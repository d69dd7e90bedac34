#include "ingest/kafka_ingest.h"

#include <pthread.h>

#include <algorithm>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/log.h"
#include "core/utf8.h"
#include "ingest/kafka_log.h"
#include "ingest/producer.h"
#include "ingest/validator.h"
#include "librdkafka/rdkafka.h"
#include "librdkafka/rdkafkacpp.h"
#include "spdlog/spdlog.h"

namespace okrd::ingest {
namespace {

// A filled batch and the config it was validated under.
struct Filled {
  std::shared_ptr<const config::Config> config;
  eventlog::Batch batch;
};

// A batch appended, and what its append returned.
struct Appended {
  Filled filled;
  eventlog::AppendResult result;
};

// Passes work from one thread of the ingest pipeline to the next, holding
// at most one item so that a slow stage holds back the ones before it.
template <typename T>
class Handoff {
 public:
  // Waits for room and hands `item` over; false once the taker has quit.
  bool Put(T item) {
    absl::MutexLock lock(&mu_);
    while (item_.has_value() && !quit_) changed_.Wait(&mu_);
    if (quit_) return false;
    item_ = std::move(item);
    changed_.SignalAll();
    return true;
  }
  // Waits for an item; nullopt once the giver has closed and all is taken.
  std::optional<T> Take() {
    absl::MutexLock lock(&mu_);
    ++waiting_;
    while (!item_.has_value() && !closed_) changed_.Wait(&mu_);
    --waiting_;
    std::optional<T> item = std::move(item_);
    item_.reset();
    changed_.SignalAll();
    return item;
  }
  // Whether the taker is waiting for an item, so that one handed over now
  // is taken at once.
  bool TakerWaiting() {
    absl::MutexLock lock(&mu_);
    return waiting_ > 0 && !item_.has_value();
  }
  // The giver has no more.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    changed_.SignalAll();
  }
  // The taker takes no more.
  void Quit() {
    absl::MutexLock lock(&mu_);
    quit_ = true;
    changed_.SignalAll();
  }

 private:
  absl::Mutex mu_;
  absl::CondVar changed_;  // signalled on every change of what mu_ guards
  std::optional<T> item_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

// Frees the TopicPartition objects librdkafka hands out by pointer.
struct PartitionList {
  std::vector<RdKafka::TopicPartition*> list;
  ~PartitionList() { RdKafka::TopicPartition::destroy(list); }
};

}  // namespace

std::map<std::string, std::string> ConsumerTuning() {
  return {
      // How long a fetch may wait for data. The embedded broker answers
      // only when it runs out (a real one as soon as data arrives), so it
      // bounds event-to-metric latency there: at 50 ms the p50 from send
      // to fold was 28 ms at 1k events/s, at 5 ms 4.6 ms (ingest_bench
      // --latency-seconds). Against a real cluster a larger value only
      // saves idle fetches; kafka.properties overrides it.
      {"fetch.wait.max.ms", "5"},
      // librdkafka counts this against the one consumer queue all
      // partitions feed, so its default (100000) starves a fast consumer
      // between fetches; the queue stays bounded by
      // queued.max.messages.kbytes.
      {"queued.min.messages", "1000000"},
      // What the consumer queue may hold ahead of okrd, in message bytes
      // (with librdkafka's bookkeeping, a queued 100-byte event takes about
      // 3.7 times its bytes in memory). Once the queue is over it,
      // librdkafka 2.0 stops fetching and looks again only when its
      // broker thread next wakes, up to a second later; so the queue
      // must hold about a second of okrd's fastest ingest, or a catch-up
      // stalls with the queue empty. At 16 MiB (about 230k events of
      // 73 bytes) ingest_bench's consumer waited 0.4-1.3 s of every
      // 1.5-4 s for messages; at 32 MiB, once okrd took 600k events/s, it
      // ran dry for 0.27-0.5 s of a 1M-event catch-up (1M events on 32
      // partitions: 436k events/s median of 9 runs, against 499k of 8 at
      // 64 MiB). A fetch may overshoot the bound by a whole response: at
      // librdkafka's defaults (50 MiB per response) the backlog after a
      // 30 s broker stall on 400 partitions held 320 MiB; responses of at
      // most 4 MiB keep the overshoot small.
      {"queued.max.messages.kbytes", "65536"},
      {"fetch.max.bytes", "4194304"},
  };
}

class KafkaIngest::Impl final : public RdKafka::RebalanceCb,
                                public RdKafka::EventCb {
 public:
  Impl(std::shared_ptr<const config::Config> config, eventlog::EventLog* log,
       BatchSink* sink, const Clock* clock, SeriesGate* gate)
      : config_(std::move(config)),
        log_(log),
        sink_(sink),
        clock_(clock),
        gate_(gate) {
    json_topics_.insert(config_->kafka.json_topics.begin(),
                        config_->kafka.json_topics.end());
  }

  absl::Status Init(const std::string& brokers) {
    const config::KafkaOptions& kafka = config_->kafka;
    std::unique_ptr<RdKafka::Conf> conf(
        RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::map<std::string, std::string> settings = {
        {"bootstrap.servers", brokers},
        {"group.id", kafka.group_id},
        {"client.id", "okrd"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"auto.offset.reset", kafka.auto_offset_reset},
    };
    settings.merge(ConsumerTuning());
    for (const auto& [key, value] : kafka.properties) settings[key] = value;
    std::string err;
    for (const auto& [key, value] : settings) {
      if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
        return absl::InvalidArgumentError(
            absl::StrCat("kafka.properties.", key, ": ", err));
      }
    }
    if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this),
                  err) != RdKafka::Conf::CONF_OK ||
        conf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err) !=
            RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot create Kafka consumer: ", err));
    }
    if (!kafka.dlq_topic.empty()) {
      auto producer = Producer::Create(brokers, kafka.properties);
      if (!producer.ok()) return producer.status();
      dlq_ = std::move(*producer);
    }
    queue_.reset(rd_kafka_queue_get_consumer(consumer_->c_ptr()));
    if (!queue_) return absl::InternalError("no consumer queue");
    const RdKafka::ErrorCode sub = consumer_->subscribe(kafka.topics);
    if (sub != RdKafka::ERR_NO_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("subscribe to ", absl::StrJoin(kafka.topics, ","),
                       " failed: ", RdKafka::err2str(sub)));
    }
    spdlog::info("kafka consumer subscribed to {} as group {} via {}",
                 absl::StrJoin(kafka.topics, ","), kafka.group_id, brokers);
    return absl::OkStatus();
  }

  ~Impl() override {
    if (consumer_ && !closed_) consumer_->close();
  }

  // Three threads share the work, each on its own batch: this one
  // consumes, decodes and validates; the appender deduplicates and writes
  // to the log; the publisher waits for the write to be durable, then folds
  // the batch and reports its rejections. At most one batch waits between
  // two of them.
  absl::Status Run(const std::atomic<bool>& stop) {
    absl::Time next_tick = clock_->Now();
    {
      absl::MutexLock lock(&mu_);
      running_ = true;
    }

    std::thread appender([this] {
      pthread_setname_np(pthread_self(), "okrd-append");
      AppendLoop();
    });
    std::thread publisher([this] {
      pthread_setname_np(pthread_self(), "okrd-publish");
      PublishLoop();
    });
    while (!stop.load() && !fatal_.load() && !failed_.load()) {
      {
        absl::MutexLock lock(&mu_);
        if (pending_config_) config_ = std::move(pending_config_);
      }
      Filled filled;
      filled.config = config_;
      in_flight_ = &filled.batch.next_offsets;
      FillBatch(filled.batch, stop);
      in_flight_ = nullptr;
      if (failed_.load()) break;
      for (const auto& [key, offset] : filled.batch.next_offsets) {
        consumed_[key] = offset;
      }
      // The clock is logged like an event, in the same atomic batch.
      const absl::Time now = clock_->Now();
      if (now >= next_tick) {
        filled.batch.tick = true;
        next_tick = now + config_->projection.tick_interval;
      }
      if (!filled.batch.next_offsets.empty() || filled.batch.tick) {
        // The dedup lookup goes to whichever of the two threads has time:
        // here while the appender is busy (this thread would only wait for
        // it), else on the appender, which Append() does for a batch not
        // prepared. Either stage can be the slower one, by input and
        // machine.
        if (!to_append_.TakerWaiting()) {
          if (absl::Status s = log_->Prepare(filled.batch); !s.ok()) {
            Fail(s);
            break;
          }
        }
        if (!to_append_.Put(std::move(filled))) break;
      }
      FreeSpent();
      CommitToKafka(/*all_now=*/false);
    }
    to_append_.Close();
    appender.join();
    publisher.join();
    FreeSpent();
    CommitToKafka(/*all_now=*/true);
    absl::Status result;
    {
      absl::MutexLock lock(&failure_mu_);
      result = failure_;
    }
    if (fatal_.load() && result.ok()) {
      result = absl::UnavailableError(
          absl::StrCat("fatal Kafka error: ", fatal_reason_));
    }
    {
      absl::MutexLock lock(&mu_);
      running_ = false;
    }
    AwaitFirstAssignment();
    consumer_->close();
    closed_ = true;
    if (dlq_) {
      if (absl::Status s = dlq_->Flush(absl::Seconds(5)); !s.ok()) {
        spdlog::warn("dead-letter topic: {}", s.message());
      }
    }
    return result;
  }

  bool assigned() const { return assigned_.load(); }

  // librdkafka before 2.3 (Debian 12 ships 2.0.2) aborts when a consumer of
  // the cooperative-sticky assignor is closed after it joined its group and
  // before its first assignment: the assignor's state is made by that
  // assignment and freed unchecked at close (confluentinc/librdkafka#4312).
  // An okrd stopped within its first seconds could hit that window, so a
  // close before the first assignment waits for it, at most
  // kFirstAssignmentWait. (Waiting only once a rebalance protocol is
  // chosen, i.e. after the join, still aborted 2 of 30 early stops: the
  // join can complete between the check and the close.) The messages
  // consumed meanwhile are dropped: their offsets are neither stored nor
  // committed, and the next start reads them again from the log's offsets.
  void AwaitFirstAssignment() {
    constexpr absl::Duration kFirstAssignmentWait = absl::Seconds(10);
    const absl::Time until = absl::Now() + kFirstAssignmentWait;
    while (!ever_assigned_ && absl::Now() < until) {
      rd_kafka_message_t* message = rd_kafka_consume_queue(queue_.get(), 50);
      if (message != nullptr) rd_kafka_message_destroy(message);
    }
  }

  void UpdateConfig(std::shared_ptr<const config::Config> config) {
    absl::MutexLock lock(&mu_);
    pending_config_ = std::move(config);
    // The consume loop takes it before its next batch, within a batch wait;
    // until then a message could still be validated under the old config.
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Impl* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                               return self->pending_config_ == nullptr ||
                                      !self->running_;
                             },
                             this),
                         absl::Seconds(5));
  }

  std::map<eventlog::PartitionKey, int64_t> Lag() const {
    absl::MutexLock lock(&mu_);
    return lag_;
  }

  // RdKafka::RebalanceCb
  void rebalance_cb(
      RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
      std::vector<RdKafka::TopicPartition*>& partitions) override {
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      const std::map<eventlog::PartitionKey, int64_t> stored = log_->Offsets();
      std::vector<std::string> described;
      for (RdKafka::TopicPartition* tp : partitions) {
        const eventlog::PartitionKey key{tp->topic(), tp->partition()};
        int64_t offset = config_->kafka.auto_offset_reset == "latest"
                             ? RdKafka::Topic::OFFSET_END
                             : RdKafka::Topic::OFFSET_BEGINNING;
        if (auto it = stored.find(key); it != stored.end()) {
          offset = it->second;
        } else if (config_->kafka.auto_offset_reset != "latest") {
          fresh_.insert(key);
        }
        // Messages of this partition consumed but maybe not yet durable (in
        // the pipeline, or in the batch being filled) must not be fetched
        // twice: they will be appended.
        if (auto it = consumed_.find(key); it != consumed_.end()) {
          offset = std::max(offset, it->second);
        }
        if (in_flight_ != nullptr) {
          if (auto it = in_flight_->find(key); it != in_flight_->end()) {
            offset = std::max(offset, it->second);
          }
        }
        tp->set_offset(offset);
        owned_.insert(key);
        described.push_back(absl::StrCat(
            key.first, "/", key.second, "@",
            offset >= 0 ? absl::StrCat(offset) : std::string("start")));
      }
      RdKafka::Error* error = nullptr;
      if (cooperative) {
        error = consumer->incremental_assign(partitions);
      } else {
        const RdKafka::ErrorCode e = consumer->assign(partitions);
        if (e != RdKafka::ERR_NO_ERROR) {
          spdlog::error("assign failed: {}", RdKafka::err2str(e));
        }
      }
      if (error != nullptr) {
        spdlog::error("incremental assign failed: {}", error->str());
        delete error;
      }
      spdlog::info("assigned {} partitions: {}{}", partitions.size(),
                   absl::StrJoin(described, " "),
                   owned_.empty() ? " (standby: this member owns none)" : "");
      {
        // Owned from now on, not caught up until measured (UpdateTargets).
        absl::MutexLock lock(&mu_);
        for (RdKafka::TopicPartition* tp : partitions) {
          targets_[{tp->topic(), tp->partition()}] = Target();
        }
        counts_ready_ = false;
      }
      // The rebalance is complete: what this member owns is known.
      assigned_.store(true);
      ever_assigned_ = true;
    } else {
      for (RdKafka::TopicPartition* tp : partitions) {
        owned_.erase({tp->topic(), tp->partition()});
        fresh_.erase({tp->topic(), tp->partition()});
      }
      {
        absl::MutexLock lock(&mu_);
        for (RdKafka::TopicPartition* tp : partitions) {
          targets_.erase({tp->topic(), tp->partition()});
        }
        counts_ready_ = false;
      }
      // Not ready until the assignment that completes the rebalance.
      assigned_.store(false);
      spdlog::info("revoked {} partitions ({})", partitions.size(),
                   RdKafka::err2str(err));
      if (cooperative) {
        RdKafka::Error* error = consumer->incremental_unassign(partitions);
        if (error != nullptr) {
          spdlog::error("incremental unassign failed: {}", error->str());
          delete error;
        }
      } else {
        consumer->unassign();
      }
    }
    ownership_changed_ = true;
  }

  // RdKafka::EventCb
  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (event.fatal()) {
          fatal_reason_ = event.str();
          fatal_.store(true);
          spdlog::critical("kafka fatal error: {}", event.str());
        } else {
          spdlog::warn("kafka error: {} ({})", event.str(),
                       RdKafka::err2str(event.err()));
        }
        break;
      case RdKafka::Event::EVENT_LOG:
        spdlog::log(KafkaLogLevel(KafkaClient::kConsumer, event.severity(),
                                  event.fac()),
                    "kafka: {} {}", event.fac(), event.str());
        break;
      default:
        break;
    }
  }

 private:
  // Collects messages until the batch is full, the wait is over, or `stop`;
  // and, with at least one message in hand, as soon as the appender is
  // free and no message is waiting (group commit): under load a batch
  // grows while the write before it runs, when quiet it goes at once.
  //
  // Messages are taken from librdkafka's queue as many at a time as are
  // ready (rd_kafka_consume_batch_queue), which costs one queue lock and
  // one clock read per call instead of per message. Rebalance and event
  // callbacks run inside that call as inside consume(); messages of a
  // partition revoked meanwhile are dropped by librdkafka (its barrier),
  // and any of them that come back after the partition was re-assigned are
  // dropped by Take().
  void FillBatch(eventlog::Batch& batch, const std::atomic<bool>& stop) {
    const config::KafkaOptions& kafka = config_->kafka;
    absl::Time now = clock_->Now();
    const absl::Time deadline = now + kafka.batch_max_wait;
    int taken = 0;
    size_t prepared_upto = 0;  // events Prepare()d while waiting
    batch.events.reserve(static_cast<size_t>(kafka.batch_max_messages));
    constexpr int kChunk = 256;
    rd_kafka_message_t* messages[kChunk];
    while (taken < kafka.batch_max_messages && !stop.load() &&
           !failed_.load()) {
      const int64_t remaining_ms =
          std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - now));
      // While the appender is busy, wait for more in short steps so that
      // the moment it is free is not missed.
      const bool appender_free = taken > 0 && to_append_.TakerWaiting();
      const int timeout =
          taken == 0 ? 100
          : appender_free
              ? 0
              : static_cast<int>(std::min<int64_t>(remaining_ms, 1));
      const size_t want = static_cast<size_t>(
          std::min(kChunk, kafka.batch_max_messages - taken));
      // What is ready; else wait up to `timeout` for one message (a batch
      // call would wait for all of `want`).
      ssize_t n = rd_kafka_consume_batch_queue(queue_.get(), 0, messages, want);
      if (n == 0 && timeout > 0) {
        // Nothing ready: while the next message is on its way, seal and
        // look up those taken, which the appender would otherwise do after
        // the batch closes. Then look for messages again before waiting.
        if (batch.events.size() > prepared_upto) {
          prepared_upto = batch.events.size();
          if (absl::Status s = log_->Prepare(batch); !s.ok()) {
            Fail(s);
            return;
          }
          now = clock_->Now();
          continue;
        }
        n = rd_kafka_consume_batch_queue(queue_.get(), timeout, messages, 1);
      }
      // One clock read per call: validation and the batch deadline share
      // it.
      now = clock_->Now();
      if (n < 0) {
        spdlog::warn("kafka consume: {}",
                     rd_kafka_err2str(rd_kafka_last_error()));
        return;
      }
      if (n == 0) {
        // Nothing for 100 ms: back to the loop, which keeps the clock,
        // lag and ownership current whatever batch_max_wait says.
        if (taken == 0 || appender_free || now >= deadline) return;
        continue;
      }
      bool failed = false;
      for (ssize_t i = 0; i < n; ++i) {
        rd_kafka_message_t* message = messages[i];
        if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          Take(*message, now, batch);
          ++taken;
        } else if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
                   !failed) {
          spdlog::warn("kafka consume: {}", rd_kafka_message_errstr(message));
          // The messages after it in this call are taken still: dropping
          // them would skip their offsets.
          failed = true;
        }
        rd_kafka_message_destroy(message);
      }
      if (failed || (taken > 0 && now >= deadline)) return;
    }
  }

  // Decodes one message into the batch as a candidate event or a rejection.
  void Take(const rd_kafka_message_t& msg, absl::Time now,
            eventlog::Batch& batch) {
    // Messages of a poll come in runs per partition: the key of the last
    // one is kept rather than built for each.
    const char* topic = rd_kafka_topic_name(msg.rkt);
    if (msg.partition != last_key_.second || last_key_.first != topic) {
      last_key_ = {topic, msg.partition};
    }
    const eventlog::PartitionKey& key = last_key_;
    // A message this run has taken already: librdkafka hands back messages
    // it had queued when a rebalance in the same consume call re-assigned
    // their partition, which was then sought to where this run stood. It is
    // the same Kafka message, not a producer's duplicate: dropped uncounted.
    auto [next, first_of_batch] = batch.next_offsets.try_emplace(key, 0);
    if (first_of_batch) {
      auto consumed = consumed_.find(key);
      if (consumed != consumed_.end() && msg.offset < consumed->second) {
        batch.next_offsets.erase(next);
        return;
      }
      batch.first_offsets.try_emplace(key, msg.offset);
    } else if (msg.offset < next->second) {
      return;
    }
    next->second = msg.offset + 1;
    if (!fresh_.empty() && fresh_.erase(key) > 0 && msg.offset > 0) {
      spdlog::warn(
          "partition {}/{}: the log never held it and its first message is "
          "at offset {}: earlier messages are gone (retention), and its "
          "counts and values miss them "
          "(okrd_partition_history_incomplete)",
          key.first, key.second, msg.offset);
    }
    // Read in place: the C++ Message::headers() copies every header.
    std::string content_type;
    rd_kafka_headers_t* headers = nullptr;
    const void* value = nullptr;
    size_t value_size = 0;
    if (rd_kafka_message_headers(&msg, &headers) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(headers, "content-type", &value,
                                 &value_size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        value != nullptr) {
      // Kept in the rejected log's string field: UTF-8 only.
      content_type = ValidUtf8(
          absl::string_view(static_cast<const char*>(value), value_size));
    }
    const absl::string_view payload(static_cast<const char*>(msg.payload),
                                    msg.payload == nullptr ? 0 : msg.len);
    const Encoding encoding =
        EncodingFor(content_type, json_topics_.contains(key.first));

    // Decoded straight onto the batch's arena; a rejected message leaves
    // its record there unused.
    eventlog::Batch::Candidate candidate = batch.NewCandidate();
    Rejection rejection;
    uint32_t schema_id = 0;
    if (DecodeAndValidate(payload, encoding, *config_, now, &candidate.event(),
                          &rejection, &schema_id)) {
      candidate.record->set_schema_id(schema_id);
      // Sealed by Prepare(), on whichever thread has the time (see Run()).
      SetPosition(key, msg.offset, &candidate.position());
      candidate.raw = batch.Keep(payload);
      candidate.content_type = std::move(content_type);
      batch.events.push_back(std::move(candidate));
      return;
    }
    okrd::v1::RejectedRecord& record = batch.rejects.emplace_back();
    record.set_reason(std::move(rejection.reason));
    record.set_detail(std::move(rejection.detail));
    record.set_raw(
        std::string(payload.substr(0, config_->limits.max_message_bytes)));
    record.set_content_type(std::move(content_type));
    SetPosition(key, msg.offset, record.mutable_position());
  }

  static void SetPosition(const eventlog::PartitionKey& key, int64_t offset,
                          okrd::v1::SourcePosition* position) {
    position->set_topic(key.first);
    position->set_partition(key.second);
    position->set_offset(offset);
  }

  // Frees the batches the publisher is done with on this thread, which
  // allocated them. Freeing them on the publisher instead measured no faster.
  void FreeSpent() {
    std::vector<Appended> spent;
    {
      absl::MutexLock lock(&spent_mu_);
      spent.swap(spent_);
    }
  }

  // Stops the pipeline with `status`; the first failure wins.
  void Fail(absl::Status status) {
    spdlog::critical("event log failed, stopping: {}", status.message());
    absl::MutexLock lock(&failure_mu_);
    if (failure_.ok()) failure_ = std::move(status);
    failed_.store(true);
  }

  // The appender thread: asks the series gate about each valid event,
  // then deduplicates and appends, batch after batch in consume order.
  void AppendLoop() {
    while (std::optional<Filled> filled = to_append_.Take()) {
      eventlog::Batch& batch = filled->batch;
      // Without export.max_series there is nothing to ask, and asking takes
      // the daemon's lock once per event.
      if (gate_ != nullptr && filled->config->exporter.max_series > 0) {
        ApplySeriesGate(batch);
      }
      batch.ingest_time = clock_->Now();
      absl::StatusOr<eventlog::AppendResult> result = log_->Append(
          std::move(batch), eventlog::EventLog::Durable::kAtSyncWal);
      if (!result.ok()) {
        Fail(result.status());
        to_append_.Quit();
        break;
      }
      if (!to_publish_.Put(Appended{*std::move(filled), *std::move(result)})) {
        to_append_.Quit();
        break;
      }
    }
    to_publish_.Close();
  }

  // Moves the events the series gate refuses to the batch's rejects.
  void ApplySeriesGate(eventlog::Batch& batch) {
    std::vector<eventlog::Batch::Candidate> admitted;
    admitted.reserve(batch.events.size());
    for (eventlog::Batch::Candidate& c : batch.events) {
      std::string detail;
      if (gate_->Admit(c.event(), &detail)) {
        admitted.push_back(std::move(c));
        continue;
      }
      batch.rejects.push_back(
          eventlog::RejectCandidate(c, "series_limit", std::move(detail)));
    }
    batch.events = std::move(admitted);
  }

  // The publisher thread: once a batch is durable, folds it and reports
  // its rejections, in log order.
  void PublishLoop() {
    while (std::optional<Appended> appended = to_publish_.Take()) {
      // One fsync covers this batch and any appended since.
      if (absl::Status s = log_->SyncWal(); !s.ok()) {
        Fail(s);
        to_publish_.Quit();
        return;
      }
      sink_->OnAppended(appended->result);
      ReportRejects(appended->result, *appended->filled.config);
      absl::MutexLock lock(&spent_mu_);
      spent_.push_back(*std::move(appended));
    }
  }

  // Logs each rejection and produces it to the dead-letter topic.
  void ReportRejects(const eventlog::AppendResult& result,
                     const config::Config& config) {
    for (const okrd::v1::RejectedRecord& r : result.rejected) {
      // The series gate logs its limit once per KPI, not per event.
      spdlog::log(r.reason() == "series_limit" ? spdlog::level::debug
                                               : spdlog::level::warn,
                  "rejected {}/{}@{} reason={}: {}", r.position().topic(),
                  r.position().partition(), r.position().offset(), r.reason(),
                  r.detail());
      if (!dlq_) continue;
      absl::Status s =
          dlq_->Send(config.kafka.dlq_topic, "", r.raw(),
                     {{"okrd-reason", r.reason()},
                      {"okrd-detail", r.detail()},
                      {"okrd-source", absl::StrCat(r.position().topic(), "/",
                                                   r.position().partition(),
                                                   "@", r.position().offset())},
                      {"content-type", r.content_type()}});
      if (!s.ok()) spdlog::warn("dead-letter topic: {}", s.message());
    }
  }

  // Commits the log's offsets to Kafka when they moved (they may run a
  // batch ahead of its fsync), at most once per kCommitEvery unless
  // `all_now`, and updates the lag. Kafka's committed offsets are for lag
  // dashboards only; the log's offsets are the ones okrd resumes from.
  // Committing after every batch sent the broker hundreds of commits a
  // second under a steady load: at 1k events/s, 25 us of librdkafka's CPU
  // per event (its main and coordinator threads) against 2-3 now.
  void CommitToKafka(bool all_now) {
    const std::map<eventlog::PartitionKey, int64_t> stored = log_->Offsets();
    const absl::Time now = absl::Now();
    if (stored != committed_ && (all_now || now >= next_commit_)) {
      next_commit_ = now + kCommitEvery;
      PartitionList commit;
      for (const auto& [key, offset] : stored) {
        if (!owned_.contains(key)) continue;
        if (auto it = committed_.find(key);
            it != committed_.end() && it->second == offset) {
          continue;
        }
        commit.list.push_back(
            RdKafka::TopicPartition::create(key.first, key.second, offset));
      }
      if (!commit.list.empty()) consumer_->commitAsync(commit.list);
      committed_ = stored;
    }
    std::map<eventlog::PartitionKey, int64_t> lag;
    for (const eventlog::PartitionKey& key : owned_) {
      int64_t low = 0;
      int64_t high = 0;
      if (consumer_->get_watermark_offsets(key.first, key.second, &low,
                                           &high) != RdKafka::ERR_NO_ERROR ||
          high < 0) {
        continue;
      }
      auto it = stored.find(key);
      const int64_t next = it == stored.end() ? low : it->second;
      lag[key] = std::max<int64_t>(0, high - next);
    }
    UpdateTargets();
    absl::MutexLock lock(&mu_);
    lag_ = std::move(lag);
  }

  // Asks the broker for the high watermark of each newly assigned partition
  // (the cached one may predate the assignment) and, after a rebalance, for
  // the partition counts of the topics.
  void UpdateTargets() {
    if (ownership_changed_) {
      ownership_changed_ = false;
      counts_known_ = false;
    }
    // Rebalance callbacks run inside consume(), on this thread: owned_
    // does not change while this runs.
    std::optional<bool> sole;
    if (!counts_known_) {
      const bool answer = RefreshPartitionCounts();
      if (counts_known_) sole = answer;
    }
    std::map<eventlog::PartitionKey, Target> targets;
    {
      absl::MutexLock lock(&mu_);
      for (const eventlog::PartitionKey& key : owned_) {
        auto it = targets_.find(key);
        // Kept from the last round: a target measured, and a catch-up.
        if (it != targets_.end() && it->second.high >= 0) {
          targets.emplace(key, it->second);
        }
      }
    }
    for (const eventlog::PartitionKey& key : owned_) {
      Target& target = targets[key];
      if (target.high >= 0) continue;
      if (consumer_->query_watermark_offsets(key.first, key.second, &target.low,
                                             &target.high,
                                             1000) != RdKafka::ERR_NO_ERROR) {
        target.high = -1;  // asked again after the next batch
      }
    }
    absl::MutexLock lock(&mu_);
    targets_ = std::move(targets);
    if (sole.has_value()) sole_ = *sole;
    counts_ready_ = counts_known_;
  }

 public:
  projection::Ownership Ownership(
      const std::map<eventlog::PartitionKey, int64_t>& folded) const {
    absl::MutexLock lock(&mu_);
    std::map<projection::SourcePartition, bool> owned;
    for (const auto& [key, target] : targets_) {
      bool caught_up = target.caught_up;
      if (!caught_up && target.high >= 0) {
        auto it = folded.find(key);
        caught_up =
            (it != folded.end() ? it->second : target.low) >= target.high;
        // Lag under load later does not make the series vanish.
        if (caught_up) target.caught_up = true;
      }
      // Without the partition counts a sole owner could not tell that it
      // is one, and would leave out key results without data.
      owned.emplace(key, caught_up && counts_ready_);
    }
    return projection::Ownership(std::move(owned), sole_);
  }

 private:
  // Whether this member owns every partition of every subscribed topic;
  // sets counts_known_ when the broker answered.
  bool RefreshPartitionCounts() {
    size_t total = 0;
    for (const std::string& topic : config_->kafka.topics) {
      std::string err;
      std::unique_ptr<RdKafka::Topic> handle(
          RdKafka::Topic::create(consumer_.get(), topic, nullptr, err));
      if (!handle) return false;
      RdKafka::Metadata* raw = nullptr;
      if (consumer_->metadata(false, handle.get(), &raw, 1000) !=
              RdKafka::ERR_NO_ERROR ||
          raw == nullptr) {
        delete raw;
        return false;  // asked again after the next batch
      }
      std::unique_ptr<RdKafka::Metadata> metadata(raw);
      for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
        if (t->topic() == topic) total += t->partitions()->size();
      }
    }
    counts_known_ = true;
    return total > 0 && owned_.size() >= total;
  }

  std::shared_ptr<const config::Config> config_;
  eventlog::EventLog* log_;
  BatchSink* sink_;
  const Clock* clock_;
  SeriesGate* gate_;
  std::set<std::string> json_topics_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  // The consumer's queue, polled through the C API (FillBatch); released
  // before the consumer.
  struct QueueDeleter {
    void operator()(rd_kafka_queue_t* queue) const {
      rd_kafka_queue_destroy(queue);
    }
  };
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue_;
  // The partition of the last message taken.
  eventlog::PartitionKey last_key_{"", -1};
  std::unique_ptr<Producer> dlq_;
  bool closed_ = false;

  // Touched only on the Run() thread (rebalance callbacks run inside
  // consume()).
  std::set<eventlog::PartitionKey> owned_;
  // Assigned partitions the log has never held, until their first message.
  std::set<eventlog::PartitionKey> fresh_;
  bool ownership_changed_ = true;
  bool counts_known_ = false;
  // Whether any assignment came since subscribe (AwaitFirstAssignment).
  bool ever_assigned_ = false;
  const std::map<eventlog::PartitionKey, int64_t>* in_flight_ = nullptr;
  // Next offsets of everything consumed in this run, and what was last
  // committed to Kafka.
  std::map<eventlog::PartitionKey, int64_t> consumed_;
  std::map<eventlog::PartitionKey, int64_t> committed_;
  absl::Time next_commit_ = absl::InfinitePast();
  static constexpr absl::Duration kCommitEvery = absl::Seconds(1);

  // consume thread -> appender -> publisher.
  Handoff<Filled> to_append_;
  Handoff<Appended> to_publish_;
  // Published batches, for the consume thread to free.
  absl::Mutex spent_mu_;
  std::vector<Appended> spent_ ABSL_GUARDED_BY(spent_mu_);
  // Why the pipeline stopped, if it failed; failed_ is read without a lock.
  absl::Mutex failure_mu_;
  absl::Status failure_ ABSL_GUARDED_BY(failure_mu_);
  std::atomic<bool> failed_{false};

  std::atomic<bool> assigned_{false};
  std::atomic<bool> fatal_{false};
  std::string fatal_reason_;

  mutable absl::Mutex mu_;
  std::map<eventlog::PartitionKey, int64_t> lag_ ABSL_GUARDED_BY(mu_);
  // Per owned partition, what to fold up to before its series are exported.
  struct Target {
    int64_t low = 0;
    int64_t high = -1;  // high watermark just after assignment; -1 not known
    mutable bool caught_up = false;  // sticky while owned
  };
  std::map<eventlog::PartitionKey, Target> targets_ ABSL_GUARDED_BY(mu_);
  bool sole_ ABSL_GUARDED_BY(mu_) = false;
  bool counts_ready_ ABSL_GUARDED_BY(mu_) = false;
  // A reloaded config, taken over by Run() between batches.
  std::shared_ptr<const config::Config> pending_config_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // inside Run()'s loop
};

absl::StatusOr<std::unique_ptr<KafkaIngest>> KafkaIngest::Create(
    std::shared_ptr<const config::Config> config, const std::string& brokers,
    eventlog::EventLog* log, BatchSink* sink, const Clock* clock,
    SeriesGate* gate) {
  auto impl = std::make_unique<Impl>(std::move(config), log, sink, clock, gate);
  if (absl::Status s = impl->Init(brokers); !s.ok()) return s;
  return std::unique_ptr<KafkaIngest>(new KafkaIngest(std::move(impl)));
}

KafkaIngest::KafkaIngest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaIngest::~KafkaIngest() = default;

absl::Status KafkaIngest::Run(const std::atomic<bool>& stop) {
  return impl_->Run(stop);
}

bool KafkaIngest::assigned() const { return impl_->assigned(); }

void KafkaIngest::UpdateConfig(std::shared_ptr<const config::Config> config) {
  impl_->UpdateConfig(std::move(config));
}

std::map<eventlog::PartitionKey, int64_t> KafkaIngest::Lag() const {
  return impl_->Lag();
}

projection::Ownership KafkaIngest::Ownership(
    const std::map<eventlog::PartitionKey, int64_t>& folded) const {
  return impl_->Ownership(folded);
}

}  // namespace okrd::ingest
