#include "config/config.h"

#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace okrd::config {
namespace {

constexpr char kValid[] = R"(kafka:
  brokers: embedded
  topics: [kpi-events]
kpis:
  - id: signups
    unit: count
    aggregation: sum
    period: month
    time_zone: Europe/Berlin
)";

std::string ErrorOf(const std::string& yaml) {
  auto config = ParseConfig(yaml, "test.yaml");
  if (config.ok()) return "ok";
  return std::string(config.status().message());
}

TEST(ConfigTest, LoadsMinimalConfigWithDefaults) {
  auto config = ParseConfig(kValid, "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Config& c = **config;
  EXPECT_EQ(c.kafka.group_id, "okrd");
  EXPECT_TRUE(c.storage.sync);
  EXPECT_EQ(c.http.listen, "127.0.0.1:9464");
  ASSERT_EQ(c.kpis.size(), 1u);
  EXPECT_EQ(c.kpis[0].aggregation, Aggregation::kSum);
  EXPECT_EQ(c.kpis[0].zone.name(), "Europe/Berlin");
  EXPECT_EQ(c.kpis[0].staleness, absl::Hours(48));
  EXPECT_NE(c.FindKpi("signups"), nullptr);
  EXPECT_EQ(c.FindKpi("churn"), nullptr);
}

TEST(ConfigTest, ExampleConfigIsValid) {
  auto config =
      LoadConfig(std::string(OKRD_SOURCE_DIR) + "/config/example.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_GE((*config)->kpis.size(), 5u);
}

TEST(ConfigTest, InvalidYamlNamesLine) {
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [a\nkpis: x\n").substr(0, 12),
            "test.yaml:3:");
}

TEST(ConfigTest, UnknownFieldIsAnError) {
  EXPECT_EQ(ErrorOf(std::string(kValid) + "    colour: red\n"),
            "test.yaml:10: kpis[0].colour: unknown field (expected one of "
            "aggregation, allowed_lateness, change, description, id, period, "
            "quantile, ratio, staleness, time_zone, unit, week_start)");
}

TEST(ConfigTest, MissingSectionsAndFields) {
  EXPECT_EQ(ErrorOf("kpis: []\n"),
            "test.yaml:1: kafka: required section is missing");
  EXPECT_EQ(ErrorOf("kafka:\n  brokers: embedded\nkpis:\n  - id: a\n"),
            "test.yaml:2: kafka.topics: at least one topic is required");
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\n"),
            "test.yaml:1: kpis: expected a non-empty list of KPIs");
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - unit: count\n"),
            "test.yaml:4: kpis[0].id: required field is missing");
}

TEST(ConfigTest, WrongTypes) {
  EXPECT_EQ(ErrorOf("kafka:\n  topics: t\nkpis:\n  - id: a\n"),
            "test.yaml:2: kafka.topics: expected a list of strings");
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\n  batch_max_messages: "
                    "lots\nkpis:\n  - id: a\n"),
            "test.yaml:3: kafka.batch_max_messages: expected an integer in [1, "
            "100000], got \"lots\"");
  EXPECT_EQ(
      ErrorOf(std::string(kValid) + "storage:\n  sync: maybe\n"),
      "test.yaml:11: storage.sync: expected true or false, got \"maybe\"");
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\n  properties: [a]\nkpis:\n  - id: a\n"),
      "test.yaml:3: kafka.properties: expected a mapping of strings");
}

TEST(ConfigTest, UnknownEnumValues) {
  EXPECT_EQ(
      ErrorOf(
          "kafka:\n  topics: [t]\nkpis:\n  - id: a\n    aggregation: avg\n"),
      "test.yaml:5: kpis[0].aggregation: unknown value \"avg\" (expected "
      "one of latest, sum, count, mean, min, max, median, p90, p95, p99, "
      "quantile)");
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - id: a\n    period: year\n"),
      "test.yaml:5: kpis[0].period: unknown value \"year\" (expected one "
      "of day, week, month, quarter)");
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\n  auto_offset_reset: "
                    "middle\nkpis:\n  - id: a\n"),
            "test.yaml:3: kafka.auto_offset_reset: unknown value \"middle\" "
            "(expected earliest or latest)");
}

TEST(ConfigTest, QuantileAggregations) {
  auto config = ParseConfig(
      "kafka:\n  topics: [t]\nkpis:\n  - id: a\n    aggregation: median\n"
      "  - id: b\n    aggregation: p99\n  - id: c\n    aggregation: "
      "quantile\n    quantile: 0.75\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  for (const auto& [i, q] :
       {std::pair{0, 0.5}, std::pair{1, 0.99}, std::pair{2, 0.75}}) {
    EXPECT_EQ((*config)->kpis[i].aggregation, Aggregation::kQuantile);
    EXPECT_EQ((*config)->kpis[i].quantile, q);
  }
  const std::string base = "kafka:\n  topics: [t]\nkpis:\n  - id: a\n";
  EXPECT_EQ(ErrorOf(base + "    aggregation: quantile\n"),
            "test.yaml:5: kpis[0].quantile: required with aggregation: "
            "quantile (e.g. 0.9)");
  EXPECT_EQ(ErrorOf(base + "    aggregation: p90\n    quantile: 0.5\n"),
            "test.yaml:6: kpis[0].quantile: only with aggregation: quantile");
  EXPECT_EQ(ErrorOf(base + "    aggregation: quantile\n    quantile: 1\n"),
            "test.yaml:6: kpis[0].quantile: must be between 0 and 1, "
            "exclusive, got 1");
  EXPECT_EQ(ErrorOf(base + "    aggregation: quantile\n    quantile: x\n"),
            "test.yaml:6: kpis[0].quantile: expected a finite number, got "
            "\"x\"");
}

TEST(ConfigTest, DerivedKpis) {
  const std::string base =
      "kafka:\n  topics: [t]\nkpis:\n"
      "  - id: churned\n    aggregation: sum\n    time_zone: Europe/Berlin\n"
      "  - id: paying\n    aggregation: latest\n    time_zone: "
      "Europe/Berlin\n";
  auto config = ParseConfig(
      base +
          "  - id: churn\n    ratio: {numerator: churned, denominator: "
          "paying, scale: 100}\n"
          "  - id: growth\n    change: {of: churn, against: "
          "same_period_last_year, as: absolute}\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const KpiOptions* churn = (*config)->FindKpi("churn");
  ASSERT_NE(churn, nullptr);
  EXPECT_EQ(churn->derived.kind, DerivedKpi::Kind::kRatio);
  EXPECT_EQ(churn->derived.inputs,
            (std::vector<std::string>{"churned", "paying"}));
  EXPECT_EQ(churn->derived.scale, 100);
  // Derived KPIs take their inputs' calendar.
  EXPECT_EQ(churn->time_zone, "Europe/Berlin");
  const KpiOptions* growth = (*config)->FindKpi("growth");
  EXPECT_EQ(growth->derived.kind, DerivedKpi::Kind::kChange);
  EXPECT_TRUE(growth->derived.same_period_last_year);
  EXPECT_FALSE(growth->derived.relative);
  EXPECT_EQ(growth->time_zone, "Europe/Berlin");

  EXPECT_EQ(ErrorOf(base + "  - id: r\n    ratio: {numerator: churned, "
                           "denominator: nope}\n"),
            "test.yaml:11: kpis[2].ratio: unknown KPI \"nope\"");
  EXPECT_EQ(ErrorOf(base + "  - id: w\n    aggregation: sum\n    period: "
                           "week\n  - id: r\n    ratio: {numerator: "
                           "churned, denominator: w}\n"),
            "test.yaml:14: kpis[3].ratio: \"churned\" is counted by month in "
            "Europe/Berlin but \"w\" by week in UTC, weeks from day 1: a "
            "ratio needs one calendar");
  EXPECT_EQ(ErrorOf(base + "  - id: a\n    change: {of: b}\n  - id: b\n    "
                           "ratio: {numerator: a, denominator: paying}\n"),
            "test.yaml:11: kpis[2].change: derived KPIs form a cycle: a -> b "
            "-> a");
  EXPECT_EQ(ErrorOf(base + "  - id: r\n    aggregation: sum\n    ratio: "
                           "{numerator: churned, denominator: paying}\n"),
            "test.yaml:11: kpis[2].aggregation: a derived KPI has no "
            "aggregation of its own");
  EXPECT_EQ(ErrorOf(base + "  - id: r\n    period: week\n    change: {of: "
                           "churned}\n"),
            "test.yaml:11: kpis[2].period: \"r\" is counted by week in UTC, "
            "weeks from day 1 but its input \"churned\" by month in "
            "Europe/Berlin");
  EXPECT_EQ(ErrorOf(base + "  - id: r\n    change: {of: churned, against: "
                           "last_week}\n"),
            "test.yaml:11: kpis[2].change.against: unknown value "
            "\"last_week\" (expected one of previous_period, "
            "same_period_last_year)");
  EXPECT_EQ(ErrorOf(base + "  - id: r\n    allowed_lateness: 1d\n    "
                           "change: {of: churned}\n"),
            "test.yaml:11: kpis[2].allowed_lateness: a derived KPI takes no "
            "events: its periods close when its inputs' do");
}

// allowed_lateness is read per measured KPI; a derived KPI closes its
// periods with the last of its inputs, and PIP policies can watch it.
TEST(ConfigTest, AllowedLatenessAndPipPoliciesOnDerivedKpis) {
  auto config = ParseConfig(
      "kafka:\n  topics: [t]\nkpis:\n"
      "  - id: churned\n    aggregation: sum\n    allowed_lateness: 2d\n"
      "  - id: paying\n    aggregation: latest\n    allowed_lateness: 36h\n"
      "  - id: signups\n    aggregation: sum\n"
      "  - id: churn\n    ratio: {numerator: churned, denominator: paying}\n"
      "  - id: growth\n    change: {of: signups}\n"
      "pip_policies:\n"
      "  - id: churn-watch\n    kpi: churn\n    comparator: above\n"
      "    trigger: 5\n    recovery: 3\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->FindKpi("churned")->allowed_lateness, absl::Hours(48));
  EXPECT_EQ((*config)->FindKpi("signups")->allowed_lateness,
            absl::InfiniteDuration());
  EXPECT_EQ((*config)->FindKpi("churn")->allowed_lateness, absl::Hours(48));
  EXPECT_EQ((*config)->FindKpi("growth")->allowed_lateness,
            absl::InfiniteDuration());
  ASSERT_EQ((*config)->pip_policies.size(), 1u);
  EXPECT_EQ((*config)->pip_policies[0].kpi, "churn");
}

TEST(ConfigTest, BadValues) {
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - id: a\n    time_zone: "
              "Mars/Olympus\n"),
      "test.yaml:5: kpis[0].time_zone: unknown time zone \"Mars/Olympus\" "
      "(is tzdata installed?)");
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - id: a\n    staleness: soon\n"),
      "test.yaml:5: kpis[0].staleness: invalid duration \"soon\": missing "
      "number (expected e.g. 500ms, 30s, 15m, 48h, 7d)");
  EXPECT_EQ(ErrorOf(std::string(kValid) + "http:\n  listen: localhost\n"),
            "test.yaml:11: http.listen: \"localhost\" is not HOST:PORT");
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - id: a\n    week_start: 8\n"),
      "test.yaml:5: kpis[0].week_start: expected an integer in [1, 7], got "
      "\"8\"");
}

TEST(ConfigTest, TickInterval) {
  auto config = ParseConfig(
      std::string(kValid) + "projection:\n  tick_interval: 30s\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->projection.tick_interval, absl::Seconds(30));
  EXPECT_EQ(
      ErrorOf(std::string(kValid) + "projection:\n  tick_interval: 10ms\n"),
      "test.yaml:11: projection.tick_interval: must be at least 1s");
}

TEST(ConfigTest, IdsAndCrossReferences) {
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - id: a\n  - id: a\n"),
            "test.yaml:5: kpis[1].id: duplicate KPI id \"a\"");
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\nkpis:\n  - id: \"a b\"\n"),
            "test.yaml:4: kpis[0].id: \"a b\" is not a valid id (letters, "
            "digits, _ - ., at most 128)");
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\n  json_topics: [u]\nkpis:\n  - id: a\n"),
      "test.yaml:3: kafka.json_topics: \"u\" is not one of kafka.topics");
  EXPECT_EQ(
      ErrorOf("kafka:\n  topics: [t]\n  dlq_topic: t\nkpis:\n  - id: a\n"),
      "test.yaml:3: kafka.dlq_topic: must differ from every consumed topic");
  EXPECT_EQ(ErrorOf("kafka:\n  topics: [t]\n  schema_ids: [3, x]\nkpis:\n"
                    "  - id: a\n"),
            "test.yaml:3: kafka.schema_ids[1]: expected a schema id in [1, "
            "2147483647], got \"x\"");
  auto config = ParseConfig(
      "kafka:\n  topics: [t]\n  schema_ids: [3, 41]\nkpis:\n  - id: a\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->kafka.schema_ids, (std::vector<uint32_t>{3, 41}));
}

constexpr char kOkrBase[] = R"(kafka:
  topics: [t]
kpis:
  - id: churn
objectives:
)";

std::string OkrError(const std::string& objectives) {
  return ErrorOf(std::string(kOkrBase) + objectives);
}

constexpr char kGoodObjective[] = R"(  - id: retain
    title: Cut churn from 5% to 3%
    owner: team-cs
    start: 2026-10-01
    end: 2026-12-31
    time_zone: Europe/Berlin
    key_results:
      - id: churn-down
        kpi: churn
        subject: team-cs
        direction: decrease
        baseline: 5
        target: 3
        weight: 2
)";

TEST(ObjectivesConfigTest, LoadsObjectivesWithDatesInTheirZone) {
  auto config =
      ParseConfig(std::string(kOkrBase) + kGoodObjective, "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const ObjectiveOptions& o = (*config)->objectives.at(0);
  EXPECT_EQ(o.title, "Cut churn from 5% to 3%");
  // Inclusive end date: the period ends at local midnight after it.
  EXPECT_EQ(
      absl::FormatTime("%Y-%m-%dT%H:%M:%S%Ez", o.start, absl::UTCTimeZone()),
      "2026-09-30T22:00:00+00:00");
  EXPECT_EQ(
      absl::FormatTime("%Y-%m-%dT%H:%M:%S%Ez", o.end, absl::UTCTimeZone()),
      "2026-12-31T23:00:00+00:00");
  ASSERT_EQ(o.key_results.size(), 1u);
  EXPECT_EQ(o.key_results[0].direction, Direction::kDecrease);
  EXPECT_EQ(o.key_results[0].weight, 2);
}

TEST(ObjectivesConfigTest, UnknownKpiAndParent) {
  std::string bad_kpi = kGoodObjective;
  bad_kpi.replace(bad_kpi.find("kpi: churn"), 10, "kpi: nps");
  EXPECT_EQ(
      OkrError(bad_kpi),
      "test.yaml:14: objectives[0].key_results[0].kpi: unknown KPI \"nps\"");
  EXPECT_EQ(OkrError(std::string(kGoodObjective) +
                     "  - id: team\n    title: T\n    parent: nobody\n"
                     "    start: 2026-10-01\n    end: 2026-12-31\n"
                     "    key_results: [{id: k, kpi: churn, subject: s, "
                     "direction: milestone}]\n"),
            "test.yaml:22: objectives[1].parent: unknown objective \"nobody\"");
}

TEST(ObjectivesConfigTest, CycleOfParents) {
  const std::string a =
      "  - {id: a, title: A, parent: b, start: 2026-10-01, end: 2026-12-31,"
      " key_results: [{id: k, kpi: churn, subject: s, direction: "
      "milestone}]}\n";
  const std::string b =
      "  - {id: b, title: B, parent: a, start: 2026-10-01, end: 2026-12-31}\n";
  EXPECT_EQ(OkrError(a + b),
            "test.yaml:6: objectives[0].parent: objective \"a\" is its own "
            "ancestor (cycle of parents)");
}

TEST(ObjectivesConfigTest, ZeroWeightSum) {
  EXPECT_EQ(OkrError("  - {id: a, title: A, start: 2026-10-01, end: 2026-12-31,"
                     " key_results: [{id: k, kpi: churn, subject: s,"
                     " direction: milestone, weight: 0}]}\n"),
            "test.yaml:6: objectives[0]: objective \"a\" has a zero weight sum "
            "(no weighted key results or child objectives)");
  EXPECT_EQ(
      OkrError("  - {id: a, title: A, start: 2026-10-01, end: 2026-12-31}\n"),
      "test.yaml:6: objectives[0]: objective \"a\" has a zero weight sum "
      "(no weighted key results or child objectives)");
}

TEST(ObjectivesConfigTest, TargetEqualToBaseline) {
  std::string same = kGoodObjective;
  same.replace(same.find("target: 3"), 9, "target: 5");
  EXPECT_EQ(OkrError(same),
            "test.yaml:18: objectives[0].key_results[0].target: equals "
            "baseline: progress would be undefined");
  std::string wrong_way = kGoodObjective;
  wrong_way.replace(wrong_way.find("target: 3"), 9, "target: 7");
  EXPECT_EQ(OkrError(wrong_way),
            "test.yaml:18: objectives[0].key_results[0].target: is above "
            "baseline for direction decrease (use increase)");
}

TEST(ObjectivesConfigTest, PeriodEndNotAfterStart) {
  std::string backwards = kGoodObjective;
  backwards.replace(backwards.find("end: 2026-12-31"), 15, "end: 2026-09-30");
  EXPECT_EQ(
      OkrError(backwards),
      "test.yaml:10: objectives[0].end: period end is not after its start");
  std::string not_a_date = kGoodObjective;
  not_a_date.replace(not_a_date.find("start: 2026-10-01"), 17, "start: Q4");
  EXPECT_EQ(
      OkrError(not_a_date),
      "test.yaml:9: objectives[0].start: \"Q4\" is not a date YYYY-MM-DD");
}

TEST(ObjectivesConfigTest, DuplicateIds) {
  EXPECT_EQ(
      OkrError(std::string(kGoodObjective) + kGoodObjective),
      "test.yaml:20: objectives[1].id: duplicate objective id \"retain\"");
  EXPECT_EQ(
      OkrError("  - {id: a, title: A, start: 2026-10-01, end: 2026-12-31,"
               " key_results: [{id: k, kpi: churn, subject: s, direction: "
               "milestone},"
               " {id: k, kpi: churn, subject: s, direction: milestone}]}\n"),
      "test.yaml:6: objectives[0].key_results[1].id: duplicate key result id "
      "\"k\"");
}

TEST(ObjectivesConfigTest, RangeNeedsOrderedBounds) {
  EXPECT_EQ(
      OkrError(
          "  - {id: a, title: A, start: 2026-10-01, end: 2026-12-31,"
          " key_results: [{id: k, kpi: churn, subject: s, direction: range,"
          " low: 5, high: 5}]}\n"),
      "test.yaml:6: objectives[0].key_results[0].high: must be greater than "
      "low");
  EXPECT_EQ(
      OkrError(
          "  - {id: a, title: A, start: 2026-10-01, end: 2026-12-31,"
          " key_results: [{id: k, kpi: churn, subject: s, direction: range,"
          " low: 5}]}\n"),
      "test.yaml:6: objectives[0].key_results[0].high: required for direction "
      "range");
}

constexpr char kPipBase[] = R"(kafka:
  topics: [t]
kpis:
  - id: revenue
pip_policies:
)";

std::string PipError(const std::string& policies) {
  return ErrorOf(std::string(kPipBase) + policies);
}

TEST(PipConfigTest, LoadsAPolicy) {
  auto config = ParseConfig(
      std::string(kPipBase) +
          "  - {id: quota, kpi: revenue, comparator: below, trigger: 80,"
          " recovery: 90, consecutive_periods: 2, plan_days: 60,"
          " milestones: [{day: 30, threshold: 85}]}\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const PipPolicyOptions& p = (*config)->pip_policies.at(0);
  EXPECT_EQ(p.comparator, Comparator::kBelow);
  EXPECT_EQ(p.recovery, 90);
  ASSERT_EQ(p.milestones.size(), 1u);
  EXPECT_EQ(p.milestones[0].day, 30);
}

TEST(PipConfigTest, LoadsActionsMilestoneIdsAndCheckins) {
  auto config = ParseConfig(
      std::string(kPipBase) +
          "  - id: quota\n    kpi: revenue\n    trigger: 80\n"
          "    recovery: 90\n    plan_days: 60\n"
          "    milestones:\n      - {day: 30, threshold: 85}\n"
          "      - {id: on-quota, day: 56, threshold: 90}\n"
          "    actions:\n"
          "      - {id: coach, title: \"Weekly coaching\", kind: mentoring,"
          " due_day: 7}\n"
          "      - {id: plan, title: Agree a plan, due_day: 3}\n"
          "    checkin_every: 7d\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const PipPolicyOptions& p = (*config)->pip_policies.at(0);
  EXPECT_EQ(p.milestones[0].id, "day-30");
  EXPECT_EQ(p.milestones[1].id, "on-quota");
  ASSERT_EQ(p.actions.size(), 2u);
  EXPECT_EQ(p.actions[0].title, "Weekly coaching");
  EXPECT_EQ(p.actions[0].kind, PipAction::Kind::kMentoring);
  EXPECT_EQ(p.actions[0].due_day, 7);
  EXPECT_EQ(p.actions[1].kind, PipAction::Kind::kOther);
  EXPECT_EQ(p.checkin_every, absl::Hours(24 * 7));
  EXPECT_EQ((*config)->pip_policies.size(), 1u);
}

TEST(PipConfigTest, ActionAndCheckinErrors) {
  const std::string policy =
      "  - id: q\n    kpi: revenue\n    trigger: 1\n    recovery: 2\n"
      "    plan_days: 30\n";
  EXPECT_EQ(PipError(policy + "    actions:\n      - {id: a, title: A, "
                              "due_day: 3}\n      - {id: a, title: B, "
                              "due_day: 4}\n"),
            "test.yaml:13: pip_policies[0].actions[1].id: duplicate action id "
            "\"a\"");
  EXPECT_EQ(PipError(policy + "    actions:\n      - {id: a, title: A, "
                              "due_day: 31}\n"),
            "test.yaml:12: pip_policies[0].actions[0].due_day: expected an "
            "integer in [1, 30], got \"31\"");
  EXPECT_EQ(PipError(policy + "    actions:\n      - {id: a, title: A}\n"),
            "test.yaml:12: pip_policies[0].actions[0].due_day: required field "
            "is missing");
  EXPECT_EQ(PipError(policy + "    actions:\n      - {id: a, title: \"\", "
                              "due_day: 1}\n"),
            "test.yaml:12: pip_policies[0].actions[0].title: must not be "
            "empty");
  EXPECT_EQ(PipError(policy + "    actions:\n      - {id: a, title: A, "
                              "kind: coaching, due_day: 1}\n"),
            "test.yaml:12: pip_policies[0].actions[0].kind: unknown value "
            "\"coaching\" (expected one of training, mentoring, goal, "
            "other)");
  EXPECT_EQ(PipError(policy + "    actions:\n      - {id: \"a b\", title: "
                              "A, due_day: 1}\n"),
            "test.yaml:12: pip_policies[0].actions[0].id: \"a b\" is not a "
            "valid id");
  EXPECT_EQ(PipError(policy + "    actions: {id: a}\n"),
            "test.yaml:11: pip_policies[0].actions: expected a list of "
            "actions");
  EXPECT_EQ(PipError(policy + "    milestones:\n      - {day: 7, threshold: "
                              "1}\n      - {day: 7, threshold: 2}\n"),
            "test.yaml:13: pip_policies[0].milestones[1].id: duplicate "
            "milestone id \"day-7\" (give milestones on one day ids)");
  EXPECT_EQ(PipError(policy + "    checkin_every: 31d\n"),
            "test.yaml:11: pip_policies[0].checkin_every: must be between 1h "
            "and the plan's 30 days, got 744h");
  EXPECT_EQ(PipError(policy + "    checkin_every: 10m\n"),
            "test.yaml:11: pip_policies[0].checkin_every: must be between 1h "
            "and the plan's 30 days, got 10m");
  EXPECT_EQ(PipError(policy + "    checkin_every: weekly\n").substr(0, 53),
            "test.yaml:11: pip_policies[0].checkin_every: invalid ");
}

TEST(PipConfigTest, Errors) {
  EXPECT_EQ(PipError("  - {id: q, kpi: nps, trigger: 1, recovery: 2}\n"),
            "test.yaml:6: pip_policies[0].kpi: unknown KPI \"nps\"");
  EXPECT_EQ(PipError("  - {id: q, kpi: revenue, trigger: 80, recovery: 70}\n"),
            "test.yaml:6: pip_policies[0].recovery: must be above trigger "
            "(hysteresis) for comparator below");
  EXPECT_EQ(PipError("  - {id: q, kpi: revenue, comparator: above, trigger: 80,"
                     " recovery: 90}\n"),
            "test.yaml:6: pip_policies[0].recovery: must be below trigger "
            "(hysteresis) for comparator above");
  EXPECT_EQ(PipError("  - {id: q, kpi: revenue, trigger: 80}\n"),
            "test.yaml:6: pip_policies[0].recovery: required field is missing");
  EXPECT_EQ(PipError("  - {id: q, kpi: revenue, trigger: 1, recovery: 2,"
                     " consecutive_periods: 0}\n"),
            "test.yaml:6: pip_policies[0].consecutive_periods: expected an "
            "integer in [1, 1000], got \"0\"");
  EXPECT_EQ(
      PipError("  - {id: q, kpi: revenue, trigger: 1, recovery: 2,"
               " plan_days: 30, milestones: [{day: 45, threshold: 2}]}\n"),
      "test.yaml:6: pip_policies[0].milestones[0].day: expected an "
      "integer in [1, 30], got \"45\"");
  EXPECT_EQ(PipError("  - {id: q, kpi: revenue, trigger: 1, recovery: 2}\n"
                     "  - {id: q, kpi: revenue, trigger: 1, recovery: 2}\n"),
            "test.yaml:7: pip_policies[1].id: duplicate policy id \"q\"");
  EXPECT_EQ(PipError("  - {id: q, kpi: revenue, trigger: 1, recovery: 2,"
                     " subjects: [a], exclude: [b]}\n"),
            "test.yaml:6: pip_policies[0].exclude: only applies when subjects "
            "are not listed");
}

TEST(ConfigTest, PseudonymKeyFile) {
  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/okrd-key-good";
  const std::string short_key = dir + "/okrd-key-short";
  {
    std::ofstream(good) << "0123456789abcdef0123";
    std::ofstream(short_key) << "abc";
  }
  auto config = ParseConfig(
      std::string(kValid) +
          "export:\n  pseudonymize_subjects: {key_file: " + good + "}\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->exporter.pseudonym_key, "0123456789abcdef0123");
  EXPECT_EQ(ErrorOf(std::string(kValid) +
                    "export:\n  pseudonymize_subjects: {key_file: " +
                    short_key + "}\n"),
            "test.yaml:11: export.pseudonymize_subjects.key_file: \"" +
                short_key + "\" holds 3 bytes; a key needs at least 16");
  EXPECT_EQ(
      ErrorOf(
          std::string(kValid) +
          "export:\n  pseudonymize_subjects: {key_file: /nonexistent/key}\n"),
      "test.yaml:11: export.pseudonymize_subjects.key_file: cannot read "
      "\"/nonexistent/key\"");
}

TEST(ConfigTest, IdIndexMemoryIds) {
  auto config = ParseConfig(
      std::string(kValid) + "storage:\n  id_index_memory_ids: 5000\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->storage.id_index_memory_ids, 5000);
  auto fallback = ParseConfig(kValid, "test.yaml");
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ((*fallback)->storage.id_index_memory_ids, 200000);
  EXPECT_EQ(
      ErrorOf(std::string(kValid) + "storage:\n  id_index_memory_ids: 10\n"),
      "test.yaml:11: storage.id_index_memory_ids: expected an integer in "
      "[100, 67108864], got \"10\"");
}

TEST(ConfigTest, StorageMemory) {
  auto config = ParseConfig(std::string(kValid) + "storage:\n  memory_mb: 64\n",
                            "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->storage.memory_mb, 64);
  auto fallback = ParseConfig(kValid, "test.yaml");
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ((*fallback)->storage.memory_mb, 256);
  EXPECT_EQ(ErrorOf(std::string(kValid) + "storage:\n  memory_mb: 8\n"),
            "test.yaml:11: storage.memory_mb: expected an integer in "
            "[16, 1048576], got \"8\"");
}

TEST(ConfigTest, MaxSeries) {
  auto config = ParseConfig(
      std::string(kValid) + "export:\n  max_series: 100000\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->exporter.max_series, 100000u);
  auto unlimited = ParseConfig(kValid, "test.yaml");
  ASSERT_TRUE(unlimited.ok());
  EXPECT_EQ((*unlimited)->exporter.max_series, 0u);
  // Fewer than one KPI and subject's series could never admit anything.
  EXPECT_EQ(ErrorOf(std::string(kValid) + "export:\n  max_series: 3\n"),
            "test.yaml:11: export.max_series: expected an integer in [5, "
            "1073741824], got \"3\"");
  EXPECT_EQ(ErrorOf(std::string(kValid) + "export:\n  max_series: lots\n"),
            "test.yaml:11: export.max_series: expected an integer in [5, "
            "1073741824], got \"lots\"");
}

// The example config damaged many ways, each with a seeded mix of edits:
// lines dropped, repeated, swapped or shifted, values replaced by other YAML,
// bytes changed. Each result is a config or one line naming the file, the
// line and the problem, never a crash or an exception.
TEST(ConfigTest, DamagedConfigsGiveOneLineErrors) {
  std::ifstream in(std::string(OKRD_SOURCE_DIR) + "/config/example.yaml");
  ASSERT_TRUE(in.good());
  std::vector<std::string> original;
  for (std::string line; std::getline(in, line);) original.push_back(line);
  ASSERT_GT(original.size(), 50u);
  const std::vector<std::string> values = {"",
                                           "~",
                                           "-1",
                                           "0",
                                           "1e999",
                                           ".nan",
                                           "[]",
                                           "{}",
                                           "[a",
                                           "{a:",
                                           "\"",
                                           "'",
                                           "*x",
                                           "&x y",
                                           "!!binary AAAA",
                                           "? x",
                                           "- y",
                                           "9999999999999999999999",
                                           std::string(300, 'z')};
  std::mt19937 random(20261126);
  auto below = [&random](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(random);
  };
  const std::regex one_line_error(R"(^example\.yaml:[0-9]+: [^\n]+$)");
  std::map<std::string, int> outcomes;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::string> lines = original;
    const size_t edits = 1 + below(3);
    for (size_t e = 0; e < edits && !lines.empty(); ++e) {
      const size_t at = below(lines.size());
      std::string& line = lines[at];
      switch (below(6)) {
        case 0:
          lines.erase(lines.begin() + static_cast<long>(at));
          break;
        case 1:
          lines.insert(lines.begin() + static_cast<long>(at), line);
          break;
        case 2:
          std::swap(line, lines[below(lines.size())]);
          break;
        case 3:
          line =
              below(2) == 0 ? "  " + line : line.substr(line.empty() ? 0 : 1);
          break;
        case 4:
          if (const size_t colon = line.find(": ");
              colon != std::string::npos) {
            line = line.substr(0, colon + 2) + values[below(values.size())];
          }
          break;
        case 5:
          if (!line.empty()) {
            line[below(line.size())] = static_cast<char>(below(256));
          }
          break;
      }
    }
    std::ostringstream yaml;
    for (const std::string& line : lines) yaml << line << '\n';
    auto config = ParseConfig(yaml.str(), "example.yaml");
    if (config.ok()) {
      ++outcomes["ok"];
      continue;
    }
    const std::string message(config.status().message());
    ++outcomes["error"];
    EXPECT_TRUE(std::regex_match(message, one_line_error)) << message;
  }
  EXPECT_GT(outcomes["ok"], 0);
  EXPECT_GT(outcomes["error"], 0);
}

// A value quoted into an error is cut short, and a value that spans lines
// does not break the error line.
TEST(ConfigTest, QuotedValuesStayShortAndOnOneLine) {
  EXPECT_EQ(ErrorOf(std::string(kValid) +
                    "export:\n  max_series: " + std::string(100, '9') + "x\n"),
            "test.yaml:11: export.max_series: expected an integer in [5, "
            "1073741824], got \"" +
                std::string(60, '9') + "...\"");
  EXPECT_EQ(ErrorOf(std::string(kValid) +
                    "export:\n  max_series: \"lots\n\n    and lots\"\n"),
            "test.yaml:11: export.max_series: expected an integer in [5, "
            "1073741824], got \"lots and lots\"");
  // Cut before a character, never inside one.
  EXPECT_EQ(ErrorOf(std::string(kValid) + "export:\n  max_series: " +
                    std::string(59, 'x') + "\xc3\xa9\n"),
            "test.yaml:11: export.max_series: expected an integer in [5, "
            "1073741824], got \"" +
                std::string(59, 'x') + "...\"");
}

TEST(ConfigTest, MissingFileIsNamed) {
  auto config = LoadConfig("/nonexistent/okrd.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "/nonexistent/okrd.yaml: cannot open config file");
}

TEST(ParseHostPortTest, SplitsAndChecksPort) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseHostPort("127.0.0.1:9464", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9464);
  EXPECT_FALSE(ParseHostPort("127.0.0.1:70000", &host, &port).ok());
  EXPECT_FALSE(ParseHostPort(":80", &host, &port).ok());
}

}  // namespace
}  // namespace okrd::config
