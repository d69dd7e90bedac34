#include "ingest/producer.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "ingest/kafka_log.h"
#include "librdkafka/rdkafkacpp.h"
#include "spdlog/spdlog.h"

namespace okrd::ingest {
namespace {

class DeliveryReport final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      if (failed_.fetch_add(1) == 0) {
        spdlog::error("kafka delivery to {} failed: {}", message.topic_name(),
                      message.errstr());
      }
    }
  }
  uint64_t failed() const { return failed_.load(); }

 private:
  std::atomic<uint64_t> failed_{0};
};

// Routes the producer's librdkafka log lines and error events into okrd's log.
class LogRouter final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      spdlog::warn("kafka producer error: {} ({})", event.str(),
                   RdKafka::err2str(event.err()));
    } else if (event.type() == RdKafka::Event::EVENT_LOG) {
      spdlog::log(
          KafkaLogLevel(KafkaClient::kProducer, event.severity(), event.fac()),
          "kafka producer: {} {}", event.fac(), event.str());
    }
  }
};

class KafkaProducer final : public Producer {
 public:
  KafkaProducer(std::unique_ptr<DeliveryReport> dr,
                std::unique_ptr<LogRouter> log,
                std::unique_ptr<RdKafka::Producer> producer)
      : dr_(std::move(dr)),
        log_(std::move(log)),
        producer_(std::move(producer)) {}

  ~KafkaProducer() override { producer_->flush(5000); }

  absl::Status Send(const std::string& topic, absl::string_view key,
                    absl::string_view payload,
                    const Headers& headers) override {
    for (;;) {
      RdKafka::Headers* kafka_headers = nullptr;
      if (!headers.empty()) {
        kafka_headers = RdKafka::Headers::create();
        for (const auto& [name, value] : headers) {
          kafka_headers->add(name, value.data(), value.size());
        }
      }
      const RdKafka::ErrorCode err = producer_->produce(
          topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
          const_cast<char*>(payload.data()), payload.size(),
          key.empty() ? nullptr : key.data(), key.size(), 0, kafka_headers,
          nullptr);
      if (err == RdKafka::ERR_NO_ERROR) {
        producer_->poll(0);
        return absl::OkStatus();
      }
      // On failure the headers were not taken over by librdkafka.
      delete kafka_headers;
      if (err != RdKafka::ERR__QUEUE_FULL) {
        return absl::UnavailableError(absl::StrCat(
            "produce to ", topic, " failed: ", RdKafka::err2str(err)));
      }
      producer_->poll(50);
    }
  }

  absl::Status Flush(absl::Duration timeout) override {
    const RdKafka::ErrorCode err =
        producer_->flush(static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    if (err != RdKafka::ERR_NO_ERROR) {
      return absl::DeadlineExceededError(absl::StrCat(
          producer_->outq_len(), " messages still undelivered after ",
          absl::FormatDuration(timeout)));
    }
    if (dr_->failed() > 0) {
      return absl::UnavailableError(
          absl::StrCat(dr_->failed(), " messages failed delivery"));
    }
    return absl::OkStatus();
  }

  uint64_t failed() const override { return dr_->failed(); }

 private:
  std::unique_ptr<DeliveryReport> dr_;
  std::unique_ptr<LogRouter> log_;
  std::unique_ptr<RdKafka::Producer> producer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(
    const std::string& brokers,
    const std::map<std::string, std::string>& properties) {
  std::unique_ptr<RdKafka::Conf> conf(
      RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto dr = std::make_unique<DeliveryReport>();
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", brokers},
      {"linger.ms", "5"},
      {"enable.idempotence", "true"},
  };
  for (const auto& [key, value] : properties) settings[key] = value;
  for (const auto& [key, value] : settings) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("kafka.properties.", key, ": ", err));
    }
  }
  auto log = std::make_unique<LogRouter>();
  if (conf->set("dr_cb", dr.get(), err) != RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(log.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  std::unique_ptr<RdKafka::Producer> producer(
      RdKafka::Producer::create(conf.get(), err));
  if (!producer) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create Kafka producer: ", err));
  }
  return std::unique_ptr<Producer>(
      new KafkaProducer(std::move(dr), std::move(log), std::move(producer)));
}

}  // namespace okrd::ingest
