#ifndef OKRD_CORE_LOG_H_
#define OKRD_CORE_LOG_H_

// okrd logs one line per event, with a level, on stderr, through spdlog.
// Call InitLogging once at the start of main; afterwards use spdlog::info(),
// spdlog::warn() and friends from any thread (spdlog's default logger is
// thread-safe).

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

// Debian's Abseil has its own string_view; let spdlog format it (and so
// absl::Status::message()) directly.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename Context>
  auto format(absl::string_view s, Context& ctx) const {
    return fmt::formatter<fmt::string_view>::format(
        fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace okrd {

// Routes spdlog's default logger to stderr with a timestamp and level.
// `level` is one of trace, debug, info, warn, error, critical, off.
absl::Status InitLogging(absl::string_view level);

}  // namespace okrd

#endif  // OKRD_CORE_LOG_H_
