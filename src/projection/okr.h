#ifndef OKRD_PROJECTION_OKR_H_
#define OKRD_PROJECTION_OKR_H_

// Key-result and objective progress, pacing and status, derived from the KPI
// projection at its logged clock (DESIGN.md, Projections). A pure function of
// (config, KPI projection): evaluating it twice, live or on replay, gives the
// same answer.
//
// Thread-safety: pure functions; callers keep the projection still while
// EvaluateOkrs() reads it.

#include <array>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "config/config.h"
#include "projection/kpi_projection.h"

namespace okrd::projection {

enum class KrStatus {
  kTooEarly,
  kOnTrack,
  kAtRisk,
  kOffTrack,
  kAchieved,
  kMissed,
  kNoData,
  kStale
};
inline constexpr std::array<KrStatus, 8> kAllKrStatuses = {
    KrStatus::kTooEarly, KrStatus::kOnTrack,  KrStatus::kAtRisk,
    KrStatus::kOffTrack, KrStatus::kAchieved, KrStatus::kMissed,
    KrStatus::kNoData,   KrStatus::kStale};

absl::string_view KrStatusName(KrStatus s);

// Pacing thresholds of DESIGN.md: under 10% elapsed is too early to judge;
// a gap (expected - progress) up to 0.15 is on track, up to 0.30 at risk.
inline constexpr double kTooEarlyElapsed = 0.10;
inline constexpr double kOnTrackGap = 0.15;
inline constexpr double kAtRiskGap = 0.30;
// Values on a boundary belong to the better status; the tolerance absorbs
// floating-point error in expected - progress (0.5 - 0.35 > 0.15 in doubles).
inline constexpr double kBoundaryTolerance = 1e-9;

// Unclamped progress of `kr` at KPI value `current`: 0 at the baseline, 1 at
// the target; may leave [0, 1] on overshoot or regression.
double RawProgress(const config::KeyResultOptions& kr, double current);

// Share of [start, end) elapsed at `now`, clamped to [0, 1].
double ElapsedRatio(absl::Time start, absl::Time end, absl::Time now);

struct KrInputs {
  std::optional<double> value;  // none: no data in the objective's window
  absl::Time last_event = absl::InfinitePast();
  absl::Duration staleness = absl::Hours(48);
};

// The status of a key result with `progress` (clamped) and `raw` progress.
KrStatus StatusOf(const KrInputs& in, double raw, double expected,
                  absl::Time start, absl::Time end, absl::Time now);

struct KeyResultState {
  const config::ObjectiveOptions* objective;
  const config::KeyResultOptions* key_result;
  std::optional<double> value;
  double raw_progress = 0;
  double progress = 0;  // clamped to [0, 1]; 0 without data
  double expected = 0;
  KrStatus status = KrStatus::kNoData;
  // What this key result adds to the progress of its objective and of each
  // ancestor, nearest first: progress times its weight's share at every
  // level. An objective's progress is the sum of its key results'
  // contributions, so instances that own different key results can be
  // summed into the one answer (README, "Scale-out").
  struct Contribution {
    const config::ObjectiveOptions* objective;
    double value;
  };
  std::vector<Contribution> contributions;
};

struct ObjectiveState {
  const config::ObjectiveOptions* objective;
  double progress = 0;
};

struct OkrState {
  std::vector<KeyResultState> key_results;  // config order
  std::vector<ObjectiveState> objectives;   // config order
};

// Evaluates every configured key result and objective at `kpis.clock()`.
OkrState EvaluateOkrs(const config::Config& config, const KpiProjection& kpis);

}  // namespace okrd::projection

#endif  // OKRD_PROJECTION_OKR_H_
