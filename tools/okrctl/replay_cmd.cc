// okrctl replay: the projections as they stood at a point of the log.

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "core/args.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "export/metrics.h"
#include "google/protobuf/util/json_util.h"
#include "okrctl/commands.h"
#include "okrctl/progress.h"
#include "okrd/v1/projection_view.pb.h"
#include "projection/kpi_projection.h"
#include "projection/okr.h"

namespace okrd::okrctl {
namespace {

std::string RenderJson(const projection::KpiProjection& kpis) {
  okrd::v1::ProjectionView view;
  view.set_sequence(kpis.sequence());
  if (kpis.clock() != absl::InfinitePast()) {
    view.set_clock(FormatUtc(kpis.clock()));
  }
  kpis.ForEachSeries([&](const projection::KpiSeries& s) {
    okrd::v1::KpiSeriesView* item = view.add_kpis();
    item->set_kpi(s.kpi->id);
    item->set_subject(exporter::SubjectLabel(kpis.config(), *s.subject));
    item->set_period(s.period_label);
    item->set_period_start(FormatUtc(s.period.start));
    item->set_value(s.value);
  });
  const projection::OkrState okrs =
      projection::EvaluateOkrs(kpis.config(), kpis);
  for (const projection::KeyResultState& kr : okrs.key_results) {
    okrd::v1::KeyResultView* item = view.add_key_results();
    item->set_objective(kr.objective->id);
    item->set_key_result(kr.key_result->id);
    if (kr.value) item->set_value(*kr.value);
    item->set_progress(kr.progress);
    item->set_expected_progress(kr.expected);
    item->set_status(std::string(projection::KrStatusName(kr.status)));
  }
  for (const projection::ObjectiveState& o : okrs.objectives) {
    okrd::v1::ObjectiveView* item = view.add_objectives();
    item->set_objective(o.objective->id);
    item->set_progress(o.progress);
  }
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(view, &out, options);
  return out;
}

}  // namespace

int ReplayCommand(const std::vector<std::string>& argv) {
  Args args({"config", "data-dir", "until", "until-seq", "format"}, {});
  if (absl::Status s = args.Parse(argv); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  const auto config_path = args.Get("config");
  const auto dir = args.Get("data-dir");
  if (!config_path || !dir) {
    return Usage("replay: --config FILE and --data-dir DIR are required");
  }
  const std::string format = args.Get("format").value_or("prometheus");
  if (format != "prometheus" && format != "json") {
    return Usage("replay: --format must be prometheus or json");
  }
  if (args.Has("until") && args.Has("until-seq")) {
    return Usage("replay: give --until or --until-seq, not both");
  }
  long long until_seq = 0;
  if (absl::Status s =
          args.GetInt("until-seq", 0, INT64_MAX, INT64_MAX, &until_seq);
      !s.ok()) {
    return Usage(std::string(s.message()));
  }
  std::optional<absl::Time> until;
  if (auto text = args.Get("until")) {
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, *text, &t, &err)) {
      return Usage("replay: --until: " + err + " (expected RFC 3339)");
    }
    until = t;
  }
  auto config = config::LoadConfig(*config_path);
  if (!config.ok()) return Usage(std::string(config.status().message()));
  auto log = eventlog::EventLog::Open(
      {.path = *dir, .sync = false, .read_only = true});
  if (!log.ok()) {
    std::fprintf(stderr, "okrctl: %s\n",
                 std::string(log.status().message()).c_str());
    return 1;
  }
  projection::KpiProjection kpis(*config);
  const uint64_t last = (*log)->last_sequence();
  Progress progress("replay", "records",
                    std::min<uint64_t>(last, static_cast<uint64_t>(until_seq)));
  uint64_t done = 0;
  absl::Status s = (*log)->ForEach(1, [&](const okrd::v1::StoredEvent& e) {
    if (e.sequence() > static_cast<uint64_t>(until_seq)) return false;
    // As of a time: what had been logged by then.
    if (until && absl::FromUnixMicros(e.ingest_time_us()) > *until)
      return false;
    kpis.Apply(e);
    progress.Update(++done);
    return true;
  });
  progress.Finish(done);
  if (!s.ok()) {
    std::fprintf(stderr, "okrctl: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (until) kpis.AdvanceClock(*until);
  const std::string out = format == "json"
                              ? RenderJson(kpis)
                              : exporter::RenderBusinessMetrics(kpis);
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (format == "json") std::fputc('\n', stdout);
  return 0;
}

}  // namespace okrd::okrctl
