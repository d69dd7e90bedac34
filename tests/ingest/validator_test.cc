#include "ingest/validator.h"

#include <cmath>
#include <limits>
#include <string>

#include "core/time_util.h"
#include "gtest/gtest.h"

namespace okrd::ingest {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1795634360);

class ValidatorTest : public ::testing::Test {
 protected:
  ValidatorTest() {
    config::KpiOptions kpi;
    kpi.id = "signups";
    kpi.unit = "count";
    config_.kpis.push_back(kpi);
    config_.limits.max_id_bytes = 16;
    config_.limits.max_attributes = 2;
    config_.limits.max_attribute_bytes = 10;
    config_.limits.max_message_bytes = 1000;
  }

  static okrd::v1::KpiEvent Valid() {
    okrd::v1::KpiEvent e;
    e.set_event_id("e1");
    e.set_kpi("signups");
    e.set_subject("team-a");
    e.set_value(42);
    e.set_unit("count");
    ToProto(kNow - absl::Minutes(1), e.mutable_event_time());
    return e;
  }

  // The rejection reason for `event` sent as binary, or "accepted".
  std::string ReasonFor(const okrd::v1::KpiEvent& event) {
    return ReasonForBytes(event.SerializeAsString(), Encoding::kProtobuf);
  }
  std::string ReasonForBytes(const std::string& bytes, Encoding encoding) {
    okrd::v1::KpiEvent out;
    Rejection rejection;
    if (DecodeAndValidate(bytes, encoding, config_, kNow, &out, &rejection)) {
      return "accepted";
    }
    EXPECT_FALSE(rejection.detail.empty());
    EXPECT_EQ(rejection.detail.find('\n'), std::string::npos);
    return rejection.reason;
  }

  config::Config config_;
};

TEST_F(ValidatorTest, AcceptsValidBinaryAndJson) {
  EXPECT_EQ(ReasonFor(Valid()), "accepted");
  const std::string json =
      R"({"eventId":"e1","kpi":"signups","subject":"team-a","value":3,)"
      R"("eventTime":"2026-11-25T19:00:00Z","kind":"MEASUREMENT"})";
  okrd::v1::KpiEvent out;
  Rejection rejection;
  ASSERT_TRUE(
      DecodeAndValidate(json, Encoding::kJson, config_, kNow, &out, &rejection))
      << rejection.detail;
  EXPECT_EQ(out.value(), 3);
  EXPECT_EQ(out.event_time().seconds(), 1795633200);
}

TEST_F(ValidatorTest, Malformed) {
  EXPECT_EQ(ReasonForBytes("\xff\xff\xff", Encoding::kProtobuf), "malformed");
  EXPECT_EQ(ReasonForBytes("{not json", Encoding::kJson), "malformed");
  EXPECT_EQ(
      ReasonForBytes(R"({"eventId":"e1","colour":"red"})", Encoding::kJson),
      "malformed");
}

TEST_F(ValidatorTest, MissingFields) {
  for (auto clear : {+[](okrd::v1::KpiEvent& e) { e.clear_event_id(); },
                     +[](okrd::v1::KpiEvent& e) { e.clear_kpi(); },
                     +[](okrd::v1::KpiEvent& e) { e.clear_subject(); },
                     +[](okrd::v1::KpiEvent& e) { e.clear_event_time(); }}) {
    okrd::v1::KpiEvent e = Valid();
    clear(e);
    EXPECT_EQ(ReasonFor(e), "missing_field");
  }
  EXPECT_EQ(ReasonForBytes("", Encoding::kProtobuf), "missing_field");
  okrd::v1::KpiEvent correction = Valid();
  correction.set_kind(okrd::v1::CORRECTION);
  EXPECT_EQ(ReasonFor(correction), "missing_field");
  correction.set_corrects_event_id("e0");
  EXPECT_EQ(ReasonFor(correction), "accepted");
}

TEST_F(ValidatorTest, NonFinite) {
  for (double v : {std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    okrd::v1::KpiEvent e = Valid();
    e.set_value(v);
    EXPECT_EQ(ReasonFor(e), "non_finite");
  }
  EXPECT_EQ(
      ReasonForBytes(R"({"eventId":"e1","kpi":"signups","subject":"a",)"
                     R"("value":"NaN","eventTime":"2026-11-25T19:00:00Z"})",
                     Encoding::kJson),
      "non_finite");
}

TEST_F(ValidatorTest, UnknownKpiAndUnitMismatch) {
  okrd::v1::KpiEvent e = Valid();
  e.set_kpi("churn");
  EXPECT_EQ(ReasonFor(e), "unknown_kpi");
  e = Valid();
  e.set_unit("EUR");
  EXPECT_EQ(ReasonFor(e), "unit_mismatch");
  e.clear_unit();
  EXPECT_EQ(ReasonFor(e), "accepted");
}

TEST_F(ValidatorTest, Oversize) {
  okrd::v1::KpiEvent e = Valid();
  e.set_subject(std::string(17, 's'));
  EXPECT_EQ(ReasonFor(e), "oversize");
  e = Valid();
  (*e.mutable_attributes())["a"] = "1";
  (*e.mutable_attributes())["b"] = "2";
  EXPECT_EQ(ReasonFor(e), "accepted");
  (*e.mutable_attributes())["c"] = "3";
  EXPECT_EQ(ReasonFor(e), "oversize");
  e = Valid();
  (*e.mutable_attributes())["key"] = std::string(8, 'v');
  EXPECT_EQ(ReasonFor(e), "oversize");
  EXPECT_EQ(ReasonForBytes(std::string(1001, 'x'), Encoding::kProtobuf),
            "oversize");
}

TEST_F(ValidatorTest, EventTimeBounds) {
  okrd::v1::KpiEvent e = Valid();
  ToProto(kNow + absl::Minutes(4), e.mutable_event_time());
  EXPECT_EQ(ReasonFor(e), "accepted");
  ToProto(kNow + absl::Minutes(6), e.mutable_event_time());
  EXPECT_EQ(ReasonFor(e), "future_event_time");
  e.mutable_event_time()->set_seconds(-70000000000);
  EXPECT_EQ(ReasonFor(e), "invalid_event_time");
}

TEST_F(ValidatorTest, TooLateForAClosedPeriod) {
  // kNow is 2026-11-25T19:19:20Z; daily periods in UTC.
  config_.kpis[0].period = config::PeriodKind::kDay;
  config_.kpis[0].allowed_lateness = absl::Hours(2);
  okrd::v1::KpiEvent e = Valid();
  ToProto(kNow - absl::Hours(1), e.mutable_event_time());
  EXPECT_EQ(ReasonFor(e), "accepted");  // today
  ToProto(kNow - absl::Hours(20), e.mutable_event_time());
  EXPECT_EQ(ReasonFor(e), "too_late");  // yesterday, closed at 02:00
  config_.kpis[0].allowed_lateness = absl::Hours(20);
  EXPECT_EQ(ReasonFor(e), "accepted");  // closes at 20:00
  config_.kpis[0].allowed_lateness = absl::Hours(2);
  // Corrections name their target's period, which the log checks.
  e.set_kind(okrd::v1::CORRECTION);
  e.set_corrects_event_id("e0");
  EXPECT_EQ(ReasonFor(e), "accepted");
}

TEST(EncodingTest, HeaderOrTopicSelectsJson) {
  EXPECT_EQ(EncodingFor("", false), Encoding::kProtobuf);
  EXPECT_EQ(EncodingFor("", true), Encoding::kJson);
  EXPECT_EQ(EncodingFor("application/json", false), Encoding::kJson);
  EXPECT_EQ(EncodingFor("Application/JSON; charset=utf-8", false),
            Encoding::kJson);
  EXPECT_EQ(EncodingFor("application/x-protobuf", true), Encoding::kProtobuf);
}

}  // namespace
}  // namespace okrd::ingest
