#ifndef OKRD_INGEST_VALIDATOR_H_
#define OKRD_INGEST_VALIDATOR_H_

// Decodes one Kafka message into a KpiEvent and checks it against the config.
// Every way a message can be bad maps to one stable rejection reason, the
// value of okrd_events_total{outcome="rejected",reason=...}:
//
//   oversize           message, id, unit, source or attributes beyond limits
//   bad_frame          a Schema Registry frame that is truncated, has a bad
//                      varint, or names another message than KpiEvent
//   unknown_schema     a framed message whose schema id is not in
//                      kafka.schema_ids (when that is set)
//   malformed          not a KpiEvent in the declared encoding
//   missing_field      event_id, kpi, subject, event_time (or
//                      corrects_event_id on a correction/retraction) unset
//   non_finite         value is NaN or infinite
//   unknown_kpi        kpi is not configured, or is derived from others
//   unit_mismatch      unit set and different from the KPI's unit
//   future_event_time  event_time beyond now + limits.max_future_skew
//   invalid_event_time event_time outside years 1..9999
//   too_late           a measurement for a period that closed more than the
//                      KPI's allowed_lateness ago
//
// Corrections and retractions are further checked by the event log, which
// knows their targets (see eventlog/event_log.h).
//
// Pure function of its inputs; safe to call from any thread.

#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "config/config.h"
#include "okrd/v1/kpi_event.pb.h"

namespace okrd::ingest {

enum class Encoding { kProtobuf, kJson };

struct Rejection {
  std::string reason;
  std::string detail;
};

// Content type of a message: JSON when the header says application/json (or
// the topic is configured as JSON), binary protobuf otherwise.
Encoding EncodingFor(absl::string_view content_type_header, bool json_topic);

// Fills `event` and returns true, or fills `rejection` and returns false.
// Messages in the Schema Registry wire format (ingest/framing.h) are
// unframed first; their frame decides the encoding, and `schema_id` (when
// given) receives the frame's schema id, 0 for an unframed message.
bool DecodeAndValidate(absl::string_view payload, Encoding encoding,
                       const config::Config& config, absl::Time now,
                       okrd::v1::KpiEvent* event, Rejection* rejection,
                       uint32_t* schema_id = nullptr);

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_VALIDATOR_H_
