#include "ingest/json_event.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "simdjson.h"

namespace okrd::ingest {
namespace {

namespace dom = simdjson::dom;
using okrd::v1::KpiEvent;

enum class Field {
  kUnknown,
  kEventId,
  kKpi,
  kSubject,
  kValue,
  kUnit,
  kEventTime,
  kKind,
  kCorrectsEventId,
  kSource,
  kAttributes,
};

// Both spellings of each field, its JSON name and its .proto name. Keys
// are told apart by length first: this runs for every member of every
// event.
// A key of the length of `name` (N - 1), compared in constant-size pieces.
template <size_t N>
Field Is(std::string_view key, const char (&name)[N], Field field) {
  return std::memcmp(key.data(), name, N - 1) == 0 ? field : Field::kUnknown;
}

Field FieldNamed(std::string_view key) {
  auto is = [&](const auto& name, Field field) { return Is(key, name, field); };
  switch (key.size()) {
    case 3:
      return is("kpi", Field::kKpi);
    case 4:
      return key[0] == 'u' ? is("unit", Field::kUnit)
                           : is("kind", Field::kKind);
    case 5:
      return is("value", Field::kValue);
    case 6:
      return is("source", Field::kSource);
    case 7:
      return key[0] == 'e' ? is("eventId", Field::kEventId)
                           : is("subject", Field::kSubject);
    case 8:
      return is("event_id", Field::kEventId);
    case 9:
      return is("eventTime", Field::kEventTime);
    case 10:
      return key[0] == 'e' ? is("event_time", Field::kEventTime)
                           : is("attributes", Field::kAttributes);
    case 15:
      return is("correctsEventId", Field::kCorrectsEventId);
    case 17:
      return is("corrects_event_id", Field::kCorrectsEventId);
    default:
      return Field::kUnknown;
  }
}

// Debian's Abseil has its own string_view; simdjson hands out std's.
absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }

// A piece of the input for an error line: quoted, at most 64 bytes (the
// validator makes the whole line printable and valid UTF-8).
std::string Quote(std::string_view text) {
  return absl::StrCat("\"", View(text.substr(0, 64)),
                      text.size() > 64 ? "..." : "", "\"");
}

bool Fail(std::string* error, std::string message) {
  *error = std::move(message);
  return false;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `count` digits at `pos`, as a number.
bool Digits(std::string_view s, size_t pos, size_t count, int* out) {
  if (pos + count > s.size()) return false;
  int value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (!IsDigit(s[i])) return false;
    value = value * 10 + (s[i] - '0');
  }
  *out = value;
  return true;
}

// Days from 1970-01-01 to a proleptic Gregorian date in years 1-9999, in
// closed form (years counted from March, so the leap day ends a year).
// Every event carries a timestamp; absl::CivilSecond's normalizing
// arithmetic cost a tenth of the decode.
int64_t DaysSinceEpoch(int year, int month, int day) {
  const auto y = static_cast<uint32_t>(year - (month <= 2));
  const auto m = static_cast<uint32_t>(month > 2 ? month - 3 : month + 9);
  const uint32_t days = 365 * y + y / 4 - y / 100 + y / 400 +
                        (153 * m + 2) / 5 + static_cast<uint32_t>(day) - 1;
  return static_cast<int64_t>(days) - 719468;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  return kDays[month - 1] + (month == 2 && leap);
}

// RFC 3339 "YYYY-MM-DDTHH:MM:SS[.F...](Z|+HH:MM|-HH:MM)" with a real date
// and time of day (no leap second), years 0001-9999. Fraction digits past
// nanoseconds are cut off, as protobuf does. The range check against
// Timestamp's limits is the validator's.
bool ParseTimestamp(std::string_view s, int64_t* seconds, int32_t* nanos) {
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':') {
    return false;
  }
  // The fixed-width fields' 14 digits, checked together.
  static constexpr size_t kDigitAt[] = {0, 1,  2,  3,  5,  6,  8,
                                        9, 11, 12, 14, 15, 17, 18};
  unsigned d[std::size(kDigitAt)];
  bool all_digits = true;
  for (size_t i = 0; i < std::size(kDigitAt); ++i) {
    d[i] = static_cast<unsigned char>(s[kDigitAt[i]]) - unsigned{'0'};
    all_digits &= d[i] <= 9;
  }
  if (!all_digits) return false;
  const int year =
      static_cast<int>(d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]);
  const int month = static_cast<int>(d[4] * 10 + d[5]);
  const int day = static_cast<int>(d[6] * 10 + d[7]);
  const int hour = static_cast<int>(d[8] * 10 + d[9]);
  const int minute = static_cast<int>(d[10] * 10 + d[11]);
  const int second = static_cast<int>(d[12] * 10 + d[13]);
  size_t pos = 19;
  int32_t fraction = 0;
  if (s[pos] == '.') {
    const size_t start = ++pos;
    while (pos < s.size() && IsDigit(s[pos])) ++pos;
    if (pos == start) return false;
    // Nanoseconds: the first nine digits, the rest cut off.
    const size_t digits = std::min<size_t>(pos - start, 9);
    uint32_t nanos_read = 0;
    for (size_t i = start; i < start + digits; ++i) {
      nanos_read = nanos_read * 10 + static_cast<uint32_t>(s[i] - '0');
    }
    static constexpr uint32_t kScale[] = {
        1000000000, 100000000, 10000000, 1000000, 100000,
        10000,      1000,      100,      10,      1};
    fraction = static_cast<int32_t>(nanos_read * kScale[digits]);
  }
  if (pos >= s.size()) return false;
  int offset_seconds = 0;
  if (s[pos] == 'Z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int offset_hours, offset_minutes;
    if (!Digits(s, pos + 1, 2, &offset_hours) || pos + 3 >= s.size() ||
        s[pos + 3] != ':' || !Digits(s, pos + 4, 2, &offset_minutes) ||
        offset_hours > 23 || offset_minutes > 59) {
      return false;
    }
    offset_seconds = (offset_hours * 60 + offset_minutes) * 60;
    if (s[pos] == '-') offset_seconds = -offset_seconds;
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size() || year < 1 || month < 1 || month > 12 || day < 1 ||
      day > DaysInMonth(year, month) || hour > 23 || minute > 59 ||
      second > 59) {
    return false;
  }
  *seconds = DaysSinceEpoch(year, month, day) * 86400 +
             (hour * 3600 + minute * 60 + second - offset_seconds);
  *nanos = fraction;
  return true;
}

// A double written as a string: "NaN", "Infinity", "-Infinity", or a
// decimal number as strtod reads one ("+1", "1.", ".5", "1e-3"), not
// hexadecimal, no surrounding space, within double's range (underflow reads
// as 0).
bool ParseDoubleString(std::string_view s, double* out) {
  if (s == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s == "Infinity" || s == "-Infinity") {
    *out = s[0] == '-' ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
    return true;
  }
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t mantissa_digits = 0;
  for (; i < s.size() && IsDigit(s[i]); ++i) ++mantissa_digits;
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && IsDigit(s[i]); ++i) ++mantissa_digits;
  }
  if (mantissa_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    const size_t start = i;
    for (; i < s.size() && IsDigit(s[i]); ++i) {
    }
    if (i == start) return false;
  }
  if (i != s.size()) return false;
  // The grammar is checked: strtod reads exactly these bytes. Values are
  // rarely strings, so the copy for its terminator does not matter.
  const std::string terminated(s);
  *out = std::strtod(terminated.c_str(), nullptr);
  return std::isfinite(*out);
}

// A named EventKind's number written as a string ("2", "+02"), which
// protobuf accepts too.
bool KindNumber(std::string_view s, okrd::v1::EventKind* kind) {
  size_t i = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) ++i;
  if (i == s.size()) return false;
  int64_t number = 0;
  for (; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
    number = number * 10 + (s[i] - '0');
    if (number > int64_t{1} << 32) return false;
  }
  if (negative) number = -number;
  if (number < std::numeric_limits<int32_t>::min() ||
      number > std::numeric_limits<int32_t>::max() ||
      !okrd::v1::EventKind_IsValid(static_cast<int>(number))) {
    return false;
  }
  *kind = static_cast<okrd::v1::EventKind>(number);
  return true;
}

// Reads a parsed document into one KpiEvent; each method handles one
// field's value. Strings are views into the parser's buffers.
class Decoder {
 public:
  Decoder(KpiEvent* event, std::string* error) : event_(event), error_(error) {}

  bool Object(dom::object object) {
    for (const dom::key_value_pair& member : object) {
      if (!Member(member.key, member.value)) return false;
    }
    return true;
  }

 private:
  bool Member(std::string_view key, dom::element value) {
    switch (FieldNamed(key)) {
      case Field::kEventId:
        return String(key, value, event_->mutable_event_id());
      case Field::kKpi:
        return String(key, value, event_->mutable_kpi());
      case Field::kSubject:
        return String(key, value, event_->mutable_subject());
      case Field::kUnit:
        return String(key, value, event_->mutable_unit());
      case Field::kCorrectsEventId:
        return String(key, value, event_->mutable_corrects_event_id());
      case Field::kSource:
        return String(key, value, event_->mutable_source());
      case Field::kValue:
        return Value(key, value);
      case Field::kEventTime:
        return EventTime(key, value);
      case Field::kKind:
        return Kind(key, value);
      case Field::kAttributes:
        return Attributes(key, value);
      case Field::kUnknown:
        break;
    }
    return Fail(error_, absl::StrCat("unknown field ", Quote(key)));
  }

  bool WrongType(std::string_view key, std::string_view expected) {
    return Fail(error_, absl::StrCat(View(key), ": expected ", View(expected)));
  }

  bool String(std::string_view key, dom::element value, std::string* out) {
    switch (value.type()) {
      case dom::element_type::NULL_VALUE:
        return true;
      case dom::element_type::STRING: {
        const std::string_view text = value.get_string().value_unsafe();
        out->assign(text.data(), text.size());
        return true;
      }
      default:
        return WrongType(key, "a string");
    }
  }

  bool Value(std::string_view key, dom::element value) {
    double number;
    switch (value.type()) {
      case dom::element_type::NULL_VALUE:
        return true;
      case dom::element_type::INT64:
        // An integer literal is read as an integer: -0 is 0.
        number = static_cast<double>(value.get_int64().value_unsafe());
        break;
      case dom::element_type::UINT64:
        number = static_cast<double>(value.get_uint64().value_unsafe());
        break;
      case dom::element_type::DOUBLE:
        number = value.get_double().value_unsafe();
        break;
      case dom::element_type::STRING: {
        const std::string_view text = value.get_string().value_unsafe();
        if (!ParseDoubleString(text, &number)) {
          return Fail(error_, absl::StrCat(View(key), ": ", Quote(text),
                                           " is not a number"));
        }
        break;
      }
      default:
        return WrongType(key, "a number");
    }
    if (event_->has_value()) {
      return Fail(error_, absl::StrCat(View(key), ": set twice"));
    }
    event_->set_value(number);
    return true;
  }

  bool EventTime(std::string_view key, dom::element value) {
    if (value.is_null()) return true;
    std::string_view text;
    if (value.get_string().get(text)) {
      return WrongType(key, "an RFC 3339 timestamp string");
    }
    int64_t seconds;
    int32_t nanos;
    if (!ParseTimestamp(text, &seconds, &nanos)) {
      return Fail(error_, absl::StrCat(View(key), ": ", Quote(text),
                                       " is not an RFC 3339 timestamp"));
    }
    google::protobuf::Timestamp* ts = event_->mutable_event_time();
    ts->set_seconds(seconds);
    ts->set_nanos(nanos);
    return true;
  }

  bool Kind(std::string_view key, dom::element value) {
    double number;
    switch (value.type()) {
      case dom::element_type::NULL_VALUE:
        return true;
      case dom::element_type::STRING: {
        const std::string_view name = value.get_string().value_unsafe();
        okrd::v1::EventKind kind;
        if (!okrd::v1::EventKind_Parse(std::string(name), &kind) &&
            !KindNumber(name, &kind)) {
          return Fail(error_, absl::StrCat(View(key), ": ", Quote(name),
                                           " is not an EventKind"));
        }
        event_->set_kind(kind);
        return true;
      }
      case dom::element_type::INT64:
      case dom::element_type::UINT64:
      case dom::element_type::DOUBLE:
        number = value.get_double().value_unsafe();
        break;
      default:
        return WrongType(key, "an EventKind name or number");
    }
    if (number != std::trunc(number) ||
        number < std::numeric_limits<int32_t>::min() ||
        number > std::numeric_limits<int32_t>::max()) {
      return Fail(error_, absl::StrCat(View(key), ": ",
                                       absl::StrFormat("%.17g", number),
                                       " is not an int32 EventKind number"));
    }
    // proto3 enums are open: an unnamed number is kept as it is.
    event_->set_kind(static_cast<okrd::v1::EventKind>(number));
    return true;
  }

  bool Attributes(std::string_view key, dom::element value) {
    if (value.is_null()) return true;
    dom::object object;
    if (value.get_object().get(object)) return WrongType(key, "an object");
    pairs_.clear();
    for (const dom::key_value_pair& member : object) {
      std::string_view text;
      if (!member.value.is_null() && member.value.get_string().get(text)) {
        return Fail(error_, absl::StrCat(View(key), ": ", Quote(member.key),
                                         " is not a string"));
      }
      pairs_.emplace_back(member.key, text);
    }
    // A key twice in one object is an error; a later object overrides.
    if (pairs_.size() > 1) {
      names_.clear();
      for (const auto& pair : pairs_) names_.push_back(pair.first);
      std::sort(names_.begin(), names_.end());
      if (auto twice = std::adjacent_find(names_.begin(), names_.end());
          twice != names_.end()) {
        return Fail(error_, absl::StrCat(View(key), ": key ", Quote(*twice),
                                         " repeated"));
      }
    }
    auto& attributes = *event_->mutable_attributes();
    for (const auto& [name, text] : pairs_) {
      attributes[std::string(name)].assign(text.data(), text.size());
    }
    return true;
  }

  KpiEvent* event_;
  std::string* error_;
  std::vector<std::pair<std::string_view, std::string_view>> pairs_;
  std::vector<std::string_view> names_;
};

// simdjson reads up to SIMDJSON_PADDING bytes past the input; messages are
// copied into a buffer that has them. One per thread, kept between calls.
struct ThreadState {
  dom::parser parser;
  std::string padded;
};

}  // namespace

bool DecodeJsonEvent(absl::string_view json, KpiEvent* event,
                     std::string* error) {
  thread_local ThreadState state;
  state.padded.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  state.padded.assign(json.data(), json.size());
  dom::element root;
  if (auto code = state.parser
                      .parse(state.padded.data(), json.size(),
                             /*realloc_if_needed=*/false)
                      .get(root)) {
    return Fail(error,
                absl::StrCat("not JSON: ", simdjson::error_message(code)));
  }
  dom::object object;
  if (root.get_object().get(object)) {
    return Fail(error, "the top level is not a JSON object");
  }
  return Decoder(event, error).Object(object);
}

}  // namespace okrd::ingest
