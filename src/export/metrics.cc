#include "export/metrics.h"

#include <deque>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/pseudonym.h"
#include "core/version.h"
#include "projection/okr.h"
#include "projection/pip.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace okrd::exporter {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// Collects families; a deque keeps references to earlier families valid.
class Families {
 public:
  MetricFamily& Add(std::string name, std::string help, MetricType type) {
    MetricFamily& family = families_.emplace_back();
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = type;
    return family;
  }
  std::string Render() {
    std::vector<MetricFamily> out(std::make_move_iterator(families_.begin()),
                                  std::make_move_iterator(families_.end()));
    return prometheus::TextSerializer().Serialize(out);
  }

 private:
  std::deque<MetricFamily> families_;
};

void AddSample(MetricFamily& family, Labels labels, double value) {
  ClientMetric& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
}

double Seconds(absl::Time t) {
  return absl::ToDoubleSeconds(t - absl::UnixEpoch());
}

void AddKpiFamilies(Families& f, const projection::KpiProjection& projection) {
  MetricFamily& value = f.Add(
      "okr_kpi_value",
      "KPI value by its configured aggregation, for the current and previous "
      "calendar period.",
      MetricType::Gauge);
  MetricFamily& start = f.Add(
      "okr_kpi_period_start_timestamp_seconds",
      "Start of the period an okr_kpi_value series covers.", MetricType::Gauge);
  projection.ForEachSeries([&](const projection::KpiSeries& s) {
    Labels labels = {{"kpi", s.kpi->id},
                     {"subject", SubjectLabel(projection.config(), *s.subject)},
                     {"period", s.period_label}};
    AddSample(value, labels, s.value);
    AddSample(start, std::move(labels), Seconds(s.period.start));
  });
  MetricFamily& last =
      f.Add("okr_kpi_last_event_timestamp_seconds",
            "Event time of the newest measurement of a KPI for a subject.",
            MetricType::Gauge);
  projection.ForEachSubject([&](const config::KpiOptions& kpi,
                                const std::string& subject, absl::Time t) {
    AddSample(last,
              {{"kpi", kpi.id},
               {"subject", SubjectLabel(projection.config(), subject)}},
              Seconds(t));
  });
}

void AddOkrFamilies(Families& f, const projection::KpiProjection& projection) {
  const projection::OkrState okrs =
      projection::EvaluateOkrs(projection.config(), projection);
  MetricFamily& progress =
      f.Add("okr_key_result_progress_ratio",
            "Key result progress from baseline (0) to target (1), clamped.",
            MetricType::Gauge);
  MetricFamily& expected =
      f.Add("okr_key_result_expected_progress_ratio",
            "Progress expected by now: the elapsed share of the objective's "
            "period.",
            MetricType::Gauge);
  MetricFamily& value =
      f.Add("okr_key_result_value",
            "Current KPI value of a key result (newest period in the "
            "objective's window).",
            MetricType::Gauge);
  MetricFamily& target = f.Add("okr_key_result_target",
                               "Target value of a key result (threshold for "
                               "at_least/at_most; none for range).",
                               MetricType::Gauge);
  MetricFamily& baseline = f.Add(
      "okr_key_result_baseline",
      "Baseline value of an increase/decrease key result.", MetricType::Gauge);
  MetricFamily& status =
      f.Add("okr_key_result_status",
            "Key result status: one series per status, 1 on the current one.",
            MetricType::Gauge);
  for (const projection::KeyResultState& kr : okrs.key_results) {
    const config::KeyResultOptions& opts = *kr.key_result;
    Labels labels = {{"objective", kr.objective->id}, {"key_result", opts.id}};
    AddSample(progress, labels, kr.progress);
    AddSample(expected, labels, kr.expected);
    if (kr.value) AddSample(value, labels, *kr.value);
    if (opts.direction != config::Direction::kRange) {
      AddSample(target, labels, opts.target);
    }
    if (opts.direction == config::Direction::kIncrease ||
        opts.direction == config::Direction::kDecrease) {
      AddSample(baseline, labels, opts.baseline);
    }
    for (projection::KrStatus s : projection::kAllKrStatuses) {
      Labels with_status = labels;
      with_status.push_back(
          {"status", std::string(projection::KrStatusName(s))});
      AddSample(status, std::move(with_status), s == kr.status ? 1 : 0);
    }
  }
  MetricFamily& objective =
      f.Add("okr_objective_progress_ratio",
            "Weighted mean progress of an objective's key results and child "
            "objectives.",
            MetricType::Gauge);
  MetricFamily& info = f.Add(
      "okr_objective_info", "Objective metadata; always 1.", MetricType::Gauge);
  for (const projection::ObjectiveState& o : okrs.objectives) {
    AddSample(objective, {{"objective", o.objective->id}}, o.progress);
    AddSample(
        info,
        {{"objective", o.objective->id},
         {"title", o.objective->title},
         {"owner", o.objective->owner.empty()
                       ? std::string()
                       : SubjectLabel(projection.config(), o.objective->owner)},
         {"parent", o.objective->parent}},
        1);
  }
}

void AddPipFamilies(Families& f, const projection::KpiProjection& projection) {
  const std::vector<projection::PipSubjectState> pips =
      projection::EvaluatePips(projection.config(), projection);
  MetricFamily& state = f.Add(
      "okr_pip_state",
      "PIP trigger state per policy and subject: one series per state, 1 on "
      "the current one. triggered recommends a review.",
      MetricType::Gauge);
  MetricFamily& streak =
      f.Add("okr_pip_breach_streak_periods",
            "Consecutive closed periods breaching the policy's trigger.",
            MetricType::Gauge);
  MetricFamily& triggered =
      f.Add("okr_pip_triggered_timestamp_seconds",
            "When the current or last plan was triggered.", MetricType::Gauge);
  MetricFamily& deadline =
      f.Add("okr_pip_deadline_timestamp_seconds",
            "Deadline of the current or last plan.", MetricType::Gauge);
  MetricFamily& insufficient =
      f.Add("okr_pip_insufficient_periods_total",
            "Closed periods with fewer than min_samples events: not judged.",
            MetricType::Counter);
  MetricFamily& missed =
      f.Add("okr_pip_milestones_missed",
            "Milestones of the current or last plan not reached by their day.",
            MetricType::Gauge);
  std::map<std::pair<std::string, std::string>, double> transitions;
  for (const projection::PipSubjectState& p : pips) {
    const Labels labels = {
        {"policy", p.policy->id},
        {"subject", SubjectLabel(projection.config(), p.subject)}};
    for (projection::PipState s : projection::kAllPipStates) {
      Labels with_state = labels;
      with_state.push_back({"state", std::string(projection::PipStateName(s))});
      AddSample(state, std::move(with_state), s == p.state ? 1 : 0);
    }
    AddSample(streak, labels, p.streak);
    if (p.triggered_at != absl::InfinitePast()) {
      AddSample(triggered, labels, Seconds(p.triggered_at));
      AddSample(deadline, labels, Seconds(p.deadline));
      AddSample(missed, labels, p.milestones_missed);
    }
    AddSample(insufficient, labels, p.insufficient_periods);
    for (const projection::PipTransition& t : p.transitions) {
      transitions[{p.policy->id,
                   std::string(projection::PipStateName(t.to))}] += 1;
    }
  }
  MetricFamily& total =
      f.Add("okr_pip_transitions_total",
            "PIP state transitions by policy and target state, from the log.",
            MetricType::Counter);
  for (const auto& [key, count] : transitions) {
    AddSample(total, {{"policy", key.first}, {"to", key.second}}, count);
  }
}

void AddBusinessFamilies(Families& f,
                         const projection::KpiProjection& projection) {
  AddKpiFamilies(f, projection);
  AddOkrFamilies(f, projection);
  AddPipFamilies(f, projection);
  AddSample(f.Add("okrd_projection_sequence",
                  "Log sequence every series of this scrape reflects.",
                  MetricType::Gauge),
            {}, static_cast<double>(projection.sequence()));
}

void AddDaemonFamilies(Families& f, const DaemonState& state) {
  MetricFamily& events =
      f.Add("okrd_events_total",
            "Kafka messages by outcome (accepted, duplicate, rejected) and "
            "rejection reason; persisted in the event log.",
            MetricType::Counter);
  for (const auto& [key, count] : state.log.counters) {
    AddSample(events, {{"outcome", key.first}, {"reason", key.second}},
              static_cast<double>(count));
  }
  AddSample(
      f.Add("okrd_eventlog_last_sequence",
            "Sequence number of the newest log record (event or clock tick).",
            MetricType::Gauge),
      {}, static_cast<double>(state.log.last_sequence));
  MetricFamily& lag =
      f.Add("okrd_consumer_lag_messages",
            "Messages between the log's next offset and the partition's high "
            "watermark.",
            MetricType::Gauge);
  for (const auto& [key, messages] : state.lag) {
    AddSample(lag,
              {{"topic", key.first}, {"partition", absl::StrCat(key.second)}},
              static_cast<double>(messages));
  }
  AddSample(f.Add("okrd_projection_rebuild_seconds",
                  "Duration of the last projection rebuild: snapshot load "
                  "and replay of the log's tail.",
                  MetricType::Gauge),
            {}, state.rebuild_seconds);
  AddSample(f.Add("okrd_build_info", "Build of the running okrd; always 1.",
                  MetricType::Gauge),
            {{"version", Version()}}, 1);
}

}  // namespace

std::string SubjectLabel(const config::Config& config,
                         const std::string& subject) {
  const std::string& key = config.exporter.pseudonym_key;
  return key.empty() ? subject : Pseudonym(key, subject);
}

std::string RenderMetrics(const projection::KpiProjection& projection,
                          const DaemonState& state) {
  Families families;
  AddBusinessFamilies(families, projection);
  AddDaemonFamilies(families, state);
  return families.Render();
}

std::string RenderBusinessMetrics(const projection::KpiProjection& projection) {
  Families families;
  AddBusinessFamilies(families, projection);
  return families.Render();
}

}  // namespace okrd::exporter
