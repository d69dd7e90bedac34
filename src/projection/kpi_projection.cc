#include "projection/kpi_projection.h"

#include <algorithm>
#include <utility>

#include "core/time_util.h"

namespace okrd::projection {

void Aggregate::Add(double value, absl::Time event_time, uint64_t sequence) {
  ++count;
  sum += value;
  min = std::min(min, value);
  max = std::max(max, value);
  // The latest measurement wins; among equal times, the later-logged one.
  if (event_time > latest_time ||
      (event_time == latest_time && sequence >= latest_sequence)) {
    latest = value;
    latest_time = event_time;
    latest_sequence = sequence;
  }
}

double Aggregate::Value(config::Aggregation aggregation) const {
  switch (aggregation) {
    case config::Aggregation::kLatest:
      return latest;
    case config::Aggregation::kSum:
      return sum;
    case config::Aggregation::kCount:
      return static_cast<double>(count);
    case config::Aggregation::kMean:
      return sum / static_cast<double>(count);
    case config::Aggregation::kMin:
      return min;
    case config::Aggregation::kMax:
      return max;
  }
  return 0;
}

KpiProjection::KpiProjection(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)) {}

void KpiProjection::Apply(const okrd::v1::StoredEvent& record) {
  sequence_ = std::max(sequence_, record.sequence());
  if (!record.has_event()) {
    if (record.has_tick()) {
      AdvanceClock(absl::FromUnixMicros(record.tick().wall_time_us()));
    }
    return;
  }
  const okrd::v1::KpiEvent& event = record.event();
  const absl::Time event_time = FromProto(event.event_time());
  AdvanceClock(absl::FromUnixMicros(record.ingest_time_us()));
  AdvanceClock(event_time);
  const config::KpiOptions* kpi = config_->FindKpi(event.kpi());
  if (kpi == nullptr) return;
  auto [it, inserted] = subjects_.try_emplace({event.kpi(), event.subject()});
  SubjectState& state = it->second;
  state.kpi = kpi;
  state.last_event_time = std::max(state.last_event_time, event_time);
  const Period period = PeriodContaining(event_time, *kpi);
  state.periods[absl::ToUnixMicros(period.start)].Add(event.value(), event_time,
                                                      record.sequence());
}

void KpiProjection::AdvanceClock(absl::Time now) {
  clock_ = std::max(clock_, now);
}

void KpiProjection::ForEachSeries(
    const std::function<void(const KpiSeries&)>& fn) const {
  if (clock_ == absl::InfinitePast()) return;
  // Period bounds depend only on the KPI; compute them once per KPI.
  const config::KpiOptions* cached_kpi = nullptr;
  Period current;
  Period previous;
  for (const auto& [key, state] : subjects_) {
    if (state.kpi != cached_kpi) {
      cached_kpi = state.kpi;
      current = PeriodContaining(clock_, *state.kpi);
      previous = PreviousPeriod(current, *state.kpi);
    }
    for (const auto& [label, period] :
         {std::pair{"current", current}, std::pair{"previous", previous}}) {
      auto found = state.periods.find(absl::ToUnixMicros(period.start));
      if (found == state.periods.end()) continue;
      fn(KpiSeries{state.kpi, &key.second, label, period,
                   found->second.Value(state.kpi->aggregation)});
    }
  }
}

void KpiProjection::ForEachSubject(
    const std::function<void(const config::KpiOptions&, const std::string&,
                             absl::Time)>& fn) const {
  for (const auto& [key, state] : subjects_) {
    fn(*state.kpi, key.second, state.last_event_time);
  }
}

std::optional<double> KpiProjection::LatestValueWithin(
    const config::KpiOptions& kpi, const std::string& subject, absl::Time from,
    absl::Time until) const {
  auto it = subjects_.find({kpi.id, subject});
  if (it == subjects_.end()) return std::nullopt;
  const auto& periods = it->second.periods;
  // The period containing `from` is the first that overlaps the window.
  const int64_t first = absl::ToUnixMicros(PeriodContaining(from, kpi).start);
  auto found = periods.lower_bound(absl::ToUnixMicros(until));
  if (found == periods.begin()) return std::nullopt;
  --found;
  if (found->first < first) return std::nullopt;
  return found->second.Value(kpi.aggregation);
}

absl::Time KpiProjection::LastEventTime(const std::string& kpi,
                                        const std::string& subject) const {
  auto it = subjects_.find({kpi, subject});
  return it == subjects_.end() ? absl::InfinitePast()
                               : it->second.last_event_time;
}

const Aggregate* KpiProjection::Find(const std::string& kpi,
                                     const std::string& subject,
                                     absl::Time period_start) const {
  auto it = subjects_.find({kpi, subject});
  if (it == subjects_.end()) return nullptr;
  auto found = it->second.periods.find(absl::ToUnixMicros(period_start));
  return found == it->second.periods.end() ? nullptr : &found->second;
}

}  // namespace okrd::projection
