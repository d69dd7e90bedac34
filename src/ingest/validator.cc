#include "ingest/validator.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/log.h"
#include "core/time_util.h"
#include "core/utf8.h"
#include "ingest/framing.h"
#include "ingest/json_event.h"
#include "projection/period.h"

namespace okrd::ingest {
namespace {

// Timestamp's valid range, 0001-01-01 to 9999-12-31
// (google/protobuf/timestamp.proto).
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;

// Details go into one-line logs, headers and the rejected log; they may quote
// the message: no control characters, and UTF-8.
bool Reject(Rejection* rejection, std::string reason, std::string detail) {
  for (char& c : detail) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  rejection->reason = std::move(reason);
  rejection->detail = ValidUtf8(absl::StripAsciiWhitespace(detail));
  return false;
}

}  // namespace

Encoding EncodingFor(absl::string_view content_type_header, bool json_topic) {
  if (content_type_header.empty()) {
    return json_topic ? Encoding::kJson : Encoding::kProtobuf;
  }
  return absl::StartsWithIgnoreCase(
             absl::StripAsciiWhitespace(content_type_header),
             "application/json")
             ? Encoding::kJson
             : Encoding::kProtobuf;
}

bool DecodeAndValidate(absl::string_view payload, Encoding encoding,
                       const config::Config& config, absl::Time now,
                       okrd::v1::KpiEvent* event, Rejection* rejection,
                       uint32_t* schema_id) {
  const config::LimitsOptions& limits = config.limits;
  if (schema_id != nullptr) *schema_id = 0;
  if (payload.size() > limits.max_message_bytes) {
    return Reject(rejection, "oversize",
                  absl::StrCat("message is ", payload.size(), " bytes, limit ",
                               limits.max_message_bytes));
  }
  Frame frame;
  std::string frame_error;
  if (!Unframe(payload, encoding == Encoding::kJson, &frame, &frame_error)) {
    return Reject(rejection, "bad_frame", frame_error);
  }
  if (frame.framed) {
    const std::vector<uint32_t>& allowed = config.kafka.schema_ids;
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(),
                                      frame.schema_id) == allowed.end()) {
      return Reject(rejection, "unknown_schema",
                    absl::StrCat("schema id ", frame.schema_id,
                                 " is not in kafka.schema_ids"));
    }
    encoding = frame.json ? Encoding::kJson : Encoding::kProtobuf;
    payload = frame.payload;
    if (schema_id != nullptr) *schema_id = frame.schema_id;
  }
  event->Clear();
  if (encoding == Encoding::kJson) {
    std::string error;
    if (!DecodeJsonEvent(payload, event, &error)) {
      return Reject(rejection, "malformed",
                    absl::StrCat("invalid KpiEvent JSON: ", error));
    }
  } else {
    ProtobufComplaints complaints;
    if (!event->ParseFromArray(payload.data(),
                               static_cast<int>(payload.size()))) {
      return Reject(
          rejection, "malformed",
          complaints.first().empty()
              ? "bytes do not parse as a binary KpiEvent"
              : absl::StrCat("bytes do not parse as a binary KpiEvent: ",
                             complaints.first()));
    }
  }

  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{
                                        "event_id", &event->event_id()},
                                    {"kpi", &event->kpi()},
                                    {"subject", &event->subject()}}) {
    if (value->empty()) {
      return Reject(rejection, "missing_field",
                    absl::StrCat("required field ", name, " is empty"));
    }
  }
  for (const auto& [name, value] :
       {std::pair<const char*, const std::string*>{"event_id",
                                                   &event->event_id()},
        {"kpi", &event->kpi()},
        {"subject", &event->subject()},
        {"unit", &event->unit()},
        {"source", &event->source()},
        {"corrects_event_id", &event->corrects_event_id()}}) {
    if (value->size() > limits.max_id_bytes) {
      return Reject(rejection, "oversize",
                    absl::StrCat(name, " is ", value->size(), " bytes, limit ",
                                 limits.max_id_bytes));
    }
  }
  if (!event->has_event_time()) {
    return Reject(rejection, "missing_field",
                  "required field event_time is unset");
  }
  const bool amends = event->kind() == okrd::v1::CORRECTION ||
                      event->kind() == okrd::v1::RETRACTION;
  if (amends && event->corrects_event_id().empty()) {
    return Reject(
        rejection, "missing_field",
        "corrects_event_id is required on a correction or retraction");
  }
  if (!event->has_value() && event->kind() != okrd::v1::RETRACTION) {
    return Reject(rejection, "missing_field", "required field value is unset");
  }
  if (!std::isfinite(event->value())) {
    return Reject(rejection, "non_finite",
                  absl::StrCat("value ", event->value(), " is not finite"));
  }
  if (static_cast<size_t>(event->attributes_size()) > limits.max_attributes) {
    return Reject(rejection, "oversize",
                  absl::StrCat(event->attributes_size(), " attributes, limit ",
                               limits.max_attributes));
  }
  for (const auto& [key, value] : event->attributes()) {
    if (key.size() + value.size() > limits.max_attribute_bytes) {
      return Reject(rejection, "oversize",
                    absl::StrCat("attribute \"", key.substr(0, 64), "\" is ",
                                 key.size() + value.size(), " bytes, limit ",
                                 limits.max_attribute_bytes));
    }
  }
  const config::KpiOptions* kpi = config.FindKpi(event->kpi());
  if (kpi == nullptr) {
    return Reject(rejection, "unknown_kpi",
                  absl::StrCat("kpi \"", event->kpi(), "\" is not configured"));
  }
  if (kpi->is_derived()) {
    return Reject(rejection, "unknown_kpi",
                  absl::StrCat("kpi \"", event->kpi(),
                               "\" is derived from other KPIs: send "
                               "measurements of its inputs"));
  }
  if (!event->unit().empty() && !kpi->unit.empty() &&
      event->unit() != kpi->unit) {
    return Reject(
        rejection, "unit_mismatch",
        absl::StrCat("unit \"", event->unit(), "\" but kpi \"", kpi->id,
                     "\" is measured in \"", kpi->unit, "\""));
  }
  const google::protobuf::Timestamp& ts = event->event_time();
  if (ts.seconds() < kMinSeconds || ts.seconds() > kMaxSeconds ||
      ts.nanos() < 0 || ts.nanos() > 999999999) {
    return Reject(rejection, "invalid_event_time",
                  "event_time is outside 0001-01-01..9999-12-31");
  }
  const absl::Time event_time = FromProto(ts);
  if (event_time > now + limits.max_future_skew) {
    return Reject(
        rejection, "future_event_time",
        absl::StrCat("event_time ", FormatUtc(event_time), " is more than ",
                     absl::FormatDuration(limits.max_future_skew), " ahead of ",
                     FormatUtc(now)));
  }
  if (event->kind() != okrd::v1::CORRECTION &&
      event->kind() != okrd::v1::RETRACTION &&
      kpi->allowed_lateness != absl::InfiniteDuration()) {
    const projection::Period period =
        projection::PeriodContaining(event_time, *kpi);
    if (period.end + kpi->allowed_lateness <= now) {
      return Reject(
          rejection, "too_late",
          absl::StrCat("period ", FormatUtc(period.start), " of kpi \"",
                       kpi->id, "\" closed at ",
                       FormatUtc(period.end + kpi->allowed_lateness)));
    }
  }
  // A present +0 is stored as the field's absence, as it was before value
  // had explicit presence: the stored bytes, and so the dedup hash of an
  // event sent again after an upgrade, stay what they were. Readers of a
  // logged event get 0 either way; only the wire needs presence.
  if (event->has_value() && event->value() == 0 &&
      !std::signbit(event->value())) {
    event->clear_value();
  }
  return true;
}

}  // namespace okrd::ingest
