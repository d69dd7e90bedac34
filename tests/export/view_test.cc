#include "export/view.h"

#include <map>
#include <memory>
#include <string>

#include "core/pseudonym.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace okrd::exporter {
namespace {

std::shared_ptr<const config::Config> TwoSubjects(std::string key = "") {
  auto config = std::make_shared<config::Config>();
  config::KpiOptions kpi;
  kpi.id = "signups";
  kpi.aggregation = config::Aggregation::kSum;
  config->kpis.push_back(kpi);
  config->exporter.pseudonym_key = std::move(key);
  return config;
}

// Folds a sign-up of `value` for `subject`, consumed from partition 0.
void Fold(projection::KpiProjection& p, uint64_t seq,
          const std::string& subject, double value) {
  okrd::v1::StoredEvent record;
  record.set_sequence(seq);
  record.set_ingest_time_us(1795634360000000);
  record.mutable_position()->set_topic("kpi-events");
  auto* e = record.mutable_event();
  e->set_kpi("signups");
  e->set_subject(subject);
  e->set_value(value);
  e->mutable_event_time()->set_seconds(1795634300);
  p.Apply(record);
}

template <typename Answer>
Answer Parse(const ApiAnswer& answer) {
  EXPECT_EQ(answer.status, 200) << answer.body;
  Answer parsed;
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(answer.body, &parsed).ok())
      << answer.body;
  return parsed;
}

std::string ErrorOf(const ApiAnswer& answer) {
  okrd::v1::ApiError error;
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(answer.body, &error).ok())
      << answer.body;
  return error.error();
}

TEST(AnswerApiTest, KpisNarrowByKpiAndSubjectAsSent) {
  projection::KpiProjection projection(TwoSubjects());
  Fold(projection, 1, "team a", 2);
  Fold(projection, 2, "team b", 5);
  const DaemonState state;
  const auto all =
      Parse<okrd::v1::KpisAnswer>(AnswerApi("kpis", "", projection, state));
  EXPECT_EQ(all.sequence(), 2u);
  ASSERT_EQ(all.kpis_size(), 2);
  // Percent-encoded and form-encoded spaces decode alike.
  for (const char* query :
       {"kpi=signups&subject=team%20b", "subject=team+b", "&subject=team+b&"}) {
    const auto one = Parse<okrd::v1::KpisAnswer>(
        AnswerApi("kpis", query, projection, state));
    ASSERT_EQ(one.kpis_size(), 1) << query;
    EXPECT_EQ(one.kpis(0).subject(), "team b");
    EXPECT_EQ(one.kpis(0).value(), 5);
    EXPECT_EQ(one.kpis(0).period(), "current");
  }
  EXPECT_EQ(Parse<okrd::v1::KpisAnswer>(
                AnswerApi("kpis", "kpi=churn", projection, state))
                .kpis_size(),
            0);
}

TEST(AnswerApiTest, SubjectsArePseudonymsWhereConfigured) {
  const std::string key(32, 'k');
  projection::KpiProjection projection(TwoSubjects(key));
  Fold(projection, 1, "alice", 3);
  const std::string label = Pseudonym(key, "alice");
  ASSERT_NE(label, "alice");
  const DaemonState state;
  const auto by_label = Parse<okrd::v1::KpisAnswer>(
      AnswerApi("kpis", "subject=" + label, projection, state));
  ASSERT_EQ(by_label.kpis_size(), 1);
  EXPECT_EQ(by_label.kpis(0).subject(), label);
  EXPECT_EQ(Parse<okrd::v1::KpisAnswer>(
                AnswerApi("kpis", "subject=alice", projection, state))
                .kpis_size(),
            0);
  EXPECT_EQ(AnswerApi("kpis", "", projection, state).body.find("alice"),
            std::string::npos);
}

TEST(AnswerApiTest, BadRequestsSayWhy) {
  projection::KpiProjection projection(TwoSubjects());
  const DaemonState state;
  const std::map<std::string, std::string> bad = {
      {"nope=1", "unknown parameter \"nope\""},
      {"kpi=a&kpi=b", "parameter \"kpi\" given twice"},
      {"subject=%ff", "a query parameter is not UTF-8"},
      {"subject=%c3", "a query parameter is not UTF-8"},
  };
  for (const auto& [query, reason] : bad) {
    const ApiAnswer answer = AnswerApi("kpis", query, projection, state);
    EXPECT_EQ(answer.status, 400) << query;
    EXPECT_EQ(ErrorOf(answer), reason) << query;
  }
  const ApiAnswer state_answer =
      AnswerApi("pips", "state=sleepy", projection, state);
  EXPECT_EQ(state_answer.status, 400);
  EXPECT_EQ(ErrorOf(state_answer),
            "state must be one of ok, watch, triggered, recovered, "
            "plan_expired; "
            "got \"sleepy\"");
  EXPECT_EQ(AnswerApi("objectives", "kpi=x", projection, state).status, 400);
  const ApiAnswer missing = AnswerApi("kpis/x", "", projection, state);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorOf(missing),
            "no such resource: /api/v1/kpis/x (objectives, key_results, "
            "kpis, pips)");
  // A name that is not UTF-8 is reported readably, not refused by the
  // printer.
  EXPECT_EQ(ErrorOf(AnswerApi("\xff", "", projection, state)),
            "no such resource: /api/v1/? (objectives, key_results, kpis, "
            "pips)");
}

TEST(AnswerApiTest, OnlyWhatThisInstanceExports) {
  projection::KpiProjection projection(TwoSubjects());
  Fold(projection, 1, "team a", 2);
  DaemonState standby;
  standby.ownership = projection::Ownership({}, false);
  const auto none =
      Parse<okrd::v1::KpisAnswer>(AnswerApi("kpis", "", projection, standby));
  EXPECT_EQ(none.sequence(), 1u);
  EXPECT_EQ(none.kpis_size(), 0);
  DaemonState other;
  other.ownership = projection::Ownership({{{"kpi-events", 3}, true}}, false);
  EXPECT_EQ(
      Parse<okrd::v1::KpisAnswer>(AnswerApi("kpis", "", projection, other))
          .kpis_size(),
      0);
  DaemonState owner;
  owner.ownership = projection::Ownership({{{"kpi-events", 0}, true}}, false);
  EXPECT_EQ(
      Parse<okrd::v1::KpisAnswer>(AnswerApi("kpis", "", projection, owner))
          .kpis_size(),
      1);
}

}  // namespace
}  // namespace okrd::exporter
