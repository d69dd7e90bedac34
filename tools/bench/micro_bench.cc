// Micro benchmarks of ingest's hot path, one stage at a time: decode and
// validate, durable append of a batch (sync on/off), projection fold.

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "config/config.h"
#include "core/time_util.h"
#include "eventlog/event_log.h"
#include "eventlog/id_table.h"
#include "google/protobuf/util/json_util.h"
#include "ingest/validator.h"
#include "projection/kpi_projection.h"
#include "simdjson.h"

namespace okrd {
namespace {

// One KPI, "signups", summed (or with `aggregation`, e.g. a median); with
// `derived`, also a ratio and a change that follow it.
std::shared_ptr<const config::Config> BenchConfig(
    config::Aggregation aggregation = config::Aggregation::kSum,
    bool derived = false) {
  auto config = std::make_shared<config::Config>();
  config::KpiOptions kpi;
  kpi.id = "signups";
  kpi.unit = "count";
  kpi.aggregation = aggregation;
  config->kpis.push_back(kpi);
  if (derived) {
    config::KpiOptions ratio;
    ratio.id = "signups_per_signup";
    ratio.derived.kind = config::DerivedKpi::Kind::kRatio;
    ratio.derived.inputs = {"signups", "signups"};
    config->kpis.push_back(ratio);
    config::KpiOptions change;
    change.id = "signup_growth";
    change.derived.kind = config::DerivedKpi::Kind::kChange;
    change.derived.inputs = {"signups"};
    config->kpis.push_back(change);
  }
  return config;
}

okrd::v1::KpiEvent Event(int64_t i) {
  okrd::v1::KpiEvent e;
  e.set_event_id(absl::StrCat("bench-", i));
  e.set_kpi("signups");
  e.set_subject(absl::StrCat("subject-", i % 1000));
  e.set_value(static_cast<double>(i % 100));
  e.set_unit("count");
  e.set_source("bench");
  ToProto(absl::Now() - absl::Minutes(1), e.mutable_event_time());
  return e;
}

// Event(1) as proto3 JSON or binary protobuf.
bool Encoded(bool json, std::string* out) {
  return json ? google::protobuf::util::MessageToJsonString(Event(1), out).ok()
              : Event(1).SerializeToString(out);
}

// One event through decode and validation: as binary protobuf (range 0)
// or as proto3 JSON (1), through okrd's decoder.
void BM_DecodeAndValidate(benchmark::State& state) {
  const auto config = BenchConfig();
  const bool json = state.range(0) == 1;
  std::string payload;
  if (!Encoded(json, &payload)) {
    state.SkipWithError("cannot encode the event");
    return;
  }
  const auto encoding =
      json ? ingest::Encoding::kJson : ingest::Encoding::kProtobuf;
  const absl::Time now = absl::Now();
  okrd::v1::KpiEvent out;
  ingest::Rejection rejection;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ingest::DecodeAndValidate(
        payload, encoding, *config, now, &out, &rejection));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(
      absl::StrCat(json ? "json, " : "protobuf, ", payload.size(), " bytes"));
}
BENCHMARK(BM_DecodeAndValidate)->Arg(0)->Arg(1);

// The consume thread's part of a batch of range(0) binary events: each
// decoded and validated into a new candidate of the batch, its position set
// and its bytes kept, then the batch freed once the pipeline is done with
// it, as KafkaIngest does.
void BM_DecodeIntoBatch(benchmark::State& state) {
  const auto config = BenchConfig();
  std::vector<std::string> payloads;
  for (int64_t i = 0; i < state.range(0); ++i) {
    payloads.push_back(Event(i).SerializeAsString());
  }
  const absl::Time now = absl::Now();
  for (auto _ : state) {
    auto batch = std::make_unique<eventlog::Batch>();
    int64_t offset = 0;
    for (const std::string& payload : payloads) {
      eventlog::Batch::Candidate candidate = batch->NewCandidate();
      ingest::Rejection rejection;
      if (!ingest::DecodeAndValidate(payload, ingest::Encoding::kProtobuf,
                                     *config, now, &candidate.event(),
                                     &rejection)) {
        state.SkipWithError("rejected");
        return;
      }
      candidate.position().set_topic("bench");
      candidate.position().set_offset(offset++);
      candidate.raw = batch->Keep(payload);
      batch->events.push_back(std::move(candidate));
    }
    batch.reset();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_DecodeIntoBatch)->Arg(5000);

// The floors under BM_DecodeAndValidate: parsing the same event's bytes and
// nothing more, as a binary KpiEvent (range 0) or as a JSON document by
// simdjson (1), whose parse okrd's JSON decoder cannot do without.
void BM_ParseOnly(benchmark::State& state) {
  const bool json = state.range(0) == 1;
  std::string payload;
  if (!Encoded(json, &payload)) {
    state.SkipWithError("cannot encode the event");
    return;
  }
  simdjson::dom::parser parser;
  okrd::v1::KpiEvent out;
  payload.reserve(payload.size() + simdjson::SIMDJSON_PADDING);
  for (auto _ : state) {
    if (json) {
      simdjson::dom::element root;
      benchmark::DoNotOptimize(
          parser.parse(payload.data(), payload.size(), false).get(root));
    } else {
      benchmark::DoNotOptimize(out.ParseFromString(payload));
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(json ? "simdjson" : "protobuf");
}
BENCHMARK(BM_ParseOnly)->Arg(0)->Arg(1);

// protobuf's own JSON parser on the same input, which okrd used before.
void BM_ProtobufJsonParse(benchmark::State& state) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(Event(1), &json).ok()) {
    state.SkipWithError("cannot print the event as JSON");
    return;
  }
  okrd::v1::KpiEvent out;
  for (auto _ : state) {
    out.Clear();
    benchmark::DoNotOptimize(
        google::protobuf::util::JsonStringToMessage(json, &out).ok());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProtobufJsonParse);

// The bytes the log stores for one decoded event, and compares a repeated
// id's against, as the consume thread serializes them when it seals the
// event (which took 274-294 ns with the SHA-256 it computed until 2026-12-03).
void BM_EventBytes(benchmark::State& state) {
  const okrd::v1::KpiEvent event = Event(1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(eventlog::EventBytes(event));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EventBytes);

// One durable batch of range(0) new events; arg 1 selects fsync.
void BM_AppendBatch(benchmark::State& state) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    absl::StrCat("okrd-micro-", getpid());
  std::filesystem::remove_all(dir);
  auto log = eventlog::EventLog::Open(
      {.path = dir.string(), .sync = state.range(1) != 0});
  if (!log.ok()) {
    state.SkipWithError("cannot open log");
    return;
  }
  int64_t next = 0;
  for (auto _ : state) {
    state.PauseTiming();
    eventlog::Batch batch;
    for (int64_t i = 0; i < state.range(0); ++i) {
      eventlog::Batch::Candidate& c = batch.AddCandidate();
      c.event() = Event(next);
      c.position().set_topic("bench");
      c.position().set_offset(next++);
      c.raw = batch.Keep(c.event().SerializeAsString());
    }
    batch.next_offsets[{"bench", 0}] = next;
    state.ResumeTiming();
    auto result = (*log)->Append(std::move(batch));
    if (!result.ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  log->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AppendBatch)
    ->Args({1000, 1})
    ->Args({1000, 0})
    ->Args({5000, 1})
    ->UseRealTime();

// Ordering range(0) ids for the id index (a batch's lookups, a run's
// writing): with SortByIds (range(2) 1) or std::sort comparing whole ids
// (0); range(1) 0 for "bench-N" ids of a shuffled range, 1 for 32 random hex
// digits.
void BM_SortIds(benchmark::State& state) {
  std::mt19937_64 random(1);
  std::vector<std::string> ids;
  for (int64_t i = 0; i < state.range(0); ++i) {
    ids.push_back(state.range(1) == 0
                      ? absl::StrCat("bench-", i)
                      : absl::StrCat(absl::Hex(random(), absl::kZeroPad16),
                                     absl::Hex(random(), absl::kZeroPad16)));
  }
  std::shuffle(ids.begin(), ids.end(), random);
  std::vector<std::pair<absl::string_view, uint32_t>> items;
  for (auto _ : state) {
    state.PauseTiming();
    items.clear();
    for (uint32_t i = 0; i < ids.size(); ++i) items.emplace_back(ids[i], i);
    state.ResumeTiming();
    if (state.range(2) == 1) {
      eventlog::SortByIds(items, [](const auto& item) { return item.first; });
    } else {
      std::sort(items.begin(), items.end());
    }
    benchmark::DoNotOptimize(items.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SortIds)
    ->ArgsProduct({{5000, 200000}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

// Folding one event: a sum (range 0) or a median from its sketch (1).
void BM_ProjectionApply(benchmark::State& state) {
  projection::KpiProjection projection(
      BenchConfig(state.range(0) == 0 ? config::Aggregation::kSum
                                      : config::Aggregation::kQuantile));
  okrd::v1::StoredEvent record;
  record.set_ingest_time_us(absl::ToUnixMicros(absl::Now()));
  int64_t i = 0;
  for (auto _ : state) {
    *record.mutable_event() = Event(i);
    record.set_sequence(static_cast<uint64_t>(++i));
    projection.Apply(record);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProjectionApply)->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace okrd

BENCHMARK_MAIN();
