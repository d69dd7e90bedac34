#include "projection/okr.h"

#include <algorithm>
#include <map>
#include <string>

namespace okrd::projection {

absl::string_view KrStatusName(KrStatus s) {
  switch (s) {
    case KrStatus::kTooEarly:
      return "too_early";
    case KrStatus::kOnTrack:
      return "on_track";
    case KrStatus::kAtRisk:
      return "at_risk";
    case KrStatus::kOffTrack:
      return "off_track";
    case KrStatus::kAchieved:
      return "achieved";
    case KrStatus::kMissed:
      return "missed";
    case KrStatus::kNoData:
      return "no_data";
    case KrStatus::kStale:
      return "stale";
  }
  return "unknown";
}

double RawProgress(const config::KeyResultOptions& kr, double current) {
  using config::Direction;
  switch (kr.direction) {
    case Direction::kIncrease:
    case Direction::kDecrease:
      // Config guarantees target != baseline; the sign of the denominator
      // makes one formula serve both directions.
      return (current - kr.baseline) / (kr.target - kr.baseline);
    case Direction::kAtLeast:
      if (current >= kr.target) return 1;
      return kr.target > 0 ? std::max(0.0, current) / kr.target : 0;
    case Direction::kAtMost:
      if (current <= kr.target) return 1;
      return current > 0 && kr.target > 0 ? kr.target / current : 0;
    case Direction::kRange: {
      if (current >= kr.low && current <= kr.high) return 1;
      const double distance =
          current < kr.low ? kr.low - current : current - kr.high;
      return 1 - distance / (kr.high - kr.low);
    }
    case Direction::kMilestone:
      return current >= kr.target ? 1 : 0;
  }
  return 0;
}

double ElapsedRatio(absl::Time start, absl::Time end, absl::Time now) {
  if (now <= start) return 0;
  if (now >= end) return 1;
  return absl::FDivDuration(now - start, end - start);
}

KrStatus StatusOf(const KrInputs& in, double raw, double expected,
                  absl::Time start, absl::Time end, absl::Time now) {
  if (!in.value.has_value()) return KrStatus::kNoData;
  if (raw >= 1) return KrStatus::kAchieved;
  if (now >= end) return KrStatus::kMissed;
  if (now - in.last_event > in.staleness) return KrStatus::kStale;
  if (ElapsedRatio(start, end, now) < kTooEarlyElapsed - kBoundaryTolerance) {
    return KrStatus::kTooEarly;
  }
  const double gap = expected - std::clamp(raw, 0.0, 1.0);
  if (gap <= kOnTrackGap + kBoundaryTolerance) return KrStatus::kOnTrack;
  if (gap <= kAtRiskGap + kBoundaryTolerance) return KrStatus::kAtRisk;
  return KrStatus::kOffTrack;
}

OkrState EvaluateOkrs(const config::Config& config, const KpiProjection& kpis) {
  OkrState state;
  const absl::Time now = kpis.clock();
  std::map<std::string, std::pair<double, double>> sums;  // weighted, weight
  for (const config::ObjectiveOptions& o : config.objectives) {
    const double expected = ElapsedRatio(o.start, o.end, now);
    for (const config::KeyResultOptions& kr : o.key_results) {
      KeyResultState& s = state.key_results.emplace_back();
      s.objective = &o;
      s.key_result = &kr;
      s.expected = expected;
      const config::KpiOptions* kpi = config.FindKpi(kr.kpi);
      KrInputs in;
      if (kpi != nullptr) {
        in.staleness = kpi->staleness;
        in.value = kpis.LatestValueWithin(*kpi, kr.subject, o.start,
                                          std::min(now, o.end));
        in.last_event = kpis.LastEventTime(kr.kpi, kr.subject);
      }
      s.value = in.value;
      if (s.value) {
        s.raw_progress = RawProgress(kr, *s.value);
        s.progress = std::clamp(s.raw_progress, 0.0, 1.0);
      }
      s.status = StatusOf(in, s.raw_progress, expected, o.start, o.end, now);
      auto& [weighted, weight] = sums[o.id];
      weighted += kr.weight * s.progress;
      weight += kr.weight;
    }
  }
  // Children add to their parents bottom-up: evaluate each objective after
  // all of its descendants (config guarantees there is no cycle).
  std::map<std::string, const config::ObjectiveOptions*> by_id;
  std::map<std::string, int> depth;
  for (const auto& o : config.objectives) by_id[o.id] = &o;
  for (const auto& o : config.objectives) {
    int d = 0;
    for (const auto* up = &o; !up->parent.empty(); up = by_id[up->parent]) ++d;
    depth[o.id] = d;
  }
  std::vector<const config::ObjectiveOptions*> order;
  for (const auto& o : config.objectives) order.push_back(&o);
  std::stable_sort(order.begin(), order.end(), [&](auto* a, auto* b) {
    return depth[a->id] > depth[b->id];
  });
  std::map<std::string, double> progress;
  for (const auto* o : order) {
    const auto& [weighted, weight] = sums[o->id];
    const double p = weight > 0 ? weighted / weight : 0;
    progress[o->id] = p;
    if (!o->parent.empty()) {
      auto& [pw, pweight] = sums[o->parent];
      pw += o->weight * p;
      pweight += o->weight;
    }
  }
  for (const auto& o : config.objectives) {
    state.objectives.push_back({&o, progress[o.id]});
  }
  // Each key result's share of every ancestor: its weight over its
  // objective's weight sum, times each objective's weight over its
  // parent's, up to the root.
  for (KeyResultState& kr : state.key_results) {
    const config::ObjectiveOptions* o = kr.objective;
    double share = kr.key_result->weight;
    while (o != nullptr) {
      const double total = sums[o->id].second;
      if (total <= 0) break;
      share /= total;
      kr.contributions.push_back({o, share * kr.progress});
      if (o->parent.empty()) break;
      share *= o->weight;
      o = by_id[o->parent];
    }
  }
  return state;
}

}  // namespace okrd::projection
