#ifndef OKRD_CORE_LOG_H_
#define OKRD_CORE_LOG_H_

// okrd logs one line per event, with a level, on stderr, through spdlog.
// Call InitLogging once at the start of main; afterwards use spdlog::info(),
// spdlog::warn() and friends from any thread (spdlog's default logger is
// thread-safe).

#include <string>

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

// Routes spdlog's default logger to stderr with a timestamp and level, and
// protobuf's own log lines into it.
// `level` is one of trace, debug, info, warn, error, critical, off.
absl::Status InitLogging(absl::string_view level);

// While one lives, what protobuf would log on this thread is collected here
// instead: a parser's complaint about a message (a string field that is not
// UTF-8, say) belongs in that message's rejection, not in a log line of its
// own. Scopes nest; the innermost collects. Not to be shared across threads.
class ProtobufComplaints {
 public:
  ProtobufComplaints();
  ~ProtobufComplaints();
  ProtobufComplaints(const ProtobufComplaints&) = delete;
  ProtobufComplaints& operator=(const ProtobufComplaints&) = delete;

  // The first sentence of the first complaint, or empty.
  const std::string& first() const { return first_; }

 private:
  friend struct ProtobufLogRouter;
  ProtobufComplaints* outer_;
  std::string first_;
};

}  // namespace okrd

#endif  // OKRD_CORE_LOG_H_
