#include "projection/pip.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/time_util.h"
#include "projection/period.h"

namespace okrd::projection {

absl::string_view PipStateName(PipState s) {
  switch (s) {
    case PipState::kOk:
      return "ok";
    case PipState::kWatch:
      return "watch";
    case PipState::kTriggered:
      return "triggered";
    case PipState::kRecovered:
      return "recovered";
    case PipState::kPlanExpired:
      return "plan_expired";
  }
  return "unknown";
}

absl::string_view MilestoneStatusName(MilestoneStatus s) {
  switch (s) {
    case MilestoneStatus::kPending:
      return "pending";
    case MilestoneStatus::kMet:
      return "met";
    case MilestoneStatus::kMissed:
      return "missed";
  }
  return "unknown";
}

std::optional<PipState> PipStateNamed(absl::string_view name) {
  for (PipState s : kAllPipStates) {
    if (PipStateName(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<MilestoneStatus> MilestoneStatusNamed(absl::string_view name) {
  for (MilestoneStatus s : kAllMilestoneStatuses) {
    if (MilestoneStatusName(s) == name) return s;
  }
  return std::nullopt;
}

std::string PipTransitionId(const config::PipPolicyOptions& policy,
                            absl::string_view subject, absl::Time at,
                            PipState to) {
  return absl::StrCat(policy.id, "/", subject, "/", FormatUtc(at), "/",
                      PipStateName(to));
}

absl::Time PlanDay(const config::PipPolicyOptions& policy, absl::Time start,
                   int64_t day) {
  const absl::CivilSecond local = absl::ToCivilSecond(start, policy.zone);
  const absl::CivilDay date = absl::CivilDay(local) + day;
  return absl::FromCivil(
      absl::CivilSecond(date.year(), date.month(), date.day(), local.hour(),
                        local.minute(), local.second()),
      policy.zone);
}

bool HasOpenCheckins(const PipSubjectState& p) {
  return p.state == PipState::kTriggered && p.policy != nullptr &&
         p.policy->checkin_every > absl::ZeroDuration();
}

absl::Time CheckinTime(const config::PipPolicyOptions& policy,
                       absl::Time triggered_at, int64_t n) {
  const absl::Duration every = policy.checkin_every;
  if (every <= absl::ZeroDuration() || n < 1) return absl::InfiniteFuture();
  absl::Duration remainder;
  const int64_t days = absl::IDivDuration(every, absl::Hours(24), &remainder);
  const absl::Time t = remainder == absl::ZeroDuration()
                           ? PlanDay(policy, triggered_at, days * n)
                           : triggered_at + every * n;
  return t > PlanDay(policy, triggered_at, policy.plan_days)
             ? absl::InfiniteFuture()
             : t;
}

void DescribePlan(
    const config::PipPolicyOptions& policy, absl::Time start,
    const std::vector<MilestoneStatus>& statuses,
    google::protobuf::RepeatedPtrField<okrd::v1::PlanAction>* actions,
    google::protobuf::RepeatedPtrField<okrd::v1::PlanMilestone>* milestones) {
  for (const config::PipAction& a : policy.actions) {
    okrd::v1::PlanAction& out = *actions->Add();
    out.set_id(a.id);
    out.set_title(a.title);
    out.set_kind(std::string(config::PipActionKindName(a.kind)));
    ToProto(PlanDay(policy, start, a.due_day), out.mutable_due());
  }
  for (size_t i = 0; i < policy.milestones.size() && i < statuses.size(); ++i) {
    const config::PipMilestone& m = policy.milestones[i];
    okrd::v1::PlanMilestone& out = *milestones->Add();
    out.set_id(m.id);
    ToProto(PlanDay(policy, start, m.day), out.mutable_due());
    out.set_threshold(m.threshold);
    out.set_status(std::string(MilestoneStatusName(statuses[i])));
  }
}

namespace {

class Machine {
 public:
  Machine(const config::PipPolicyOptions& policy, const std::string& subject,
          const PipCheckpoint* from)
      : policy_(policy) {
    if (from != nullptr) {
      out_ = from->state;
      cooldown_left_ = from->cooldown_left;
    }
    out_.policy = &policy;
    out_.subject = subject;
  }

  // Judges `periods`, the first of which is the machine's `judged`th.
  void Judge(const std::vector<PeriodSample>& periods, int64_t judged) {
    for (size_t i = 0; i < periods.size(); ++i) {
      Period(periods[i], static_cast<size_t>(judged) + i);
    }
  }

  // The state after the periods judged so far, before `next`.
  void Save(absl::Time next, int64_t judged, PipCheckpoint* to) const {
    to->next = next;
    to->judged = judged;
    to->cooldown_left = cooldown_left_;
    to->state = out_;
    to->state.policy = nullptr;
    to->state.subject.clear();
    to->state.transitions.clear();
  }

  void Period(const PeriodSample& p, size_t index) {
    if (out_.state == PipState::kTriggered && p.end > out_.deadline) {
      Expire();
    }
    if (out_.state == PipState::kRecovered ||
        out_.state == PipState::kPlanExpired) {
      // Cooldown is time: every closed period counts, with data or not.
      if (cooldown_left_ > 0) {
        --cooldown_left_;
        return;
      }
      Go(PipState::kOk, p.start);
      out_.streak = 0;
    }
    if (p.count == 0 || p.count < static_cast<uint64_t>(policy_.min_samples)) {
      ++out_.insufficient_periods;
      return;
    }
    const bool below = policy_.comparator == config::Comparator::kBelow;
    const bool breach =
        below ? p.value < policy_.trigger : p.value > policy_.trigger;
    switch (out_.state) {
      case PipState::kOk:
      case PipState::kWatch:
        if (index < static_cast<size_t>(policy_.grace_periods)) return;
        if (!breach) {
          out_.streak = 0;
          if (out_.state == PipState::kWatch) Go(PipState::kOk, p.end);
          return;
        }
        ++out_.streak;
        if (out_.state == PipState::kOk) Go(PipState::kWatch, p.end);
        if (out_.streak >= policy_.consecutive_periods) {
          out_.triggered_at = p.end;
          out_.deadline = PlanDay(policy_, p.end, policy_.plan_days);
          out_.milestones_missed = 0;
          out_.milestones.assign(policy_.milestones.size(),
                                 MilestoneStatus::kPending);
          Go(PipState::kTriggered, p.end);
        }
        return;
      case PipState::kTriggered: {
        // Milestones due by this period's end are judged on its value.
        JudgeMilestones(p.value, p.end);
        const bool recovered =
            below ? p.value >= policy_.recovery : p.value <= policy_.recovery;
        if (recovered) {
          // The plan ends: milestones not due yet are judged on the
          // recovering period too.
          JudgeMilestones(p.value, absl::InfiniteFuture());
          Go(PipState::kRecovered, p.end);
          cooldown_left_ = policy_.cooldown_periods;
        }
        return;
      }
      default:
        return;
    }
  }

  PipSubjectState Finish(absl::Time now) {
    if (out_.state == PipState::kTriggered && now >= out_.deadline) {
      Expire();
    }
    if (HasOpenCheckins(out_)) {
      // An estimate by the duration, set right by the calendar.
      int64_t passed = (now - out_.triggered_at) / policy_.checkin_every;
      while (passed > 0 &&
             CheckinTime(policy_, out_.triggered_at, passed) > now) {
        --passed;
      }
      while (CheckinTime(policy_, out_.triggered_at, passed + 1) <= now) {
        ++passed;
      }
      out_.checkins_passed = static_cast<int>(passed);
      out_.next_checkin = CheckinTime(policy_, out_.triggered_at, passed + 1);
    }
    return std::move(out_);
  }

 private:
  // Judges the pending milestones due by `due` on `value`, in whatever
  // order the policy lists them.
  void JudgeMilestones(double value, absl::Time due) {
    const bool below = policy_.comparator == config::Comparator::kBelow;
    for (size_t i = 0; i < policy_.milestones.size(); ++i) {
      const config::PipMilestone& m = policy_.milestones[i];
      if (out_.milestones[i] != MilestoneStatus::kPending ||
          PlanDay(policy_, out_.triggered_at, m.day) > due) {
        continue;
      }
      const bool met = below ? value >= m.threshold : value <= m.threshold;
      out_.milestones[i] =
          met ? MilestoneStatus::kMet : MilestoneStatus::kMissed;
      if (!met) ++out_.milestones_missed;
    }
  }

  // The deadline passed without recovery: what is still pending is missed.
  void Expire() {
    for (MilestoneStatus& status : out_.milestones) {
      if (status != MilestoneStatus::kPending) continue;
      status = MilestoneStatus::kMissed;
      ++out_.milestones_missed;
    }
    Go(PipState::kPlanExpired, out_.deadline);
    cooldown_left_ = policy_.cooldown_periods;
  }

  void Go(PipState to, absl::Time at) {
    PipTransition& t = out_.transitions.emplace_back();
    t.id = PipTransitionId(policy_, out_.subject, at, to);
    t.from = out_.state;
    t.to = to;
    t.at = at;
    if (to == PipState::kTriggered || to == PipState::kRecovered ||
        to == PipState::kPlanExpired) {
      t.plan_start = out_.triggered_at;
      t.milestones = out_.milestones;
    }
    if (to == PipState::kTriggered) {
      t.next_checkin = CheckinTime(policy_, at, 1);
    }
    out_.state = to;
  }

  const config::PipPolicyOptions& policy_;
  PipSubjectState out_;
  int cooldown_left_ = 0;
};

}  // namespace

PipSubjectState RunPipMachine(const config::PipPolicyOptions& policy,
                              const std::string& subject,
                              const std::vector<PeriodSample>& periods,
                              absl::Time now, const PipCheckpoint* from) {
  Machine machine(policy, subject, from);
  machine.Judge(periods, from == nullptr ? 0 : from->judged);
  return machine.Finish(now);
}

absl::Duration PipClosingDelay(const config::KpiOptions& kpi) {
  return kpi.allowed_lateness == absl::InfiniteDuration()
             ? absl::ZeroDuration()
             : kpi.allowed_lateness;
}

namespace {

// The closed periods of `kpi`/`subject` from `from` (or from `first`) that
// end by `until`, as the machine sees them.
std::vector<PeriodSample> ClosedPeriods(
    const config::KpiOptions& kpi, const std::string& subject, absl::Time first,
    const PipCheckpoint* from, const KpiProjection& kpis, absl::Time until) {
  std::vector<PeriodSample> periods;
  const absl::Time start =
      from != nullptr && from->judged > 0 ? from->next : first;
  for (Period p = PeriodContaining(start, kpi); p.end <= until;
       p = PeriodContaining(p.end, kpi)) {
    PeriodSample& sample = periods.emplace_back();
    sample.start = p.start;
    sample.end = p.end;
    const KpiProjection::Sample s = kpis.SampleIn(kpi, subject, p);
    sample.count = s.count;
    sample.value = s.value;
  }
  return periods;
}

}  // namespace

absl::Time NextPipPeriodClose(const config::Config& config, absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  for (const config::PipPolicyOptions& policy : config.pip_policies) {
    const config::KpiOptions* kpi = config.FindKpi(policy.kpi);
    if (kpi == nullptr) continue;
    const absl::Duration delay = PipClosingDelay(*kpi);
    next = std::min(next, PeriodContaining(now - delay, *kpi).end + delay);
  }
  return next;
}

bool PipWatches(const config::PipPolicyOptions& policy,
                const std::string& subject) {
  auto has = [&subject](const std::vector<std::string>& list) {
    return std::find(list.begin(), list.end(), subject) != list.end();
  };
  return policy.subjects.empty() ? !has(policy.exclude) : has(policy.subjects);
}

PipSubjectState EvaluatePip(const config::PipPolicyOptions& policy,
                            const config::KpiOptions& kpi,
                            const std::string& subject, absl::Time first,
                            const KpiProjection& kpis,
                            const PipCheckpoint* from) {
  const absl::Time now = kpis.clock();
  return RunPipMachine(policy, subject,
                       ClosedPeriods(kpi, subject, first, from, kpis,
                                     now - PipClosingDelay(kpi)),
                       now, from);
}

void AdvancePipCheckpoint(const config::PipPolicyOptions& policy,
                          const config::KpiOptions& kpi,
                          const std::string& subject, absl::Time first,
                          const KpiProjection& kpis, absl::Time until,
                          PipCheckpoint* checkpoint) {
  const std::vector<PeriodSample> periods =
      ClosedPeriods(kpi, subject, first, checkpoint, kpis, until);
  if (periods.empty()) return;
  Machine machine(policy, subject, checkpoint);
  const int64_t judged = checkpoint->judged;
  machine.Judge(periods, judged);
  machine.Save(periods.back().end,
               judged + static_cast<int64_t>(periods.size()), checkpoint);
}

std::vector<PipSubjectState> EvaluatePips(const config::Config& config,
                                          const KpiProjection& kpis) {
  std::vector<PipSubjectState> out;
  for (size_t i = 0; i < config.pip_policies.size(); ++i) {
    const config::PipPolicyOptions& policy = config.pip_policies[i];
    const config::KpiOptions* kpi = config.FindKpi(policy.kpi);
    if (kpi == nullptr) continue;
    // Each subject is watched from its first period with data.
    kpis.ForEachPipSubject(i, [&](const std::string& subject, absl::Time first,
                                  const PipCheckpoint* from) {
      out.push_back(EvaluatePip(policy, *kpi, subject, first, kpis, from));
    });
  }
  return out;
}

}  // namespace okrd::projection
