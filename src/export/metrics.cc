#include "export/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/pseudonym.h"
#include "core/version.h"
#include "export/text_format.h"
#include "projection/okr.h"
#include "projection/pip.h"

namespace okrd::exporter {
namespace {

using Families = TextFamilies;

// The subject's label value: the id itself, or its pseudonym kept in
// `scratch`.
absl::string_view SubjectView(const config::Config& config,
                              const std::string& subject,
                              std::string* scratch) {
  if (config.exporter.pseudonym_key.empty()) return subject;
  *scratch = Pseudonym(config.exporter.pseudonym_key, subject);
  return *scratch;
}

double Seconds(absl::Time t) {
  // Period starts are whole seconds: skip the Duration division for them.
  const int64_t whole = absl::ToUnixSeconds(t);
  if (absl::FromUnixSeconds(whole) == t) return static_cast<double>(whole);
  return absl::ToDoubleSeconds(t - absl::UnixEpoch());
}

// Writes the large families in two halves by subject when asked: this
// thread streams the first half of each KPI's (or PIP policy's) part to the
// sink while a helper writes the second, which is spliced on after it. A
// family that waited for its turn whole was most of the body, kept in
// memory until the ones before it were out, and its pages were faulted in
// again at each scrape; now at most half of one KPI's part of it waits.
class Halves {
 public:
  // Splitting, starts the helper, which lives as long as this.
  explicit Halves(bool split) : split_(split) {
    if (split_) helper_ = std::thread([this] { Serve(); });
  }
  ~Halves() {
    if (!split_) return;
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    helper_.join();
  }
  Halves(const Halves&) = delete;
  Halves& operator=(const Halves&) = delete;

  bool split() const { return split_; }

  // Calls write(range, family) for the subjects from `middle` on, on the
  // helper, into a part spliced onto `head`, and for those before `middle`
  // on this thread into `head`; for all of them into `head` when not
  // splitting or `middle` is empty.
  template <typename Write>
  void Run(const std::string& middle, TextFamily& head, Write write) {
    using Range = projection::KpiProjection::SubjectRange;
    if (!split_ || middle.empty()) {
      write(Range{}, head);
      return;
    }
    TextFamily second = TextFamily::Continuing(head.name());
    const auto second_half = [&] {
      write(Range{middle, std::nullopt}, second);
    };
    absl::FunctionRef<void()> task(second_half);
    {
      absl::MutexLock lock(&mu_);
      task_ = &task;
    }
    write(Range{"", middle}, head);
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Halves::Idle));
    }
    head.Splice(second);
  }

 private:
  // The helper: one thread for the whole render (a thread per half would
  // start with a cold stack and allocator cache each time).
  void Serve() {
    for (;;) {
      absl::FunctionRef<void()>* task = nullptr;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Halves::HasWork));
        if (task_ == nullptr) return;  // stopped
        task = task_;
      }
      (*task)();
      absl::MutexLock lock(&mu_);
      task_ = nullptr;
    }
  }
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return task_ != nullptr || stop_;
  }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return task_ == nullptr;
  }

  const bool split_;
  absl::Mutex mu_;
  absl::FunctionRef<void()>* task_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread helper_;
};

// What the values' walk wrote of a KPI (or half of it): the period starts
// and the last event times follow it without walking the pairs again, nor
// reading or escaping a subject again. A KPI's two periods are the same
// for all its pairs, so a pair's note says which of them had a value.
struct PairNote {
  size_t labels_end;  // of its `{kpi="…",subject="…"` in KpiWalk::labels
  double last_event;
  uint8_t periods;  // bit i: a value for period i
};
struct KpiWalk {
  std::array<const char*, 2> period_labels;
  std::array<double, 2> starts;
  std::string labels;
  std::vector<PairNote> pairs;
  // Calls fn(labels, pair) for each pair in walk order.
  template <typename F>
  void ForEach(F fn) const {
    size_t from = 0;
    for (const PairNote& p : pairs) {
      fn(WrittenLabels{absl::string_view(labels).substr(from,
                                                        p.labels_end - from)},
         p);
      from = p.labels_end;
    }
  }
};

// The KPI families: values, their period starts, then the last event
// times, each written on its own so that it streams; the pairs are walked
// once, for the values.
void WriteKpiFamilies(const projection::KpiProjection& projection,
                      const projection::Ownership::Mask& mask, Halves& halves,
                      TextSink* sink) {
  const config::Config& config = projection.config();
  const std::vector<const config::KpiOptions*>& kpis = projection.kpis_by_id();
  std::vector<std::string> middles;
  for (const config::KpiOptions* kpi : kpis) {
    middles.push_back(halves.split() ? projection.MiddleSubject(*kpi) : "");
  }
  using Range = projection::KpiProjection::SubjectRange;
  // The half of a KPI's subjects `range` is (0 for the first of two).
  const auto half = [](const Range& range) { return range.until ? 0 : 1; };
  std::vector<std::array<KpiWalk, 2>> walked(kpis.size());
  {
    TextFamily value("okr_kpi_value",
                     "KPI value by its configured aggregation, for the "
                     "current and previous calendar period.",
                     MetricKind::kGauge, sink);
    for (size_t k = 0; k < kpis.size(); ++k) {
      halves.Run(middles[k], value, [&](const Range& range, TextFamily& out) {
        KpiWalk& w = walked[k][half(range)];
        std::string scratch;
        LabelBlock labels;
        projection.ForEachKpiPair(
            *kpis[k], range, [&](const projection::KpiPair& p) {
              if (!mask.Exports(p.partition)) return;
              labels.Set(
                  {{"kpi", p.kpi->id},
                   {"subject", SubjectView(config, *p.subject, &scratch)}});
              w.labels.append(labels.text());
              PairNote& seen = w.pairs.emplace_back(
                  PairNote{w.labels.size(), Seconds(p.last_event_time), 0});
              for (size_t i = 0; i < 2; ++i) {
                if (!p.values[i]) continue;
                out.AddWith(labels, {{"period", p.period_labels[i]}},
                            *p.values[i]);
                w.period_labels[i] = p.period_labels[i];
                w.starts[i] = Seconds(p.periods[i].start);
                seen.periods |= 1 << i;
              }
            });
      });
    }
  }
  {
    TextFamily start("okr_kpi_period_start_timestamp_seconds",
                     "Start of the period an okr_kpi_value series covers.",
                     MetricKind::kGauge, sink);
    for (size_t k = 0; k < kpis.size(); ++k) {
      halves.Run(middles[k], start, [&](const Range& range, TextFamily& out) {
        const KpiWalk& w = walked[k][half(range)];
        w.ForEach([&](WrittenLabels labels, const PairNote& p) {
          for (size_t i = 0; i < 2; ++i) {
            if ((p.periods >> i & 1) == 0) continue;
            out.AddWith(labels, {{"period", w.period_labels[i]}}, w.starts[i]);
          }
        });
      });
    }
  }
  TextFamily last(
      "okr_kpi_last_event_timestamp_seconds",
      "Event time of the newest measurement of a KPI for a subject.",
      MetricKind::kGauge, sink);
  for (size_t k = 0; k < kpis.size(); ++k) {
    halves.Run(middles[k], last, [&](const Range& range, TextFamily& out) {
      KpiWalk& w = walked[k][half(range)];
      w.ForEach([&](WrittenLabels labels, const PairNote& p) {
        out.AddWith(labels, {}, p.last_event);
      });
      w = KpiWalk();
    });
  }
}

void AddOkrFamilies(Families& f, const projection::KpiProjection& projection,
                    const projection::Ownership::Mask& mask) {
  const projection::OkrState& okrs = projection.okrs();
  TextFamily& progress =
      f.Add("okr_key_result_progress_ratio",
            "Key result progress from baseline (0) to target (1), clamped.",
            MetricKind::kGauge);
  TextFamily& expected =
      f.Add("okr_key_result_expected_progress_ratio",
            "Progress expected by now: the elapsed share of the objective's "
            "period.",
            MetricKind::kGauge);
  TextFamily& value =
      f.Add("okr_key_result_value",
            "Current KPI value of a key result (newest period in the "
            "objective's window).",
            MetricKind::kGauge);
  TextFamily& target = f.Add("okr_key_result_target",
                             "Target value of a key result (threshold for "
                             "at_least/at_most; none for range).",
                             MetricKind::kGauge);
  TextFamily& baseline = f.Add(
      "okr_key_result_baseline",
      "Baseline value of an increase/decrease key result.", MetricKind::kGauge);
  TextFamily& status =
      f.Add("okr_key_result_status",
            "Key result status: one series per status, 1 on the current one.",
            MetricKind::kGauge);
  TextFamily& contribution = f.Add(
      "okr_objective_progress_contribution_ratio",
      "What a key result adds to the progress of an objective (its own or "
      "an ancestor): summed over key results, and over okrd instances, it "
      "is the objective's progress.",
      MetricKind::kGauge);
  // Of a partial objective only the contributions go out.
  const std::set<const config::ObjectiveOptions*> partial =
      PartialObjectives(okrs, projection, mask);
  for (const projection::KeyResultState& kr : okrs.key_results) {
    const config::KeyResultOptions& opts = *kr.key_result;
    if (!mask.ExportsPair(projection, opts.kpi, opts.subject)) continue;
    const Label labels[] = {{"objective", kr.objective->id},
                            {"key_result", opts.id}};
    for (const auto& c : kr.contributions) {
      contribution.Add({{"objective", c.objective->id},
                        {"key_result_objective", kr.objective->id},
                        {"key_result", opts.id}},
                       c.value);
    }
    progress.Add(labels, kr.progress);
    expected.Add(labels, kr.expected);
    if (kr.value) value.Add(labels, *kr.value);
    if (opts.direction != config::Direction::kRange) {
      target.Add(labels, opts.target);
    }
    if (opts.direction == config::Direction::kIncrease ||
        opts.direction == config::Direction::kDecrease) {
      baseline.Add(labels, opts.baseline);
    }
    for (projection::KrStatus s : projection::kAllKrStatuses) {
      status.Add(
          {labels[0], labels[1], {"status", projection::KrStatusName(s)}},
          s == kr.status ? 1 : 0);
    }
  }
  TextFamily& objective =
      f.Add("okr_objective_progress_ratio",
            "Weighted mean progress of an objective's key results and child "
            "objectives.",
            MetricKind::kGauge);
  TextFamily& info = f.Add("okr_objective_info",
                           "Objective metadata; always 1.", MetricKind::kGauge);
  for (const projection::ObjectiveState& o : okrs.objectives) {
    if (!partial.contains(o.objective)) {
      objective.Add({{"objective", o.objective->id}}, o.progress);
    }
    info.Add(
        {{"objective", o.objective->id},
         {"title", o.objective->title},
         {"owner", o.objective->owner.empty()
                       ? std::string()
                       : SubjectLabel(projection.config(), o.objective->owner)},
         {"parent", o.objective->parent}},
        1);
  }
}

void WritePipFamilies(const projection::KpiProjection& projection,
                      const projection::Ownership::Mask& mask, Halves& halves,
                      TextSink* sink) {
  const config::Config& config = projection.config();
  {
    TextFamily state(
        "okr_pip_state",
        "PIP trigger state per policy and subject: one series per state, 1 "
        "on the current one. triggered recommends a review.",
        MetricKind::kGauge, sink);
    for (size_t i = 0; i < config.pip_policies.size(); ++i) {
      halves.Run(
          halves.split() ? projection.MiddlePipSubject(i) : "", state,
          [&](const projection::KpiProjection::SubjectRange& range,
              TextFamily& out) {
            std::string scratch;
            LabelBlock labels;
            projection.ForEachPipStateOf(
                i, range, [&](const projection::PipSubjectState& p) {
                  if (!mask.ExportsPair(projection, p.policy->kpi, p.subject)) {
                    return;
                  }
                  labels.Set(
                      {{"policy", p.policy->id},
                       {"subject", SubjectView(config, p.subject, &scratch)}});
                  for (projection::PipState s : projection::kAllPipStates) {
                    out.AddWith(labels,
                                {{"state", projection::PipStateName(s)}},
                                s == p.state ? 1 : 0);
                  }
                });
          });
    }
  }
  Families f;
  TextFamily streak(
      "okr_pip_breach_streak_periods",
      "Consecutive closed periods breaching the policy's trigger.",
      MetricKind::kGauge, sink);
  TextFamily& triggered =
      f.Add("okr_pip_triggered_timestamp_seconds",
            "When the current or last plan was triggered.", MetricKind::kGauge);
  TextFamily& deadline =
      f.Add("okr_pip_deadline_timestamp_seconds",
            "Deadline of the current or last plan.", MetricKind::kGauge);
  TextFamily& insufficient =
      f.Add("okr_pip_insufficient_periods_total",
            "Closed periods with fewer than min_samples events: not judged.",
            MetricKind::kCounter);
  TextFamily& missed =
      f.Add("okr_pip_milestones_missed",
            "Milestones of the current or last plan not reached by their day.",
            MetricKind::kGauge);
  TextFamily& milestone =
      f.Add("okr_pip_milestone_status",
            "Milestones of the current or last plan: one series per status "
            "(pending, met, missed), 1 on the current one.",
            MetricKind::kGauge);
  TextFamily& next_checkin =
      f.Add("okr_pip_next_checkin_timestamp_seconds",
            "When the next check-in of an open plan is due (policy "
            "checkin_every).",
            MetricKind::kGauge);
  TextFamily& checkins =
      f.Add("okr_pip_checkins_overdue",
            "Check-ins of the open plan whose time has passed on the logged "
            "clock.",
            MetricKind::kGauge);
  std::string scratch;
  LabelBlock labels;
  projection.ForEachPipState([&](const projection::PipSubjectState& p) {
    if (!mask.ExportsPair(projection, p.policy->kpi, p.subject)) return;
    labels.Set({{"policy", p.policy->id},
                {"subject", SubjectView(config, p.subject, &scratch)}});
    streak.AddWith(labels, p.streak);
    if (p.triggered_at != absl::InfinitePast()) {
      triggered.AddWith(labels, Seconds(p.triggered_at));
      deadline.AddWith(labels, Seconds(p.deadline));
      missed.AddWith(labels, p.milestones_missed);
      for (size_t i = 0; i < p.milestones.size(); ++i) {
        for (projection::MilestoneStatus s :
             projection::kAllMilestoneStatuses) {
          milestone.AddWith(labels,
                            {{"milestone", p.policy->milestones[i].id},
                             {"status", projection::MilestoneStatusName(s)}},
                            s == p.milestones[i] ? 1 : 0);
        }
      }
    }
    if (projection::HasOpenCheckins(p)) {
      if (p.next_checkin != absl::InfiniteFuture()) {
        next_checkin.AddWith(labels, Seconds(p.next_checkin));
      }
      checkins.AddWith(labels, p.checkins_passed);
    }
    insufficient.AddWith(labels, p.insufficient_periods);
  });
  streak.MoveTo(sink);  // the families kept in `f` follow it
  // Fired transitions are facts recorded at logged clock ticks, so the
  // counter never goes down, whatever arrives late. Counted per source
  // partition: a partition's series move whole between instances, so each
  // stays monotonic and the sum over instances counts every transition once.
  // Keyed by the partition itself, not its index in the projection's
  // table: a projection restored from a snapshot numbers them otherwise,
  // and the output must not depend on that.
  std::map<std::tuple<std::string, std::string,
                      std::optional<projection::SourcePartition>>,
           double>
      transitions;
  // Counted by indexes first: the labels are made once per series, not per
  // transition.
  absl::flat_hash_map<std::tuple<uint32_t, uint8_t, uint32_t>, double> counts;
  for (const projection::FiredTransition& t : projection.pip_transitions()) {
    const uint32_t partition = TransitionPartition(projection, t);
    if (mask.Exports(partition)) ++counts[{t.policy, t.to, partition}];
  }
  for (const auto& [key, count] : counts) {
    const auto& [policy, to, partition] = key;
    std::optional<projection::SourcePartition> source;
    if (partition != projection::kNoPartition) {
      source = projection.partitions()[partition];
    }
    transitions[{projection.config().pip_policies[policy].id,
                 std::string(projection::PipStateName(
                     static_cast<projection::PipState>(to))),
                 std::move(source)}] += count;
  }
  // Known in advance, so that rate() and increase() see a transition's
  // first firing: every policy and target state at 0, for each partition
  // this instance exports.
  for (const config::PipPolicyOptions& policy :
       projection.config().pip_policies) {
    for (uint32_t i = 0; i < projection.partitions().size(); ++i) {
      if (!mask.Exports(i)) continue;
      for (projection::PipState to : projection::kAllPipStates) {
        transitions.try_emplace(
            {policy.id, std::string(projection::PipStateName(to)),
             projection.partitions()[i]},
            0);
      }
    }
  }
  TextFamily& action_info =
      f.Add("okr_pip_action_info",
            "The actions a policy's plans ask for (pip_policies[].actions), "
            "due on day due_day of the plan; always 1.",
            MetricKind::kGauge);
  for (const config::PipPolicyOptions& policy :
       projection.config().pip_policies) {
    for (const config::PipAction& a : policy.actions) {
      const std::string due_day = absl::StrCat(a.due_day);
      action_info.Add({{"policy", policy.id},
                       {"action", a.id},
                       {"title", a.title},
                       {"kind", config::PipActionKindName(a.kind)},
                       {"due_day", due_day}},
                      1);
    }
  }
  TextFamily& total =
      f.Add("okr_pip_transitions_total",
            "PIP state transitions fired, by policy, target state and the "
            "Kafka partition of the subject.",
            MetricKind::kCounter);
  for (const auto& [key, count] : transitions) {
    const auto& [policy, to, source] = key;
    if (!source) {  // imported events
      total.Add({{"policy", policy}, {"to", to}}, count);
      continue;
    }
    total.Add({{"policy", policy},
               {"to", to},
               {"topic", source->first},
               {"partition", absl::StrCat(source->second)}},
              count);
  }
  f.MoveTo(sink);
}

// Where each partition stands on this instance: owned, caught up, how its
// messages went (for exact totals across instances), and whether its
// history was complete when first read.
void AddPartitionFamilies(Families& f,
                          const projection::KpiProjection& projection,
                          const DaemonState& state) {
  // Labels view their values: the partition number lives in `number`.
  std::string number;
  auto labels = [&number](const eventlog::PartitionKey& key) {
    number = absl::StrCat(key.second);
    return std::vector<Label>{{"topic", key.first}, {"partition", number}};
  };
  if (!state.ownership.all()) {
    std::set<eventlog::PartitionKey> known;
    for (const auto& [key, offset] : state.log.offsets) known.insert(key);
    for (const auto& [key, caught_up] : state.ownership.owned()) {
      known.insert(key);
    }
    TextFamily& owned =
        f.Add("okrd_partition_owned",
              "1 for a partition the consumer group assigned to this "
              "instance, 0 for one its log holds that another owns.",
              MetricKind::kGauge);
    TextFamily& current = f.Add(
        "okrd_partition_caught_up",
        "1 once an owned partition has been consumed up to where it stood "
        "when assigned; its business series are exported from then on.",
        MetricKind::kGauge);
    for (const eventlog::PartitionKey& key : known) {
      auto it = state.ownership.owned().find(key);
      const std::vector<Label> l = labels(key);
      owned.Add(l, it != state.ownership.owned().end() ? 1 : 0);
      if (it != state.ownership.owned().end()) current.Add(l, it->second);
    }
  }
  TextFamily& incomplete = f.Add(
      "okrd_partition_history_incomplete",
      "1 when the first message okrd read from a partition was past offset "
      "0: earlier messages were gone (retention) and are not counted.",
      MetricKind::kGauge);
  for (const auto& [key, first] : state.log.first_offsets) {
    incomplete.Add(labels(key), first > 0 ? 1 : 0);
  }
  TextFamily& events = f.Add(
      "okrd_partition_events_total",
      "Kafka messages by source partition, outcome and reason; persisted. "
      "Every instance that takes a partition reads it from the same start, "
      "so the largest count over instances is the partition's exact count.",
      MetricKind::kCounter);
  for (const auto& [key, counters] : state.log.partition_counters) {
    for (const auto& [counter, count] : eventlog::WithKnownCounters(counters)) {
      std::vector<Label> l = labels(key);
      l.push_back({"outcome", counter.first});
      l.push_back({"reason", counter.second});
      events.Add(l, static_cast<double>(count));
    }
  }
  f.Add("okrd_subject_partition_conflicts_total",
        "Events of a KPI and subject that came on another partition than "
        "the pair's first: producers that do not key messages by subject.",
        MetricKind::kCounter)
      .Add({}, static_cast<double>(projection.partition_conflicts()));
}

// The process collector's series, as Prometheus' client libraries name
// them, read from /proc.
void AddProcessFamilies(Families& f) {
  const long page = sysconf(_SC_PAGESIZE);
  const long ticks = sysconf(_SC_CLK_TCK);
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command's closing parenthesis, from field 3 on.
  const size_t close = line.rfind(')');
  std::vector<std::string> fields;
  if (close != std::string::npos) {
    fields = absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
  }
  auto field = [&](size_t n) {  // n as proc(5) numbers them
    double v = 0;
    if (n >= 3 && n - 3 < fields.size()) {
      (void)absl::SimpleAtod(fields[n - 3], &v);
    }
    return v;
  };
  f.Add("process_cpu_seconds_total",
        "Total user and system CPU time spent "
        "in seconds.",
        MetricKind::kCounter)
      .Add({}, (field(14) + field(15)) / static_cast<double>(ticks));
  f.Add("process_virtual_memory_bytes", "Virtual memory size in bytes.",
        MetricKind::kGauge)
      .Add({}, field(23));
  f.Add("process_resident_memory_bytes", "Resident memory size in bytes.",
        MetricKind::kGauge)
      .Add({}, field(24) * static_cast<double>(page));
  static const double start_time = [&] {
    std::ifstream uptime_file("/proc/uptime");
    double uptime = 0;
    uptime_file >> uptime;
    const double boot = absl::ToUnixSeconds(absl::Now()) - uptime;
    return boot + field(22) / static_cast<double>(ticks);
  }();
  f.Add("process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricKind::kGauge)
      .Add({}, start_time);
  size_t fds = 0;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator();
       it.increment(error)) {
    ++fds;
  }
  f.Add("process_open_fds", "Number of open file descriptors.",
        MetricKind::kGauge)
      .Add({}, static_cast<double>(fds));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    f.Add("process_max_fds", "Maximum number of open file descriptors.",
          MetricKind::kGauge)
        .Add({}, static_cast<double>(limit.rlim_cur));
  }
}

void AddDaemonFamilies(Families& f, const DaemonState& state) {
  TextFamily& events =
      f.Add("okrd_events_total",
            "Kafka messages by outcome (accepted, duplicate, rejected) and "
            "rejection reason; persisted in the event log.",
            MetricKind::kCounter);
  for (const auto& [key, count] :
       eventlog::WithKnownCounters(state.log.counters)) {
    events.Add({{"outcome", key.first}, {"reason", key.second}},
               static_cast<double>(count));
  }
  f.Add("okrd_eventlog_write_errors_total",
        "Failed attempts to write a batch to the event log (a full disk, an "
        "I/O error); ingest pauses and retries.",
        MetricKind::kCounter)
      .Add({}, static_cast<double>(state.write_errors));
  f.Add("okrd_eventlog_recovery_dropped_bytes",
        "Bytes of an unfinished write at the end of the write-ahead log that "
        "the last start-up's recovery dropped; those batches were never "
        "confirmed durable and are consumed again.",
        MetricKind::kGauge)
      .Add({}, static_cast<double>(state.log.recovery_dropped_bytes));
  f.Add("okrd_eventlog_last_sequence",
        "Sequence number of the newest log record (event or clock tick).",
        MetricKind::kGauge)
      .Add({}, static_cast<double>(state.log.last_sequence));
  TextFamily& lag =
      f.Add("okrd_consumer_lag_messages",
            "Messages between the log's next offset and the partition's high "
            "watermark.",
            MetricKind::kGauge);
  for (const auto& [key, messages] : state.lag) {
    lag.Add({{"topic", key.first}, {"partition", absl::StrCat(key.second)}},
            static_cast<double>(messages));
  }
  f.Add("okrd_projection_rebuild_seconds",
        "Duration of the last projection rebuild: snapshot load "
        "and replay of the log's tail.",
        MetricKind::kGauge)
      .Add({}, state.rebuild_seconds);
  TextFamily& memory =
      f.Add("okrd_eventlog_memory_bytes",
            "Memory the event log holds: RocksDB's memtables, its block cache "
            "(which the memtables and the id index's filters are charged to, "
            "within storage.memory_mb), what its open tables hold beside the "
            "cache, the id index's tables and the filter over its runs.",
            MetricKind::kGauge);
  for (const auto& [where, bytes] :
       {std::pair{"memtables", state.log_memory.memtables},
        std::pair{"block_cache", state.log_memory.block_cache},
        std::pair{"table_readers", state.log_memory.table_readers},
        std::pair{"id_tables", state.log_memory.id_tables},
        std::pair{"id_filter", state.log_memory.id_filter}}) {
    memory.Add({{"kind", where}}, static_cast<double>(bytes));
  }
  AddProcessFamilies(f);
  f.Add("okrd_build_info", "Build of the running okrd; always 1.",
        MetricKind::kGauge)
      .Add({{"version", Version()}}, 1);
}

// From this many (KPI, subject) pairs on, the large families are written
// in halves on two threads.
constexpr size_t kPairsForSecondThread = 4096;

void Render(const projection::KpiProjection& projection,
            const DaemonState* state, TextSink* sink) {
  const projection::Ownership everything;
  const projection::Ownership& ownership =
      state != nullptr ? state->ownership : everything;
  if (!ownership.standby()) {
    const projection::Ownership::Mask mask =
        ownership.MaskFor(projection.partitions());
    // The large families are written in halves on two threads (Halves),
    // which only read: what a read would bring up to date first (periods
    // read back from the log, the kept PIP states) is, before they start.
    // A small projection renders on this thread alone: starting threads
    // would cost more than it saves.
    projection.Settle();
    Halves halves(projection.subject_count() >= kPairsForSecondThread);
    WriteKpiFamilies(projection, mask, halves, sink);
    {
      Families okrs;
      AddOkrFamilies(okrs, projection, mask);
      okrs.MoveTo(sink);
    }
    WritePipFamilies(projection, mask, halves, sink);
  }
  Families rest;
  rest.Add("okrd_projection_sequence",
           "Log sequence every series of this scrape reflects.",
           MetricKind::kGauge)
      .Add({}, static_cast<double>(projection.sequence()));
  if (state != nullptr) {
    AddPartitionFamilies(rest, projection, *state);
    AddDaemonFamilies(rest, *state);
  }
  rest.MoveTo(sink);
}

}  // namespace

uint32_t TransitionPartition(const projection::KpiProjection& projection,
                             const projection::FiredTransition& transition) {
  return projection.PartitionOf(
      projection.config().pip_policies[transition.policy].kpi,
      *transition.subject);
}

std::set<const config::ObjectiveOptions*> PartialObjectives(
    const projection::OkrState& okrs,
    const projection::KpiProjection& projection,
    const projection::Ownership::Mask& mask) {
  std::set<const config::ObjectiveOptions*> partial;
  for (const projection::KeyResultState& kr : okrs.key_results) {
    if (!mask.ExportsPair(projection, kr.key_result->kpi,
                          kr.key_result->subject)) {
      for (const auto& c : kr.contributions) partial.insert(c.objective);
    }
  }
  return partial;
}

std::string SubjectLabel(const config::Config& config,
                         const std::string& subject) {
  std::string scratch;
  return std::string(SubjectView(config, subject, &scratch));
}

void RenderMetrics(const projection::KpiProjection& projection,
                   const DaemonState& state, TextSink* sink) {
  Render(projection, &state, sink);
}

std::string RenderMetrics(const projection::KpiProjection& projection,
                          const DaemonState& state) {
  StringSink sink;
  Render(projection, &state, &sink);
  return std::move(sink.text());
}

std::string RenderBusinessMetrics(const projection::KpiProjection& projection) {
  StringSink sink;
  Render(projection, nullptr, &sink);
  return std::move(sink.text());
}

}  // namespace okrd::exporter
