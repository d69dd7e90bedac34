#include "ingest/validator.h"

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/time_util.h"
#include "gtest/gtest.h"
#include "okrd/v1/records.pb.h"

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

// A producer bug that leaves value out must not read as a real 0, which
// would move latest/min/mean and could breach a PIP policy for a person.
TEST_F(ValidatorTest, ValueMustBePresent) {
  okrd::v1::KpiEvent missing = Valid();
  missing.clear_value();
  EXPECT_EQ(ReasonFor(missing), "missing_field");
  EXPECT_EQ(ReasonForBytes(R"({"eventId":"e1","kpi":"signups",)"
                           R"("subject":"team-a",)"
                           R"("eventTime":"2026-11-25T19:00:00Z"})",
                           Encoding::kJson),
            "missing_field");
  EXPECT_EQ(ReasonForBytes(R"({"eventId":"e1","kpi":"signups",)"
                           R"("subject":"team-a","value":null,)"
                           R"("eventTime":"2026-11-25T19:00:00Z"})",
                           Encoding::kJson),
            "missing_field");
  // A correction carries the new value; a retraction needs none.
  okrd::v1::KpiEvent correction = missing;
  correction.set_kind(okrd::v1::CORRECTION);
  correction.set_corrects_event_id("e0");
  EXPECT_EQ(ReasonFor(correction), "missing_field");
  okrd::v1::KpiEvent retraction = correction;
  retraction.set_kind(okrd::v1::RETRACTION);
  EXPECT_EQ(ReasonFor(retraction), "accepted");
}

// An explicit 0 is a measurement. It is kept as the field's absence, so the
// logged bytes and their dedup hash equal those of builds before value had
// presence: an event sent again after an upgrade stays a duplicate.
TEST_F(ValidatorTest, ExplicitZeroIsAcceptedAndStoredAsBefore) {
  okrd::v1::KpiEvent zero = Valid();
  zero.set_value(0);
  okrd::v1::KpiEvent out;
  Rejection rejection;
  ASSERT_TRUE(DecodeAndValidate(zero.SerializeAsString(), Encoding::kProtobuf,
                                config_, kNow, &out, &rejection))
      << rejection.detail;
  EXPECT_EQ(out.value(), 0);
  EXPECT_FALSE(out.has_value());
  okrd::v1::KpiEvent before = zero;
  before.clear_value();  // what a proto3 producer without presence sent
  EXPECT_EQ(out.SerializeAsString(), before.SerializeAsString());
  zero.set_value(-0.0);
  ASSERT_TRUE(DecodeAndValidate(zero.SerializeAsString(), Encoding::kProtobuf,
                                config_, kNow, &out, &rejection));
  EXPECT_TRUE(std::signbit(out.value()));
  EXPECT_EQ(ReasonForBytes(R"({"eventId":"e1","kpi":"signups",)"
                           R"("subject":"team-a","value":0,)"
                           R"("eventTime":"2026-11-25T19:00:00Z"})",
                           Encoding::kJson),
            "accepted");
}

// Schema Registry framing (ingest/framing.h): 0x00, a big-endian schema
// id, for protobuf the message-index list, then the message.
std::string Framed(uint32_t schema_id, const std::string& indexes,
                   const std::string& payload) {
  std::string out(1, '\0');
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((schema_id >> shift) & 0xff));
  }
  return out + indexes + payload;
}

TEST_F(ValidatorTest, AcceptsSchemaRegistryFramedProtobufAndJson) {
  const std::string binary = Valid().SerializeAsString();
  const std::string json =
      R"({"eventId":"e1","kpi":"signups","subject":"team-a","value":3,)"
      R"("eventTime":"2026-11-25T19:00:00Z"})";
  struct Case {
    std::string message;
    Encoding encoding;  // what the header or topic says
  };
  for (const Case& c : {
           // [0] as the one-byte shorthand, and spelled out: count 1, 0.
           Case{Framed(7, std::string(1, '\0'), binary), Encoding::kProtobuf},
           Case{Framed(7, std::string("\x02\x00", 2), binary),
                Encoding::kProtobuf},
           // JSON frames carry no index list; sniffed, or by content type.
           Case{Framed(7, "", json), Encoding::kProtobuf},
           Case{Framed(7, "", json), Encoding::kJson},
       }) {
    okrd::v1::KpiEvent out;
    Rejection rejection;
    uint32_t schema_id = 0;
    ASSERT_TRUE(DecodeAndValidate(c.message, c.encoding, config_, kNow, &out,
                                  &rejection, &schema_id))
        << rejection.reason << ": " << rejection.detail;
    EXPECT_EQ(schema_id, 7u);
    EXPECT_EQ(out.event_id(), "e1");
  }
  // Unframed messages have no schema id.
  okrd::v1::KpiEvent out;
  Rejection rejection;
  uint32_t schema_id = 99;
  ASSERT_TRUE(DecodeAndValidate(binary, Encoding::kProtobuf, config_, kNow,
                                &out, &rejection, &schema_id));
  EXPECT_EQ(schema_id, 0u);
}

TEST_F(ValidatorTest, RejectsBadFramesWithAReason) {
  const std::string binary = Valid().SerializeAsString();
  EXPECT_EQ(ReasonForBytes(std::string(3, '\0'), Encoding::kProtobuf),
            "bad_frame");  // truncated header
  // Index lists that do not point at KpiEvent (message 0).
  EXPECT_EQ(ReasonForBytes(Framed(1, "\x02\x02", binary), Encoding::kProtobuf),
            "bad_frame");
  EXPECT_EQ(
      ReasonForBytes(Framed(1, "\x04\x00\x00", binary), Encoding::kProtobuf),
      "bad_frame");
  // A negative count, a varint that never ends, a list cut short.
  EXPECT_EQ(ReasonForBytes(Framed(1, "\x01", binary), Encoding::kProtobuf),
            "bad_frame");
  EXPECT_EQ(ReasonForBytes(Framed(1, std::string(11, '\xff'), ""),
                           Encoding::kProtobuf),
            "bad_frame");
  EXPECT_EQ(ReasonForBytes(Framed(1, "\x04\x00", ""), Encoding::kProtobuf),
            "bad_frame");
  // A well-formed frame around bytes that are not an event.
  EXPECT_EQ(ReasonForBytes(Framed(1, std::string(1, '\0'), "\xff\xff"),
                           Encoding::kProtobuf),
            "malformed");
  // kafka.schema_ids restricts the ids accepted.
  config_.kafka.schema_ids = {5, 6};
  EXPECT_EQ(ReasonForBytes(Framed(7, std::string(1, '\0'), binary),
                           Encoding::kProtobuf),
            "unknown_schema");
  EXPECT_EQ(ReasonForBytes(Framed(6, std::string(1, '\0'), binary),
                           Encoding::kProtobuf),
            "accepted");
}

TEST_F(ValidatorTest, Malformed) {
  EXPECT_EQ(ReasonForBytes("\xff\xff\xff", Encoding::kProtobuf), "malformed");
  EXPECT_EQ(ReasonForBytes("{not json", Encoding::kJson), "malformed");
  EXPECT_EQ(
      ReasonForBytes(R"({"eventId":"e1","colour":"red"})", Encoding::kJson),
      "malformed");
}

// Protobuf's own complaint names the field, and it goes into the rejection
// instead of into a log line of protobuf's.
TEST_F(ValidatorTest, MalformedUtf8NamesTheField) {
  okrd::v1::KpiEvent e = Valid();
  e.set_subject("team-b");
  std::string bytes = e.SerializeAsString();
  const size_t at = bytes.find("team-b");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 5] = '\xff';
  okrd::v1::KpiEvent out;
  Rejection rejection;
  ASSERT_FALSE(DecodeAndValidate(bytes, Encoding::kProtobuf, config_, kNow,
                                 &out, &rejection));
  EXPECT_EQ(rejection.reason, "malformed");
  EXPECT_EQ(rejection.detail,
            "bytes do not parse as a binary KpiEvent: String field "
            "'okrd.v1.KpiEvent.subject' contains invalid UTF-8 data when "
            "parsing a protocol buffer");
  // The next message starts clean.
  EXPECT_EQ(ReasonForBytes("\xff\xff\xff", Encoding::kProtobuf), "malformed");
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

TEST_F(ValidatorTest, DerivedKpisTakeNoEvents) {
  config::KpiOptions growth;
  growth.id = "growth";
  growth.derived.kind = config::DerivedKpi::Kind::kChange;
  growth.derived.inputs = {config_.kpis[0].id};
  config_.kpis.push_back(growth);
  okrd::v1::KpiEvent e = Valid();
  e.set_kpi("growth");
  e.clear_unit();
  okrd::v1::KpiEvent out;
  Rejection why;
  EXPECT_FALSE(DecodeAndValidate(e.SerializeAsString(), Encoding::kProtobuf,
                                 config_, kNow, &out, &why));
  EXPECT_EQ(why.reason, "unknown_kpi");
  EXPECT_EQ(why.detail,
            "kpi \"growth\" is derived from other KPIs: send measurements of "
            "its inputs");
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

// Damaged messages, many of them, each with a seeded mix of byte edits: every
// one is either a sound event or a rejection with a documented reason and a
// one-line detail. Under the sanitizers this also checks that no input makes
// the decoder read or write out of bounds.
TEST_F(ValidatorTest, DamagedMessagesAreAcceptedSoundOrRejectedWithAReason) {
  const std::set<std::string> kReasons = {
      "oversize",    "malformed",     "missing_field",     "non_finite",
      "unknown_kpi", "unit_mismatch", "future_event_time", "invalid_event_time",
      "too_late",    "bad_frame",     "unknown_schema"};
  okrd::v1::KpiEvent full = Valid();
  (*full.mutable_attributes())["region"] = "eu";
  full.set_source("crm");
  okrd::v1::KpiEvent correction = Valid();
  correction.set_kind(okrd::v1::CORRECTION);
  correction.set_corrects_event_id("e0");
  const std::vector<std::pair<std::string, Encoding>> seeds = {
      {Valid().SerializeAsString(), Encoding::kProtobuf},
      {full.SerializeAsString(), Encoding::kProtobuf},
      {correction.SerializeAsString(), Encoding::kProtobuf},
      {R"({"eventId":"e1","kpi":"signups","subject":"team-a","value":3,)"
       R"("unit":"count","eventTime":"2026-11-25T19:00:00Z",)"
       R"("attributes":{"region":"eu"}})",
       Encoding::kJson},
  };
  std::mt19937 random(20261126);
  auto below = [&random](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(random);
  };
  std::map<std::string, int> outcomes;
  for (int i = 0; i < 20000; ++i) {
    const auto& [seed, encoding] = seeds[below(seeds.size())];
    std::string bytes = seed;
    const size_t edits = 1 + below(4);
    for (size_t e = 0; e < edits && !bytes.empty(); ++e) {
      const size_t at = below(bytes.size());
      switch (below(5)) {
        case 0:  // flip a bit
          bytes[at] = static_cast<char>(bytes[at] ^ (1 << below(8)));
          break;
        case 1:  // overwrite a byte
          bytes[at] = static_cast<char>(below(256));
          break;
        case 2:  // cut the tail
          bytes.resize(at);
          break;
        case 3:  // insert a byte
          bytes.insert(at, 1, static_cast<char>(below(256)));
          break;
        case 4:  // repeat a stretch at the end
          bytes += bytes.substr(at, below(16) + 1);
          break;
      }
    }
    okrd::v1::KpiEvent out;
    Rejection rejection;
    if (DecodeAndValidate(bytes, encoding, config_, kNow, &out, &rejection)) {
      ++outcomes["accepted"];
      EXPECT_FALSE(out.event_id().empty());
      EXPECT_LE(out.event_id().size(), config_.limits.max_id_bytes);
      EXPECT_EQ(out.kpi(), "signups");
      EXPECT_FALSE(out.subject().empty());
      EXPECT_TRUE(std::isfinite(out.value())) << out.value();
      EXPECT_TRUE(out.unit().empty() || out.unit() == "count") << out.unit();
      EXPECT_LE(out.attributes_size(), config_.limits.max_attributes);
      continue;
    }
    ++outcomes[rejection.reason];
    EXPECT_TRUE(kReasons.contains(rejection.reason)) << rejection.reason;
    EXPECT_FALSE(rejection.detail.empty()) << rejection.reason;
    for (char c : rejection.detail) {
      ASSERT_GE(static_cast<unsigned char>(c), 0x20) << rejection.detail;
    }
    // The rejected log stores the detail in a proto3 string, which must be
    // UTF-8 to be read back.
    okrd::v1::RejectedRecord stored;
    stored.set_detail(rejection.detail);
    okrd::v1::RejectedRecord back;
    ASSERT_TRUE(back.ParseFromString(stored.SerializeAsString()))
        << rejection.reason << ": " << rejection.detail;
  }
  // The edits reach past the parser into the checks behind it.
  EXPECT_GT(outcomes["accepted"], 0);
  EXPECT_GT(outcomes["malformed"], 0);
  EXPECT_GE(outcomes.size(), 5u) << ::testing::PrintToString(outcomes);
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
