#include "ingest/embedded_broker.h"

#include "absl/strings/str_cat.h"
#include "librdkafka/rdkafka.h"
#include "librdkafka/rdkafka_mock.h"

namespace okrd::ingest {

struct EmbeddedBroker::Handles {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Handles() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

absl::StatusOr<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(
    int partitions, const std::vector<std::string>& topics) {
  auto handles = std::make_unique<Handles>();
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The mock cluster logs through this handle; keep it to warnings.
  rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err));
  handles->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (handles->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(
        absl::StrCat("embedded broker: cannot create handle: ", err));
  }
  handles->cluster = rd_kafka_mock_cluster_new(handles->rk, 1);
  if (handles->cluster == nullptr) {
    return absl::InternalError("embedded broker: cannot start mock cluster");
  }
  for (const std::string& topic : topics) {
    const rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
        handles->cluster, topic.c_str(), partitions, 1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InternalError(absl::StrCat("embedded broker: topic ", topic,
                                              ": ", rd_kafka_err2str(e)));
    }
  }
  auto broker = std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker());
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(handles->cluster);
  broker->handles_ = std::move(handles);
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() = default;

}  // namespace okrd::ingest
