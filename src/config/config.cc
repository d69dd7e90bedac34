#include "config/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "config/yaml_reader.h"
#include "core/time_util.h"
#include "yaml-cpp/yaml.h"

namespace okrd::config {

absl::string_view AggregationName(Aggregation a) {
  switch (a) {
    case Aggregation::kLatest:
      return "latest";
    case Aggregation::kSum:
      return "sum";
    case Aggregation::kCount:
      return "count";
    case Aggregation::kMean:
      return "mean";
    case Aggregation::kMin:
      return "min";
    case Aggregation::kMax:
      return "max";
    case Aggregation::kQuantile:
      return "quantile";
  }
  return "unknown";
}

absl::string_view PeriodName(PeriodKind p) {
  switch (p) {
    case PeriodKind::kDay:
      return "day";
    case PeriodKind::kWeek:
      return "week";
    case PeriodKind::kMonth:
      return "month";
    case PeriodKind::kQuarter:
      return "quarter";
  }
  return "unknown";
}

absl::string_view PipActionKindName(PipAction::Kind kind) {
  switch (kind) {
    case PipAction::Kind::kTraining:
      return "training";
    case PipAction::Kind::kMentoring:
      return "mentoring";
    case PipAction::Kind::kGoal:
      return "goal";
    case PipAction::Kind::kOther:
      return "other";
  }
  return "unknown";
}

const KpiOptions* Config::FindKpi(absl::string_view id) const {
  for (const KpiOptions& kpi : kpis) {
    if (kpi.id == id) return &kpi;
  }
  return nullptr;
}

const PipPolicyOptions* Config::FindPipPolicy(absl::string_view id) const {
  for (const PipPolicyOptions& policy : pip_policies) {
    if (policy.id == id) return &policy;
  }
  return nullptr;
}

absl::Status ParseHostPort(absl::string_view text, std::string* host,
                           int* port) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Reader::Quote(text), " is not HOST:PORT"));
  }
  int parsed = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &parsed) || parsed < 0 ||
      parsed > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(Reader::Quote(text), " has no valid port (0-65535)"));
  }
  *host = std::string(text.substr(0, colon));
  *port = parsed;
  return absl::OkStatus();
}

namespace {

void ReadKafka(Reader& r, const YAML::Node& node, KafkaOptions* kafka) {
  const std::string path = "kafka";
  if (!r.Map(node, path,
             {"brokers", "topics", "json_topics", "schema_ids", "group_id",
              "dlq_topic", "auto_offset_reset", "batch_max_messages",
              "batch_max_wait", "embedded_partitions", "properties"})) {
    return;
  }
  if (auto v = r.String(node, path, "brokers", false)) kafka->brokers = *v;
  if (kafka->brokers.empty()) {
    r.Fail(node["brokers"], "kafka.brokers", "must not be empty");
  }
  r.StringList(node, path, "topics", &kafka->topics);
  if (r.ok() && kafka->topics.empty()) {
    r.Fail(node["topics"] ? node["topics"] : node, "kafka.topics",
           "at least one topic is required");
  }
  r.StringList(node, path, "json_topics", &kafka->json_topics);
  for (const std::string& topic : kafka->json_topics) {
    if (std::find(kafka->topics.begin(), kafka->topics.end(), topic) ==
        kafka->topics.end()) {
      r.Fail(node["json_topics"], "kafka.json_topics",
             absl::StrCat(Reader::Quote(topic), " is not one of kafka.topics"));
    }
  }
  std::vector<std::string> schema_ids;
  r.StringList(node, path, "schema_ids", &schema_ids);
  for (size_t i = 0; i < schema_ids.size(); ++i) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(schema_ids[i], &id) || id == 0 || id > 0x7fffffff) {
      r.Fail(node["schema_ids"][i], absl::StrCat("kafka.schema_ids[", i, "]"),
             absl::StrCat("expected a schema id in [1, 2147483647], got ",
                          Reader::Quote(schema_ids[i])));
      break;
    }
    kafka->schema_ids.push_back(id);
  }
  if (auto v = r.String(node, path, "group_id", false)) kafka->group_id = *v;
  if (kafka->group_id.empty()) {
    r.Fail(node["group_id"], "kafka.group_id", "must not be empty");
  }
  if (auto v = r.String(node, path, "dlq_topic", false)) kafka->dlq_topic = *v;
  if (std::find(kafka->topics.begin(), kafka->topics.end(), kafka->dlq_topic) !=
      kafka->topics.end()) {
    r.Fail(node["dlq_topic"], "kafka.dlq_topic",
           "must differ from every consumed topic");
  }
  if (auto v = r.String(node, path, "auto_offset_reset", false)) {
    if (*v != "earliest" && *v != "latest") {
      r.Fail(node["auto_offset_reset"], "kafka.auto_offset_reset",
             absl::StrCat("unknown value ", Reader::Quote(*v),
                          " (expected earliest or latest)"));
    }
    kafka->auto_offset_reset = *v;
  }
  r.Int(node, path, "batch_max_messages", 1, 100000,
        &kafka->batch_max_messages);
  r.Duration(node, path, "batch_max_wait", &kafka->batch_max_wait);
  r.Int(node, path, "embedded_partitions", 1, 256, &kafka->embedded_partitions);
  const YAML::Node props = node["properties"];
  if (props) {
    if (!props.IsMap()) {
      r.Fail(props, "kafka.properties", "expected a mapping of strings");
      return;
    }
    for (const auto& entry : props) {
      if (!entry.second.IsScalar()) {
        r.Fail(entry.second,
               absl::StrCat("kafka.properties.", entry.first.Scalar()),
               "expected a string value");
        return;
      }
      kafka->properties[entry.first.Scalar()] = entry.second.Scalar();
    }
  }
}

// The quantile of a quantile KPI: named (median, p90, p95, p99), or
// `aggregation: quantile` with `quantile: Q`, 0 < Q < 1.
void ReadQuantile(Reader& r, const YAML::Node& node, const std::string& path,
                  KpiOptions* kpi) {
  const std::string name = node["aggregation"] && node["aggregation"].IsScalar()
                               ? node["aggregation"].Scalar()
                               : "";
  static const std::pair<const char*, double> kNamed[] = {
      {"median", 0.5}, {"p90", 0.9}, {"p95", 0.95}, {"p99", 0.99}};
  for (const auto& [named, q] : kNamed) {
    if (name == named) kpi->quantile = q;
  }
  const bool given = r.Double(node, path, "quantile", &kpi->quantile);
  if (!r.ok()) return;
  if (given && name != "quantile") {
    r.Fail(node["quantile"], Reader::Join(path, "quantile"),
           "only with aggregation: quantile");
  } else if (name == "quantile" && !given) {
    r.Fail(node["aggregation"], Reader::Join(path, "quantile"),
           "required with aggregation: quantile (e.g. 0.9)");
  } else if (given && !(kpi->quantile > 0 && kpi->quantile < 1)) {
    r.Fail(node["quantile"], Reader::Join(path, "quantile"),
           absl::StrCat("must be between 0 and 1, exclusive, got ",
                        kpi->quantile));
  }
}

// `ratio: {numerator, denominator, scale}` or
// `change: {of, against, as}`; the inputs are checked once every KPI is
// read (ResolveDerived).
void ReadDerived(Reader& r, const YAML::Node& node, const std::string& path,
                 KpiOptions* kpi) {
  DerivedKpi& d = kpi->derived;
  if (node["ratio"] && node["change"]) {
    r.Fail(node["change"], Reader::Join(path, "change"),
           "a KPI is a ratio or a change, not both");
    return;
  }
  if (const YAML::Node ratio = node["ratio"]) {
    const std::string at = Reader::Join(path, "ratio");
    if (!r.Map(ratio, at, {"numerator", "denominator", "scale"})) return;
    d.kind = DerivedKpi::Kind::kRatio;
    for (const char* key : {"numerator", "denominator"}) {
      if (auto v = r.String(ratio, at, key, true)) d.inputs.push_back(*v);
    }
    r.Double(ratio, at, "scale", &d.scale);
  } else if (const YAML::Node change = node["change"]) {
    const std::string at = Reader::Join(path, "change");
    if (!r.Map(change, at, {"of", "against", "as"})) return;
    d.kind = DerivedKpi::Kind::kChange;
    if (auto v = r.String(change, at, "of", true)) d.inputs.push_back(*v);
    r.Choice<bool>(
        change, at, "against",
        {{"previous_period", false}, {"same_period_last_year", true}},
        &d.same_period_last_year);
    r.Choice<bool>(change, at, "as", {{"relative", true}, {"absolute", false}},
                   &d.relative);
  } else {
    return;
  }
  if (r.ok() && node["aggregation"]) {
    r.Fail(node["aggregation"], Reader::Join(path, "aggregation"),
           "a derived KPI has no aggregation of its own");
  }
  if (r.ok() && node["allowed_lateness"]) {
    r.Fail(node["allowed_lateness"], Reader::Join(path, "allowed_lateness"),
           "a derived KPI takes no events: its periods close when its "
           "inputs' do");
  }
}

void ReadKpi(Reader& r, const YAML::Node& node, const std::string& path,
             KpiOptions* kpi) {
  if (!r.Map(node, path,
             {"id", "description", "unit", "aggregation", "quantile", "period",
              "time_zone", "week_start", "staleness", "allowed_lateness",
              "ratio", "change"})) {
    return;
  }
  ReadDerived(r, node, path, kpi);
  if (auto v = r.String(node, path, "id", true)) kpi->id = *v;
  if (auto v = r.String(node, path, "description", false)) {
    kpi->description = *v;
  }
  if (auto v = r.String(node, path, "unit", false)) kpi->unit = *v;
  r.Choice<Aggregation>(node, path, "aggregation",
                        {{"latest", Aggregation::kLatest},
                         {"sum", Aggregation::kSum},
                         {"count", Aggregation::kCount},
                         {"mean", Aggregation::kMean},
                         {"min", Aggregation::kMin},
                         {"max", Aggregation::kMax},
                         {"median", Aggregation::kQuantile},
                         {"p90", Aggregation::kQuantile},
                         {"p95", Aggregation::kQuantile},
                         {"p99", Aggregation::kQuantile},
                         {"quantile", Aggregation::kQuantile}},
                        &kpi->aggregation);
  ReadQuantile(r, node, path, kpi);
  r.Choice<PeriodKind>(node, path, "period",
                       {{"day", PeriodKind::kDay},
                        {"week", PeriodKind::kWeek},
                        {"month", PeriodKind::kMonth},
                        {"quarter", PeriodKind::kQuarter}},
                       &kpi->period);
  if (auto v = r.String(node, path, "time_zone", false)) {
    kpi->time_zone = *v;
    if (!absl::LoadTimeZone(*v, &kpi->zone)) {
      r.Fail(node["time_zone"], Reader::Join(path, "time_zone"),
             absl::StrCat("unknown time zone ", Reader::Quote(*v),
                          " (is tzdata installed?)"));
    }
  }
  r.Int(node, path, "week_start", 1, 7, &kpi->week_start);
  r.Duration(node, path, "staleness", &kpi->staleness);
  r.Duration(node, path, "allowed_lateness", &kpi->allowed_lateness);
}

std::string CalendarOf(const KpiOptions& kpi) {
  return absl::StrCat(PeriodName(kpi.period), " in ", kpi.time_zone,
                      kpi.period == PeriodKind::kWeek
                          ? absl::StrCat(", weeks from day ", kpi.week_start)
                          : "");
}

// The longest allowed_lateness of `kpi`'s inputs that set one; none (no
// limit) when none does. Derived inputs are resolved first.
absl::Duration ClosingLateness(const Config& config, const KpiOptions& kpi) {
  absl::Duration longest = absl::InfiniteDuration();
  for (const std::string& input : kpi.derived.inputs) {
    const KpiOptions* in = config.FindKpi(input);
    if (in == nullptr || in->allowed_lateness == absl::InfiniteDuration()) {
      continue;
    }
    longest = longest == absl::InfiniteDuration()
                  ? in->allowed_lateness
                  : std::max(longest, in->allowed_lateness);
  }
  return longest;
}

// Checks every derived KPI's inputs (known, of one calendar, no cycle) and
// gives it their period, time zone and week start, which it may repeat but
// not contradict.
void ResolveDerived(Reader& r, const YAML::Node& kpis, Config* config) {
  // 0: not visited, 1: on the path being resolved, 2: resolved.
  std::vector<int> mark(config->kpis.size(), 0);
  std::vector<std::string> path_ids;
  std::function<void(size_t)> resolve = [&](size_t i) {
    KpiOptions& kpi = config->kpis[i];
    if (mark[i] == 2 || !r.ok()) return;
    const YAML::Node node = kpis[i];
    const std::string at = absl::StrCat(
        "kpis[", i, "].",
        kpi.derived.kind == DerivedKpi::Kind::kRatio ? "ratio" : "change");
    const YAML::Node where =
        node[kpi.derived.kind == DerivedKpi::Kind::kRatio ? "ratio" : "change"];
    if (mark[i] == 1) {
      path_ids.push_back(kpi.id);
      r.Fail(where, at,
             absl::StrCat("derived KPIs form a cycle: ",
                          absl::StrJoin(path_ids, " -> ")));
      return;
    }
    mark[i] = 1;
    path_ids.push_back(kpi.id);
    const KpiOptions* first = nullptr;
    for (const std::string& input : kpi.derived.inputs) {
      const KpiOptions* in = config->FindKpi(input);
      if (in == nullptr) {
        r.Fail(where, at, absl::StrCat("unknown KPI ", Reader::Quote(input)));
        return;
      }
      if (in->is_derived()) resolve(in - config->kpis.data());
      if (!r.ok()) return;
      if (first == nullptr) {
        first = in;
      } else if (CalendarOf(*first) != CalendarOf(*in)) {
        r.Fail(where, at,
               absl::StrCat(Reader::Quote(first->id), " is counted by ",
                            CalendarOf(*first), " but ", Reader::Quote(in->id),
                            " by ", CalendarOf(*in),
                            ": a ratio needs one calendar"));
        return;
      }
    }
    for (const char* key : {"period", "time_zone", "week_start"}) {
      if (node[key] && CalendarOf(kpi) != CalendarOf(*first)) {
        r.Fail(
            node[key], absl::StrCat("kpis[", i, "].", key),
            absl::StrCat(Reader::Quote(kpi.id), " is counted by ",
                         CalendarOf(kpi), " but its input ",
                         Reader::Quote(first->id), " by ", CalendarOf(*first)));
        return;
      }
    }
    kpi.period = first->period;
    kpi.time_zone = first->time_zone;
    kpi.zone = first->zone;
    kpi.week_start = first->week_start;
    // Its periods close when the last of its inputs' do.
    kpi.allowed_lateness = ClosingLateness(*config, kpi);
    path_ids.pop_back();
    mark[i] = 2;
  };
  for (size_t i = 0; i < config->kpis.size() && r.ok(); ++i) {
    if (config->kpis[i].is_derived()) resolve(i);
  }
}

void ReadLimits(Reader& r, const YAML::Node& node, LimitsOptions* limits) {
  const std::string path = "limits";
  if (!r.Map(node, path,
             {"max_message_bytes", "max_id_bytes", "max_attributes",
              "max_attribute_bytes", "max_future_skew"})) {
    return;
  }
  r.Size(node, path, "max_message_bytes", &limits->max_message_bytes);
  r.Size(node, path, "max_id_bytes", &limits->max_id_bytes);
  r.Size(node, path, "max_attributes", &limits->max_attributes);
  r.Size(node, path, "max_attribute_bytes", &limits->max_attribute_bytes);
  r.Duration(node, path, "max_future_skew", &limits->max_future_skew);
}

void ReadExport(Reader& r, const YAML::Node& node, ExportOptions* out) {
  if (!r.Map(node, "export", {"pseudonymize_subjects", "max_series"})) return;
  if (node["max_series"]) {
    int max_series = 0;
    r.Int(node, "export", "max_series", static_cast<int>(kSeriesPerKpiSubject),
          1 << 30, &max_series);
    out->max_series = static_cast<size_t>(max_series);
  }
  const YAML::Node p = node["pseudonymize_subjects"];
  if (!p) return;
  const std::string path = "export.pseudonymize_subjects";
  if (!r.Map(p, path, {"key_file"})) return;
  auto file = r.String(p, path, "key_file", true);
  if (!file) return;
  std::ifstream in(*file, std::ios::binary);
  std::ostringstream key;
  key << in.rdbuf();
  if (!in) {
    r.Fail(p["key_file"], path + ".key_file",
           absl::StrCat("cannot read \"", *file, "\""));
  } else if (key.str().size() < 16) {
    r.Fail(p["key_file"], path + ".key_file",
           absl::StrCat("\"", *file, "\" holds ", key.str().size(),
                        " bytes; a key needs at least 16"));
  }
  out->pseudonym_key_file = *file;
  out->pseudonym_key = key.str();
}

// Valid ids are what Prometheus label values and log lines show cleanly.
bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

// A date "YYYY-MM-DD" at local midnight in `zone`, plus `days`.
bool ParseDate(const std::string& text, const absl::TimeZone& zone, int days,
               absl::Time* out) {
  absl::CivilDay day;
  if (!absl::ParseCivilTime(text, &day)) return false;
  *out = absl::FromCivil(day + days, zone);
  return true;
}

void ReadKeyResult(Reader& r, const YAML::Node& node, const std::string& path,
                   const Config& config, KeyResultOptions* kr) {
  if (!r.Map(node, path,
             {"id", "kpi", "subject", "direction", "baseline", "target", "low",
              "high", "weight"})) {
    return;
  }
  if (auto v = r.String(node, path, "id", true)) kr->id = *v;
  if (auto v = r.String(node, path, "kpi", true)) {
    kr->kpi = *v;
    if (config.FindKpi(*v) == nullptr) {
      r.Fail(node["kpi"], path + ".kpi",
             absl::StrCat("unknown KPI ", Reader::Quote(*v)));
    }
  }
  if (auto v = r.String(node, path, "subject", true)) kr->subject = *v;
  r.Choice<Direction>(node, path, "direction",
                      {{"increase", Direction::kIncrease},
                       {"decrease", Direction::kDecrease},
                       {"at_least", Direction::kAtLeast},
                       {"at_most", Direction::kAtMost},
                       {"range", Direction::kRange},
                       {"milestone", Direction::kMilestone}},
                      &kr->direction);
  r.Double(node, path, "weight", &kr->weight);
  if (r.ok() && kr->weight < 0) {
    r.Fail(node["weight"], path + ".weight", "must not be negative");
  }
  if (kr->direction == Direction::kRange) {
    const bool has_low = r.Double(node, path, "low", &kr->low);
    const bool has_high = r.Double(node, path, "high", &kr->high);
    if (r.ok() && (!has_low || !has_high)) {
      r.Fail(node, path + (has_low ? ".high" : ".low"),
             "required for direction range");
    } else if (r.ok() && kr->high <= kr->low) {
      r.Fail(node["high"], path + ".high", "must be greater than low");
    }
    return;
  }
  const bool has_target = r.Double(node, path, "target", &kr->target);
  if (kr->direction == Direction::kMilestone) return;
  if (r.ok() && !has_target) {
    r.Fail(node, path + ".target", "required field is missing");
  }
  if (kr->direction == Direction::kIncrease ||
      kr->direction == Direction::kDecrease) {
    if (r.ok() && !r.Double(node, path, "baseline", &kr->baseline)) {
      r.Fail(node, path + ".baseline",
             "required for direction increase/decrease");
    }
    if (r.ok() && kr->target == kr->baseline) {
      r.Fail(node["target"], path + ".target",
             "equals baseline: progress would be undefined");
    } else if (r.ok() && kr->direction == Direction::kIncrease &&
               kr->target < kr->baseline) {
      r.Fail(node["target"], path + ".target",
             "is below baseline for direction increase (use decrease)");
    } else if (r.ok() && kr->direction == Direction::kDecrease &&
               kr->target > kr->baseline) {
      r.Fail(node["target"], path + ".target",
             "is above baseline for direction decrease (use increase)");
    }
  } else {
    r.Double(node, path, "baseline", &kr->baseline);
  }
}

void ReadObjectives(Reader& r, const YAML::Node& list, Config* config) {
  if (!list.IsSequence()) {
    r.Fail(list, "objectives", "expected a list of objectives");
    return;
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; r.ok() && i < list.size(); ++i) {
    const YAML::Node node = list[i];
    const std::string path = absl::StrCat("objectives[", i, "]");
    if (!r.Map(node, path,
               {"id", "title", "owner", "parent", "weight", "start", "end",
                "time_zone", "key_results"})) {
      return;
    }
    ObjectiveOptions o;
    if (auto v = r.String(node, path, "id", true)) o.id = *v;
    if (r.ok() && !IsValidId(o.id)) {
      r.Fail(node["id"], path + ".id",
             absl::StrCat(Reader::Quote(o.id), " is not a valid id"));
    } else if (r.ok() && !index.emplace(o.id, i).second) {
      r.Fail(node["id"], path + ".id",
             absl::StrCat("duplicate objective id ", Reader::Quote(o.id)));
    }
    if (auto v = r.String(node, path, "title", true)) o.title = *v;
    if (auto v = r.String(node, path, "owner", false)) o.owner = *v;
    if (auto v = r.String(node, path, "parent", false)) o.parent = *v;
    r.Double(node, path, "weight", &o.weight);
    if (r.ok() && o.weight < 0) {
      r.Fail(node["weight"], path + ".weight", "must not be negative");
    }
    absl::TimeZone zone = absl::UTCTimeZone();
    if (auto v = r.String(node, path, "time_zone", false)) {
      o.time_zone = *v;
      if (!absl::LoadTimeZone(*v, &zone)) {
        r.Fail(node["time_zone"], path + ".time_zone",
               absl::StrCat("unknown time zone ", Reader::Quote(*v)));
      }
    }
    for (const auto& [key, days, out] :
         {std::tuple{"start", 0, &o.start}, std::tuple{"end", 1, &o.end}}) {
      auto v = r.String(node, path, key, true);
      if (v && !ParseDate(*v, zone, days, out)) {
        r.Fail(node[key], absl::StrCat(path, ".", key),
               absl::StrCat(Reader::Quote(*v), " is not a date YYYY-MM-DD"));
      }
    }
    if (r.ok() && o.end <= o.start) {
      r.Fail(node["end"], path + ".end", "period end is not after its start");
    }
    const YAML::Node krs = node["key_results"];
    if (krs && !krs.IsSequence()) {
      r.Fail(krs, path + ".key_results", "expected a list of key results");
    }
    std::set<std::string> kr_ids;
    for (size_t k = 0; r.ok() && krs && k < krs.size(); ++k) {
      const std::string kr_path = absl::StrCat(path, ".key_results[", k, "]");
      KeyResultOptions kr;
      ReadKeyResult(r, krs[k], kr_path, *config, &kr);
      if (r.ok() && !kr_ids.insert(kr.id).second) {
        r.Fail(krs[k]["id"], kr_path + ".id",
               absl::StrCat("duplicate key result id ", Reader::Quote(kr.id)));
      }
      o.key_results.push_back(std::move(kr));
    }
    config->objectives.push_back(std::move(o));
  }
  // Cross references: parents exist, no cycles, every objective weighs
  // something.
  std::map<std::string, double> child_weight;
  for (size_t i = 0; r.ok() && i < config->objectives.size(); ++i) {
    const ObjectiveOptions& o = config->objectives[i];
    if (o.parent.empty()) continue;
    if (!index.contains(o.parent)) {
      r.Fail(list[i]["parent"], absl::StrCat("objectives[", i, "].parent"),
             absl::StrCat("unknown objective ", Reader::Quote(o.parent)));
      break;
    }
    child_weight[o.parent] += o.weight;
    std::set<std::string> seen = {o.id};
    for (std::string up = o.parent; !up.empty();
         up = config->objectives[index[up]].parent) {
      if (!seen.insert(up).second) {
        r.Fail(list[i]["parent"], absl::StrCat("objectives[", i, "].parent"),
               absl::StrCat("objective ", Reader::Quote(o.id),
                            " is its own ancestor (cycle of parents)"));
        break;
      }
      if (!index.contains(up)) break;
    }
  }
  for (size_t i = 0; r.ok() && i < config->objectives.size(); ++i) {
    const ObjectiveOptions& o = config->objectives[i];
    double sum = child_weight[o.id];
    for (const KeyResultOptions& kr : o.key_results) sum += kr.weight;
    if (sum <= 0) {
      r.Fail(list[i], absl::StrCat("objectives[", i, "]"),
             absl::StrCat("objective ", Reader::Quote(o.id),
                          " has a zero weight sum (no weighted key results "
                          "or child objectives)"));
    }
  }
}

// Checks the id of a plan's milestone or action: valid, and unique among
// its kind in the policy (`seen`).
void CheckPlanItemId(Reader& r, const YAML::Node& node, const std::string& path,
                     const std::string& id, absl::string_view what,
                     std::set<std::string>* seen) {
  if (!r.ok()) return;
  const YAML::Node at = node["id"] ? node["id"] : node;
  if (!IsValidId(id)) {
    r.Fail(at, path + ".id",
           absl::StrCat(Reader::Quote(id), " is not a valid id"));
  } else if (!seen->insert(id).second) {
    r.Fail(at, path + ".id",
           absl::StrCat("duplicate ", what, " id ", Reader::Quote(id),
                        node["id"] ? "" : " (give milestones on one day ids)"));
  }
}

// `actions: [{id, title, kind, due_day}]` of the policy `p`.
void ReadPipActions(Reader& r, const YAML::Node& list, const std::string& path,
                    PipPolicyOptions* p) {
  if (!list.IsSequence()) {
    r.Fail(list, path, "expected a list of actions");
    return;
  }
  std::set<std::string> ids;
  for (size_t i = 0; r.ok() && i < list.size(); ++i) {
    const std::string at = absl::StrCat(path, "[", i, "]");
    if (!r.Map(list[i], at, {"id", "title", "kind", "due_day"})) return;
    PipAction action;
    if (auto v = r.String(list[i], at, "id", true)) action.id = *v;
    CheckPlanItemId(r, list[i], at, action.id, "action", &ids);
    if (auto v = r.String(list[i], at, "title", true)) action.title = *v;
    if (r.ok() && action.title.empty()) {
      r.Fail(list[i]["title"], at + ".title", "must not be empty");
    }
    r.Choice<PipAction::Kind>(list[i], at, "kind",
                              {{"training", PipAction::Kind::kTraining},
                               {"mentoring", PipAction::Kind::kMentoring},
                               {"goal", PipAction::Kind::kGoal},
                               {"other", PipAction::Kind::kOther}},
                              &action.kind);
    if (r.ok() && !list[i]["due_day"]) {
      r.Fail(list[i], at + ".due_day", "required field is missing");
    }
    r.Int(list[i], at, "due_day", 1, p->plan_days, &action.due_day);
    p->actions.push_back(std::move(action));
  }
}

void ReadPipPolicies(Reader& r, const YAML::Node& list, Config* config) {
  if (!list.IsSequence()) {
    r.Fail(list, "pip_policies", "expected a list of policies");
    return;
  }
  std::set<std::string> ids;
  for (size_t i = 0; r.ok() && i < list.size(); ++i) {
    const YAML::Node node = list[i];
    const std::string path = absl::StrCat("pip_policies[", i, "]");
    if (!r.Map(node, path,
               {"id", "kpi", "subjects", "exclude", "comparator", "trigger",
                "recovery", "consecutive_periods", "min_samples",
                "grace_periods", "cooldown_periods", "plan_days", "milestones",
                "actions", "checkin_every"})) {
      return;
    }
    PipPolicyOptions p;
    if (auto v = r.String(node, path, "id", true)) p.id = *v;
    if (r.ok() && !IsValidId(p.id)) {
      r.Fail(node["id"], path + ".id",
             absl::StrCat(Reader::Quote(p.id), " is not a valid id"));
    } else if (r.ok() && !ids.insert(p.id).second) {
      r.Fail(node["id"], path + ".id",
             absl::StrCat("duplicate policy id ", Reader::Quote(p.id)));
    }
    if (auto v = r.String(node, path, "kpi", true)) {
      p.kpi = *v;
      if (const KpiOptions* kpi = config->FindKpi(*v)) {
        p.zone = kpi->zone;
      } else {
        r.Fail(node["kpi"], path + ".kpi",
               absl::StrCat("unknown KPI ", Reader::Quote(*v)));
      }
    }
    r.StringList(node, path, "subjects", &p.subjects);
    r.StringList(node, path, "exclude", &p.exclude);
    if (r.ok() && !p.subjects.empty() && !p.exclude.empty()) {
      r.Fail(node["exclude"], path + ".exclude",
             "only applies when subjects are not listed");
    }
    r.Choice<Comparator>(
        node, path, "comparator",
        {{"below", Comparator::kBelow}, {"above", Comparator::kAbove}},
        &p.comparator);
    const bool has_trigger = r.Double(node, path, "trigger", &p.trigger);
    const bool has_recovery = r.Double(node, path, "recovery", &p.recovery);
    if (r.ok() && (!has_trigger || !has_recovery)) {
      r.Fail(node, path + (has_trigger ? ".recovery" : ".trigger"),
             "required field is missing");
    }
    const bool below = p.comparator == Comparator::kBelow;
    if (r.ok() && (below ? p.recovery <= p.trigger : p.recovery >= p.trigger)) {
      r.Fail(node["recovery"], path + ".recovery",
             below ? "must be above trigger (hysteresis) for comparator below"
                   : "must be below trigger (hysteresis) for comparator above");
    }
    r.Int(node, path, "consecutive_periods", 1, 1000, &p.consecutive_periods);
    r.Int(node, path, "min_samples", 0, 1 << 30, &p.min_samples);
    r.Int(node, path, "grace_periods", 0, 1000, &p.grace_periods);
    r.Int(node, path, "cooldown_periods", 0, 1000, &p.cooldown_periods);
    r.Int(node, path, "plan_days", 1, 3650, &p.plan_days);
    if (const YAML::Node ms = node["milestones"]; ms && r.ok()) {
      if (!ms.IsSequence()) {
        r.Fail(ms, path + ".milestones", "expected a list of milestones");
      }
      std::set<std::string> milestone_ids;
      for (size_t m = 0; r.ok() && m < ms.size(); ++m) {
        const std::string mpath = absl::StrCat(path, ".milestones[", m, "]");
        if (!r.Map(ms[m], mpath, {"id", "day", "threshold"})) break;
        PipMilestone milestone;
        r.Int(ms[m], mpath, "day", 1, p.plan_days, &milestone.day);
        if (r.ok() &&
            !r.Double(ms[m], mpath, "threshold", &milestone.threshold)) {
          r.Fail(ms[m], mpath + ".threshold", "required field is missing");
        }
        if (r.ok() && !ms[m]["day"]) {
          r.Fail(ms[m], mpath + ".day", "required field is missing");
        }
        milestone.id = r.String(ms[m], mpath, "id", false)
                           .value_or(absl::StrCat("day-", milestone.day));
        CheckPlanItemId(r, ms[m], mpath, milestone.id, "milestone",
                        &milestone_ids);
        p.milestones.push_back(milestone);
      }
    }
    if (const YAML::Node actions = node["actions"]; actions && r.ok()) {
      ReadPipActions(r, actions, path + ".actions", &p);
    }
    r.Duration(node, path, "checkin_every", &p.checkin_every);
    if (r.ok() && node["checkin_every"] &&
        (p.checkin_every < absl::Hours(1) ||
         p.checkin_every > absl::Hours(24) * p.plan_days)) {
      r.Fail(
          node["checkin_every"], path + ".checkin_every",
          absl::StrCat("must be between 1h and the plan's ", p.plan_days,
                       " days, got ", absl::FormatDuration(p.checkin_every)));
    }
    config->pip_policies.push_back(std::move(p));
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Config>> ParseConfig(
    absl::string_view yaml_text, absl::string_view source_name) {
  Reader r(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    r.FailAtLine(e.mark.line + 1, "(document)",
                 absl::StrCat("invalid YAML: ", e.msg));
    return r.status();
  }
  auto config = std::make_shared<Config>();
  config->source_path = std::string(source_name);
  try {
    if (!r.Map(root, "",
               {"kafka", "storage", "http", "limits", "projection", "export",
                "kpis", "objectives", "pip_policies", "pip"})) {
      return r.status();
    }
    if (!root["kafka"]) {
      r.Fail(root, "kafka", "required section is missing");
    } else {
      ReadKafka(r, root["kafka"], &config->kafka);
    }
    if (const YAML::Node storage = root["storage"]; storage && r.ok()) {
      if (r.Map(storage, "storage",
                {"path", "sync", "id_index_memory_ids", "memory_mb"})) {
        if (auto v = r.String(storage, "storage", "path", false)) {
          if (v->empty())
            r.Fail(storage["path"], "storage.path", "must not be empty");
          config->storage.path = *v;
        }
        r.Bool(storage, "storage", "sync", &config->storage.sync);
        r.Int(storage, "storage", "id_index_memory_ids", 100, 1 << 26,
              &config->storage.id_index_memory_ids);
        r.Int(storage, "storage", "memory_mb", 16, 1 << 20,
              &config->storage.memory_mb);
      }
    }
    if (const YAML::Node http = root["http"]; http && r.ok()) {
      if (r.Map(http, "http", {"listen"})) {
        if (auto v = r.String(http, "http", "listen", true)) {
          std::string host;
          int port = 0;
          if (absl::Status s = ParseHostPort(*v, &host, &port); !s.ok()) {
            r.Fail(http["listen"], "http.listen", s.message());
          }
          config->http.listen = *v;
        }
      }
    }
    if (const YAML::Node limits = root["limits"]; limits && r.ok()) {
      ReadLimits(r, limits, &config->limits);
    }
    if (const YAML::Node p = root["projection"]; p && r.ok()) {
      if (r.Map(p, "projection",
                {"tick_interval", "snapshot_every_records",
                 "snapshot_interval"})) {
        r.Duration(p, "projection", "tick_interval",
                   &config->projection.tick_interval);
        r.Int(p, "projection", "snapshot_every_records", 1, 1 << 30,
              &config->projection.snapshot_every_records);
        r.Duration(p, "projection", "snapshot_interval",
                   &config->projection.snapshot_interval);
        if (r.ok() && config->projection.tick_interval < absl::Seconds(1)) {
          r.Fail(p["tick_interval"], "projection.tick_interval",
                 "must be at least 1s");
        }
      }
    }
    if (const YAML::Node e = root["export"]; e && r.ok()) {
      ReadExport(r, e, &config->exporter);
    }
    const YAML::Node kpis = root["kpis"];
    if (r.ok() && (!kpis || !kpis.IsSequence() || kpis.size() == 0)) {
      r.Fail(kpis ? kpis : root, "kpis", "expected a non-empty list of KPIs");
    }
    std::set<std::string> ids;
    for (size_t i = 0; r.ok() && i < kpis.size(); ++i) {
      const std::string path = absl::StrCat("kpis[", i, "]");
      KpiOptions kpi;
      ReadKpi(r, kpis[i], path, &kpi);
      if (!r.ok()) break;
      if (!IsValidId(kpi.id)) {
        r.Fail(kpis[i]["id"], path + ".id",
               absl::StrCat(Reader::Quote(kpi.id),
                            " is not a valid id (letters, digits, _ - ., "
                            "at most 128)"));
      } else if (!ids.insert(kpi.id).second) {
        r.Fail(kpis[i]["id"], path + ".id",
               absl::StrCat("duplicate KPI id ", Reader::Quote(kpi.id)));
      }
      config->kpis.push_back(std::move(kpi));
    }
    if (r.ok()) ResolveDerived(r, kpis, config.get());
    if (const YAML::Node objectives = root["objectives"];
        objectives && r.ok()) {
      ReadObjectives(r, objectives, config.get());
    }
    if (const YAML::Node pip = root["pip"]; pip && r.ok()) {
      if (r.Map(pip, "pip", {"outbound_topic"})) {
        if (auto v = r.String(pip, "pip", "outbound_topic", true)) {
          config->pip.outbound_topic = *v;
        }
      }
    }
    if (const YAML::Node pips = root["pip_policies"]; pips && r.ok()) {
      ReadPipPolicies(r, pips, config.get());
    }
  } catch (const YAML::Exception& e) {
    r.FailAtLine(e.mark.line + 1, "(document)", e.msg);
  }
  if (!r.ok()) return r.status();
  return std::shared_ptr<const Config>(std::move(config));
}

absl::StatusOr<std::shared_ptr<const Config>> LoadConfig(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

}  // namespace okrd::config
