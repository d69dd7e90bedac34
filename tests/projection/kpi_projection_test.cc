#include "projection/kpi_projection.h"

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/time_util.h"
#include "gtest/gtest.h"
#include "projection/okr.h"
#include "projection/pip.h"

namespace okrd::projection {
namespace {

using config::Aggregation;

absl::Time At(const char* rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

// An accepted measurement at log sequence `sequence`, as the log stores it.
okrd::v1::StoredEvent Measurement(uint64_t sequence, const std::string& kpi,
                                  const std::string& subject, double value,
                                  const char* time, const char* ingest) {
  okrd::v1::StoredEvent record;
  record.set_sequence(sequence);
  record.set_ingest_time_us(absl::ToUnixMicros(At(ingest)));
  auto* e = record.mutable_event();
  e->set_event_id("e" + std::to_string(sequence));
  e->set_kpi(kpi);
  e->set_subject(subject);
  e->set_value(value);
  ToProto(At(time), e->mutable_event_time());
  return record;
}

class KpiProjectionTest : public ::testing::Test {
 protected:
  // One monthly UTC KPI per aggregation, named after it.
  KpiProjectionTest() {
    auto config = std::make_shared<config::Config>();
    for (Aggregation a :
         {Aggregation::kLatest, Aggregation::kSum, Aggregation::kCount,
          Aggregation::kMean, Aggregation::kMin, Aggregation::kMax}) {
      config::KpiOptions kpi;
      kpi.id = std::string(config::AggregationName(a));
      kpi.aggregation = a;
      config->kpis.push_back(kpi);
    }
    for (const auto& [id, q] :
         {std::pair{"median", 0.5}, std::pair{"p90", 0.9}}) {
      config::KpiOptions kpi;
      kpi.id = id;
      kpi.aggregation = Aggregation::kQuantile;
      kpi.quantile = q;
      config->kpis.push_back(kpi);
    }
    // Derived: sum over count in percent, and the sum's change.
    config::KpiOptions ratio;
    ratio.id = "sum_per_count";
    ratio.derived.kind = config::DerivedKpi::Kind::kRatio;
    ratio.derived.inputs = {"sum", "count"};
    ratio.derived.scale = 100;
    config->kpis.push_back(ratio);
    config::KpiOptions change;
    change.id = "sum_growth";
    change.derived.kind = config::DerivedKpi::Kind::kChange;
    change.derived.inputs = {"sum"};
    config->kpis.push_back(change);
    config::KpiOptions yearly = change;
    yearly.id = "sum_vs_last_year";
    yearly.derived.same_period_last_year = true;
    yearly.derived.relative = false;
    config->kpis.push_back(yearly);
    config::KpiOptions nested = change;
    nested.id = "ratio_growth";
    nested.derived.inputs = {"sum_per_count"};
    config->kpis.push_back(nested);
    config_ = config;
    projection_ = std::make_unique<KpiProjection>(config);
  }

  void Apply(const std::string& kpi, const std::string& subject, double value,
             const char* time, const char* ingest = "2026-11-25T12:00:00Z") {
    projection_->Apply(Record(kpi, subject, value, time, ingest));
  }

  // The next accepted measurement as the log would store it.
  okrd::v1::StoredEvent Record(const std::string& kpi,
                               const std::string& subject, double value,
                               const char* time,
                               const char* ingest = "2026-11-25T12:00:00Z") {
    return Measurement(++sequence_, kpi, subject, value, time, ingest);
  }

  // Folds a correction or retraction as the log resolves it.
  void Amend(const std::string& kpi, okrd::v1::EventKind kind, double value,
             uint64_t target_sequence, const char* target_time,
             double previous_value) {
    okrd::v1::StoredEvent record;
    record.set_sequence(++sequence_);
    record.set_ingest_time_us(absl::ToUnixMicros(At("2026-11-25T12:00:00Z")));
    auto* e = record.mutable_event();
    e->set_event_id("a" + std::to_string(sequence_));
    e->set_kpi(kpi);
    e->set_subject("team-a");
    e->set_value(value);
    e->set_kind(kind);
    ToProto(At("2026-11-25T12:00:00Z"), e->mutable_event_time());
    auto* a = record.mutable_amends();
    a->set_target_sequence(target_sequence);
    ToProto(At(target_time), a->mutable_target_event_time());
    a->set_previous_value(previous_value);
    projection_->Apply(record);
  }

  // "kpi/subject/period" -> value of every exported series.
  std::map<std::string, double> Series() {
    std::map<std::string, double> out;
    projection_->ForEachSeries([&](const KpiSeries& s) {
      out[s.kpi->id + "/" + *s.subject + "/" + s.period_label] = s.value;
    });
    return out;
  }

  std::shared_ptr<const config::Config> config_;
  std::unique_ptr<KpiProjection> projection_;
  uint64_t sequence_ = 0;
};

TEST_F(KpiProjectionTest, EachAggregation) {
  for (const char* kpi : {"latest", "sum", "count", "mean", "min", "max"}) {
    Apply(kpi, "team-a", 4, "2026-11-02T00:00:00Z");
    Apply(kpi, "team-a", 10, "2026-11-20T00:00:00Z");
    Apply(kpi, "team-a", -2, "2026-11-10T00:00:00Z");
  }
  const auto series = Series();
  EXPECT_EQ(series.at("latest/team-a/current"), 10);  // newest event time
  EXPECT_EQ(series.at("sum/team-a/current"), 12);
  EXPECT_EQ(series.at("count/team-a/current"), 3);
  EXPECT_EQ(series.at("mean/team-a/current"), 4);
  EXPECT_EQ(series.at("min/team-a/current"), -2);
  EXPECT_EQ(series.at("max/team-a/current"), 10);
  EXPECT_EQ(projection_->sequence(), 18u);
}

TEST_F(KpiProjectionTest, LatestBreaksTiesByLogOrder) {
  Apply("latest", "team-a", 1, "2026-11-05T00:00:00Z");
  Apply("latest", "team-a", 2, "2026-11-05T00:00:00Z");
  EXPECT_EQ(Series().at("latest/team-a/current"), 2);
}

TEST_F(KpiProjectionTest, ExportsCurrentAndPreviousPeriodOnly) {
  Apply("sum", "team-a", 1, "2026-09-15T00:00:00Z");
  Apply("sum", "team-a", 2, "2026-10-15T00:00:00Z");
  Apply("sum", "team-a", 3, "2026-11-15T00:00:00Z");
  Apply("sum", "team-b", 5, "2026-11-16T00:00:00Z");
  const auto series = Series();
  EXPECT_EQ(series,
            (std::map<std::string, double>{{"sum/team-a/current", 3},
                                           {"sum/team-a/previous", 2},
                                           {"sum/team-b/current", 5},
                                           // Derived: 3 against 2, 2 against 1.
                                           {"sum_growth/team-a/current", 0.5},
                                           {"sum_growth/team-a/previous", 1}}));
  // The older period is still aggregated, only not exported.
  const Aggregate* sept =
      projection_->Find("sum", "team-a", At("2026-09-01T00:00:00Z"));
  ASSERT_NE(sept, nullptr);
  EXPECT_EQ(sept->sum(), 1);
}

TEST_F(KpiProjectionTest, CurrentFollowsTheLoggedClock) {
  Apply("sum", "team-a", 3, "2026-11-15T00:00:00Z", "2026-11-15T00:00:00Z");
  EXPECT_EQ(Series().count("sum/team-a/current"), 1u);
  projection_->AdvanceClock(At("2026-12-01T00:00:00Z"));
  EXPECT_EQ(Series(),
            (std::map<std::string, double>{{"sum/team-a/previous", 3}}));
}

TEST_F(KpiProjectionTest, LoggedTicksMoveTheClock) {
  Apply("sum", "team-a", 3, "2026-11-15T00:00:00Z", "2026-11-15T00:00:00Z");
  okrd::v1::StoredEvent tick;
  tick.set_sequence(++sequence_);
  tick.mutable_tick()->set_wall_time_us(
      absl::ToUnixMicros(At("2026-12-02T00:00:00Z")));
  projection_->Apply(tick);
  EXPECT_EQ(projection_->clock(), At("2026-12-02T00:00:00Z"));
  EXPECT_EQ(projection_->sequence(), 2u);
  EXPECT_EQ(Series(),
            (std::map<std::string, double>{{"sum/team-a/previous", 3}}));
}

TEST_F(KpiProjectionTest, CorrectionsAndRetractionsAcrossPeriods) {
  // October and November values for every aggregation; then, in November,
  // amend October's first value and retract November's largest.
  for (const char* kpi : {"latest", "sum", "count", "mean", "min", "max"}) {
    Apply(kpi, "team-a", 4, "2026-10-02T00:00:00Z");   // seq a
    Apply(kpi, "team-a", 6, "2026-10-20T00:00:00Z");   // seq a+1
    Apply(kpi, "team-a", 10, "2026-11-20T00:00:00Z");  // seq a+2
    Apply(kpi, "team-a", 1, "2026-11-10T00:00:00Z");   // seq a+3
    const uint64_t first = sequence_ - 3;
    Amend(kpi, okrd::v1::CORRECTION, 9, first, "2026-10-02T00:00:00Z", 4);
    Amend(kpi, okrd::v1::RETRACTION, 0, first + 2, "2026-11-20T00:00:00Z", 10);
  }
  const auto series = Series();
  // October: {9 (corrected from 4) at Oct 2, 6 at Oct 20}.
  EXPECT_EQ(series.at("latest/team-a/previous"), 6);
  EXPECT_EQ(series.at("sum/team-a/previous"), 15);
  EXPECT_EQ(series.at("count/team-a/previous"), 2);
  EXPECT_EQ(series.at("mean/team-a/previous"), 7.5);
  EXPECT_EQ(series.at("min/team-a/previous"), 6);
  EXPECT_EQ(series.at("max/team-a/previous"), 9);
  // November: {1 at Nov 10}; 10 at Nov 20 retracted.
  for (const char* kpi : {"latest", "sum", "mean", "min", "max"}) {
    EXPECT_EQ(series.at(std::string(kpi) + "/team-a/current"), 1) << kpi;
  }
  EXPECT_EQ(series.at("count/team-a/current"), 1);
}

// Quantiles answer within the sketch's 1% of the value of rank
// floor(q * (n - 1)), and follow corrections and retractions of their
// values, at the edges of their periods.
TEST_F(KpiProjectionTest, QuantilesFollowCorrectionsAndRetractions) {
  for (const char* kpi : {"median", "p90"}) {
    // October's last second and November's first: two periods.
    Apply(kpi, "team-a", 100, "2026-10-31T23:59:59Z");
    const uint64_t october = sequence_;
    for (int v = 1; v <= 10; ++v) {
      Apply(kpi, "team-a", v, "2026-11-01T00:00:00Z");
    }
    // 3 -> 30, and 10 taken out: {1, 2, 4, ..., 9, 30}.
    Amend(kpi, okrd::v1::CORRECTION, 30, october + 3, "2026-11-01T00:00:00Z",
          3);
    Amend(kpi, okrd::v1::RETRACTION, 0, october + 10, "2026-11-01T00:00:00Z",
          10);
  }
  const auto series = Series();
  EXPECT_NEAR(series.at("median/team-a/previous"), 100, 1);
  EXPECT_NEAR(series.at("p90/team-a/previous"), 100, 1);
  // Ten values: ranks 4 (the median) and 8 (p90).
  EXPECT_NEAR(series.at("median/team-a/current"), 6, 0.06);
  EXPECT_NEAR(series.at("p90/team-a/current"), 9, 0.09);
  // Retracting October's only value leaves no October series.
  Amend("median", okrd::v1::RETRACTION, 0, 1, "2026-10-31T23:59:59Z", 100);
  EXPECT_EQ(Series().count("median/team-a/previous"), 0u);
}

TEST_F(KpiProjectionTest, DerivedKpisFollowTheirInputs) {
  // A year ago, last month and this month, for team-a; team-b only now.
  Apply("sum", "team-a", 50, "2025-11-30T23:59:59Z");
  Apply("sum", "team-a", 80, "2026-10-31T23:59:59Z");
  Apply("count", "team-a", 1, "2026-10-31T23:59:59Z");
  Apply("count", "team-a", 1, "2026-10-01T00:00:00Z");
  Apply("sum", "team-a", 60, "2026-11-01T00:00:00Z");
  const uint64_t sixty = sequence_;
  Apply("sum", "team-a", 40, "2026-11-20T00:00:00Z");
  for (int i = 0; i < 4; ++i)
    Apply("count", "team-a", 1, "2026-11-02T00:00:00Z");
  Apply("sum", "team-b", 5, "2026-11-03T00:00:00Z");
  auto series = Series();
  // sum 100 over 4 events this month, 80 over 2 last month; in percent.
  EXPECT_DOUBLE_EQ(series.at("sum_per_count/team-a/current"), 2500);
  EXPECT_DOUBLE_EQ(series.at("sum_per_count/team-a/previous"), 4000);
  // 100 against 80: +25%; last month's change has no October 2026 ... base.
  EXPECT_DOUBLE_EQ(series.at("sum_growth/team-a/current"), 0.25);
  EXPECT_EQ(series.count("sum_growth/team-a/previous"), 0u);  // no September
  // November 2026 against November 2025, absolute.
  EXPECT_DOUBLE_EQ(series.at("sum_vs_last_year/team-a/current"), 50);
  // The ratio's own change: 2500 against 4000.
  EXPECT_DOUBLE_EQ(series.at("ratio_growth/team-a/current"), -0.375);
  // team-b has no count: no ratio, never a division by zero.
  EXPECT_EQ(series.count("sum_per_count/team-b/current"), 0u);
  EXPECT_EQ(series.count("sum_growth/team-b/current"), 0u);

  // A correction of an input moves every KPI derived from it.
  Amend("sum", okrd::v1::CORRECTION, 160, sixty, "2026-11-01T00:00:00Z", 60);
  series = Series();
  EXPECT_DOUBLE_EQ(series.at("sum_per_count/team-a/current"), 5000);
  EXPECT_DOUBLE_EQ(series.at("sum_growth/team-a/current"), 1.5);
  EXPECT_DOUBLE_EQ(series.at("sum_vs_last_year/team-a/current"), 150);
  // Key results read derived KPIs too, and their newest inputs' times.
  const config::KpiOptions* ratio = config_->FindKpi("sum_per_count");
  EXPECT_EQ(projection_->LatestValueWithin(*ratio, "team-a",
                                           At("2026-10-01T00:00:00Z"),
                                           At("2026-12-01T00:00:00Z")),
            5000);
  EXPECT_EQ(projection_->LastEventTime("sum_per_count", "team-a"),
            At("2026-11-20T00:00:00Z"));
  EXPECT_TRUE(projection_->Tracks("sum_growth", "team-b"));
  EXPECT_FALSE(projection_->Tracks("sum_growth", "team-c"));

  // A relative change against 0 has no value.
  Apply("sum", "team-c", 0, "2026-10-15T00:00:00Z");
  Apply("sum", "team-c", 3, "2026-11-15T00:00:00Z");
  series = Series();
  EXPECT_EQ(series.count("sum_growth/team-c/current"), 0u);
}

// Changes at calendar edges: a daily KPI in Berlin across the spring DST
// switch and a leap day, and a week starting on Sunday.
TEST(DerivedKpiEdgesTest, ChangesAtDstLeapDaysAndWeekStarts) {
  auto config = std::make_shared<config::Config>();
  config::KpiOptions daily;
  daily.id = "daily";
  daily.aggregation = Aggregation::kSum;
  daily.period = config::PeriodKind::kDay;
  daily.time_zone = "Europe/Berlin";
  ASSERT_TRUE(absl::LoadTimeZone(daily.time_zone, &daily.zone));
  config->kpis.push_back(daily);
  config::KpiOptions weekly = daily;
  weekly.id = "weekly";
  weekly.period = config::PeriodKind::kWeek;
  weekly.week_start = 7;
  config->kpis.push_back(weekly);
  auto change = [&](const char* id, const config::KpiOptions& of,
                    bool last_year) {
    config::KpiOptions c = of;
    c.id = id;
    c.derived.kind = config::DerivedKpi::Kind::kChange;
    c.derived.inputs = {of.id};
    c.derived.same_period_last_year = last_year;
    c.derived.relative = false;
    config->kpis.push_back(c);
  };
  change("daily_change", daily, false);
  change("daily_vs_last_year", daily, true);
  change("weekly_change", weekly, false);
  KpiProjection projection(config);
  uint64_t sequence = 0;
  auto apply = [&](const char* kpi, double value, const char* time) {
    projection.Apply(Measurement(++sequence, kpi, "team-a", value, time, time));
  };
  auto value = [&](const char* kpi, const char* period_start) {
    const config::KpiOptions* options = config->FindKpi(kpi);
    return projection.ValueIn(*options, "team-a",
                              PeriodContaining(At(period_start), *options));
  };
  // Berlin's clocks go forward on 2028-03-26, a day of 23 hours: 23:30 UTC
  // on the 25th is 00:30 on the 26th there (UTC+1), 21:59 UTC on the 26th
  // is 23:59 (UTC+2).
  for (const char* kpi : {"daily", "weekly"}) {
    apply(kpi, 10, "2028-03-25T12:00:00Z");
    apply(kpi, 4, "2028-03-25T23:30:00Z");  // 00:30 on the 26th in Berlin
    apply(kpi, 1, "2028-03-26T21:59:00Z");  // 23:59 CEST, still the 26th
  }
  EXPECT_EQ(value("daily_change", "2028-03-26T12:00:00Z"), -5);  // 5 vs 10
  // A leap day against the year before: the day after Feb 28, 2027.
  apply("daily", 7, "2027-03-01T12:00:00Z");
  apply("daily", 9, "2028-02-29T12:00:00Z");
  EXPECT_EQ(value("daily_vs_last_year", "2028-02-29T12:00:00Z"), 2);
  // Weeks from Sunday: Sat 2028-03-25 and Sun 2028-03-26 fall in two.
  EXPECT_EQ(value("weekly_change", "2028-03-26T12:00:00Z"), 5 - 10);
  EXPECT_EQ(value("weekly_change", "2028-03-19T12:00:00Z"), std::nullopt);
}

TEST_F(KpiProjectionTest, RetractingEveryValueLeavesNoSeries) {
  Apply("sum", "team-a", 3, "2026-11-15T00:00:00Z");
  Amend("sum", okrd::v1::RETRACTION, 0, sequence_, "2026-11-15T00:00:00Z", 3);
  EXPECT_TRUE(Series().empty());
}

TEST_F(KpiProjectionTest, SnapshotRestoresAnEquivalentProjection) {
  for (const char* kpi :
       {"latest", "sum", "count", "mean", "min", "max", "median", "p90"}) {
    Apply(kpi, "team-a", 4, "2026-10-02T00:00:00Z");
    Apply(kpi, "team-b", 6, "2026-11-20T00:00:00Z");
    // Event times carry nanoseconds; so do the times restored from them.
    Apply(kpi, "team-b", 2, "2026-11-21T00:00:00.123456789Z");
  }
  const okrd::v1::ProjectionSnapshot snapshot = projection_->Snapshot();
  EXPECT_EQ(snapshot.sequence(), projection_->sequence());
  KpiProjection restored(config_);
  ASSERT_TRUE(restored.Restore(snapshot).ok());
  EXPECT_EQ(restored.sequence(), projection_->sequence());
  EXPECT_EQ(restored.clock(), projection_->clock());
  EXPECT_EQ(restored.LastEventTime("max", "team-b"),
            At("2026-11-21T00:00:00.123456789Z"));
  EXPECT_EQ(projection_->LastEventTime("max", "team-b"),
            At("2026-11-21T00:00:00.123456789Z"));
  EXPECT_EQ(restored.Snapshot().SerializeAsString(),
            snapshot.SerializeAsString());
  // The same next records give the same state on both.
  for (const char* kpi : {"latest", "min", "max", "mean", "median"}) {
    const okrd::v1::StoredEvent next =
        Record(kpi, "team-b", 9, "2026-11-22T00:00:00Z");
    projection_->Apply(next);
    restored.Apply(next);
  }
  EXPECT_EQ(restored.Snapshot().SerializeAsString(),
            projection_->Snapshot().SerializeAsString());
  EXPECT_EQ(Series().at("max/team-b/current"), 9);
}

// Latest, min and max aggregates that hold two values each, refilled from
// the log, export what aggregates holding every value export, through
// random measurements, corrections and retractions over two periods; so
// do projections restored from their snapshots midway.
// Makes `record` amend a random one of the `live` events (by sequence): a
// retraction, or a correction to `value`, at `at`; `live` follows it.
template <typename Live>
void AmendRandomEvent(std::mt19937& random, std::map<uint64_t, Live>& live,
                      bool retract, double value, absl::Time at,
                      okrd::v1::StoredEvent& record) {
  auto target = live.begin();
  std::advance(target, random() % live.size());
  auto* e = record.mutable_event();
  e->set_kpi(target->second.kpi);
  if constexpr (requires { target->second.subject; }) {
    e->set_subject(target->second.subject);
  }
  e->set_kind(retract ? okrd::v1::RETRACTION : okrd::v1::CORRECTION);
  e->set_value(value);
  ToProto(at, e->mutable_event_time());
  auto* a = record.mutable_amends();
  a->set_target_sequence(target->first);
  ToProto(target->second.time, a->mutable_target_event_time());
  a->set_previous_value(target->second.value);
  if (retract) {
    live.erase(target);
  } else {
    target->second.value = value;
  }
}

TEST_F(KpiProjectionTest, HoldingFewValuesGivesTheSameValues) {
  std::vector<okrd::v1::StoredEvent> log;
  auto history =
      [&log](uint64_t from,
             const std::function<bool(const okrd::v1::StoredEvent&)>& fn) {
        for (const okrd::v1::StoredEvent& record : log) {
          if (record.sequence() >= from && !fn(record)) break;
        }
        return absl::OkStatus();
      };
  KpiProjection bounded(config_);
  bounded.SetHistory(history, /*kept=*/2);
  std::unique_ptr<KpiProjection> restored;
  std::mt19937 random(20261201);
  struct Live {
    std::string kpi;
    absl::Time time;
    double value;
  };
  std::map<uint64_t, Live> live;  // by sequence
  const char* kpis[] = {"latest", "min", "max"};
  const absl::Time october = At("2026-10-01T00:00:00Z");
  auto series_of = [](const KpiProjection& p) {
    std::map<std::string, double> out;
    p.ForEachSeries([&](const KpiSeries& s) {
      out[s.kpi->id + "/" + *s.subject + "/" + s.period_label] = s.value;
    });
    return out;
  };
  for (int step = 0; step < 3000; ++step) {
    okrd::v1::StoredEvent record;
    record.set_sequence(++sequence_);
    record.set_ingest_time_us(absl::ToUnixMicros(At("2026-11-25T12:00:00Z")));
    auto* e = record.mutable_event();
    e->set_event_id("r" + std::to_string(sequence_));
    e->set_subject("team-a");
    const int op = static_cast<int>(random() % 10);
    // Values from a small range, so min and max see ties.
    const double value = static_cast<double>(random() % 12);
    if (op < 4 || live.empty()) {
      const Live added{kpis[random() % 3],
                       october + absl::Hours(random() % (24 * 61)), value};
      e->set_kpi(added.kpi);
      e->set_value(value);
      ToProto(added.time, e->mutable_event_time());
      live[record.sequence()] = added;
    } else {
      AmendRandomEvent(random, live, op < 7, value, At("2026-11-25T12:00:00Z"),
                       record);
    }
    log.push_back(record);
    projection_->Apply(record);
    bounded.Apply(record);
    if (restored != nullptr) restored->Apply(record);
    ASSERT_EQ(series_of(bounded), Series()) << "step " << step;
    if (restored != nullptr) {
      ASSERT_EQ(series_of(*restored), Series()) << "step " << step;
    }
    if (step == 1500) {
      restored = std::make_unique<KpiProjection>(config_);
      restored->SetHistory(history, 2);
      ASSERT_TRUE(restored->Restore(bounded.Snapshot()).ok());
    }
  }
  EXPECT_GT(bounded.refills(), 10u);
  EXPECT_EQ(projection_->refills(), 0u);
  // Bounded means bounded: two distinct values per period at most.
  for (const char* kpi : kpis) {
    for (const char* month : {"2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"}) {
      const Aggregate* a = bounded.Find(kpi, "team-a", At(month));
      ASSERT_NE(a, nullptr);
      okrd::v1::PeriodSnapshot saved;
      a->SaveTo(&saved);
      EXPECT_LE(saved.values_size() + saved.latest_value_size(), 2);
    }
  }
}

// Everything a read answers: every series, last event time, PIP state,
// transition and key result.
std::string Answers(const KpiProjection& p) {
  std::string out;
  p.ForEachSeries([&](const KpiSeries& s) {
    absl::StrAppend(&out, s.kpi->id, "/", *s.subject, "/", s.period_label, "=",
                    s.value, "\n");
  });
  p.ForEachSubject([&](const config::KpiOptions& kpi,
                       const std::string& subject, absl::Time last, uint32_t) {
    absl::StrAppend(&out, kpi.id, "/", subject, " last ", FormatUtc(last),
                    "\n");
  });
  p.ForEachPipState([&](const PipSubjectState& s) {
    absl::StrAppend(&out, s.policy->id, "/", s.subject, " ",
                    PipStateName(s.state), " streak ", s.streak,
                    " insufficient ", s.insufficient_periods, "\n");
  });
  for (const okrd::v1::PipTransition& t : p.PipTransitionRecords()) {
    absl::StrAppend(&out, "fired ", t.id(), "\n");
  }
  for (const KeyResultState& kr : p.okrs().key_results) {
    absl::StrAppend(&out, kr.key_result->id, " ",
                    kr.value ? absl::StrCat(*kr.value) : "none", "\n");
  }
  return out;
}

// A projection with a history lets go of the periods no read reaches any
// more, and answers every read as one holding every period: over three
// years of measurements (some a year or two late), corrections and
// retractions, with weekly and daily KPIs, changes against the period and
// the year before, a PIP policy and a key result reading old periods; so
// does one restored from its snapshot midway.
TEST_F(KpiProjectionTest, LettingGoOfOldPeriodsChangesNoAnswer) {
  auto config = std::make_shared<config::Config>(*config_);
  for (const auto& [id, period] :
       {std::pair{"weekly", config::PeriodKind::kWeek},
        std::pair{"daily", config::PeriodKind::kDay}}) {
    config::KpiOptions kpi;
    kpi.id = id;
    kpi.aggregation = Aggregation::kLatest;
    kpi.period = period;
    config->kpis.push_back(kpi);
  }
  config::KpiOptions daily_change;
  daily_change.id = "daily_vs_last_year";
  daily_change.period = config::PeriodKind::kDay;
  daily_change.derived.kind = config::DerivedKpi::Kind::kChange;
  daily_change.derived.inputs = {"daily"};
  daily_change.derived.same_period_last_year = true;
  config->kpis.push_back(daily_change);
  config::PipPolicyOptions policy;
  policy.id = "low-mean";
  policy.kpi = "mean";
  policy.subjects = {"team-a"};
  policy.trigger = 5;
  policy.recovery = 6;
  policy.plan_days = 60;
  policy.milestones = {{"halfway", 30, 5.5}};
  policy.actions = {
      {"coach", "Weekly coaching", config::PipAction::Kind::kMentoring, 7}};
  policy.checkin_every = absl::Hours(24 * 14);
  config->pip_policies.push_back(policy);
  policy.milestones.clear();
  policy.actions.clear();
  policy.checkin_every = absl::ZeroDuration();
  policy.id = "sum-below-last-year";
  policy.kpi = "sum_vs_last_year";
  policy.subjects = {"team-b"};
  policy.trigger = 0;
  policy.recovery = 5;
  config->pip_policies.push_back(policy);
  config::ObjectiveOptions objective;
  objective.id = "first-quarter";
  objective.start = At("2025-01-01T00:00:00Z");
  objective.end = At("2025-04-01T00:00:00Z");
  config::KeyResultOptions kr;
  kr.id = "weekly-b";
  kr.kpi = "weekly";
  kr.subject = "team-b";
  kr.target = 10;
  objective.key_results.push_back(kr);
  config->objectives.push_back(objective);

  std::vector<okrd::v1::StoredEvent> log;
  auto history =
      [&log](uint64_t from,
             const std::function<bool(const okrd::v1::StoredEvent&)>& fn) {
        for (const okrd::v1::StoredEvent& record : log) {
          if (record.sequence() >= from && !fn(record)) break;
        }
        return absl::OkStatus();
      };
  KpiProjection every(config);  // no history: holds every period
  KpiProjection bounded(config);
  bounded.SetHistory(history);
  std::unique_ptr<KpiProjection> restored;
  std::mt19937 random(20261202);
  struct Live {
    std::string kpi;
    std::string subject;
    absl::Time time;
    double value;
  };
  std::map<uint64_t, Live> live;  // by sequence
  std::vector<std::string> kpis;
  for (const config::KpiOptions& kpi : config->kpis) {
    if (!kpi.is_derived()) kpis.push_back(kpi.id);
  }
  const char* subjects[] = {"team-a", "team-b", "team-c"};
  absl::Time clock = At("2025-01-01T00:00:00Z");
  uint64_t sequence = 0;
  for (int step = 0; step < 6000; ++step) {
    clock += absl::Minutes(random() % (16 * 60));
    okrd::v1::StoredEvent record;
    record.set_sequence(++sequence);
    record.set_ingest_time_us(absl::ToUnixMicros(clock));
    const int op = static_cast<int>(random() % 20);
    const double value = static_cast<double>(random() % 12);
    if (op == 0) {
      record.clear_ingest_time_us();
      record.mutable_tick()->set_wall_time_us(absl::ToUnixMicros(clock));
    } else if (op < 14 || live.empty()) {
      // One in seven comes up to two years late.
      const absl::Duration late = op < 12
                                      ? absl::Minutes(random() % (3 * 24 * 60))
                                      : absl::Hours(random() % (2 * 365 * 24));
      // Two in five are daily, so that the daily pairs see years of days.
      const Live added{
          random() % 5 < 2 ? "daily" : kpis[random() % kpis.size()],
          subjects[random() % 3], clock - late, value};
      auto* e = record.mutable_event();
      e->set_event_id(absl::StrCat("r", sequence));
      e->set_kpi(added.kpi);
      e->set_subject(added.subject);
      e->set_value(value);
      ToProto(added.time, e->mutable_event_time());
      live[sequence] = added;
    } else {
      record.mutable_event()->set_event_id(absl::StrCat("r", sequence));
      AmendRandomEvent(random, live, op < 17, value, clock, record);
    }
    log.push_back(record);
    every.Apply(record);
    bounded.Apply(record);
    if (restored != nullptr) restored->Apply(record);
    if (step % 7 == 0 || step > 5900) {
      const std::string answers = Answers(every);
      ASSERT_EQ(Answers(bounded), answers) << "step " << step;
      if (restored != nullptr) {
        ASSERT_EQ(Answers(*restored), answers) << "step " << step;
      }
    }
    if (step == 3000) {
      restored = std::make_unique<KpiProjection>(config);
      restored->SetHistory(history);
      ASSERT_TRUE(restored->Restore(bounded.Snapshot()).ok());
    }
  }
  // A tick two months on, so that the machines seal what came last.
  okrd::v1::StoredEvent tick;
  tick.set_sequence(++sequence);
  tick.mutable_tick()->set_wall_time_us(
      absl::ToUnixMicros(clock + absl::Hours(24 * 62)));
  log.push_back(tick);
  for (KpiProjection* p : {&every, &bounded, restored.get()}) p->Apply(tick);
  ASSERT_EQ(Answers(bounded), Answers(every));
  ASSERT_EQ(Answers(*restored), Answers(every));
  ASSERT_GT(every.clock(), At("2028-01-01T00:00:00Z"));
  std::set<std::string> fired;
  for (const okrd::v1::PipTransition& t : every.PipTransitionRecords()) {
    fired.insert(t.policy());
  }
  EXPECT_EQ(fired.size(), 2u);
  // The records, plans included, are the same from each; and a projection
  // restored from the final snapshot holds them too.
  auto records = [](const KpiProjection& p) {
    std::vector<std::string> out;
    for (const okrd::v1::PipTransition& t : p.PipTransitionRecords()) {
      out.push_back(t.SerializeAsString());
    }
    return out;
  };
  const std::vector<std::string> all_records = records(every);
  EXPECT_EQ(records(bounded), all_records);
  EXPECT_EQ(records(*restored), all_records);
  KpiProjection again(config);
  again.SetHistory(history);
  ASSERT_TRUE(again.Restore(bounded.Snapshot()).ok());
  EXPECT_EQ(records(again), all_records);
  EXPECT_EQ(Answers(again), Answers(every));
  bool planned = false;
  for (const okrd::v1::PipTransition& t : every.PipTransitionRecords()) {
    planned |= t.milestones_size() > 0 && t.actions_size() > 0;
  }
  EXPECT_TRUE(planned);
  // Late measurements made machines judge every period again.
  EXPECT_GT(bounded.pip_rejudged(), 10u);
  EXPECT_EQ(every.pip_rejudged(), 0u);
  // What is held: every period of the pair the key result reads;
  // otherwise the current and previous ones, and what changes compare them
  // with: for `count`, the ratio's previous period; for `sum` and `daily`,
  // the year before. The PIP policies' machines resume from checkpoints.
  auto held = [](const KpiProjection& p) {
    std::map<std::string, int> out;
    const okrd::v1::ProjectionSnapshot snapshot = p.Snapshot();
    for (const okrd::v1::SubjectSnapshot& s : snapshot.subjects()) {
      out[s.kpi() + "/" + s.subject()] = s.periods_size();
    }
    return out;
  };
  const std::map<std::string, int> all = held(every);
  const std::map<std::string, int> kept = held(bounded);
  ASSERT_EQ(kept.size(), all.size());
  EXPECT_GT(all.at("daily/team-c"), 400);
  EXPECT_GT(all.at("latest/team-c"), 40);
  for (const auto& [pair, n] : kept) {
    const std::string kpi = pair.substr(0, pair.find('/'));
    if (pair == "weekly/team-b") {
      EXPECT_EQ(n, all.at(pair)) << pair;
    } else if (kpi == "sum" || kpi == "daily") {
      EXPECT_LE(n, kpi == "sum" ? 14 : 368) << pair;
    } else {
      EXPECT_LE(n, kpi == "count" ? 3 : 2) << pair;
    }
  }
  EXPECT_LT(bounded.period_count(), every.period_count() / 2);
  EXPECT_EQ(held(*restored), kept);
}

// A snapshot taken while an aggregate's refill was due (its log was
// unreadable then) holds a count and no values: restoring it reads them
// back from the log.
TEST_F(KpiProjectionTest, RestoreRefillsAnAggregateSavedWithoutValues) {
  std::vector<okrd::v1::StoredEvent> log = {
      Record("latest", "team-a", 4, "2026-11-02T00:00:00Z"),
      Record("latest", "team-a", 7, "2026-11-03T00:00:00Z")};
  for (const okrd::v1::StoredEvent& record : log) projection_->Apply(record);
  okrd::v1::ProjectionSnapshot snapshot = projection_->Snapshot();
  ASSERT_EQ(snapshot.subjects_size(), 1);
  okrd::v1::PeriodSnapshot* period =
      snapshot.mutable_subjects(0)->mutable_periods(0);
  ASSERT_EQ(period->count(), 2u);
  period->clear_latest_time_ns();
  period->clear_latest_sequence();
  period->clear_latest_value();
  KpiProjection restored(config_);
  restored.SetHistory(
      [&log](uint64_t from,
             const std::function<bool(const okrd::v1::StoredEvent&)>& fn) {
        for (const okrd::v1::StoredEvent& record : log) {
          if (record.sequence() >= from && !fn(record)) break;
        }
        return absl::OkStatus();
      });
  ASSERT_TRUE(restored.Restore(snapshot).ok());
  EXPECT_EQ(restored.refills(), 1u);
  std::map<std::string, double> series;
  restored.ForEachSeries([&](const KpiSeries& s) {
    series[s.kpi->id + "/" + *s.subject + "/" + s.period_label] = s.value;
  });
  EXPECT_EQ(series, Series());
  EXPECT_EQ(series.at("latest/team-a/current"), 7);
}

TEST_F(KpiProjectionTest, SnapshotOfOtherKpiDefinitionsIsRefused) {
  Apply("sum", "team-a", 1, "2026-11-02T00:00:00Z");
  okrd::v1::ProjectionSnapshot snapshot = projection_->Snapshot();
  auto changed = std::make_shared<config::Config>(projection_->config());
  changed->kpis[1].period = config::PeriodKind::kWeek;
  KpiProjection other(changed);
  EXPECT_EQ(other.Restore(snapshot).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(ConfigHash(*changed), snapshot.config_hash());
}

TEST_F(KpiProjectionTest, UnknownKpiAdvancesSequenceOnly) {
  Apply("retired", "team-a", 1, "2026-11-15T00:00:00Z");
  EXPECT_TRUE(Series().empty());
  EXPECT_EQ(projection_->sequence(), 1u);
  EXPECT_EQ(projection_->subject_count(), 0u);
}

}  // namespace
}  // namespace okrd::projection
