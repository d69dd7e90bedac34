// okrctl replay: the projections as they stood at a point of the log.

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "core/args.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "export/metrics.h"
#include "export/view.h"
#include "okrctl/commands.h"
#include "okrctl/progress.h"
#include "projection/kpi_projection.h"

namespace okrd::okrctl {
namespace {

std::string RenderJson(const projection::KpiProjection& kpis) {
  // Everything, as a daemon that owns every partition shows it.
  const projection::Ownership all;
  return exporter::ViewJson(
      exporter::BuildView(kpis, all.MaskFor(kpis.partitions())));
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
  kpis.SetHistory(std::bind_front(&eventlog::EventLog::ForEach, log->get()));
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
