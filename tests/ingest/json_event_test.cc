#include "ingest/json_event.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "ingest/json_differential.h"

namespace okrd::ingest {
namespace {

using okrd::testing::CompareWithProtobuf;
using okrd::testing::Outcome;
using okrd::v1::KpiEvent;

KpiEvent Decode(absl::string_view json) {
  KpiEvent event;
  std::string error;
  EXPECT_TRUE(DecodeJsonEvent(json, &event, &error)) << json << ": " << error;
  return event;
}

std::string Error(absl::string_view json) {
  KpiEvent event;
  std::string error;
  EXPECT_FALSE(DecodeJsonEvent(json, &event, &error)) << json;
  return error;
}

bool ProtobufAccepts(absl::string_view json) {
  KpiEvent event;
  return google::protobuf::util::JsonStringToMessage(
             google::protobuf::StringPiece(json.data(), json.size()), &event)
      .ok();
}

TEST(JsonEventTest, ReadsEveryFieldByEitherName) {
  for (const bool proto_names : {false, true}) {
    const std::string json = absl::StrCat(
        R"({")", proto_names ? "event_id" : "eventId",
        R"(":"e-1","kpi":"signups","subject":"team-a","value":2.5,)",
        R"("unit":"count",")", proto_names ? "event_time" : "eventTime",
        R"(":"2026-03-01T10:00:00.25+01:00","kind":"CORRECTION",")",
        proto_names ? "corrects_event_id" : "correctsEventId",
        R"(":"e-0","source":"crm","attributes":{"region":"emea","":""}})");
    const KpiEvent e = Decode(json);
    EXPECT_EQ(e.event_id(), "e-1");
    EXPECT_EQ(e.kpi(), "signups");
    EXPECT_EQ(e.subject(), "team-a");
    EXPECT_TRUE(e.has_value());
    EXPECT_EQ(e.value(), 2.5);
    EXPECT_EQ(e.unit(), "count");
    EXPECT_EQ(e.event_time().seconds(), 1772355600);
    EXPECT_EQ(e.event_time().nanos(), 250000000);
    EXPECT_EQ(e.kind(), okrd::v1::CORRECTION);
    EXPECT_EQ(e.corrects_event_id(), "e-0");
    EXPECT_EQ(e.source(), "crm");
    EXPECT_EQ(e.attributes().at("region"), "emea");
    EXPECT_EQ(e.attributes().at(""), "");
  }
}

TEST(JsonEventTest, NamesAreExactAndUnknownFieldsRejected) {
  EXPECT_EQ(Error(R"({"EventId":"a"})"), R"(unknown field "EventId")");
  EXPECT_EQ(Error(R"({"event-id":"a"})"), R"(unknown field "event-id")");
  EXPECT_EQ(Decode(R"({"event\u005fid":"a"})").event_id(), "a");
}

TEST(JsonEventTest, NullLeavesAFieldAsItIs) {
  const KpiEvent e =
      Decode(R"({"eventId":"a","eventId":null,"value":null,"kind":null,)"
             R"("eventTime":null,"attributes":null,"attributes":{"k":null}})");
  EXPECT_EQ(e.event_id(), "a");
  EXPECT_FALSE(e.has_value());
  EXPECT_EQ(e.kind(), okrd::v1::EVENT_KIND_UNSPECIFIED);
  EXPECT_FALSE(e.has_event_time());
  EXPECT_EQ(e.attributes().at("k"), "");
}

TEST(JsonEventTest, RepeatedKeysFollowProtobuf) {
  EXPECT_EQ(Decode(R"({"eventId":"a","event_id":"b"})").event_id(), "b");
  EXPECT_EQ(Decode(R"({"eventTime":"2026-01-01T00:00:00.5Z",)"
                   R"("eventTime":"2026-01-01T00:00:01Z"})")
                .event_time()
                .nanos(),
            0);
  // value has explicit presence: a member of a oneof, set once.
  EXPECT_EQ(Error(R"({"value":1,"value":1})"), "value: set twice");
  EXPECT_EQ(Decode(R"({"value":1,"value":null})").value(), 1);
  EXPECT_EQ(Error(R"({"attributes":{"a":"1","a":"2"}})"),
            R"(attributes: key "a" repeated)");
  const KpiEvent merged =
      Decode(R"({"attributes":{"a":"1","b":"1"},"attributes":{"a":"2"}})");
  EXPECT_EQ(merged.attributes().at("a"), "2");
  EXPECT_EQ(merged.attributes().at("b"), "1");
}

TEST(JsonEventTest, ValueAsNumberOrString) {
  EXPECT_EQ(Decode(R"({"value":-1.5e-2})").value(), -0.015);
  EXPECT_EQ(Decode(R"({"value":"1E5"})").value(), 100000);
  EXPECT_EQ(Decode(R"({"value":"+.5"})").value(), 0.5);
  EXPECT_EQ(Decode(R"({"value":"1."})").value(), 1);
  EXPECT_TRUE(std::isnan(Decode(R"({"value":"NaN"})").value()));
  EXPECT_EQ(Decode(R"({"value":"-Infinity"})").value(), -INFINITY);
  EXPECT_EQ(Decode(R"({"value":9007199254740993})").value(),
            9007199254740992.0);
  // An integer literal is an integer: -0 is +0; -0.0 keeps its sign.
  EXPECT_FALSE(std::signbit(Decode(R"({"value":-0})").value()));
  EXPECT_TRUE(std::signbit(Decode(R"({"value":-0.0})").value()));
  EXPECT_TRUE(std::signbit(Decode(R"({"value":"-0"})").value()));
  EXPECT_EQ(Decode(R"({"value":1e-400})").value(), 0);
  EXPECT_EQ(Decode(R"({"value":"2e-324"})").value(), 0);
  EXPECT_FALSE(Error(R"({"value":1e400})").empty());
  EXPECT_EQ(Error(R"({"value":"1e400"})"), R"(value: "1e400" is not a number)");
  EXPECT_EQ(Error(R"({"value":"nan"})"), R"(value: "nan" is not a number)");
  EXPECT_EQ(Error(R"({"value":" 1"})"), R"(value: " 1" is not a number)");
  EXPECT_EQ(Error(R"({"value":true})"), "value: expected a number");
  EXPECT_EQ(Error(R"({"value":[1]})"), "value: expected a number");
}

TEST(JsonEventTest, KindByNameOrInt32) {
  EXPECT_EQ(Decode(R"({"kind":"RETRACTION"})").kind(), okrd::v1::RETRACTION);
  EXPECT_EQ(Decode(R"({"kind":2})").kind(), okrd::v1::CORRECTION);
  EXPECT_EQ(Decode(R"({"kind":1.0e0})").kind(), okrd::v1::MEASUREMENT);
  EXPECT_EQ(static_cast<int>(Decode(R"({"kind":-2147483648})").kind()),
            INT32_MIN);
  EXPECT_EQ(static_cast<int>(Decode(R"({"kind":7})").kind()), 7);
  EXPECT_EQ(Error(R"({"kind":"retraction"})"),
            R"(kind: "retraction" is not an EventKind)");
  // A string holding a named value's number, as protobuf reads it.
  EXPECT_EQ(Decode(R"({"kind":"+02"})").kind(), okrd::v1::CORRECTION);
  EXPECT_EQ(Error(R"({"kind":"7"})"), R"(kind: "7" is not an EventKind)");
  EXPECT_EQ(Error(R"({"kind":"2.0"})"), R"(kind: "2.0" is not an EventKind)");
  EXPECT_EQ(Error(R"({"kind":1.5})"),
            "kind: 1.5 is not an int32 EventKind number");
  EXPECT_EQ(Error(R"({"kind":2147483648})"),
            "kind: 2147483648 is not an int32 EventKind number");
}

TEST(JsonEventTest, TimestampsAreRfc3339) {
  auto seconds = [](absl::string_view text) {
    return Decode(absl::StrCat(R"({"eventTime":")", text, R"("})"))
        .event_time()
        .seconds();
  };
  auto nanos = [](absl::string_view text) {
    return Decode(absl::StrCat(R"({"eventTime":")", text, R"("})"))
        .event_time()
        .nanos();
  };
  EXPECT_EQ(seconds("2024-02-29T23:59:59Z"), 1709251199);
  EXPECT_EQ(seconds("2024-01-02T03:04:05.5-01:30"), 1704170045);
  EXPECT_EQ(seconds("2024-01-02T03:04:05-00:00"), 1704164645);
  EXPECT_EQ(seconds("0001-01-01T00:00:00Z"), -62135596800);
  EXPECT_EQ(seconds("9999-12-31T23:59:59-01:00"), 253402304399);
  EXPECT_EQ(nanos("2024-01-02T03:04:05.1Z"), 100000000);
  EXPECT_EQ(nanos("2024-01-02T03:04:05.9999999999Z"), 999999999);
  for (const char* bad :
       {"2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-02T24:00:00Z",
        "2024-01-02T03:04:60Z", "0000-01-01T00:00:00Z", "2024-01-02t03:04:05Z",
        "2024-01-02T03:04:05z", "2024-01-02 03:04:05Z", "2024-01-02T03:04:05",
        "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05+24:00",
        "2024-01-02T03:04:05+01:60", "2024-01-02T03:04:05+0100",
        "2024-01-02T03:04:05Z ", "+2024-01-02T03:04:05Z", ""}) {
    EXPECT_EQ(Error(absl::StrCat(R"({"eventTime":")", bad, R"("})")),
              absl::StrCat(R"(eventTime: ")", bad,
                           R"(" is not an RFC 3339 timestamp)"));
    EXPECT_FALSE(
        ProtobufAccepts(absl::StrCat(R"({"eventTime":")", bad, R"("})")))
        << bad;
  }
}

TEST(JsonEventTest, StringsAreUnescapedAndValidUtf8) {
  EXPECT_EQ(
      Decode(R"({"subject":"\u00e9\ud83d\ude00\/\"\\\n\u0000"})").subject(),
      std::string("\xc3\xa9\xf0\x9f\x98\x80/\"\\\n\0", 11));
  EXPECT_FALSE(Error(R"({"subject":"\ud83d"})").empty());
  EXPECT_FALSE(Error(R"({"subject":"\ude00"})").empty());
  EXPECT_FALSE(Error("{\"subject\":\"\xff\"}").empty());
  EXPECT_FALSE(Error("{\"subject\":\"\xed\xa0\x80\"}").empty());
  EXPECT_EQ(Error(R"({"subject":1})"), "subject: expected a string");
}

TEST(JsonEventTest, TheWholeInputIsOneObject) {
  EXPECT_EQ(Decode(" \n{\"kpi\":\"k\"}\t ").kpi(), "k");
  EXPECT_FALSE(Error(R"({"kpi":"k"} x)").empty());
  EXPECT_FALSE(Error(R"({"kpi":"k"}{})").empty());
  EXPECT_EQ(Error("[]"), "the top level is not a JSON object");
  EXPECT_EQ(Error("null"), "the top level is not a JSON object");
  EXPECT_FALSE(Error("").empty());
  EXPECT_FALSE(Error(R"({"kpi":"k")").empty());
  EXPECT_FALSE(Error(R"({"kpi":nul})").empty());
}

// Each intended difference from protobuf 3.21's parser (README, "JSON
// events"): protobuf accepts the input, okrd rejects it, and the
// differential test's independent check names the reason.
struct Intended {
  const char* json;
  const char* reason;
};

class IntendedDifferenceTest : public ::testing::TestWithParam<Intended> {};

TEST_P(IntendedDifferenceTest, ProtobufAcceptsAndOkrdRejects) {
  const Intended& c = GetParam();
  EXPECT_TRUE(ProtobufAccepts(c.json)) << c.json;
  EXPECT_FALSE(Error(c.json).empty());
  const auto comparison = CompareWithProtobuf(c.json);
  EXPECT_EQ(comparison.outcome, Outcome::kIntended) << comparison.detail;
  EXPECT_EQ(comparison.intended, c.reason);
}

INSTANTIATE_TEST_SUITE_P(
    JsonEventTest, IntendedDifferenceTest,
    ::testing::Values(
        Intended{R"({'eventId':"a"})", "not RFC 8259 JSON"},
        Intended{R"({eventId:"a"})", "not RFC 8259 JSON"},
        Intended{R"({"eventId":"a",})", "not RFC 8259 JSON"},
        Intended{R"({"eventId":"\x"})", "not RFC 8259 JSON"},
        Intended{R"({"value":1.})", "not RFC 8259 JSON"},
        Intended{"{\"eventId\":\"a\x01\"}", "not RFC 8259 JSON"},
        Intended{R"({"eventTime":"2024-1-02T3:04:05+1:00"})",
                 "timestamp without RFC 3339's fixed-width fields"},
        Intended{R"({"eventTime":{"seconds":1}})", "timestamp not a string"},
        Intended{R"({"value":"0x1p3"})", "hexadecimal value string"},
        Intended{R"({"value":123456789012345678901234567890})",
                 "integer literal beyond 64 bits"},
        Intended{R"({"value":-9223372036854775809})",
                 "integer literal beyond 64 bits"},
        // protobuf 3.21 writes the object's binary encoding as the string,
        // cut short: the attribute reads "G0FFFFFFFFF5FFFFF9".
        Intended{R"({"attributes":{"k":{"value":)"
                 R"("0FFFFFFFFF5FFFFF99FFFFFF`````````````````]``````````)"
                 R"(`````````FQFFF33333"}}})",
                 "attributes value not a string"},
        // protobuf 3.21 reads a value string only up to a NUL: 90 here.
        Intended{R"({"value":"0090\u0000;mmm"})",
                 "value string with a NUL character"},
        // protobuf 3.21 lets strtod skip a tab or line break before the
        // number and skips them after it, but rejects a space either side.
        Intended{R"({"value":"00\u000d"})",
                 "value string with a tab or line break around the number"},
        Intended{R"({"value":"\t12"})",
                 "value string with a tab or line break around the number"}));

// Generates proto3 JSON KpiEvents around every field's edges, then damages
// some of them byte by byte.
class JsonGenerator {
 public:
  explicit JsonGenerator(uint64_t seed) : rng_(seed) {}

  std::string Next() {
    std::string json = Event();
    if (Chance(0.2)) Damage(&json);
    return json;
  }

 private:
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  size_t Below(size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  template <typename T, size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Below(N)];
  }
  std::string Space() {
    static const char* const kSpaces[] = {"", "", "", " ", "\n", "\t ", "\r\n"};
    return Pick(kSpaces);
  }

  std::string String() {
    static const char* const kStrings[] = {
        R"("")",
        R"("team-a")",
        R"("e-12345")",
        R"("signups")",
        R"("count")",
        R"("\u00e9t\u00e9")",
        R"("😀")",
        R"("\ud83d\ude00")",
        R"("\ud83d")",
        R"("\ude00")",
        R"("\u0000")",
        R"("a\"b\\c\/d")",
        R"("\n\t\r\b\f")",
        R"("\x")",
        "\"caf\xc3\xa9\"",
        "\"\xff\"",
        "\"\xc0\x80\"",
        "\"a\tb\"",
        R"("UPPER lower")",
        "1",
        "true",
        "[]",
        "{}",
        "null",
    };
    if (Chance(0.02)) {
      return absl::StrCat("\"", std::string(Below(300), 'x'), "\"");
    }
    // Mostly strings protobuf takes; the rest reach for its edges.
    return Chance(0.9) ? kStrings[Below(13)] : Pick(kStrings);
  }

  std::string Number() {
    static const char* const kNumbers[] = {
        "0",
        "-0",
        "1",
        "-1.5",
        "1e5",
        "1E-2",
        "1e+2",
        "1e400",
        "-1e400",
        "1e-400",
        "-0.0",
        "-0e0",
        "0.1",
        "4.9e-324",
        "2e-324",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "9007199254740993",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "0x10",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "1.0",
        "7",
        "3",
        "2.5e0",
    };
    if (Chance(0.7)) {
      const double d = std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
      char buffer[40];
      std::snprintf(buffer, sizeof buffer, Chance(0.5) ? "%.17g" : "%.3f", d);
      return buffer;
    }
    return Pick(kNumbers);
  }

  std::string Value() {
    static const char* const kStrings[] = {
        R"("1.5")",    R"("NaN")",   R"("Infinity")", R"("-Infinity")",
        R"("nan")",    R"("inf")",   R"("0x10")",     R"("+1")",
        R"(".5")",     R"("1.")",    R"(" 1")",       R"("1 ")",
        R"("")",       R"("1e400")", R"("-0")",       R"("1e-400")",
        R"("00012")",  R"("1e+2")",  R"("-")",        R"("e5")",
        R"("\u0031")", "true",       "null",          "[1]",
        "{}",
    };
    return Chance(0.9) ? Number() : Pick(kStrings);
  }

  std::string Digits(int value, int width) {
    std::string s = std::to_string(value);
    if (Chance(0.97) && static_cast<int>(s.size()) < width) {
      s.insert(0, width - s.size(), '0');
    }
    return s;
  }

  std::string Timestamp() {
    if (Chance(0.05)) {
      static const char* const kOdd[] = {
          "null",
          "1",
          R"({"seconds":1})",
          R"("")",
          "[]",
          R"("2024-01-02 03:04:05Z")",
          R"("2024-01-02T03:04:05")",
      };
      return Pick(kOdd);
    }
    // Mostly real dates and times; sometimes any digits at all.
    const bool edges = Chance(0.15);
    auto field = [&](int low, int high, int edge_high) {
      return low +
             static_cast<int>(Below((edges ? edge_high : high) - low + 1));
    };
    std::string s = "\"";
    const int year = edges ? field(0, 0, 10000) : field(1960, 2040, 0);
    absl::StrAppend(&s, Digits(year, 4), "-", Digits(field(1, 12, 13), 2), "-",
                    Digits(field(1, 28, 32), 2), Chance(0.98) ? "T" : "t",
                    Digits(field(0, 23, 24), 2), ":",
                    Digits(field(0, 59, 60), 2), ":",
                    Digits(field(0, 59, 60), 2));
    if (Chance(0.4)) {
      s += ".";
      const size_t digits = Below(13);
      for (size_t i = 0; i < digits; ++i)
        s += static_cast<char>('0' + Below(10));
    }
    switch (Below(5)) {
      case 0:
      case 1:
        s += Chance(0.97) ? "Z" : "z";
        break;
      case 2:
      case 3:
        absl::StrAppend(&s, Chance(0.5) ? "+" : "-",
                        Digits(field(0, 14, 24), 2), ":",
                        Digits(field(0, 59, 60), 2));
        break;
      default:
        break;
    }
    return s + "\"";
  }

  std::string Kind() {
    static const char* const kKinds[] = {
        R"("MEASUREMENT")",
        R"("CORRECTION")",
        R"("RETRACTION")",
        R"("EVENT_KIND_UNSPECIFIED")",
        R"("measurement")",
        R"("X")",
        R"("2")",
        R"("+02")",
        R"("7")",
        R"("2.0")",
        R"("-0")",
        "0",
        "1",
        "2",
        "3",
        "7",
        "-1",
        "1.0",
        "1.5",
        "1e0",
        "1E2",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "-0",
        "true",
        "null",
        "[]",
        "99999999999999999999",
    };
    return Chance(0.8) ? kKinds[Below(3)] : Pick(kKinds);
  }

  std::string Attributes() {
    if (Chance(0.1)) {
      static const char* const kOdd[] = {"null", "[]", R"("x")", "1"};
      return Pick(kOdd);
    }
    static const char* const kKeys[] = {R"("region")", R"("plan")", R"("")",
                                        R"("\u00e9")", R"("a")"};
    static const char* const kValues[] = {
        R"("emea")", R"("")", "null", "1", R"("\ud83d\ude00")", "true", "{}"};
    std::vector<std::string> members;
    const size_t n = Below(5);
    for (size_t i = 0; i < n; ++i) {
      members.push_back(
          absl::StrCat(Space(), Pick(kKeys), Space(), ":", Space(),
                       Chance(0.9) ? kValues[Below(2)] : Pick(kValues)));
    }
    return absl::StrCat("{", absl::StrJoin(members, ","), Space(), "}");
  }

  std::string Event() {
    struct FieldGen {
      const char* json_name;
      const char* proto_name;
      std::string (JsonGenerator::*value)();
    };
    static const FieldGen kFields[] = {
        {"eventId", "event_id", &JsonGenerator::String},
        {"kpi", "kpi", &JsonGenerator::String},
        {"subject", "subject", &JsonGenerator::String},
        {"value", "value", &JsonGenerator::Value},
        {"unit", "unit", &JsonGenerator::String},
        {"eventTime", "event_time", &JsonGenerator::Timestamp},
        {"kind", "kind", &JsonGenerator::Kind},
        {"correctsEventId", "corrects_event_id", &JsonGenerator::String},
        {"source", "source", &JsonGenerator::String},
        {"attributes", "attributes", &JsonGenerator::Attributes},
    };
    std::vector<std::string> members;
    for (const FieldGen& f : kFields) {
      const int copies = Chance(0.2) ? 0 : Chance(0.05) ? 2 : 1;
      for (int i = 0; i < copies; ++i) {
        const char* name = Chance(0.7) ? f.json_name : f.proto_name;
        std::string value = Chance(0.03) ? "null" : (this->*f.value)();
        members.push_back(absl::StrCat(Space(), "\"", name, "\"", Space(), ":",
                                       Space(), value));
      }
    }
    if (Chance(0.03)) members.push_back(R"("unknown":{"a":[1,2]})");
    std::shuffle(members.begin(), members.end(), rng_);
    return absl::StrCat(Space(), "{", absl::StrJoin(members, ","), Space(), "}",
                        Space());
  }

  void Damage(std::string* json) {
    static const char kBytes[] = {'"',    '\'', '{',    '}',    '[',    ']',
                                  ':',    ',',  '\\',   '\0',   '\xff', '\xc3',
                                  '\x80', 'e',  '-',    '.',    '0',    ' ',
                                  'n',    'u',  '\x01', '\xed', 't'};
    const size_t edits = 1 + Below(3);
    for (size_t i = 0; i < edits && !json->empty(); ++i) {
      const size_t at = Below(json->size());
      switch (Below(5)) {
        case 0:
          (*json)[at] = Pick(kBytes);
          break;
        case 1:
          json->erase(at, 1);
          break;
        case 2:
          json->insert(at, 1, Pick(kBytes));
          break;
        case 3:
          json->resize(at);
          break;
        default:
          json->insert(at, json->substr(Below(json->size()), Below(8)));
          break;
      }
    }
  }

  std::mt19937_64 rng_;
};

// At least a million generated and damaged inputs agree with protobuf's
// parser, but for the listed differences (fewer under the sanitizers,
// which run the same code ten times slower).
TEST(JsonEventTest, AgreesWithProtobufOnGeneratedInputs) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
  constexpr int kInputs = 100000;
#else
  constexpr int kInputs = 1000000;
#endif
  JsonGenerator generator(20261201);
  std::map<Outcome, int> outcomes;
  std::map<std::string, int> intended;
  int failures = 0;
  for (int i = 0; i < kInputs; ++i) {
    const std::string json = generator.Next();
    const auto c = CompareWithProtobuf(json);
    ++outcomes[c.outcome];
    if (c.outcome == Outcome::kIntended) ++intended[c.intended];
    if (c.outcome == Outcome::kDisagree && ++failures <= 20) {
      ADD_FAILURE() << "input " << i << ": " << json << "\n  " << c.detail;
    }
  }
  EXPECT_EQ(failures, 0);
  // The generator reaches each outcome often, or it tests little.
  EXPECT_GT(outcomes[Outcome::kBothAccept], kInputs / 20);
  EXPECT_GT(outcomes[Outcome::kBothReject], kInputs / 20);
  EXPECT_GT(outcomes[Outcome::kIntended], 0);
  std::printf(
      "%d inputs: %d accepted by both, %d rejected by both, %d "
      "intended differences\n",
      kInputs, outcomes[Outcome::kBothAccept], outcomes[Outcome::kBothReject],
      outcomes[Outcome::kIntended]);
  for (const auto& [reason, count] : intended) {
    std::printf("  %s: %d\n", reason.c_str(), count);
  }
}

}  // namespace
}  // namespace okrd::ingest
