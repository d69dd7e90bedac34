// okrctl config check, okrctl log ...

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "config/config.h"
#include "core/args.h"
#include "core/pseudonym.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "ingest/validator.h"
#include "okrctl/commands.h"
#include "okrctl/progress.h"

namespace okrd::okrctl {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

void PrintEvent(const okrd::v1::StoredEvent& e, bool json) {
  if (json) {
    std::printf("%s\n", ToJson(e).c_str());
    return;
  }
  if (!e.has_event()) {
    std::printf(
        "#%llu %s clock tick\n", static_cast<unsigned long long>(e.sequence()),
        FormatUtc(absl::FromUnixMicros(e.tick().wall_time_us())).c_str());
    return;
  }
  const okrd::v1::KpiEvent& ev = e.event();
  std::printf(
      "#%llu %s kpi=%s subject=%s value=%.17g%s%s id=%s from %s/%d@%lld%s\n",
      static_cast<unsigned long long>(e.sequence()),
      FormatUtc(FromProto(ev.event_time())).c_str(), ev.kpi().c_str(),
      ev.subject().c_str(), ev.value(), ev.unit().empty() ? "" : " ",
      ev.unit().c_str(), ev.event_id().c_str(), e.position().topic().c_str(),
      e.position().partition(), static_cast<long long>(e.position().offset()),
      e.schema_id() != 0 ? absl::StrCat(" schema=", e.schema_id()).c_str()
                         : "");
}

void PrintRejected(const okrd::v1::RejectedRecord& r, bool json) {
  if (json) {
    std::printf("%s\n", ToJson(r).c_str());
    return;
  }
  std::printf("#%llu %s reason=%s from %s/%d@%lld: %s (%zu raw bytes)\n",
              static_cast<unsigned long long>(r.sequence()),
              FormatUtc(absl::FromUnixMicros(r.ingest_time_us())).c_str(),
              r.reason().c_str(), r.position().topic().c_str(),
              r.position().partition(),
              static_cast<long long>(r.position().offset()), r.detail().c_str(),
              r.raw().size());
}

void PrintStats(const eventlog::Stats& stats, bool json) {
  if (json) {
    google::protobuf::Struct root;
    auto& fields = *root.mutable_fields();
    fields["last_sequence"].set_number_value(
        static_cast<double>(stats.last_sequence));
    fields["last_rejected_sequence"].set_number_value(
        static_cast<double>(stats.last_rejected_sequence));
    auto& counters = *fields["events_total"].mutable_list_value();
    for (const auto& [key, count] : stats.counters) {
      auto& item =
          *counters.add_values()->mutable_struct_value()->mutable_fields();
      item["outcome"].set_string_value(key.first);
      item["reason"].set_string_value(key.second);
      item["count"].set_number_value(static_cast<double>(count));
    }
    auto& offsets = *fields["offsets"].mutable_list_value();
    for (const auto& [key, next] : stats.offsets) {
      auto& item =
          *offsets.add_values()->mutable_struct_value()->mutable_fields();
      item["topic"].set_string_value(key.first);
      item["partition"].set_number_value(key.second);
      item["next_offset"].set_number_value(static_cast<double>(next));
    }
    std::printf("%s\n", ToJson(root).c_str());
    return;
  }
  std::printf("last sequence:          %llu\n",
              static_cast<unsigned long long>(stats.last_sequence));
  std::printf("last rejected sequence: %llu\n",
              static_cast<unsigned long long>(stats.last_rejected_sequence));
  std::printf("events:\n");
  for (const auto& [key, count] : stats.counters) {
    std::printf("  %-10s %-20s %llu\n", key.first.c_str(),
                key.second.empty() ? "-" : key.second.c_str(),
                static_cast<unsigned long long>(count));
  }
  std::printf("next offsets:\n");
  for (const auto& [key, next] : stats.offsets) {
    std::printf("  %s/%d %lld\n", key.first.c_str(), key.second,
                static_cast<long long>(next));
  }
}

}  // namespace

int ConfigCommand(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[0] != "check") {
    return Usage("usage: okrctl config check FILE");
  }
  absl::StatusOr<std::shared_ptr<const config::Config>> config =
      config::LoadConfig(args[1]);
  if (!config.ok()) return Usage(std::string(config.status().message()));
  std::printf("%s: ok (%zu KPIs, %zu topics)\n", args[1].c_str(),
              (*config)->kpis.size(), (*config)->kafka.topics.size());
  return 0;
}

// okrctl log import: bulk-loads a JSON-lines file into a log through the same
// validation and dedup as the daemon, with a fixed ingest time so that the
// result (and a replay of it) is reproducible.
int ImportCommand(const Args& args) {
  const auto config_path = args.Get("config");
  const auto dir = args.Get("data-dir");
  const auto file = args.Get("file");
  if (!config_path || !dir || !file) {
    return Usage("log import: --config, --data-dir and --file are required");
  }
  long long batch_size = 0;
  if (absl::Status s = args.GetInt("batch", 1, 1000000, 10000, &batch_size);
      !s.ok()) {
    return Usage(std::string(s.message()));
  }
  absl::Time ingest_time = absl::Now();
  if (auto text = args.Get("ingest-time")) {
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, *text, &ingest_time, &err)) {
      return Usage("log import: --ingest-time: " + err);
    }
  }
  auto config = config::LoadConfig(*config_path);
  if (!config.ok()) return Usage(std::string(config.status().message()));
  std::ifstream in(*file);
  if (!in) return Usage("log import: cannot open " + *file);
  auto log = eventlog::EventLog::Open({.path = *dir, .sync = false});
  if (!log.ok()) {
    std::fprintf(stderr, "okrctl: %s\n",
                 std::string(log.status().message()).c_str());
    return 1;
  }
  const std::string topic = "import:" + *file;
  uint64_t lines = 0, accepted = 0, duplicates = 0, rejected = 0;
  std::error_code size_error;
  const uint64_t file_bytes = std::filesystem::file_size(*file, size_error);
  Progress progress("import", "bytes", size_error ? 0 : file_bytes);
  const absl::Time started = absl::Now();
  uint64_t bytes_read = 0;
  eventlog::Batch batch;
  auto flush = [&]() -> bool {
    batch.ingest_time = ingest_time;
    auto result = (*log)->Append(std::move(batch));
    batch = eventlog::Batch();
    if (!result.ok()) {
      std::fprintf(stderr, "okrctl: %s\n",
                   std::string(result.status().message()).c_str());
      return false;
    }
    accepted += result->appended.size();
    duplicates += result->duplicates;
    rejected += result->rejected.size();
    return true;
  };
  std::string line;
  while (std::getline(in, line)) {
    bytes_read += line.size() + 1;
    progress.Update(bytes_read);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    ++lines;
    okrd::v1::SourcePosition position;
    position.set_topic(topic);
    position.set_offset(static_cast<int64_t>(lines));
    eventlog::Batch::Candidate candidate = batch.NewCandidate();
    ingest::Rejection why;
    if (ingest::DecodeAndValidate(line, ingest::Encoding::kJson, **config,
                                  ingest_time, &candidate.event(), &why)) {
      candidate.position() = std::move(position);
      candidate.raw = batch.Keep(line);
      candidate.content_type = "application/json";
      batch.events.push_back(std::move(candidate));
    } else {
      okrd::v1::RejectedRecord& r = batch.rejects.emplace_back();
      r.set_reason(why.reason);
      r.set_detail(why.detail);
      r.set_raw(line);
      r.set_content_type("application/json");
      *r.mutable_position() = std::move(position);
    }
    if (batch.events.size() + batch.rejects.size() >=
            static_cast<size_t>(batch_size) &&
        !flush()) {
      return 1;
    }
  }
  if (!flush()) return 1;
  if (accepted > 0) {
    // Log the clock at the ingest time, as the daemon does, so the PIP
    // machines judge what was loaded. Not counted as accepted.
    batch.tick = true;
    if (!flush()) return 1;
    --accepted;
  }
  progress.Finish(bytes_read);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - started);
  std::fprintf(
      stderr,
      "import: %llu lines: %llu accepted, %llu duplicate, %llu "
      "rejected, in %.2f s (%.0f lines/s, %.1f MB/s)\n",
      static_cast<unsigned long long>(lines),
      static_cast<unsigned long long>(accepted),
      static_cast<unsigned long long>(duplicates),
      static_cast<unsigned long long>(rejected), seconds,
      seconds > 0 ? static_cast<double>(lines) / seconds : 0.0,
      seconds > 0 ? static_cast<double>(bytes_read) / seconds / 1e6 : 0.0);
  return 0;
}

int PseudonymCommand(const std::vector<std::string>& argv) {
  Args args({"config"}, {});
  if (absl::Status s = args.Parse(argv); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  const auto path = args.Get("config");
  if (!path || args.positional().empty()) {
    return Usage("usage: okrctl pseudonym --config FILE SUBJECT...");
  }
  auto config = config::LoadConfig(*path);
  if (!config.ok()) return Usage(std::string(config.status().message()));
  const std::string& key = (*config)->exporter.pseudonym_key;
  if (key.empty()) {
    return Usage(*path + ": export.pseudonymize_subjects is not configured");
  }
  for (const std::string& subject : args.positional()) {
    std::printf("%s\t%s\n", subject.c_str(), Pseudonym(key, subject).c_str());
  }
  return 0;
}

int LogCommand(const std::vector<std::string>& argv) {
  Args args(
      {"data-dir", "n", "event-id", "config", "file", "ingest-time", "batch"},
      {"json"});
  std::vector<std::string> flags = argv;
  // Accept the conventional "-n N" too.
  for (std::string& a : flags) {
    if (a == "-n") a = "--n";
  }
  if (absl::Status s = args.Parse(flags); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (args.positional().empty()) {
    return Usage(
        "usage: okrctl log stats|tail|get|rejected|verify|import --data-dir "
        "DIR");
  }
  const std::string sub = args.positional()[0];
  const std::optional<std::string> dir = args.Get("data-dir");
  if (!dir) return Usage("log: --data-dir DIR is required");
  if (sub == "import") return ImportCommand(args);
  const bool json = args.Has("json");
  long long n = 0;
  if (absl::Status s = args.GetInt("n", 1, 1000000, 10, &n); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  absl::StatusOr<std::unique_ptr<eventlog::EventLog>> log =
      eventlog::EventLog::Open(
          {.path = *dir, .sync = false, .read_only = true});
  if (!log.ok()) {
    std::fprintf(stderr, "okrctl: %s\n",
                 std::string(log.status().message()).c_str());
    return 1;
  }
  const eventlog::Stats stats = (*log)->GetStats();
  if (sub == "verify") {
    absl::Time next_report = absl::Now() + absl::Seconds(1);
    const absl::Status verified = (*log)->Verify(
        [&](absl::string_view what, uint64_t done, uint64_t total) {
          if (absl::Now() < next_report) return;
          next_report = absl::Now() + absl::Seconds(1);
          std::fprintf(stderr, "verify: %llu/%llu %.*s\n",
                       static_cast<unsigned long long>(done),
                       static_cast<unsigned long long>(total),
                       static_cast<int>(what.size()), what.data());
        });
    if (!verified.ok()) {
      std::fprintf(stderr, "okrctl: log %s is damaged: %s\n", dir->c_str(),
                   std::string(verified.message()).c_str());
      return 1;
    }
    std::fprintf(stderr,
                 "verify: ok: %llu records, %llu rejected, counters and "
                 "offsets consistent\n",
                 static_cast<unsigned long long>(stats.last_sequence),
                 static_cast<unsigned long long>(stats.last_rejected_sequence));
    return 0;
  }
  if (sub == "stats") {
    PrintStats(stats, json);
    return 0;
  }
  if (sub == "tail") {
    const uint64_t from = stats.last_sequence > static_cast<uint64_t>(n)
                              ? stats.last_sequence - n + 1
                              : 1;
    absl::Status s = (*log)->ForEach(from, [&](const okrd::v1::StoredEvent& e) {
      PrintEvent(e, json);
      return true;
    });
    if (!s.ok()) return Usage(std::string(s.message()));
    return 0;
  }
  if (sub == "rejected") {
    const uint64_t last = stats.last_rejected_sequence;
    const uint64_t from = last > static_cast<uint64_t>(n) ? last - n + 1 : 1;
    absl::Status s =
        (*log)->ForEachRejected(from, [&](const okrd::v1::RejectedRecord& r) {
          PrintRejected(r, json);
          return true;
        });
    if (!s.ok()) return Usage(std::string(s.message()));
    return 0;
  }
  if (sub == "get") {
    absl::StatusOr<std::optional<okrd::v1::StoredEvent>> found;
    if (auto id = args.Get("event-id")) {
      found = (*log)->GetByEventId(*id);
    } else {
      uint64_t sequence = 0;
      if (args.positional().size() != 2 ||
          !absl::SimpleAtoi(args.positional()[1], &sequence)) {
        return Usage(
            "usage: okrctl log get --data-dir DIR (SEQUENCE | --event-id ID)");
      }
      found = (*log)->Get(sequence);
    }
    if (!found.ok()) {
      std::fprintf(stderr, "okrctl: %s\n",
                   std::string(found.status().message()).c_str());
      return 1;
    }
    if (!found->has_value()) {
      std::fprintf(stderr, "okrctl: no such event\n");
      return 1;
    }
    PrintEvent(**found, json);
    return 0;
  }
  return Usage("log: unknown subcommand \"" + sub +
               "\" (expected stats, tail, get, rejected)");
}

}  // namespace okrd::okrctl
