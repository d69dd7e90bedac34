#include "projection/okr.h"

#include <string>

#include "core/time_util.h"
#include "gtest/gtest.h"

namespace okrd::projection {
namespace {

using config::Direction;
using config::KeyResultOptions;

KeyResultOptions Kr(Direction d, double baseline, double target) {
  KeyResultOptions kr;
  kr.direction = d;
  kr.baseline = baseline;
  kr.target = target;
  return kr;
}

KeyResultOptions Range(double low, double high) {
  KeyResultOptions kr;
  kr.direction = Direction::kRange;
  kr.low = low;
  kr.high = high;
  return kr;
}

struct ProgressCase {
  const char* name;
  KeyResultOptions kr;
  double current;
  double raw;
};

TEST(RawProgressTest, EveryDirection) {
  const ProgressCase cases[] = {
      {"increase halfway", Kr(Direction::kIncrease, 100, 140), 120, 0.5},
      {"increase at baseline", Kr(Direction::kIncrease, 100, 140), 100, 0},
      {"increase overshoot", Kr(Direction::kIncrease, 100, 140), 160, 1.5},
      {"increase regression", Kr(Direction::kIncrease, 100, 140), 90, -0.25},
      {"decrease halfway", Kr(Direction::kDecrease, 5, 3), 4, 0.5},
      {"decrease at target", Kr(Direction::kDecrease, 5, 3), 3, 1},
      {"decrease overshoot", Kr(Direction::kDecrease, 5, 3), 2, 1.5},
      {"decrease worse", Kr(Direction::kDecrease, 5, 3), 6, -0.5},
      {"negative values", Kr(Direction::kIncrease, -10, -2), -6, 0.5},
      {"at_least met", Kr(Direction::kAtLeast, 0, 80), 85, 1},
      {"at_least short", Kr(Direction::kAtLeast, 0, 80), 60, 0.75},
      {"at_least negative", Kr(Direction::kAtLeast, 0, 80), -5, 0},
      {"at_most met", Kr(Direction::kAtMost, 0, 24), 20, 1},
      {"at_most over", Kr(Direction::kAtMost, 0, 24), 48, 0.5},
      {"range inside", Range(90, 110), 100, 1},
      {"range edge", Range(90, 110), 110, 1},
      {"range below", Range(90, 110), 85, 0.75},
      {"range above", Range(90, 110), 120, 0.5},
      {"range far", Range(90, 110), 200, -3.5},
      {"milestone reached", Kr(Direction::kMilestone, 0, 1), 1, 1},
      {"milestone not yet", Kr(Direction::kMilestone, 0, 1), 0, 0},
  };
  for (const ProgressCase& c : cases) {
    EXPECT_DOUBLE_EQ(RawProgress(c.kr, c.current), c.raw) << c.name;
  }
}

const absl::Time kStart = absl::FromUnixSeconds(1790000000);
const absl::Time kEnd = kStart + absl::Hours(24 * 100);

absl::Time AtElapsed(double share) { return kStart + (kEnd - kStart) * share; }

KrStatus Status(std::optional<double> value, double raw, absl::Time now,
                absl::Time last_event) {
  KrInputs in;
  in.value = value;
  in.last_event = last_event;
  in.staleness = absl::Hours(48);
  return StatusOf(in, raw, ElapsedRatio(kStart, kEnd, now), kStart, kEnd, now);
}

TEST(StatusTest, EachBoundary) {
  const absl::Time mid = AtElapsed(0.5);
  EXPECT_EQ(Status(std::nullopt, 0, mid, mid), KrStatus::kNoData);
  EXPECT_EQ(Status(1, 1.0, mid, mid), KrStatus::kAchieved);
  EXPECT_EQ(Status(1, 0.99, kEnd, kEnd), KrStatus::kMissed);
  // Zero remaining time with the target met is achieved, not missed.
  EXPECT_EQ(Status(1, 1.2, kEnd, kEnd), KrStatus::kAchieved);
  EXPECT_EQ(Status(1, 0.5, mid, mid - absl::Hours(49)), KrStatus::kStale);
  EXPECT_EQ(Status(1, 0.5, mid, mid - absl::Hours(48)), KrStatus::kOnTrack);
  EXPECT_EQ(Status(1, 0.0, AtElapsed(0.099), AtElapsed(0.099)),
            KrStatus::kTooEarly);
  EXPECT_EQ(Status(1, 0.0, AtElapsed(0.10), AtElapsed(0.10)),
            KrStatus::kOnTrack);
  // gap = expected - progress at 50% elapsed.
  EXPECT_EQ(Status(1, 0.35, mid, mid), KrStatus::kOnTrack);   // gap 0.15
  EXPECT_EQ(Status(1, 0.34, mid, mid), KrStatus::kAtRisk);    // gap 0.16
  EXPECT_EQ(Status(1, 0.20, mid, mid), KrStatus::kAtRisk);    // gap 0.30
  EXPECT_EQ(Status(1, 0.19, mid, mid), KrStatus::kOffTrack);  // gap 0.31
  EXPECT_EQ(Status(1, -2, mid, mid), KrStatus::kOffTrack);
  EXPECT_EQ(Status(1, 0.0, kStart - absl::Hours(1), kStart),
            KrStatus::kTooEarly);
}

TEST(ElapsedRatioTest, ClampsOutsideThePeriod) {
  EXPECT_EQ(ElapsedRatio(kStart, kEnd, kStart - absl::Hours(1)), 0);
  EXPECT_EQ(ElapsedRatio(kStart, kEnd, kEnd + absl::Hours(1)), 1);
  EXPECT_DOUBLE_EQ(ElapsedRatio(kStart, kEnd, AtElapsed(0.25)), 0.25);
}

// Three levels: company <- product (weight 3) <- team-a (weight 1), with
// uneven key-result weights, evaluated over a real KPI projection.
class RollupTest : public ::testing::Test {
 protected:
  RollupTest() {
    auto config = std::make_shared<config::Config>();
    config::KpiOptions kpi;
    kpi.id = "adoption";
    kpi.aggregation = config::Aggregation::kLatest;
    kpi.period = config::PeriodKind::kQuarter;
    kpi.staleness = absl::Hours(24 * 30);
    config->kpis.push_back(kpi);
    auto objective = [&](std::string id, std::string parent, double weight) {
      config::ObjectiveOptions o;
      o.id = std::move(id);
      o.parent = std::move(parent);
      o.weight = weight;
      o.start = kStart;
      o.end = kEnd;
      return o;
    };
    auto kr = [](std::string id, std::string subject, double weight) {
      KeyResultOptions k = Kr(Direction::kIncrease, 0, 100);
      k.id = std::move(id);
      k.kpi = "adoption";
      k.subject = std::move(subject);
      k.weight = weight;
      return k;
    };
    config::ObjectiveOptions company = objective("company", "", 1);
    company.key_results = {kr("c1", "all", 1)};
    config::ObjectiveOptions product = objective("product", "company", 3);
    product.key_results = {kr("p1", "web", 1), kr("p2", "mobile", 3)};
    config::ObjectiveOptions team = objective("team-a", "product", 1);
    team.key_results = {kr("t1", "team-a", 2)};
    // Children listed before parents must still roll up.
    config->objectives = {team, company, product};
    config_ = config;
    kpis_ = std::make_unique<KpiProjection>(config);
  }

  void Measure(const std::string& subject, double value) {
    okrd::v1::StoredEvent record;
    record.set_sequence(++sequence_);
    record.set_ingest_time_us(absl::ToUnixMicros(AtElapsed(0.5)));
    auto* e = record.mutable_event();
    e->set_kpi("adoption");
    e->set_subject(subject);
    e->set_value(value);
    ToProto(AtElapsed(0.4), e->mutable_event_time());
    kpis_->Apply(record);
  }

  std::shared_ptr<const config::Config> config_;
  std::unique_ptr<KpiProjection> kpis_;
  uint64_t sequence_ = 0;
};

TEST_F(RollupTest, WeightedMeanOverThreeLevels) {
  Measure("all", 10);      // c1 0.1
  Measure("web", 40);      // p1 0.4
  Measure("mobile", 80);   // p2 0.8
  Measure("team-a", 150);  // t1 1.5 -> clamped 1
  const OkrState state = EvaluateOkrs(*config_, *kpis_);
  std::map<std::string, double> progress;
  for (const auto& o : state.objectives) progress[o.objective->id] = o.progress;
  // team-a: 1. product: (1*0.4 + 3*0.8 + 1*1) / 5 = 0.76.
  // company: (1*0.1 + 3*0.76) / 4 = 0.595.
  EXPECT_DOUBLE_EQ(progress["team-a"], 1.0);
  EXPECT_DOUBLE_EQ(progress["product"], 0.76);
  EXPECT_DOUBLE_EQ(progress["company"], 0.595);
  for (const auto& kr : state.key_results) {
    if (kr.key_result->id == "t1") {
      EXPECT_DOUBLE_EQ(kr.raw_progress, 1.5);
      EXPECT_EQ(kr.progress, 1);
      EXPECT_EQ(kr.status, KrStatus::kAchieved);
    }
    if (kr.key_result->id == "c1") {
      EXPECT_DOUBLE_EQ(kr.expected, 0.5);
      EXPECT_EQ(kr.status, KrStatus::kOffTrack);
    }
  }
}

// The kept state is EvaluateOkrs' answer after every kind of change, and
// is not evaluated again while nothing changes.
TEST_F(RollupTest, KeptStateFollowsEveryChange) {
  auto expect_current = [&](const char* after) {
    SCOPED_TRACE(after);
    const OkrState& kept = kpis_->okrs();
    const OkrState fresh = EvaluateOkrs(*config_, *kpis_);
    ASSERT_EQ(kept.key_results.size(), fresh.key_results.size());
    for (size_t i = 0; i < fresh.key_results.size(); ++i) {
      EXPECT_EQ(kept.key_results[i].value, fresh.key_results[i].value);
      EXPECT_EQ(kept.key_results[i].raw_progress,
                fresh.key_results[i].raw_progress);
      EXPECT_EQ(kept.key_results[i].expected, fresh.key_results[i].expected);
      EXPECT_EQ(kept.key_results[i].status, fresh.key_results[i].status);
    }
    ASSERT_EQ(kept.objectives.size(), fresh.objectives.size());
    for (size_t i = 0; i < fresh.objectives.size(); ++i) {
      EXPECT_EQ(kept.objectives[i].progress, fresh.objectives[i].progress);
    }
    // Read again with no change between: the same evaluation.
    EXPECT_EQ(&kpis_->okrs(), &kept);
  };
  expect_current("nothing folded");
  Measure("web", 40);
  expect_current("a measurement");
  Measure("web", 60);
  expect_current("a second one in the same period");
  kpis_->AdvanceClock(AtElapsed(0.9));  // expected progress moves
  expect_current("the clock");
  const okrd::v1::ProjectionSnapshot snapshot = kpis_->Snapshot();
  Measure("all", 10);
  expect_current("another key result's measurement");
  ASSERT_TRUE(kpis_->Restore(snapshot).ok());
  expect_current("a restored snapshot");
}

TEST_F(RollupTest, KeyResultsWithoutDataCountAsZero) {
  Measure("web", 100);
  const OkrState state = EvaluateOkrs(*config_, *kpis_);
  for (const auto& o : state.objectives) {
    if (o.objective->id == "product") {
      EXPECT_DOUBLE_EQ(o.progress, 0.2);  // (1*1 + 3*0 + 1*0) / 5
    }
  }
  for (const auto& kr : state.key_results) {
    if (kr.key_result->id == "p2") {
      EXPECT_EQ(kr.status, KrStatus::kNoData);
    }
  }
}

}  // namespace
}  // namespace okrd::projection

namespace okrd::projection {
namespace {

// Instances that own different key results export their contributions;
// summed, they must give each objective's progress.
TEST_F(RollupTest, ContributionsSumToEveryAncestorsProgress) {
  Measure("all", 10);
  Measure("web", 40);
  Measure("team-a", 150);  // "mobile" has no data: contributes 0
  const OkrState state = EvaluateOkrs(*config_, *kpis_);
  std::map<std::string, double> sums;
  for (const auto& kr : state.key_results) {
    ASSERT_FALSE(kr.contributions.empty()) << kr.key_result->id;
    // Its own objective first, the root last.
    EXPECT_EQ(kr.contributions.front().objective, kr.objective);
    EXPECT_TRUE(kr.contributions.back().objective->parent.empty());
    for (const auto& c : kr.contributions) sums[c.objective->id] += c.value;
  }
  ASSERT_EQ(sums.size(), state.objectives.size());
  for (const auto& o : state.objectives) {
    EXPECT_NEAR(sums[o.objective->id], o.progress, 1e-12) << o.objective->id;
  }
  // t1 (clamped to 1) is 1/1 of team-a, 1/5 of product, 3/4 of company.
  for (const auto& kr : state.key_results) {
    if (kr.key_result->id != "t1") continue;
    ASSERT_EQ(kr.contributions.size(), 3u);
    EXPECT_DOUBLE_EQ(kr.contributions[0].value, 1.0);
    EXPECT_DOUBLE_EQ(kr.contributions[1].value, 0.2);
    EXPECT_DOUBLE_EQ(kr.contributions[2].value, 0.15);
  }
}

}  // namespace
}  // namespace okrd::projection
