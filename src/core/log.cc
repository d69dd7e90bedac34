#include "core/log.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "google/protobuf/stubs/logging.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace okrd {
namespace {

thread_local ProtobufComplaints* complaints = nullptr;

}  // namespace

// Protobuf writes its complaints to stderr in a format of its own; this puts
// them into okrd's log, or into the innermost ProtobufComplaints of the
// thread.
struct ProtobufLogRouter {
  static void Log(google::protobuf::LogLevel level, const char* filename,
                  int line, const std::string& message) {
    if (complaints != nullptr && level != google::protobuf::LOGLEVEL_FATAL) {
      if (complaints->first_.empty()) {
        absl::string_view first = absl::StripAsciiWhitespace(message);
        first = first.substr(0, first.find(". "));
        complaints->first_ = std::string(absl::StripSuffix(first, "."));
      }
      return;
    }
    spdlog::level::level_enum to = spdlog::level::critical;
    switch (level) {
      case google::protobuf::LOGLEVEL_INFO:
        to = spdlog::level::debug;
        break;
      case google::protobuf::LOGLEVEL_WARNING:
        to = spdlog::level::warn;
        break;
      case google::protobuf::LOGLEVEL_ERROR:
        to = spdlog::level::err;
        break;
      case google::protobuf::LOGLEVEL_FATAL:
        break;
    }
    spdlog::log(
        to, "protobuf: {} ({}:{})",
        absl::StrReplaceAll(absl::StripAsciiWhitespace(message), {{"\n", " "}}),
        filename, line);
  }

  static void Install() {
    [[maybe_unused]] static const bool installed =
        (google::protobuf::SetLogHandler(&Log), true);
  }
};

ProtobufComplaints::ProtobufComplaints() : outer_(complaints) {
  ProtobufLogRouter::Install();
  complaints = this;
}

ProtobufComplaints::~ProtobufComplaints() { complaints = outer_; }

absl::Status InitLogging(absl::string_view level) {
  const spdlog::level::level_enum parsed =
      spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level \"", level,
                     "\" (expected trace, debug, info, warn, error, off)"));
  }
  auto logger = std::make_shared<spdlog::logger>(
      "okrd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  ProtobufLogRouter::Install();
  return absl::OkStatus();
}

}  // namespace okrd
