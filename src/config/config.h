#ifndef OKRD_CONFIG_CONFIG_H_
#define OKRD_CONFIG_CONFIG_H_

// okrd's configuration: YAML loaded once into an immutable, validated Config
// made of each component's options. Every field documents its default.
//
// Loading never throws. A bad file yields an InvalidArgument status whose
// message is one line: "FILE:LINE: FIELD: problem".
//
// Thread-safety: a Config is immutable after loading; share it by
// std::shared_ptr<const Config> and read it from any thread.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace okrd::config {

// What okr_kpi_value reports for a period.
// kQuantile: median, p90, p95, p99 or any `quantile` (KpiOptions::quantile),
// from a sketch within 1% (projection/quantile_sketch.h).
enum class Aggregation { kLatest, kSum, kCount, kMean, kMin, kMax, kQuantile };
// The calendar period KPI values are grouped by, in the KPI's time zone.
enum class PeriodKind { kDay, kWeek, kMonth, kQuarter };

absl::string_view AggregationName(Aggregation a);
absl::string_view PeriodName(PeriodKind p);

// A KPI computed per subject and period from other KPIs' values of the same
// period kind, time zone and week start; it takes no events of its own.
struct DerivedKpi {
  enum class Kind { kNone, kRatio, kChange };
  Kind kind = Kind::kNone;
  // kRatio: numerator, denominator. kChange: the KPI it follows.
  std::vector<std::string> inputs;
  // kRatio: numerator / denominator * scale (100 for percent).
  double scale = 1;
  // kChange: against the same period a year before instead of the one
  // before; relative ((now - then) / then) or absolute (now - then).
  bool same_period_last_year = false;
  bool relative = true;
};

struct KpiOptions {
  std::string id;
  std::string description;
  // Empty means "any": events may then carry any unit or none.
  std::string unit;
  Aggregation aggregation = Aggregation::kLatest;
  // For kQuantile: which one, in (0, 1); 0.5 is the median.
  double quantile = 0.5;
  PeriodKind period = PeriodKind::kMonth;
  // IANA zone name; periods start at local midnight there. Default "UTC".
  std::string time_zone = "UTC";
  absl::TimeZone zone = absl::UTCTimeZone();
  // First day of a `week` period; 1 = Monday (ISO 8601, default) .. 7 = Sunday.
  int week_start = 1;
  // How long without an event before the KPI counts as stale. Default 48h.
  absl::Duration staleness = absl::Hours(48);
  // How long after a period's end its measurements are still accepted;
  // later ones are rejected as too_late. Default: no limit.
  absl::Duration allowed_lateness = absl::InfiniteDuration();
  // Set for ratio and change KPIs (then `aggregation` is unused).
  DerivedKpi derived;
  bool is_derived() const { return derived.kind != DerivedKpi::Kind::kNone; }
};

struct KafkaOptions {
  // "embedded" runs librdkafka's mock cluster in-process; otherwise a
  // bootstrap list "host:port,host:port".
  std::string brokers = "embedded";
  std::vector<std::string> topics;
  // Topics whose messages are proto3 JSON even without a content-type header.
  std::vector<std::string> json_topics;
  // Schema Registry ids accepted on framed messages (ingest/framing.h);
  // empty (default): any. Others are rejected as unknown_schema.
  std::vector<uint32_t> schema_ids;
  std::string group_id = "okrd";
  // Where rejected messages are produced, with the reason in a header.
  // Empty (default) disables the DLQ; rejects are still kept in the log.
  std::string dlq_topic;
  // For partitions this node's log has never seen: earliest (default) or
  // latest.
  std::string auto_offset_reset = "earliest";
  // Most messages folded into one durable WriteBatch. Default 2000.
  int batch_max_messages = 2000;
  // Longest wait to fill a batch. Default 50ms.
  absl::Duration batch_max_wait = absl::Milliseconds(50);
  // Partitions per topic of the embedded broker. Default 4.
  int embedded_partitions = 4;
  // Passed through to librdkafka verbatim (security.protocol, sasl.*, ssl.*,
  // session.timeout.ms, ...).
  std::map<std::string, std::string> properties;
};

struct StorageOptions {
  // Directory of the RocksDB event log. Default "./okrd-data".
  std::string path = "okrd-data";
  // fsync every batch before its offsets count as consumed. Default true.
  bool sync = true;
  // Event ids the id index keeps in memory before writing them to disk as
  // one sorted run: bounds its memory and the start-up replay of the log's
  // tail. Default 200000.
  int id_index_memory_ids = 200000;
  // RocksDB's memtables and block cache together, in MiB; memtables are
  // flushed once they hold half. Default 256.
  int memory_mb = 256;
};

struct HttpOptions {
  // host:port for /metrics, /healthz and /readyz. Default 127.0.0.1:9464.
  std::string listen = "127.0.0.1:9464";
};

struct ProjectionOptions {
  // How often okrd logs a clock tick, so that time-dependent state
  // (expected progress, staleness) moves without events and replays
  // identically. Default 10s.
  absl::Duration tick_interval = absl::Seconds(10);
  // A projection snapshot is stored after this many new log records or this
  // much time, whichever comes first, and at a clean stop, so start-up
  // replays only the tail. Defaults 100000 and 5m.
  int snapshot_every_records = 100000;
  absl::Duration snapshot_interval = absl::Minutes(5);
};

struct ExportOptions {
  // export.pseudonymize_subjects.key_file: when set, every subject (and
  // objective owner) is exported as a keyed pseudonym (core/pseudonym.h);
  // the raw id never appears in metrics.
  std::string pseudonym_key_file;
  // The key read from that file at load; empty when pseudonymization is off.
  std::string pseudonym_key;
  // export.max_series: cap on the KPI series okrd exports. Each KPI and
  // subject exports at most kSeriesPerKpiSubject series, so a new one is
  // admitted only while that many more fit; events that would open one
  // beyond the cap are rejected as series_limit. 0 (default): no cap.
  size_t max_series = 0;
};

// okr_kpi_value and okr_kpi_period_start_timestamp_seconds for the current
// and previous period, and okr_kpi_last_event_timestamp_seconds.
inline constexpr size_t kSeriesPerKpiSubject = 5;

// Bounds on what one event may carry; beyond them it is rejected as oversize.
struct LimitsOptions {
  size_t max_message_bytes = 64 * 1024;
  size_t max_id_bytes = 128;
  size_t max_attributes = 32;
  size_t max_attribute_bytes = 256;
  // Events further than this in the future (by event_time) are rejected.
  absl::Duration max_future_skew = absl::Minutes(5);
};

// How a key result's progress is read from its KPI value (DESIGN.md,
// Projections): increase/decrease go from baseline to target; at_least and
// at_most are thresholds; range is [low, high]; milestone is reached or not.
enum class Direction {
  kIncrease,
  kDecrease,
  kAtLeast,
  kAtMost,
  kRange,
  kMilestone
};

struct KeyResultOptions {
  std::string id;
  std::string kpi;
  std::string subject;
  Direction direction = Direction::kIncrease;
  double baseline = 0;
  // The goal; for at_least/at_most the threshold; for milestone the value
  // that counts as reached (default 1).
  double target = 1;
  // Bounds of a `range` key result.
  double low = 0;
  double high = 0;
  // Relative weight in the objective's progress. Default 1.
  double weight = 1;
};

struct ObjectiveOptions {
  std::string id;
  std::string title;
  // Who owns the objective (a subject id: team or person).
  std::string owner;
  // Empty for top-level objectives.
  std::string parent;
  // Weight in the parent's progress. Default 1.
  double weight = 1;
  // [start, end): from local midnight of `start` to local midnight after the
  // (inclusive) `end` date, in `time_zone` (default UTC).
  absl::Time start;
  absl::Time end;
  std::string time_zone = "UTC";
  std::vector<KeyResultOptions> key_results;
};

// A performance-improvement-plan trigger (DESIGN.md, PIP triggers): watches
// a KPI per subject and recommends a review when it stays on the wrong side
// of a threshold for N consecutive closed periods.
enum class Comparator { kBelow, kAbove };

struct PipMilestone {
  std::string id;        // label value; "day-N" unless given
  int day = 0;           // day of the plan, 1..plan_days
  double threshold = 0;  // value to reach (comparator-aware) by that day
};

// What a plan asks of the subject and its reviewers: shown on the status
// page, in the outbound transition and in the triggered alert.
struct PipAction {
  enum class Kind { kTraining, kMentoring, kGoal, kOther };
  std::string id;
  std::string title;
  Kind kind = Kind::kOther;
  int due_day = 0;  // day of the plan, 1..plan_days
};

absl::string_view PipActionKindName(PipAction::Kind kind);

struct PipPolicyOptions {
  std::string id;
  std::string kpi;
  // Explicit subjects; empty means every subject of the KPI but `exclude`.
  std::vector<std::string> subjects;
  std::vector<std::string> exclude;
  Comparator comparator = Comparator::kBelow;
  // A period breaches when its value is below (above) `trigger`; a plan is
  // recovered when a period reaches `recovery`, which lies beyond `trigger`
  // (hysteresis).
  double trigger = 0;
  double recovery = 0;
  int consecutive_periods = 2;
  // Periods with fewer events neither extend nor break a streak.
  int min_samples = 1;
  // Closed periods of a new subject that are not judged.
  int grace_periods = 0;
  // Closed periods after a plan ends before the subject is watched again.
  int cooldown_periods = 1;
  int plan_days = 30;
  std::vector<PipMilestone> milestones;
  std::vector<PipAction> actions;
  // While a plan is open, a check-in is due every this long from the
  // trigger; zero (default): none.
  absl::Duration checkin_every = absl::ZeroDuration();
  // The watched KPI's time zone, where a plan's days are counted.
  absl::TimeZone zone = absl::UTCTimeZone();
};

struct PipOptions {
  // Kafka topic PIP transitions are produced to (PipTransition protobuf,
  // keyed by subject). Empty (default): none are produced.
  std::string outbound_topic;
};

struct Config {
  std::string source_path;
  KafkaOptions kafka;
  StorageOptions storage;
  HttpOptions http;
  LimitsOptions limits;
  ProjectionOptions projection;
  ExportOptions exporter;
  std::vector<KpiOptions> kpis;
  // In config order; parents may come before or after their children.
  std::vector<ObjectiveOptions> objectives;
  std::vector<PipPolicyOptions> pip_policies;
  PipOptions pip;

  // nullptr when no KPI has that id.
  const KpiOptions* FindKpi(absl::string_view id) const;
  // nullptr when no PIP policy has that id.
  const PipPolicyOptions* FindPipPolicy(absl::string_view id) const;
};

// Parses YAML text; `source_name` names it in error messages.
absl::StatusOr<std::shared_ptr<const Config>> ParseConfig(
    absl::string_view yaml_text, absl::string_view source_name);

// Reads and parses a file.
absl::StatusOr<std::shared_ptr<const Config>> LoadConfig(
    const std::string& path);

// Splits "host:port"; fails on a missing or out-of-range port.
absl::Status ParseHostPort(absl::string_view text, std::string* host,
                           int* port);

}  // namespace okrd::config

#endif  // OKRD_CONFIG_CONFIG_H_
