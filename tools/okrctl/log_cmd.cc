// okrctl config check, okrctl log ...

#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "core/args.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "okrctl/commands.h"

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
  const okrd::v1::KpiEvent& ev = e.event();
  std::printf(
      "#%llu %s kpi=%s subject=%s value=%.17g%s%s id=%s from %s/%d@%lld\n",
      static_cast<unsigned long long>(e.sequence()),
      FormatUtc(FromProto(ev.event_time())).c_str(), ev.kpi().c_str(),
      ev.subject().c_str(), ev.value(), ev.unit().empty() ? "" : " ",
      ev.unit().c_str(), ev.event_id().c_str(), e.position().topic().c_str(),
      e.position().partition(), static_cast<long long>(e.position().offset()));
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

int LogCommand(const std::vector<std::string>& argv) {
  Args args({"data-dir", "n", "event-id"}, {"json"});
  std::vector<std::string> flags = argv;
  // Accept the conventional "-n N" too.
  for (std::string& a : flags) {
    if (a == "-n") a = "--n";
  }
  if (absl::Status s = args.Parse(flags); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (args.positional().empty()) {
    return Usage("usage: okrctl log stats|tail|get|rejected --data-dir DIR");
  }
  const std::string sub = args.positional()[0];
  const std::optional<std::string> dir = args.Get("data-dir");
  if (!dir) return Usage("log: --data-dir DIR is required");
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
