// Event decode + validate, binary and proto3 JSON: never crashes, and what
// it accepts satisfies what the rest of okrd relies on.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "fuzz/check.h"
#include "google/protobuf/util/message_differencer.h"
#include "ingest/validator.h"

namespace {

const okrd::config::Config& FuzzConfig() {
  static const okrd::config::Config* config = [] {
    auto* c = new okrd::config::Config();
    okrd::config::KpiOptions kpi;
    kpi.id = "signups";
    kpi.unit = "count";
    c->kpis.push_back(kpi);
    kpi.id = "late";
    kpi.unit = "";
    kpi.allowed_lateness = absl::Hours(24);
    c->kpis.push_back(kpi);
    return c;
  }();
  return *config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the encoding; the rest is the message.
  const auto encoding = data[0] & 1 ? okrd::ingest::Encoding::kJson
                                    : okrd::ingest::Encoding::kProtobuf;
  const absl::string_view payload(reinterpret_cast<const char*>(data + 1),
                                  size - 1);
  const absl::Time now = absl::FromUnixSeconds(1795634360);
  okrd::v1::KpiEvent event;
  okrd::ingest::Rejection rejection;
  if (!okrd::ingest::DecodeAndValidate(payload, encoding, FuzzConfig(), now,
                                       &event, &rejection)) {
    FUZZ_CHECK(!rejection.reason.empty());
    FUZZ_CHECK(rejection.detail.find('\n') == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(!event.event_id().empty() && !event.kpi().empty() &&
             !event.subject().empty());
  FUZZ_CHECK(std::isfinite(event.value()));
  FUZZ_CHECK(event.has_event_time());
  // What was accepted is accepted again when sent as binary by a producer
  // (which sets value, 0 included), and stored the same way.
  okrd::v1::KpiEvent resent = event;
  if (!resent.has_value() && resent.kind() != okrd::v1::RETRACTION) {
    resent.set_value(0);  // the validator stores a +0 without presence
  }
  okrd::v1::KpiEvent again;
  FUZZ_CHECK(okrd::ingest::DecodeAndValidate(
      resent.SerializeAsString(), okrd::ingest::Encoding::kProtobuf,
      FuzzConfig(), now, &again, &rejection));
  // Equal as messages: map entries serialize in no fixed order.
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(again, event));
  return 0;
}
