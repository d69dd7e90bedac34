// okrctl broker, okrctl produce.

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "config/config.h"
#include "core/args.h"
#include "core/time_util.h"
#include "google/protobuf/util/json_util.h"
#include "ingest/embedded_broker.h"
#include "ingest/framing.h"
#include "ingest/producer.h"
#include "okrctl/commands.h"
#include "okrd/v1/kpi_event.pb.h"

namespace okrd::okrctl {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

int Fail(absl::string_view message) {
  std::fprintf(stderr, "okrctl: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return 1;
}

// A plausible value for a KPI measured in `unit`.
double SampleValue(const std::string& unit, std::mt19937_64& rng) {
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  if (unit == "percent") return std::round(uniform(1, 60) * 10) / 10;
  if (unit == "EUR") return std::round(uniform(1000, 50000));
  if (unit == "hours") return std::round(uniform(2, 72) * 10) / 10;
  // The example's churn ratio: a few accounts lost a day out of a thousand.
  if (unit == "churned accounts") return std::round(uniform(0, 5));
  if (unit == "accounts") return std::round(uniform(900, 1100));
  return std::round(uniform(10, 500));
}

// Paces sending to `rate` messages per second (0: unlimited).
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), start_(absl::Now()) {}
  void Wait(uint64_t sent) {
    if (rate_ <= 0) return;
    const absl::Time due =
        start_ + absl::Seconds(static_cast<double>(sent) / rate_);
    const absl::Duration ahead = due - absl::Now();
    if (ahead > absl::ZeroDuration()) absl::SleepFor(ahead);
  }

 private:
  double rate_;
  absl::Time start_;
};

}  // namespace

int BrokerCommand(const std::vector<std::string>& argv) {
  Args args({"partitions", "topic", "addr-file"}, {});
  if (absl::Status s = args.Parse(argv); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  long long partitions = 0;
  if (absl::Status s = args.GetInt("partitions", 1, 1024, 4, &partitions);
      !s.ok()) {
    return Usage(std::string(s.message()));
  }
  std::vector<std::string> topics = args.All("topic");
  if (topics.empty()) topics = {"kpi-events"};
  auto broker =
      ingest::EmbeddedBroker::Start(static_cast<int>(partitions), topics);
  if (!broker.ok()) return Fail(broker.status().message());
  std::printf("bootstrap: %s\n", (*broker)->bootstrap().c_str());
  std::fflush(stdout);
  if (auto file = args.Get("addr-file")) {
    const std::string tmp = *file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << (*broker)->bootstrap() << "\n";
      if (!out) return Fail("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), file->c_str()) != 0) {
      return Fail("cannot rename " + tmp + " to " + *file);
    }
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!g_stop.load()) absl::SleepFor(absl::Milliseconds(100));
  return 0;
}

int ProduceCommand(const std::vector<std::string>& argv) {
  Args args({"brokers", "topic", "config", "kpi", "count", "rate", "subjects",
             "subject", "seed", "format", "event-time", "file", "property",
             "framing", "schema-id"},
            {});
  if (absl::Status s = args.Parse(argv); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  const auto brokers = args.Get("brokers");
  const auto topic = args.Get("topic");
  if (!brokers || !topic)
    return Usage("produce: --brokers and --topic are required");
  const std::string format = args.Get("format").value_or("protobuf");
  if (format != "protobuf" && format != "json") {
    return Usage("produce: --format must be protobuf or json");
  }
  const std::string framing = args.Get("framing").value_or("none");
  if (framing != "none" && framing != "confluent") {
    return Usage("produce: --framing must be none or confluent");
  }
  long long count = 0, rate = 0, subjects = 0, seed = 0, schema_id = 0;
  for (auto [name, min, max, fallback, out] :
       {std::tuple{"count", 0LL, 1000000000LL, 100LL, &count},
        std::tuple{"rate", 0LL, 10000000LL, 0LL, &rate},
        std::tuple{"subjects", 1LL, 10000000LL, 5LL, &subjects},
        std::tuple{"seed", 0LL, (1LL << 62), 1LL, &seed},
        std::tuple{"schema-id", 1LL, 2147483647LL, 1LL, &schema_id}}) {
    if (absl::Status s = args.GetInt(name, min, max, fallback, out); !s.ok()) {
      return Usage(std::string(s.message()));
    }
  }
  absl::Time base = absl::Now();
  if (auto text = args.Get("event-time")) {
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, *text, &base, &err)) {
      return Usage("produce: --event-time: " + err);
    }
  }
  std::map<std::string, std::string> properties;
  if (absl::Status s = args.GetPairs("property", &properties); !s.ok()) {
    return Usage("produce: " + std::string(s.message()));
  }
  auto producer = ingest::Producer::Create(*brokers, properties);
  if (!producer.ok()) return Usage(std::string(producer.status().message()));

  const ingest::Headers json_headers = {{"content-type", "application/json"}};
  Pacer pacer(static_cast<double>(rate));
  uint64_t sent = 0;
  std::string payload;
  // Schema Registry framing (ingest/framing.h), as Confluent serializers
  // write it; such producers send no content-type header.
  auto framed = [&](bool json) -> const std::string& {
    if (framing == "confluent") {
      payload =
          ingest::FrameMessage(static_cast<uint32_t>(schema_id), json, payload);
    }
    return payload;
  };
  const ingest::Headers no_headers;
  auto send = [&](const okrd::v1::KpiEvent& event) -> absl::Status {
    if (format == "json") {
      payload.clear();
      (void)google::protobuf::util::MessageToJsonString(event, &payload);
      return (*producer)->Send(
          *topic, event.subject(), framed(true),
          framing == "confluent" ? no_headers : json_headers);
    }
    event.SerializeToString(&payload);
    return (*producer)->Send(*topic, event.subject(), framed(false), {});
  };

  if (auto file = args.Get("file")) {
    std::ifstream in(*file);
    if (!in) return Usage("produce: cannot open " + *file);
    std::string line;
    while (std::getline(in, line) && !g_stop.load()) {
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      okrd::v1::KpiEvent event;
      absl::Status s;
      if (google::protobuf::util::JsonStringToMessage(line, &event).ok()) {
        s = send(event);
      } else {
        // Lines that are not events go out verbatim, so bad input can be
        // tested end to end.
        s = (*producer)->Send(*topic, "", line, json_headers);
      }
      if (!s.ok()) return Fail(s.message());
      pacer.Wait(++sent);
    }
  } else {
    std::vector<std::pair<std::string, std::string>> kpis;  // id, unit
    if (auto path = args.Get("config")) {
      auto config = config::LoadConfig(*path);
      if (!config.ok()) return Usage(std::string(config.status().message()));
      for (const auto& kpi : (*config)->kpis) {
        // Derived KPIs take no events: they follow their inputs.
        if (!kpi.is_derived()) kpis.emplace_back(kpi.id, kpi.unit);
      }
    }
    for (const std::string& id : args.All("kpi")) kpis.emplace_back(id, "");
    if (kpis.empty()) return Usage("produce: give --config FILE or --kpi ID");
    // Explicit --subject names, or team-1..team-N.
    const std::vector<std::string> names = args.All("subject");
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    for (long long i = 0; i < count && !g_stop.load(); ++i) {
      const auto& [kpi, unit] = kpis[static_cast<size_t>(i) % kpis.size()];
      okrd::v1::KpiEvent event;
      event.set_event_id(absl::StrCat("gen-", seed, "-", i));
      event.set_kpi(kpi);
      const size_t round = static_cast<size_t>(i) / kpis.size();
      event.set_subject(names.empty()
                            ? absl::StrCat("team-", round % subjects + 1)
                            : names[round % names.size()]);
      event.set_value(SampleValue(unit, rng));
      if (!unit.empty()) event.set_unit(unit);
      event.set_kind(okrd::v1::MEASUREMENT);
      event.set_source("okrctl");
      ToProto(base - absl::Seconds(static_cast<double>(i % 60)),
              event.mutable_event_time());
      if (absl::Status s = send(event); !s.ok()) return Fail(s.message());
      pacer.Wait(++sent);
    }
  }
  if (absl::Status s = (*producer)->Flush(absl::Seconds(30)); !s.ok()) {
    return Fail(s.message());
  }
  std::fprintf(stderr, "okrctl: sent %llu messages to %s\n",
               static_cast<unsigned long long>(sent), topic->c_str());
  return 0;
}

}  // namespace okrd::okrctl
