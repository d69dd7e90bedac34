#ifndef OKRD_EXPORT_VIEW_H_
#define OKRD_EXPORT_VIEW_H_

// The projections as JSON (proto/okrd/v1/projection_view.proto, proto3 JSON
// with the proto's field names): what `okrctl replay --format json` prints
// and what okrd's API answers under /api/v1/:
//
//   GET /api/v1/objectives
//   GET /api/v1/key_results
//   GET /api/v1/kpis[?kpi=ID][&subject=LABEL]
//   GET /api/v1/pips[?state=ok|watch|triggered|recovered|plan_expired]
//
// Each answer holds what one /metrics scrape would show at the same log
// sequence (its `sequence`), with the same ownership and pseudonymization:
// subjects are their exported labels, and `subject=` matches those.
//
// Thread-safety: pure functions; callers provide consistency.

#include <string>

#include "absl/strings/string_view.h"
#include "export/metrics.h"
#include "google/protobuf/message.h"
#include "okrd/v1/projection_view.pb.h"
#include "projection/kpi_projection.h"
#include "projection/ownership.h"

namespace okrd::exporter {

// Everything `mask` lets this instance show of `projection`.
okrd::v1::ProjectionView BuildView(const projection::KpiProjection& projection,
                                   const projection::Ownership::Mask& mask);

// `message` as indented proto3 JSON with every field present, in field
// order: byte-for-byte reproducible.
std::string ViewJson(const google::protobuf::Message& message);

struct ApiAnswer {
  int status = 200;
  std::string body;  // JSON; {"error": "..."} unless the status is 200
};

// The answer to GET /api/v1/`resource`?`query` (query as sent, still
// percent-encoded; empty without one). Unknown resources get 404, unknown,
// repeated or bad parameters 400, each with a one-line reason.
ApiAnswer AnswerApi(absl::string_view resource, absl::string_view query,
                    const projection::KpiProjection& projection,
                    const DaemonState& state);

inline constexpr char kJsonContentType[] = "application/json";

}  // namespace okrd::exporter

#endif  // OKRD_EXPORT_VIEW_H_
