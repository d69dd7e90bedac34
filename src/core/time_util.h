#ifndef OKRD_CORE_TIME_UTIL_H_
#define OKRD_CORE_TIME_UTIL_H_

// Conversions between the time types okrd meets: absl::Time inside,
// google.protobuf.Timestamp on the wire, Unix microseconds in storage, and
// human durations ("90s", "15m", "48h", "7d") in config and on command lines.

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace okrd {

absl::Time FromProto(const google::protobuf::Timestamp& ts);
void ToProto(absl::Time t, google::protobuf::Timestamp* out);

// Parses a non-negative duration: a number followed by ms, s, m, h or d,
// or a sum of such parts ("1h30m").
absl::StatusOr<absl::Duration> ParseHumanDuration(absl::string_view text);

// RFC 3339 in UTC with seconds precision, e.g. "2026-11-25T19:00:00Z".
std::string FormatUtc(absl::Time t);

// Injected time source: the daemon uses the wall clock, tests a fake.
// Implementations must be safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  static const Clock& Real();
};

}  // namespace okrd

#endif  // OKRD_CORE_TIME_UTIL_H_
