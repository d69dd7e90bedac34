#ifndef OKRD_PROJECTION_PIP_H_
#define OKRD_PROJECTION_PIP_H_

// PIP triggers (DESIGN.md): a state machine per (policy, subject) over the
// KPI's closed periods:
//
//   ok -> watch        a judged period breaches the trigger threshold
//   watch -> ok        a judged period does not breach
//   watch -> triggered N consecutive breaching periods (a review is
//                      recommended; the plan runs plan_days)
//   triggered -> recovered     a period reaches the recovery threshold
//   triggered -> plan_expired  the deadline passes without recovery
//   recovered/plan_expired -> ok  after cooldown_periods closed periods
//
// Periods with fewer than min_samples events neither extend nor break a
// streak and are counted; the first grace_periods periods of a subject are
// not judged. A period is closed when the logged clock passes its end plus
// the KPI's allowed_lateness (or its end, without one).
//
// The machine is a pure fold of the KPI projection's periods, so every
// transition, and its deterministic id, comes out the same live, after a
// restart or kill -9, and on replay. KpiProjection runs it at each logged
// clock tick and records what it fired (KpiProjection::pip_transitions()):
// none fires twice, and a late event never takes one back.
//
// Thread-safety: pure functions.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "projection/kpi_projection.h"

namespace okrd::projection {

enum class PipState { kOk, kWatch, kTriggered, kRecovered, kPlanExpired };
inline constexpr std::array<PipState, 5> kAllPipStates = {
    PipState::kOk, PipState::kWatch, PipState::kTriggered, PipState::kRecovered,
    PipState::kPlanExpired};

absl::string_view PipStateName(PipState s);
// The state PipStateName names `name`; nullopt for another name.
std::optional<PipState> PipStateNamed(absl::string_view name);

// A plan's milestone: judged on the first closed period ending on or after
// its day; when the plan ends first, judged on the recovering period, or
// missed when the plan expires.
enum class MilestoneStatus { kPending, kMet, kMissed };
inline constexpr std::array<MilestoneStatus, 3> kAllMilestoneStatuses = {
    MilestoneStatus::kPending, MilestoneStatus::kMet, MilestoneStatus::kMissed};

absl::string_view MilestoneStatusName(MilestoneStatus s);
// The status MilestoneStatusName names `name`; nullopt for another name.
std::optional<MilestoneStatus> MilestoneStatusNamed(absl::string_view name);

// A transition's id, policy/subject/time/state: stable across restarts and
// replays, so that consumers can deduplicate.
std::string PipTransitionId(const config::PipPolicyOptions& policy,
                            absl::string_view subject, absl::Time at,
                            PipState to);

struct PipTransition {
  std::string id;  // PipTransitionId
  PipState from;
  PipState to;
  absl::Time at;
  // The plan as this transition leaves it (to triggered, recovered or
  // plan_expired; else plan_start is InfinitePast): when it was triggered,
  // its milestones' statuses in the policy's order, and the first check-in
  // after `at` while it is open (InfiniteFuture: none).
  absl::Time plan_start = absl::InfinitePast();
  std::vector<MilestoneStatus> milestones;
  absl::Time next_checkin = absl::InfiniteFuture();
};

// One closed period as the machine sees it.
struct PeriodSample {
  absl::Time start;
  absl::Time end;
  uint64_t count = 0;
  double value = 0;
};

struct PipSubjectState {
  const config::PipPolicyOptions* policy = nullptr;
  std::string subject;
  PipState state = PipState::kOk;
  int streak = 0;  // consecutive breaching periods
  absl::Time triggered_at = absl::InfinitePast();
  absl::Time deadline = absl::InfinitePast();
  int insufficient_periods = 0;
  int milestones_missed = 0;  // in the current or last plan
  // The current or last plan's milestones (policy order); empty before the
  // first plan.
  std::vector<MilestoneStatus> milestones;
  // While a plan is open and the policy has checkin_every: check-ins are
  // due every checkin_every from the trigger up to the deadline. The next
  // one after the clock (InfiniteFuture: none left) and how many passed.
  absl::Time next_checkin = absl::InfiniteFuture();
  int checkins_passed = 0;
  std::vector<PipTransition> transitions;
};

// Day `day` of a plan of `policy` triggered at `start`: the same local time
// `day` calendar days later in the KPI's time zone, so that a day-7
// milestone of a plan triggered at a week's end is due at the next week's
// end, across a DST change too.
absl::Time PlanDay(const config::PipPolicyOptions& policy, absl::Time start,
                   int64_t day);

// Whether `p` is an open plan with check-ins, to which its next_checkin and
// checkins_passed apply.
bool HasOpenCheckins(const PipSubjectState& p);

// The time of check-in `n` (1, 2, ...) of a plan triggered at
// `triggered_at`, or InfiniteFuture past its deadline or without check-ins.
// A checkin_every of whole days counts calendar days (PlanDay).
absl::Time CheckinTime(const config::PipPolicyOptions& policy,
                       absl::Time triggered_at, int64_t n);

// The plan of `policy` triggered at `start`: its actions and, with
// `statuses`, its milestones, each with the time it is due.
void DescribePlan(
    const config::PipPolicyOptions& policy, absl::Time start,
    const std::vector<MilestoneStatus>& statuses,
    google::protobuf::RepeatedPtrField<okrd::v1::PlanAction>* actions,
    google::protobuf::RepeatedPtrField<okrd::v1::PlanMilestone>* milestones);

// A machine's state after the closed periods before `next`: what a run
// resumes from instead of judging those periods again. Their transitions
// are left out (they were recorded when judged).
struct PipCheckpoint {
  // Start of the first period not judged yet.
  absl::Time next = absl::InfinitePast();
  int64_t judged = 0;  // periods judged
  int cooldown_left = 0;
  PipSubjectState state;  // without subject, policy or transitions
};

// Runs the machine over consecutive closed `periods` (oldest first, starting
// with the subject's first period, or with the one after `from`'s), then
// expires a plan whose deadline passed by `now`.
PipSubjectState RunPipMachine(const config::PipPolicyOptions& policy,
                              const std::string& subject,
                              const std::vector<PeriodSample>& periods,
                              absl::Time now,
                              const PipCheckpoint* from = nullptr);

// How long after its end a period of `kpi` is closed for the PIP machines:
// its allowed_lateness, or none without one.
absl::Duration PipClosingDelay(const config::KpiOptions& kpi);

// Whether `policy` watches `subject`: one it lists, or, listing none, any
// but those it excludes.
bool PipWatches(const config::PipPolicyOptions& policy,
                const std::string& subject);

// The machine of `policy` (on `kpi`) for `subject`, whose first period with
// data starts at `first`, over the periods closed at the projection's
// clock; resumed from `from` when given.
PipSubjectState EvaluatePip(const config::PipPolicyOptions& policy,
                            const config::KpiOptions& kpi,
                            const std::string& subject, absl::Time first,
                            const KpiProjection& kpis,
                            const PipCheckpoint* from = nullptr);

// Moves `checkpoint` (of `policy` on `kpi` for `subject`, whose first
// period starts at `first`; empty when `judged` is 0) past the periods
// that end by `until`.
void AdvancePipCheckpoint(const config::PipPolicyOptions& policy,
                          const config::KpiOptions& kpi,
                          const std::string& subject, absl::Time first,
                          const KpiProjection& kpis, absl::Time until,
                          PipCheckpoint* checkpoint);

// The next time a period of a KPI some policy watches closes after `now`.
absl::Time NextPipPeriodClose(const config::Config& config, absl::Time now);

// Every (policy, subject) of the config, at the projection's clock.
std::vector<PipSubjectState> EvaluatePips(const config::Config& config,
                                          const KpiProjection& kpis);

}  // namespace okrd::projection

#endif  // OKRD_PROJECTION_PIP_H_
