#include "projection/pip.h"

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/time_util.h"
#include "gtest/gtest.h"

namespace okrd::projection {
namespace {

const absl::Time kJan = absl::FromUnixSeconds(1798761600);  // 2027-01-01Z

config::PipPolicyOptions Policy() {
  config::PipPolicyOptions p;
  p.id = "quota";
  p.kpi = "revenue";
  p.comparator = config::Comparator::kBelow;
  p.trigger = 80;
  p.recovery = 90;
  p.consecutive_periods = 2;
  p.min_samples = 2;
  p.grace_periods = 0;
  p.cooldown_periods = 1;
  p.plan_days = 60;
  return p;
}

// Weekly periods from kJan with (count, value) each.
std::vector<PeriodSample> Weeks(
    std::initializer_list<std::pair<uint64_t, double>> samples) {
  std::vector<PeriodSample> out;
  absl::Time start = kJan;
  for (const auto& [count, value] : samples) {
    out.push_back({start, start + absl::Hours(24 * 7), count, value});
    start += absl::Hours(24 * 7);
  }
  return out;
}

absl::Time WeekEnd(int n) { return kJan + absl::Hours(24 * 7) * n; }

std::string Statuses(const std::vector<MilestoneStatus>& statuses) {
  std::string out;
  for (MilestoneStatus s : statuses) {
    absl::StrAppend(&out, out.empty() ? "" : " ", MilestoneStatusName(s));
  }
  return out;
}

std::vector<std::string> Path(const PipSubjectState& s) {
  std::vector<std::string> out;
  for (const PipTransition& t : s.transitions) {
    out.push_back(std::string(PipStateName(t.to)));
  }
  return out;
}

TEST(PipMachineTest, TriggersAfterExactlyNBreachingPeriods) {
  const auto s =
      RunPipMachine(Policy(), "ann", Weeks({{3, 70}, {3, 75}}), WeekEnd(2));
  EXPECT_EQ(s.state, PipState::kTriggered);
  EXPECT_EQ(Path(s), (std::vector<std::string>{"watch", "triggered"}));
  EXPECT_EQ(s.streak, 2);
  EXPECT_EQ(s.triggered_at, WeekEnd(2));
  EXPECT_EQ(s.deadline, WeekEnd(2) + absl::Hours(24 * 60));
  const auto one = RunPipMachine(Policy(), "ann", Weeks({{3, 70}}), WeekEnd(1));
  EXPECT_EQ(one.state, PipState::kWatch);
  const auto broken = RunPipMachine(
      Policy(), "ann", Weeks({{3, 70}, {3, 85}, {3, 70}}), WeekEnd(3));
  EXPECT_EQ(Path(broken), (std::vector<std::string>{"watch", "ok", "watch"}));
}

TEST(PipMachineTest, HysteresisHoldsWhileFlappingAroundTheTrigger) {
  // Triggered, then values between trigger (80) and recovery (90) flap.
  const auto s = RunPipMachine(
      Policy(), "ann",
      Weeks({{3, 70}, {3, 70}, {3, 82}, {3, 79}, {3, 85}, {3, 91}}),
      WeekEnd(6));
  EXPECT_EQ(Path(s),
            (std::vector<std::string>{"watch", "triggered", "recovered"}));
  EXPECT_EQ(s.transitions.back().at, WeekEnd(6));
}

TEST(PipMachineTest, PeriodsWithTooFewSamplesNeitherExtendNorBreak) {
  const auto s = RunPipMachine(
      Policy(), "ann", Weeks({{3, 70}, {1, 99}, {0, 0}, {3, 70}}), WeekEnd(4));
  EXPECT_EQ(s.state, PipState::kTriggered);
  EXPECT_EQ(s.insufficient_periods, 2);
}

TEST(PipMachineTest, GraceForANewSubject) {
  config::PipPolicyOptions p = Policy();
  p.grace_periods = 2;
  const auto s =
      RunPipMachine(p, "new", Weeks({{3, 10}, {3, 10}, {3, 10}}), WeekEnd(3));
  EXPECT_EQ(s.state, PipState::kWatch);
  EXPECT_EQ(s.streak, 1);
}

TEST(PipMachineTest, CooldownThenWatchedAgain) {
  config::PipPolicyOptions p = Policy();
  p.cooldown_periods = 2;
  const auto s = RunPipMachine(
      p, "ann",
      Weeks({{3, 70}, {3, 70}, {3, 95}, {3, 10}, {3, 10}, {3, 10}, {3, 10}}),
      WeekEnd(7));
  // Recovered at week 3; weeks 4 and 5 are cooldown; week 6 is judged again.
  EXPECT_EQ(Path(s),
            (std::vector<std::string>{"watch", "triggered", "recovered", "ok",
                                      "watch", "triggered"}));
  EXPECT_EQ(s.transitions[3].at, WeekEnd(5));
}

TEST(PipMachineTest, DeadlineExpiresThePlan) {
  config::PipPolicyOptions p = Policy();
  p.plan_days = 14;
  // Still short when the clock passes the deadline, without a closed period.
  const auto by_clock =
      RunPipMachine(p, "ann", Weeks({{3, 70}, {3, 70}, {3, 75}}), WeekEnd(4));
  EXPECT_EQ(by_clock.state, PipState::kPlanExpired);
  EXPECT_EQ(by_clock.transitions.back().at, WeekEnd(4));
  // Recovery after the deadline does not count.
  const auto late = RunPipMachine(
      p, "ann", Weeks({{3, 70}, {3, 70}, {3, 75}, {3, 75}, {3, 95}}),
      WeekEnd(5));
  EXPECT_EQ(Path(late),
            (std::vector<std::string>{"watch", "triggered", "plan_expired"}));
}

TEST(PipMachineTest, MilestonesMetAndMissed) {
  config::PipPolicyOptions p = Policy();
  p.milestones = {{"day-7", 7, 82}, {"day-14", 14, 86}};
  const auto s = RunPipMachine(
      p, "ann", Weeks({{3, 70}, {3, 70}, {3, 83}, {3, 84}}), WeekEnd(4));
  EXPECT_EQ(s.state, PipState::kTriggered);
  EXPECT_EQ(s.milestones_missed, 1);  // 83 >= 82 by day 7; 84 < 86 by day 14
  EXPECT_EQ(Statuses(s.milestones), "met missed");
}

// Each milestone is pending until the first closed period ending on or
// after its day; the trigger's transition carries them all pending.
TEST(PipMachineTest, MilestoneStatusesThroughAPlan) {
  config::PipPolicyOptions p = Policy();
  p.plan_days = 30;
  p.milestones = {{"first", 7, 82},
                  {"second", 10, 84},
                  {"third", 21, 86},
                  {"last", 30, 88}};
  const auto open =
      RunPipMachine(p, "ann", Weeks({{3, 70}, {3, 70}, {3, 83}}), WeekEnd(3));
  // Week 3 ends on day 7 of the plan: only the first milestone is due.
  EXPECT_EQ(Statuses(open.milestones), "met pending pending pending");
  ASSERT_EQ(open.transitions.size(), 2u);
  EXPECT_EQ(Statuses(open.transitions[1].milestones),
            "pending pending pending pending");
  EXPECT_EQ(open.transitions[1].plan_start, WeekEnd(2));
  EXPECT_TRUE(open.transitions[0].milestones.empty());  // watch: no plan
  EXPECT_EQ(open.transitions[0].plan_start, absl::InfinitePast());

  // Recovery in week 5 (day 21 of the plan, 95 beyond recovery): the third
  // milestone is due and met, the last is judged on the same period.
  const auto recovered = RunPipMachine(
      p, "ann", Weeks({{3, 70}, {3, 70}, {3, 83}, {3, 80}, {3, 95}}),
      WeekEnd(5));
  EXPECT_EQ(Path(recovered),
            (std::vector<std::string>{"watch", "triggered", "recovered"}));
  EXPECT_EQ(Statuses(recovered.milestones), "met missed met met");
  EXPECT_EQ(Statuses(recovered.transitions[2].milestones),
            "met missed met met");
  EXPECT_EQ(recovered.milestones_missed, 1);

  // Expired on day 30 with the last milestone not judged: missed.
  const auto expired = RunPipMachine(
      p, "ann", Weeks({{3, 70}, {3, 70}, {3, 83}, {3, 80}, {3, 87}, {3, 87}}),
      WeekEnd(2) + absl::Hours(24 * 30));
  EXPECT_EQ(expired.state, PipState::kPlanExpired);
  EXPECT_EQ(Statuses(expired.milestones), "met missed met missed");
  EXPECT_EQ(Statuses(expired.transitions.back().milestones),
            "met missed met missed");
  EXPECT_EQ(expired.milestones_missed, 2);

  // Listed out of day order, each is still judged when its day comes.
  config::PipPolicyOptions reversed = p;
  std::reverse(reversed.milestones.begin(), reversed.milestones.end());
  EXPECT_EQ(
      Statuses(RunPipMachine(reversed, "ann",
                             Weeks({{3, 70}, {3, 70}, {3, 83}}), WeekEnd(3))
                   .milestones),
      "pending pending pending met");

  // A new plan starts with every milestone pending again.
  p.cooldown_periods = 0;
  const auto again = RunPipMachine(
      p, "ann", Weeks({{3, 70}, {3, 70}, {3, 95}, {3, 70}, {3, 70}, {3, 83}}),
      WeekEnd(6));
  EXPECT_EQ(Path(again),
            (std::vector<std::string>{"watch", "triggered", "recovered", "ok",
                                      "watch", "triggered"}));
  EXPECT_EQ(Statuses(again.milestones), "met pending pending pending");
  EXPECT_EQ(again.milestones_missed, 0);
}

// Check-ins are due every checkin_every from the trigger, up to the
// deadline, on the clock the machine is run at.
TEST(PipMachineTest, CheckinsFromTheTriggerToTheDeadline) {
  config::PipPolicyOptions p = Policy();
  p.plan_days = 30;
  p.checkin_every = absl::Hours(24 * 7);
  const auto weeks = Weeks({{3, 70}, {3, 70}});
  const absl::Time start = WeekEnd(2);
  const auto at_trigger = RunPipMachine(p, "ann", weeks, start);
  EXPECT_EQ(at_trigger.next_checkin, start + absl::Hours(24 * 7));
  EXPECT_EQ(at_trigger.checkins_passed, 0);
  EXPECT_EQ(at_trigger.transitions.back().next_checkin,
            start + absl::Hours(24 * 7));
  // A second before and at the first check-in.
  const absl::Time first = start + absl::Hours(24 * 7);
  EXPECT_EQ(
      RunPipMachine(p, "ann", weeks, first - absl::Seconds(1)).checkins_passed,
      0);
  const auto at_first = RunPipMachine(p, "ann", weeks, first);
  EXPECT_EQ(at_first.checkins_passed, 1);
  EXPECT_EQ(at_first.next_checkin, start + absl::Hours(24 * 14));
  // Day 29: four passed (7, 14, 21, 28), none left before day 30's deadline.
  const auto last =
      RunPipMachine(p, "ann", weeks, start + absl::Hours(24 * 29));
  EXPECT_EQ(last.state, PipState::kTriggered);
  EXPECT_EQ(last.checkins_passed, 4);
  EXPECT_EQ(last.next_checkin, absl::InfiniteFuture());
  // A plan that ended has none.
  const auto expired =
      RunPipMachine(p, "ann", weeks, start + absl::Hours(24 * 30));
  EXPECT_EQ(expired.state, PipState::kPlanExpired);
  EXPECT_EQ(expired.next_checkin, absl::InfiniteFuture());
  EXPECT_EQ(expired.checkins_passed, 0);
  // Every 10 days over 30: the last check-in falls on the deadline itself.
  p.checkin_every = absl::Hours(24 * 10);
  EXPECT_EQ(CheckinTime(p, start, 3), start + absl::Hours(24 * 30));
  EXPECT_EQ(CheckinTime(p, start, 4), absl::InfiniteFuture());
  // Without checkin_every, none.
  p.checkin_every = absl::ZeroDuration();
  EXPECT_EQ(RunPipMachine(p, "ann", weeks, first).next_checkin,
            absl::InfiniteFuture());
}

// Plan days are calendar days in the KPI's zone: a plan triggered at a
// Berlin week's end has its day-7 milestone and first weekly check-in at
// the next week's end, whether that week has 167 hours (summer time
// starts) or 169 (it ends). Check-ins of hours stay durations.
TEST(PipMachineTest, PlanDaysAreCalendarDaysAcrossDst) {
  config::PipPolicyOptions p = Policy();
  ASSERT_TRUE(absl::LoadTimeZone("Europe/Berlin", &p.zone));
  p.min_samples = 1;
  p.plan_days = 14;
  p.milestones = {{"week-1", 7, 85}};
  p.checkin_every = absl::Hours(24 * 7);
  auto local = [&](int month, int day) {
    return absl::FromCivil(absl::CivilSecond(2027, month, day, 0, 0, 0),
                           p.zone);
  };
  auto weeks = [&](int month, std::initializer_list<int> mondays,
                   std::initializer_list<double> values) {
    std::vector<PeriodSample> out;
    auto day = mondays.begin();
    for (double value : values) {
      const int start = *day++;
      out.push_back({local(month, start), local(month, *day), 3, value});
    }
    return out;
  };
  // Summer time starts on Sunday 2027-03-28.
  const auto spring = weeks(3, {8, 15, 22, 29}, {70, 70, 86});
  ASSERT_EQ(spring[2].end - spring[2].start, absl::Hours(167));
  const auto s = RunPipMachine(p, "ann", spring, local(3, 29));
  EXPECT_EQ(s.triggered_at, local(3, 22));
  EXPECT_EQ(s.transitions[1].id, "quota/ann/2027-03-21T23:00:00Z/triggered");
  EXPECT_EQ(Statuses(s.milestones), "met");  // due at the short week's end
  EXPECT_EQ(s.checkins_passed, 1);
  EXPECT_EQ(s.next_checkin, local(4, 5));
  EXPECT_EQ(s.deadline, local(4, 5));
  EXPECT_EQ(FormatUtc(s.deadline), "2027-04-04T22:00:00Z");
  EXPECT_EQ(RunPipMachine(p, "ann", spring, local(3, 29) - absl::Seconds(1))
                .checkins_passed,
            0);

  // Summer time ends on Sunday 2027-10-31: a 169-hour week.
  auto autumn = weeks(10, {11, 18, 25}, {70, 70});
  autumn.push_back({local(10, 25), local(11, 1), 3, 84});
  ASSERT_EQ(autumn[2].end - autumn[2].start, absl::Hours(169));
  const auto a = RunPipMachine(p, "ann", autumn, local(11, 1));
  EXPECT_EQ(Statuses(a.milestones), "missed");  // 84 < 85, judged on time
  EXPECT_EQ(a.checkins_passed, 1);
  EXPECT_EQ(a.next_checkin, local(11, 8));

  // Every 36 hours is a duration, not days.
  p.checkin_every = absl::Hours(36);
  EXPECT_EQ(CheckinTime(p, local(3, 22), 5),
            local(3, 22) + absl::Hours(36 * 5));
}

TEST(PipMachineTest, AboveComparatorAndStableIds) {
  config::PipPolicyOptions p = Policy();
  p.id = "lead-time";
  p.comparator = config::Comparator::kAbove;
  p.trigger = 24;
  p.recovery = 12;
  p.consecutive_periods = 3;
  const auto s = RunPipMachine(
      p, "platform", Weeks({{3, 30}, {3, 30}, {3, 30}, {3, 20}, {3, 10}}),
      WeekEnd(5));
  EXPECT_EQ(Path(s),
            (std::vector<std::string>{"watch", "triggered", "recovered"}));
  EXPECT_EQ(s.transitions[1].id,
            "lead-time/platform/2027-01-22T00:00:00Z/triggered");
  const auto again = RunPipMachine(
      p, "platform", Weeks({{3, 30}, {3, 30}, {3, 30}, {3, 20}, {3, 10}}),
      WeekEnd(5));
  EXPECT_EQ(again.transitions[1].id, s.transitions[1].id);
}

// A config with one weekly "revenue" KPI, closed 24 hours after each week.
std::shared_ptr<config::Config> WeeklyRevenue(config::Aggregation aggregation) {
  auto config = std::make_shared<config::Config>();
  config::KpiOptions kpi;
  kpi.id = "revenue";
  kpi.aggregation = aggregation;
  kpi.period = config::PeriodKind::kWeek;
  kpi.allowed_lateness = absl::Hours(24);
  config->kpis.push_back(kpi);
  return config;
}

// Folds one measurement of `kpi` into `kpis`, as the log would store it.
void Measure(KpiProjection& kpis, uint64_t sequence, const std::string& kpi,
             const std::string& subject, double value, absl::Time event_time,
             absl::Time ingest_time) {
  okrd::v1::StoredEvent r;
  r.set_sequence(sequence);
  r.set_ingest_time_us(absl::ToUnixMicros(ingest_time));
  r.mutable_event()->set_kpi(kpi);
  r.mutable_event()->set_subject(subject);
  r.mutable_event()->set_value(value);
  ToProto(event_time, r.mutable_event()->mutable_event_time());
  kpis.Apply(r);
}

// Folds one "revenue" measurement into `kpis`.
void Measure(KpiProjection& kpis, uint64_t sequence, const std::string& subject,
             double value, absl::Time event_time, absl::Time ingest_time) {
  Measure(kpis, sequence, "revenue", subject, value, event_time, ingest_time);
}

// Folds a logged clock tick into `kpis`.
void Tick(KpiProjection& kpis, uint64_t sequence, absl::Time at) {
  okrd::v1::StoredEvent r;
  r.set_sequence(sequence);
  r.mutable_tick()->set_wall_time_us(absl::ToUnixMicros(at));
  kpis.Apply(r);
}

std::vector<std::string> FiredIds(const KpiProjection& kpis) {
  std::vector<std::string> out;
  for (const okrd::v1::PipTransition& t : kpis.PipTransitionRecords()) {
    out.push_back(t.id());
  }
  return out;
}

// 2027-01-04 is a Monday: weekly periods start there.
const absl::Time kMonday = kJan + absl::Hours(24 * 3);
const absl::Duration kWeek = absl::Hours(24 * 7);

// Weekly revenue without allowed_lateness, watched by the quota policy with
// one sample per period enough.
std::shared_ptr<config::Config> QuotaWithoutLateness() {
  auto config = WeeklyRevenue(config::Aggregation::kSum);
  config->kpis[0].allowed_lateness = absl::InfiniteDuration();
  config::PipPolicyOptions policy = Policy();
  policy.min_samples = 1;
  config->pip_policies = {policy};
  return config;
}

// Ann's revenue of 50, below the quota, in the weeks from kMonday and the
// one after, each logged as it happens.
void TwoBreachingWeeks(KpiProjection& kpis, uint64_t* sequence) {
  for (int i = 0; i < 2; ++i) {
    const absl::Time t = kMonday + kWeek * i + absl::Hours(12);
    Measure(kpis, ++*sequence, "ann", 50, t, t);
  }
}

// Without allowed_lateness a period is judged at the first tick after its
// end. What a tick fired stays fired: a week arriving later that rewrites
// the history adds its own transitions but takes none back, and a snapshot
// keeps them.
TEST(EvaluatePipsTest, TransitionsFiredAtATickAreNeverTakenBack) {
  auto config = QuotaWithoutLateness();
  KpiProjection kpis(config);
  uint64_t sequence = 0;
  TwoBreachingWeeks(kpis, &sequence);
  const absl::Time monday = kMonday;
  const absl::Duration week = kWeek;
  EXPECT_TRUE(kpis.PipTransitionRecords().empty());  // no tick yet: not judged
  Tick(kpis, ++sequence, monday + 2 * week + absl::Hours(1));
  const std::vector<std::string> fired = {
      "quota/ann/2027-01-11T00:00:00Z/watch",
      "quota/ann/2027-01-18T00:00:00Z/triggered"};
  EXPECT_EQ(FiredIds(kpis), fired);
  EXPECT_EQ(kpis.PipTransitionRecords()[1].plan_deadline().seconds(),
            absl::ToUnixSeconds(monday + 2 * week + absl::Hours(24 * 60)));

  // Week 1 turns out fine after all: the machine now says watch, and the
  // facts keep the trigger that was fired and add the new path's steps.
  Measure(kpis, ++sequence, "ann", 500, monday + absl::Hours(13),
          monday + 2 * week + absl::Hours(2));
  Tick(kpis, ++sequence, monday + 2 * week + absl::Hours(3));
  EXPECT_EQ(EvaluatePips(*config, kpis)[0].state, PipState::kWatch);
  std::vector<std::string> grown = fired;
  grown.push_back("quota/ann/2027-01-18T00:00:00Z/watch");
  EXPECT_EQ(FiredIds(kpis), grown);

  KpiProjection restored(config);
  ASSERT_TRUE(restored.Restore(kpis.Snapshot()).ok());
  EXPECT_EQ(FiredIds(restored), grown);
  Tick(restored, ++sequence, monday + 2 * week + absl::Hours(4));
  EXPECT_EQ(FiredIds(restored), grown);  // nothing fires twice
}

// Ticks without new measurements skip the machines, except when a period
// closes or a plan's deadline passes: those still fire on time.
TEST(EvaluatePipsTest, QuietTicksStillFireOnPeriodCloseAndDeadline) {
  auto config = QuotaWithoutLateness();
  KpiProjection kpis(config);
  uint64_t sequence = 0;
  TwoBreachingWeeks(kpis, &sequence);
  const absl::Time monday = kMonday;
  const absl::Duration week = kWeek;
  Tick(kpis, ++sequence, monday + 2 * week - absl::Hours(1));
  EXPECT_EQ(FiredIds(kpis),
            std::vector<std::string>{"quota/ann/2027-01-11T00:00:00Z/watch"});
  Tick(kpis, ++sequence, monday + 2 * week - absl::Minutes(1));  // quiet
  EXPECT_EQ(kpis.PipTransitionRecords().size(), 1u);
  // Week 2 closes: no new measurement, yet the trigger fires.
  Tick(kpis, ++sequence, monday + 2 * week + absl::Minutes(1));
  ASSERT_EQ(kpis.PipTransitionRecords().size(), 2u);
  EXPECT_EQ(kpis.PipTransitionRecords()[1].to_state(), "triggered");
  // Sixty days later, the plan's deadline passes without recovery.
  Tick(kpis, ++sequence, monday + 2 * week + absl::Hours(24 * 60));
  ASSERT_EQ(kpis.PipTransitionRecords().size(), 3u);
  EXPECT_EQ(kpis.PipTransitionRecords()[2].to_state(), "plan_expired");
}

// What a PIP machine's state says, field by field, for comparisons.
std::string Describe(const PipSubjectState& p) {
  std::string out = absl::StrCat(
      p.policy->id, "/", p.subject, " ", PipStateName(p.state), " streak ",
      p.streak, " insufficient ", p.insufficient_periods, " missed ",
      p.milestones_missed, " triggered ", absl::FormatTime(p.triggered_at),
      " deadline ", absl::FormatTime(p.deadline), " milestones ",
      Statuses(p.milestones), " next check-in ",
      absl::FormatTime(p.next_checkin), " passed ", p.checkins_passed);
  for (const PipTransition& t : p.transitions) absl::StrAppend(&out, " ", t.id);
  return out;
}

// The states the projection keeps, judging again only subjects with new
// data and everything at a period close or a deadline, equal what running
// every machine gives, read at random moments of a random stream of
// measurements of `measured` (late ones too) and ticks. Returns the
// transitions fired, by policy and state.
std::set<std::string> KeptStatesAgainstMachines(
    std::shared_ptr<const config::Config> config,
    const std::vector<std::string>& measured) {
  KpiProjection kpis(config);
  std::mt19937 random(7);
  uint64_t sequence = 0;
  absl::Time now = kMonday;
  int compared = 0;
  for (int step = 0; step < 4000; ++step) {
    const int op = static_cast<int>(random() % 10);
    if (op < 6) {
      const std::string& kpi = measured[random() % measured.size()];
      const std::string subject = absl::StrCat("s", random() % 6);
      // Mostly now, sometimes up to two weeks late.
      const absl::Time at =
          op == 0 ? now - absl::Hours(random() % (24 * 14)) : now;
      Measure(kpis, ++sequence, kpi, subject,
              static_cast<double>(random() % 160), at, now);
    } else {
      now += absl::Hours(random() % 30);
      Tick(kpis, ++sequence, now);
    }
    if (random() % 3 != 0) continue;
    std::vector<std::string> kept;
    kpis.ForEachPipState(
        [&](const PipSubjectState& p) { kept.push_back(Describe(p)); });
    std::vector<std::string> again;
    for (const PipSubjectState& p : EvaluatePips(*config, kpis)) {
      again.push_back(Describe(p));
    }
    EXPECT_EQ(kept, again) << "step " << step;
    if (kept != again) break;
    ++compared;
  }
  EXPECT_GT(compared, 1000);
  std::set<std::string> reached;
  for (const okrd::v1::PipTransition& t : kpis.PipTransitionRecords()) {
    reached.insert(absl::StrCat(t.policy(), " ", t.to_state()));
  }
  return reached;
}

TEST(EvaluatePipsTest, KeptStatesEqualEveryMachineRunAgain) {
  auto config = WeeklyRevenue(config::Aggregation::kMean);
  config::PipPolicyOptions quota = Policy();
  quota.min_samples = 1;
  quota.plan_days = 10;
  quota.milestones = {{.id = "day-3", .day = 3, .threshold = 85},
                      {.id = "day-9", .day = 9, .threshold = 88}};
  quota.checkin_every = absl::Hours(50);
  config::PipPolicyOptions listed = quota;
  listed.id = "listed";
  listed.comparator = config::Comparator::kAbove;
  listed.trigger = 120;
  listed.recovery = 100;
  listed.subjects = {"s1", "s3"};
  config->pip_policies = {quota, listed};
  // The stream goes through every state.
  const std::set<std::string> reached =
      KeptStatesAgainstMachines(config, {"revenue"});
  for (const char* state :
       {"ok", "watch", "triggered", "recovered", "plan_expired"}) {
    EXPECT_TRUE(reached.contains(absl::StrCat("quota ", state))) << state;
  }
}

// Weekly "won" and "calls" (sums, closed a day after each week), the win
// rate in percent, and week-over-week growth of the win rate.
std::shared_ptr<const config::Config> WinRates(const std::string& policies) {
  auto config = config::ParseConfig(
      "kafka:\n  topics: [t]\nkpis:\n"
      "  - id: won\n    aggregation: sum\n    period: week\n"
      "    allowed_lateness: 1d\n"
      "  - id: calls\n    aggregation: sum\n    period: week\n"
      "    allowed_lateness: 1d\n"
      "  - id: win_rate\n    ratio: {numerator: won, denominator: calls, "
      "scale: 100}\n"
      "  - id: win_rate_growth\n    change: {of: win_rate}\n"
      "pip_policies:\n" +
          policies,
      "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : nullptr;
}

// Policies on a ratio and on a change of it: the kept states follow events
// of every input, the denominator's included, which no series of the base
// KPI shows.
TEST(EvaluatePipsTest, KeptStatesOfPoliciesOnDerivedKpisFollowEveryInput) {
  auto config = WinRates(
      "  - id: rate\n    kpi: win_rate\n    comparator: below\n"
      "    trigger: 60\n    recovery: 80\n    consecutive_periods: 2\n"
      "    min_samples: 2\n    plan_days: 10\n    cooldown_periods: 1\n"
      "  - id: falling\n    kpi: win_rate_growth\n    comparator: below\n"
      "    trigger: -0.3\n    recovery: 0\n    consecutive_periods: 1\n"
      "    min_samples: 1\n    plan_days: 7\n    subjects: [s1, s2, s4]\n");
  ASSERT_NE(config, nullptr);
  const std::set<std::string> reached =
      KeptStatesAgainstMachines(config, {"won", "calls"});
  for (const char* fired : {"rate watch", "rate triggered", "rate recovered",
                            "falling watch", "falling triggered"}) {
    EXPECT_TRUE(reached.contains(fired)) << fired;
  }
}

// A ratio's period rests on the fewer of its inputs' events: one won deal
// over many calls is one sample. Events of the denominator alone move the
// machine, and periods close with the inputs' allowed lateness.
TEST(EvaluatePipsTest, PolicyOnARatioCountsSamplesOfBothInputs) {
  auto config = WinRates(
      "  - id: rate\n    kpi: win_rate\n    comparator: below\n"
      "    trigger: 50\n    recovery: 70\n    consecutive_periods: 2\n"
      "    min_samples: 2\n");
  ASSERT_NE(config, nullptr);
  KpiProjection kpis(config);
  uint64_t sequence = 0;
  auto measure = [&](const std::string& kpi, double value, absl::Time t) {
    Measure(kpis, ++sequence, kpi, "ann", value, t, t);
  };
  auto state = [&] {
    std::vector<std::string> out;
    kpis.ForEachPipState([&](const PipSubjectState& p) {
      out.push_back(absl::StrCat(p.subject, " ", PipStateName(p.state), " ",
                                 p.streak, " ", p.insufficient_periods));
    });
    return out;
  };
  for (int week = 0; week < 3; ++week) {
    const absl::Time t = kMonday + kWeek * week + absl::Hours(12);
    // 2 of 10 calls won: 20%, below the trigger; in week 2 one deal only.
    measure("won", 1, t);
    if (week != 1) measure("won", 1, t + absl::Hours(1));
    for (int call = 0; call < 10; ++call) {
      measure("calls", 1, t + absl::Minutes(call));
    }
  }
  // Week 1 closed a day after its end; week 2 not yet.
  Tick(kpis, ++sequence, kMonday + kWeek * 2 + absl::Hours(12));
  EXPECT_EQ(state(), std::vector<std::string>{"ann watch 1 0"});
  // Week 2 has one won deal: not enough samples, the streak holds.
  Tick(kpis, ++sequence, kMonday + kWeek * 2 + absl::Hours(25));
  EXPECT_EQ(state(), std::vector<std::string>{"ann watch 1 1"});
  // Week 3 breaches too: triggered, however few calls it had. Then 30
  // more calls of week 3, arriving late but within the day of lateness,
  // take its rate to 2 of 40 (5%): still a breach.
  Tick(kpis, ++sequence, kMonday + kWeek * 3 + absl::Hours(1));
  EXPECT_EQ(state(), std::vector<std::string>{"ann watch 1 1"});
  for (int call = 0; call < 3; ++call) {
    Measure(kpis, ++sequence, "calls", "ann", 10,
            kMonday + kWeek * 2 + absl::Hours(100),
            kMonday + kWeek * 3 + absl::Hours(2));
  }
  Tick(kpis, ++sequence, kMonday + kWeek * 3 + absl::Hours(25));
  EXPECT_EQ(state(), std::vector<std::string>{"ann triggered 2 1"});
  ASSERT_EQ(kpis.PipTransitionRecords().size(), 2u);
  EXPECT_EQ(kpis.PipTransitionRecords()[1].id(),
            "rate/ann/2027-01-25T00:00:00Z/triggered");

  // A subject with calls but no won deals has no win rate: no series of
  // the base KPI, so no machine.
  Measure(kpis, ++sequence, "calls", "bob", 5,
          kMonday + kWeek * 3 + absl::Hours(26),
          kMonday + kWeek * 3 + absl::Hours(26));
  EXPECT_EQ(state().size(), 1u);
}

// Over a real projection: subject selection and period closing.
TEST(EvaluatePipsTest, SelectsSubjectsAndJudgesOnlyClosedPeriods) {
  auto config = WeeklyRevenue(config::Aggregation::kSum);
  config::PipPolicyOptions all = Policy();
  all.min_samples = 1;
  all.exclude = {"bob"};
  config::PipPolicyOptions listed = all;
  listed.id = "listed";
  listed.exclude.clear();
  listed.subjects = {"bob"};
  config->pip_policies = {all, listed};
  KpiProjection kpis(config);
  uint64_t sequence = 0;
  auto measure = [&](const std::string& subject, double value, absl::Time t,
                     absl::Time ingest) {
    Measure(kpis, ++sequence, subject, value, t, ingest);
  };
  // 2027-01-04 is a Monday: weekly periods start there.
  const absl::Time monday = kJan + absl::Hours(24 * 3);
  for (int week = 0; week < 3; ++week) {
    const absl::Time t = monday + absl::Hours(24 * 7) * week + absl::Hours(12);
    measure("ann", 50, t, t);
    measure("bob", 50, t, t);
  }
  // Clock: a day and a half into week 4: weeks 1-2 closed (end + 24h passed),
  // week 3 closed only 12 hours ago -> still open.
  kpis.AdvanceClock(monday + absl::Hours(24 * 21 + 12));
  auto states = EvaluatePips(*config, kpis);
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].policy->id, "quota");
  EXPECT_EQ(states[0].subject, "ann");
  EXPECT_EQ(states[0].state, PipState::kTriggered);
  EXPECT_EQ(states[1].policy->id, "listed");
  EXPECT_EQ(states[1].subject, "bob");
  kpis.AdvanceClock(monday + absl::Hours(24 * 20));  // clocks never go back
  EXPECT_EQ(EvaluatePips(*config, kpis)[0].transitions.size(), 2u);
}

// A late event inside the KPI's allowed lateness still counts for its period,
// because the period is judged only once that lateness has passed. (Events
// later than that are rejected at ingest as too_late; see validator_test.)
TEST(EvaluatePipsTest, LateEventInsideAllowedLatenessDecidesItsPeriod) {
  auto config = WeeklyRevenue(config::Aggregation::kMean);
  config::PipPolicyOptions policy = Policy();
  policy.min_samples = 1;
  config->pip_policies = {policy};
  const absl::Time monday = kJan + absl::Hours(24 * 3);  // 2027-01-04
  const absl::Time week2_end = monday + absl::Hours(24 * 14);
  auto run = [&](bool late_event) {
    KpiProjection kpis(config);
    uint64_t sequence = 0;
    auto measure = [&](double value, absl::Time t, absl::Time ingest) {
      Measure(kpis, ++sequence, "ann", value, t, ingest);
    };
    measure(50, monday + absl::Hours(12), monday + absl::Hours(12));
    measure(50, monday + absl::Hours(24 * 8), monday + absl::Hours(24 * 8));
    // Twelve hours after week 2 ended: not closed yet, only week 1 judged.
    kpis.AdvanceClock(week2_end + absl::Hours(12));
    EXPECT_EQ(EvaluatePips(*config, kpis)[0].state, PipState::kWatch);
    if (late_event) {
      measure(250, week2_end - absl::Hours(1), week2_end + absl::Hours(20));
    }
    kpis.AdvanceClock(week2_end + absl::Hours(25));
    return EvaluatePips(*config, kpis)[0].state;
  };
  EXPECT_EQ(run(false), PipState::kTriggered);
  EXPECT_EQ(run(true), PipState::kOk);  // week 2's mean is 150: no breach
}

}  // namespace
}  // namespace okrd::projection
