#include "core/time_util.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace okrd {

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

absl::StatusOr<absl::Duration> ParseHumanDuration(absl::string_view text) {
  const absl::string_view original = text;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid duration \"", original, "\": ", why,
                     " (expected e.g. 500ms, 30s, 15m, 48h, 7d)"));
  };
  if (text.empty()) return bad("empty");
  absl::Duration total;
  while (!text.empty()) {
    size_t digits = 0;
    while (digits < text.size() &&
           (absl::ascii_isdigit(text[digits]) || text[digits] == '.')) {
      ++digits;
    }
    if (digits == 0) return bad("missing number");
    double number = 0;
    if (!absl::SimpleAtod(text.substr(0, digits), &number)) {
      return bad("bad number");
    }
    text.remove_prefix(digits);
    size_t unit_len = 0;
    while (unit_len < text.size() && absl::ascii_isalpha(text[unit_len])) {
      ++unit_len;
    }
    const absl::string_view unit = text.substr(0, unit_len);
    text.remove_prefix(unit_len);
    if (unit == "ms") {
      total += absl::Milliseconds(number);
    } else if (unit == "s") {
      total += absl::Seconds(number);
    } else if (unit == "m") {
      total += absl::Minutes(number);
    } else if (unit == "h") {
      total += absl::Hours(number);
    } else if (unit == "d") {
      total += absl::Hours(24 * number);
    } else {
      return bad(unit.empty() ? "missing unit" : "unknown unit");
    }
  }
  return total;
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

namespace {
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};
}  // namespace

const Clock& Clock::Real() {
  static const RealClock clock;
  return clock;
}

}  // namespace okrd
