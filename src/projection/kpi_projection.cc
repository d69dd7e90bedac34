#include "projection/kpi_projection.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "core/time_util.h"
#include "projection/okr.h"
#include "projection/pip.h"

namespace okrd::projection {

Aggregate::Aggregate(config::Aggregation aggregation, double quantile)
    : aggregation_(aggregation) {
  if (aggregation == config::Aggregation::kQuantile) {
    quantiles_ = std::make_unique<Quantiles>(Quantiles{quantile, {}});
  }
}

void Aggregate::Add(double value, absl::Time event_time, uint64_t sequence,
                    size_t kept) {
  const bool letting_go = let_go() > 0;
  ++count_;
  sum_ += value;
  first_sequence_ = std::min(first_sequence_, sequence);
  if (needs_refill_) return;  // Refill() replaces what is held
  if (letting_go && held_ == 0 && HoldsValues()) {
    // Nothing held to compare with (a snapshot taken while a refill was
    // due): only the log can tell.
    needs_refill_ = true;
    return;
  }
  switch (aggregation_) {
    case config::Aggregation::kMin:
    case config::Aggregation::kMax:
      // Once some were let go, only a value as extreme as the least extreme
      // held one is held: every value let go stays less extreme than those.
      if (letting_go && (aggregation_ == config::Aggregation::kMin
                             ? value > values_.rbegin()->first
                             : value < values_.begin()->first)) {
        return;
      }
      ++values_[value];
      ++held_;
      break;
    case config::Aggregation::kLatest: {
      // The latest measurement wins; among equal times, the later-logged one.
      const std::pair<int64_t, uint64_t> key(absl::ToUnixNanos(event_time),
                                             sequence);
      if (letting_go && key < by_time_.begin()->first) return;
      // Measurements mostly arrive in time order: hint the end.
      const size_t before = by_time_.size();
      by_time_.insert_or_assign(by_time_.end(), key, value);
      held_ += static_cast<uint32_t>(by_time_.size() - before);
      break;
    }
    case config::Aggregation::kQuantile:
      quantiles_->sketch.Add(value);
      return;
    default:
      return;
  }
  Trim(kept);
}

void Aggregate::Trim(size_t kept) {
  switch (aggregation_) {
    case config::Aggregation::kMin:
      while (values_.size() > kept) {
        auto least = std::prev(values_.end());
        held_ -= least->second;
        values_.erase(least);
      }
      break;
    case config::Aggregation::kMax:
      while (values_.size() > kept) {
        held_ -= values_.begin()->second;
        values_.erase(values_.begin());
      }
      break;
    case config::Aggregation::kLatest:
      while (by_time_.size() > kept) {
        by_time_.erase(by_time_.begin());
        --held_;
      }
      break;
    default:
      break;
  }
}

void Aggregate::Remove(double value, absl::Time event_time, uint64_t sequence) {
  if (count_ == 0) return;
  --count_;
  sum_ = count_ == 0 ? 0 : sum_ - value;
  if (count_ == 0) {
    values_.clear();
    by_time_.clear();
    if (quantiles_ != nullptr) quantiles_->sketch = QuantileSketch();
    held_ = 0;
    needs_refill_ = false;
    return;
  }
  if (needs_refill_) return;
  switch (aggregation_) {
    case config::Aggregation::kMin:
    case config::Aggregation::kMax:
      // Not found: it was let go.
      if (auto it = values_.find(value); it != values_.end()) {
        --held_;
        if (--it->second == 0) values_.erase(it);
      }
      break;
    case config::Aggregation::kLatest:
      held_ -= static_cast<uint32_t>(
          by_time_.erase({absl::ToUnixNanos(event_time), sequence}));
      break;
    case config::Aggregation::kQuantile:
      quantiles_->sketch.Remove(value);
      return;
    default:
      return;
  }
  // Only values let go are left, and which of them is extreme is not known.
  if (held_ == 0) needs_refill_ = true;
}

void Aggregate::Refill(const Aggregate& full, size_t kept) {
  values_ = full.values_;
  by_time_ = full.by_time_;
  held_ = full.held_;
  first_sequence_ = std::min(first_sequence_, full.first_sequence_);
  needs_refill_ = false;
  Trim(kept);
}

double Aggregate::Value() const {
  switch (aggregation_) {
    case config::Aggregation::kLatest:
      return by_time_.empty() ? 0 : by_time_.rbegin()->second;
    case config::Aggregation::kSum:
      return sum_;
    case config::Aggregation::kCount:
      return static_cast<double>(count_);
    case config::Aggregation::kMean:
      return count_ == 0 ? 0 : sum_ / static_cast<double>(count_);
    case config::Aggregation::kMin:
      return values_.empty() ? 0 : values_.begin()->first;
    case config::Aggregation::kMax:
      return values_.empty() ? 0 : values_.rbegin()->first;
    case config::Aggregation::kQuantile:
      return quantiles_->sketch.Quantile(quantiles_->q);
  }
  return 0;
}

void Aggregate::SaveTo(okrd::v1::PeriodSnapshot* out) const {
  out->set_count(count_);
  out->set_sum(sum_);
  if (first_sequence_ != UINT64_MAX) out->set_first_sequence(first_sequence_);
  for (const auto& [value, n] : values_) {
    out->add_values(value);
    out->add_value_counts(n);
  }
  for (const auto& [key, value] : by_time_) {
    out->add_latest_time_ns(key.first);
    out->add_latest_sequence(key.second);
    out->add_latest_value(value);
  }
  if (quantiles_ != nullptr) quantiles_->sketch.SaveTo(out);
}

void Aggregate::LoadFrom(const okrd::v1::PeriodSnapshot& in, size_t kept) {
  count_ = in.count();
  sum_ = in.sum();
  // Snapshots from before it have none: the log is read from its start.
  first_sequence_ = in.first_sequence();
  values_.clear();
  by_time_.clear();
  held_ = 0;
  needs_refill_ = false;
  for (int i = 0; i < in.values_size() && i < in.value_counts_size(); ++i) {
    values_[in.values(i)] += in.value_counts(i);
    held_ += in.value_counts(i);
  }
  for (int i = 0; i < in.latest_time_ns_size() &&
                  i < in.latest_sequence_size() && i < in.latest_value_size();
       ++i) {
    by_time_[{in.latest_time_ns(i), in.latest_sequence(i)}] =
        in.latest_value(i);
  }
  held_ += static_cast<uint32_t>(by_time_.size());
  if (quantiles_ != nullptr) quantiles_->sketch.LoadFrom(in);
  Trim(kept);
  needs_refill_ = HoldsValues() && held_ == 0 && count_ > 0;
}

struct KpiProjection::SubjectState::Watched {
  // Start of the first period with data ever (Unix microseconds): where its
  // machines start.
  int64_t first_period = INT64_MAX;
  // Sequence of the pair's first event: where reading it back starts.
  uint64_t first_sequence = UINT64_MAX;
  // The periods before it were let go.
  int64_t let_go_before = INT64_MIN;
  // Of a policy's base KPI, once its machines sealed periods: per policy
  // (config order), the checkpoint of the subject's machine; none while
  // `judged` is 0.
  std::vector<PipCheckpoint> checkpoints;

  // Where policy `policy`'s machine resumes; nullptr: from the first period.
  const PipCheckpoint* CheckpointOf(size_t policy) const {
    return policy < checkpoints.size() && checkpoints[policy].judged > 0
               ? &checkpoints[policy]
               : nullptr;
  }
};

namespace {

// Times in snapshots: Unix microseconds, INT64_MIN for InfinitePast.
int64_t SnapshotUs(absl::Time t) {
  return t == absl::InfinitePast() ? INT64_MIN : absl::ToUnixMicros(t);
}
absl::Time SnapshotTime(int64_t us) {
  return us == INT64_MIN ? absl::InfinitePast() : absl::FromUnixMicros(us);
}
// Times that follow event times keep their nanoseconds: a restored
// projection answers as a replay does.
int64_t SnapshotNs(absl::Time t) {
  return t == absl::InfinitePast() ? INT64_MIN : absl::ToUnixNanos(t);
}
absl::Time SnapshotTimeNs(int64_t ns) {
  return ns == INT64_MIN ? absl::InfinitePast() : absl::FromUnixNanos(ns);
}

void SaveCheckpoint(const PipCheckpoint& c, const std::string& policy,
                    okrd::v1::PipCheckpointSnapshot* out) {
  out->set_policy(policy);
  out->set_next_us(SnapshotUs(c.next));
  out->set_judged(c.judged);
  out->set_cooldown_left(c.cooldown_left);
  out->set_state(std::string(PipStateName(c.state.state)));
  out->set_streak(c.state.streak);
  out->set_triggered_at_us(SnapshotUs(c.state.triggered_at));
  out->set_deadline_us(SnapshotUs(c.state.deadline));
  out->set_insufficient_periods(c.state.insufficient_periods);
  out->set_milestones_missed(c.state.milestones_missed);
  for (MilestoneStatus m : c.state.milestones) {
    out->add_milestones(std::string(MilestoneStatusName(m)));
  }
}

PipCheckpoint LoadCheckpoint(const okrd::v1::PipCheckpointSnapshot& in) {
  PipCheckpoint c;
  c.next = SnapshotTime(in.next_us());
  c.judged = in.judged();
  c.cooldown_left = in.cooldown_left();
  if (std::optional<PipState> state = PipStateNamed(in.state())) {
    c.state.state = *state;
  }
  c.state.streak = in.streak();
  c.state.triggered_at = SnapshotTime(in.triggered_at_us());
  c.state.deadline = SnapshotTime(in.deadline_us());
  c.state.insufficient_periods = in.insufficient_periods();
  c.state.milestones_missed = in.milestones_missed();
  for (const std::string& name : in.milestones()) {
    c.state.milestones.push_back(
        MilestoneStatusNamed(name).value_or(MilestoneStatus::kPending));
  }
  return c;
}

}  // namespace

std::string ConfigHash(const config::Config& config) {
  // A readable canonical form; short enough to store beside each snapshot.
  // v2: pairs carry their source partition. v3: pairs let go of periods no
  // read reaches, so what derived KPIs and key results read is part of it.
  std::string canonical = "okrd-projection-v3";
  for (const config::KpiOptions& kpi : config.kpis) {
    if (kpi.is_derived()) {
      // No state of their own; their reads set the horizons of their inputs.
      absl::StrAppend(&canonical, "|", kpi.id, "=",
                      kpi.derived.kind == config::DerivedKpi::Kind::kRatio
                          ? "ratio("
                      : kpi.derived.same_period_last_year ? "yoy("
                                                          : "change(",
                      absl::StrJoin(kpi.derived.inputs, ","), ")");
      continue;
    }
    absl::StrAppend(
        &canonical, "|", kpi.id, ",", config::AggregationName(kpi.aggregation),
        ",", config::PeriodName(kpi.period), ",", kpi.time_zone, ",",
        kpi.week_start, ",", absl::FormatDuration(kpi.allowed_lateness));
    if (kpi.aggregation == config::Aggregation::kQuantile) {
      absl::StrAppend(&canonical, ",q=", kpi.quantile);
    }
  }
  for (const config::PipPolicyOptions& p : config.pip_policies) {
    absl::StrAppend(
        &canonical, "|pip:", p.id, ",", p.kpi, ",",
        absl::StrJoin(p.subjects, " "), ",", absl::StrJoin(p.exclude, " "), ",",
        p.comparator == config::Comparator::kBelow ? "below" : "above", ",",
        p.trigger, ",", p.recovery, ",", p.consecutive_periods, ",",
        p.min_samples, ",", p.grace_periods, ",", p.cooldown_periods, ",",
        p.plan_days);
    for (const config::PipMilestone& m : p.milestones) {
      absl::StrAppend(&canonical, ",", m.day, "@", m.threshold);
    }
  }
  // Their pairs keep every period.
  for (const config::ObjectiveOptions& o : config.objectives) {
    for (const config::KeyResultOptions& kr : o.key_results) {
      absl::StrAppend(&canonical, "|kr:", kr.kpi, ",", kr.subject);
    }
  }
  return canonical;
}

okrd::v1::ProjectionSnapshot KpiProjection::Snapshot() const {
  RefillIfStale();  // no subject waits to be read back
  okrd::v1::ProjectionSnapshot out;
  out.set_sequence(sequence_);
  out.set_clock_ns(SnapshotNs(clock_));
  out.set_config_hash(ConfigHash(*config_));
  for (const auto& [view, node] : ordered_) {
    const auto& [key, state] = *node;
    okrd::v1::SubjectSnapshot* s = out.add_subjects();
    s->set_kpi(key.first);
    s->set_subject(key.second);
    if (state.partition != kNoPartition) {
      s->set_topic(partitions_[state.partition].first);
      s->set_partition(partitions_[state.partition].second);
    }
    s->set_partition_conflict(state.partition_conflict);
    s->set_last_event_time_ns(SnapshotNs(state.last_event_time));
    if (const SubjectState::Watched* w = state.watched.get()) {
      s->set_first_period_us(w->first_period);
      s->set_first_sequence(w->first_sequence);
      s->set_let_go_before_us(w->let_go_before);
      for (size_t i = 0; i < w->checkpoints.size(); ++i) {
        if (w->checkpoints[i].judged == 0) continue;
        SaveCheckpoint(w->checkpoints[i], config_->pip_policies[i].id,
                       s->add_pip_checkpoints());
      }
    }
    for (const auto& [start, aggregate] : state.periods) {
      okrd::v1::PeriodSnapshot* p = s->add_periods();
      p->set_start_us(start);
      aggregate.SaveTo(p);
    }
  }
  for (const FiredTransition& t : pip_fired_) {
    okrd::v1::FiredTransitionSnapshot& f = *out.add_fired_transitions();
    f.set_policy(config_->pip_policies[t.policy].id);
    f.set_subject(*t.subject);
    f.set_from_state(std::string(PipStateName(static_cast<PipState>(t.from))));
    f.set_to_state(std::string(PipStateName(static_cast<PipState>(t.to))));
    f.set_at_us(t.at_us);
    f.set_plan_start_us(t.plan_start_us);
    f.set_next_checkin_us(t.next_checkin_us);
    for (uint8_t m : t.milestones) {
      f.add_milestones(
          std::string(MilestoneStatusName(static_cast<MilestoneStatus>(m))));
    }
  }
  out.set_partition_conflicts(partition_conflicts_);
  out.set_pip_sealed_at_ns(SnapshotNs(pip_sealed_at_));
  return out;
}

absl::Status KpiProjection::Restore(
    const okrd::v1::ProjectionSnapshot& snapshot) {
  ++changes_;
  if (snapshot.config_hash() != ConfigHash(*config_)) {
    return absl::FailedPreconditionError(
        "snapshot was taken under other KPI or PIP policy definitions");
  }
  subjects_.clear();
  ordered_.clear();
  pip_fired_.clear();
  pip_fired_keys_.clear();
  pip_fired_subjects_.clear();
  for (const okrd::v1::FiredTransitionSnapshot& f :
       snapshot.fired_transitions()) {
    const config::PipPolicyOptions* policy = config_->FindPipPolicy(f.policy());
    if (policy == nullptr) continue;  // the hash covers policies: not seen
    FiredTransition t{
        &*pip_fired_subjects_.insert(f.subject()).first,
        static_cast<uint32_t>(policy - config_->pip_policies.data()),
        0,
        0,
        f.at_us(),
        f.plan_start_us(),
        f.next_checkin_us(),
        {}};
    if (std::optional<PipState> from = PipStateNamed(f.from_state())) {
      t.from = static_cast<uint8_t>(*from);
    }
    if (std::optional<PipState> to = PipStateNamed(f.to_state())) {
      t.to = static_cast<uint8_t>(*to);
    }
    for (const std::string& name : f.milestones()) {
      if (std::optional<MilestoneStatus> m = MilestoneStatusNamed(name)) {
        t.milestones.push_back(static_cast<uint8_t>(*m));
      }
    }
    RecordFired(std::move(t));
  }
  pip_dirty_ = true;  // judge again at the next tick; ids keep it idempotent
  pip_states_ = std::make_unique<PipStates>();
  partitions_.clear();
  partition_index_.clear();
  partition_conflicts_ = snapshot.partition_conflicts();
  new_conflicts_.clear();
  sequence_ = snapshot.sequence();
  clock_ = SnapshotTimeNs(snapshot.clock_ns());
  horizons_until_ = absl::InfinitePast();
  pip_stale_.clear();
  SetSealPoints(SnapshotTimeNs(snapshot.pip_sealed_at_ns()));
  for (const okrd::v1::SubjectSnapshot& s : snapshot.subjects()) {
    const config::KpiOptions* kpi = config_->FindKpi(s.kpi());
    if (kpi == nullptr) continue;
    SubjectState& state = StateOf(s.kpi(), s.subject());
    InitPair(state, *kpi, s.subject());
    if (SubjectState::Watched* w = state.watched.get()) {
      w->first_period = s.first_period_us();
      w->first_sequence = s.first_sequence();
      w->let_go_before = s.let_go_before_us();
      for (const okrd::v1::PipCheckpointSnapshot& c : s.pip_checkpoints()) {
        for (size_t i = 0; i < config_->pip_policies.size(); ++i) {
          if (config_->pip_policies[i].id != c.policy()) continue;
          w->checkpoints.resize(config_->pip_policies.size());
          w->checkpoints[i] = LoadCheckpoint(c);
        }
      }
    }
    if (!s.topic().empty()) {
      state.partition = PartitionIndex(s.topic(), s.partition());
    }
    state.partition_conflict = s.partition_conflict();
    state.last_event_time = SnapshotTimeNs(s.last_event_time_ns());
    for (const okrd::v1::PeriodSnapshot& p : s.periods()) {
      Aggregate& aggregate =
          state.periods
              .try_emplace(p.start_us(), kpi->aggregation, kpi->quantile)
              .first->second;
      aggregate.LoadFrom(p, kept_);
      if (aggregate.needs_refill()) {
        Refill(*kpi, s.subject(),
               PeriodOf(*kpi, absl::FromUnixMicros(p.start_us())), aggregate);
      }
    }
    // Snapshots written before periods were let go hold them all.
    if (history_ && !state.keeps_every_period && state.watched == nullptr &&
        !state.periods.empty() && clock_ != absl::InfinitePast()) {
      LetGoOfOldPeriods(state);
    }
  }
  return absl::OkStatus();
}

Period KpiProjection::PeriodOf(const config::KpiOptions& kpi, absl::Time t) {
  Period& cached = period_cache_[&kpi - config_->kpis.data()];
  if (!cached.Contains(t)) cached = PeriodContaining(t, kpi);
  return cached;
}

Aggregate& KpiProjection::AggregateOf(SubjectState& state,
                                      const Period& period) {
  // Most events land in the newest period: hint the end.
  return state.periods
      .try_emplace(state.periods.end(), absl::ToUnixMicros(period.start),
                   state.kpi->aggregation, state.kpi->quantile)
      ->second;
}

void KpiProjection::FoldInto(Aggregate& aggregate, const Period& period,
                             const okrd::v1::StoredEvent& record, size_t kept) {
  const okrd::v1::KpiEvent& event = record.event();
  if (event.kind() == okrd::v1::CORRECTION ||
      event.kind() == okrd::v1::RETRACTION) {
    // The log resolved what is amended; without that there is nothing to do.
    if (!record.has_amends()) return;
    const okrd::v1::Amendment& a = record.amends();
    const absl::Time target_time = FromProto(a.target_event_time());
    if (!period.Contains(target_time)) return;
    aggregate.Remove(a.previous_value(), target_time, a.target_sequence());
    if (event.kind() == okrd::v1::CORRECTION) {
      aggregate.Add(event.value(), target_time, a.target_sequence(), kept);
    }
    return;
  }
  const absl::Time event_time = FromProto(event.event_time());
  if (!period.Contains(event_time)) return;
  aggregate.Add(event.value(), event_time, record.sequence(), kept);
}

void KpiProjection::SetHistory(History history, size_t kept) {
  history_ = std::move(history);
  kept_ = history_ ? kept : SIZE_MAX;
}

void KpiProjection::Refill(const config::KpiOptions& kpi,
                           absl::string_view subject, const Period& period,
                           Aggregate& aggregate) {
  if (!history_) return;
  // Everything folded so far, and nothing after: the log may hold more.
  const uint64_t until = sequence_;
  Aggregate full(kpi.aggregation, kpi.quantile);
  absl::Status read =
      history_(std::max<uint64_t>(aggregate.first_sequence(), 1),
               [&](const okrd::v1::StoredEvent& record) {
                 if (record.sequence() > until) return false;
                 if (record.has_event() && record.event().kpi() == kpi.id &&
                     record.event().subject() == subject) {
                   FoldInto(full, period, record, SIZE_MAX);
                 }
                 return true;
               });
  ++refills_;
  // A log that cannot be read leaves the aggregate without a value
  // (ForEachSeries skips it) rather than with a wrong one.
  if (read.ok() && full.count() == aggregate.count()) {
    aggregate.Refill(full, kept_);
  }
}

KpiProjection::Node& KpiProjection::NodeOf(absl::string_view kpi,
                                           absl::string_view subject) {
  auto it = subjects_.find(KeyView(kpi, subject));
  if (it == subjects_.end()) {
    it = subjects_.try_emplace(Key(kpi, subject)).first;
    ordered_.emplace(ViewOf(it->first), &*it);
  }
  return *it;
}

struct KpiProjection::PipStates {
  bool valid = false;
  // Without new data the states change only at a period close, a plan's
  // deadline or its next check-in: not before this.
  absl::Time valid_until = absl::InfinitePast();
  // Per policy (config order), by subject.
  std::vector<absl::btree_map<std::string, PipSubjectState>> by_policy;
  // Pairs of watched KPIs with data folded since the states were judged.
  absl::flat_hash_set<const Node*> dirty;

  void Keep(size_t policy, PipSubjectState state, absl::Time now) {
    if (state.state == PipState::kTriggered && state.deadline > now) {
      // The plan expires, or its next check-in comes, without new data.
      valid_until = std::min({valid_until, state.deadline, state.next_checkin});
    }
    std::string subject = state.subject;
    by_policy[policy].insert_or_assign(std::move(subject), std::move(state));
  }
};

KpiProjection::~KpiProjection() = default;

void KpiProjection::UpdatePipStates() const {
  RefillIfStale();
  PipStates& s = *pip_states_;
  const std::vector<config::PipPolicyOptions>& policies = config_->pip_policies;
  if (!s.valid || clock_ >= s.valid_until) {
    s.by_policy.assign(policies.size(), {});
    s.dirty.clear();
    s.valid_until = clock_ == absl::InfinitePast()
                        ? absl::InfinitePast()
                        : NextPipPeriodClose(*config_, clock_);
    for (size_t i = 0; i < policies.size(); ++i) {
      const config::KpiOptions* kpi = pip_policies_[i].kpi;
      if (kpi == nullptr) continue;
      ForEachPipSubject(i, [&](const std::string& subject, absl::Time first,
                               const PipCheckpoint* from) {
        s.Keep(i, EvaluatePip(policies[i], *kpi, subject, first, *this, from),
               clock_);
      });
    }
    s.valid = true;
    return;
  }
  // A subject's machine is judged again once per policy, however many of
  // the policy's inputs it got data for.
  absl::flat_hash_set<std::pair<size_t, absl::string_view>> judged;
  for (const Node* node : s.dirty) {
    const auto& [key, state] = *node;
    const size_t input = state.kpi - config_->kpis.data();
    for (size_t i = 0; i < policies.size(); ++i) {
      const PipPolicyKpis& watched = pip_policies_[i];
      if (!watched.inputs[input] || !PipWatches(policies[i], key.second) ||
          !judged.emplace(i, key.second).second) {
        continue;
      }
      // A derived KPI's subjects are its base KPI's: often this very pair.
      const SubjectState* base = &state;
      if (watched.base != state.kpi) {
        auto it = subjects_.find(KeyView(watched.base->id, key.second));
        base = it == subjects_.end() ? nullptr : &it->second;
      }
      if (base == nullptr || base->watched == nullptr ||
          base->watched->first_period == INT64_MAX) {
        continue;
      }
      const SubjectState::Watched& w = *base->watched;
      s.Keep(i,
             EvaluatePip(policies[i], *watched.kpi, key.second,
                         absl::FromUnixMicros(w.first_period), *this,
                         w.CheckpointOf(i)),
             clock_);
    }
  }
  s.dirty.clear();
}

void KpiProjection::ForEachPipState(
    const std::function<void(const PipSubjectState&)>& fn) const {
  UpdatePipStates();
  for (size_t i = 0; i < pip_states_->by_policy.size(); ++i) {
    ForEachPipStateOf(i, SubjectRange{}, fn);
  }
}

void KpiProjection::ForEachPipStateOf(
    size_t policy, const SubjectRange& range,
    absl::FunctionRef<void(const PipSubjectState&)> fn) const {
  if (policy >= pip_states_->by_policy.size()) return;
  const auto& states = pip_states_->by_policy[policy];
  const auto end =
      range.until ? states.lower_bound(*range.until) : states.end();
  for (auto it = states.lower_bound(range.from); it != end; ++it) {
    fn(it->second);
  }
}

std::string KpiProjection::MiddlePipSubject(size_t policy) const {
  if (policy >= pip_states_->by_policy.size()) return "";
  const auto& states = pip_states_->by_policy[policy];
  if (states.size() < 2) return "";
  return std::next(states.begin(), states.size() / 2)->first;
}

KpiProjection::KpiProjection(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)),
      pip_watched_(config_->kpis.size(), false),
      pip_states_(std::make_unique<PipStates>()),
      period_cache_(config_->kpis.size(),
                    Period{absl::InfiniteFuture(), absl::InfiniteFuture()}) {
  inputs_.resize(config_->kpis.size());
  for (const config::KpiOptions& kpi : config_->kpis) {
    by_id_.push_back(&kpi);
    for (const std::string& input : kpi.derived.inputs) {
      // The config checked that each exists.
      if (const config::KpiOptions* in = config_->FindKpi(input)) {
        inputs_[&kpi - config_->kpis.data()].push_back(in);
      }
    }
  }
  std::sort(by_id_.begin(), by_id_.end(),
            [](const config::KpiOptions* a, const config::KpiOptions* b) {
              return a->id < b->id;
            });
  key_result_subjects_.resize(config_->kpis.size());
  std::vector<bool> read;
  for (const config::ObjectiveOptions& objective : config_->objectives) {
    for (const config::KeyResultOptions& kr : objective.key_results) {
      const config::KpiOptions* kpi = config_->FindKpi(kr.kpi);
      if (kpi == nullptr) continue;
      read.assign(config_->kpis.size(), false);
      MarkMeasuredInputs(*kpi, &read);
      for (size_t i = 0; i < read.size(); ++i) {
        if (read[i]) key_result_subjects_[i].insert(kr.subject);
      }
    }
  }
  for (const config::PipPolicyOptions& policy : config_->pip_policies) {
    PipPolicyKpis& p = pip_policies_.emplace_back();
    p.inputs.assign(config_->kpis.size(), false);
    p.kpi = config_->FindKpi(policy.kpi);
    if (p.kpi != nullptr) {
      p.base = &BaseOf(*p.kpi);
      MarkMeasuredInputs(*p.kpi, &p.inputs);
    }
    for (size_t i = 0; i < p.inputs.size(); ++i) {
      if (p.inputs[i]) pip_watched_[i] = true;
    }
  }
  SetSealPoints(absl::InfinitePast());
}

void KpiProjection::MarkMeasuredInputs(const config::KpiOptions& kpi,
                                       std::vector<bool>* marks) const {
  const size_t index = &kpi - config_->kpis.data();
  if (!kpi.is_derived()) {
    (*marks)[index] = true;
    return;
  }
  // The config has no cycles.
  for (const config::KpiOptions* input : inputs_[index]) {
    MarkMeasuredInputs(*input, marks);
  }
}

const config::KpiOptions& KpiProjection::BaseOf(
    const config::KpiOptions& kpi) const {
  const config::KpiOptions* base = &kpi;
  while (base->is_derived()) {
    const auto& inputs = inputs_[base - config_->kpis.data()];
    if (inputs.empty()) break;
    base = inputs.front();
  }
  return *base;
}

const KpiProjection::SubjectState* KpiProjection::StateOf(
    absl::string_view kpi, absl::string_view subject) const {
  auto it = subjects_.find(KeyView(kpi, subject));
  if (it != subjects_.end()) return &it->second;
  const config::KpiOptions* options = config_->FindKpi(kpi);
  if (options == nullptr || !options->is_derived()) return nullptr;
  it = subjects_.find(KeyView(BaseOf(*options).id, subject));
  return it == subjects_.end() ? nullptr : &it->second;
}

bool KpiProjection::Tracks(absl::string_view kpi,
                           absl::string_view subject) const {
  return StateOf(kpi, subject) != nullptr;
}

namespace {

// The period of `kpi` a year before `period`, by the calendar of its zone
// (the day after Feb 28 for a Feb 29).
Period YearBefore(const Period& period, const config::KpiOptions& kpi) {
  const absl::CivilSecond start = absl::ToCivilSecond(period.start, kpi.zone);
  return PeriodContaining(
      absl::FromCivil(
          absl::CivilSecond(start.year() - 1, start.month(), start.day(),
                            start.hour(), start.minute(), start.second()),
          kpi.zone),
      kpi);
}

std::optional<double> Finite(double v) {
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

}  // namespace

std::optional<double> KpiProjection::ValueOf(const Aggregate& aggregate) {
  if (aggregate.count() == 0 || aggregate.needs_refill()) return std::nullopt;
  return aggregate.Value();
}

std::optional<double> KpiProjection::ValueOf(const SubjectState& state,
                                             const Period& period) {
  auto found = state.periods.find(absl::ToUnixMicros(period.start));
  if (found == state.periods.end()) return std::nullopt;
  return ValueOf(found->second);
}

std::optional<double> KpiProjection::ValueIn(const config::KpiOptions& kpi,
                                             absl::string_view subject,
                                             const Period& period) const {
  if (!kpi.is_derived()) {
    auto it = subjects_.find(KeyView(kpi.id, subject));
    if (it == subjects_.end()) return std::nullopt;
    return ValueOf(it->second, period);
  }
  InputStates states{};
  FindInputs(kpi, subject, nullptr, &states);
  return DerivedValue(kpi, subject, period, states);
}

Period KpiProjection::ReferenceOf(const config::KpiOptions& kpi,
                                  const Period& period) {
  return kpi.derived.same_period_last_year ? YearBefore(period, kpi)
                                           : PreviousPeriod(period, kpi);
}

KpiProjection::Sample KpiProjection::SampleIn(const config::KpiOptions& kpi,
                                              absl::string_view subject,
                                              const Period& period) const {
  Sample sample;
  if (!kpi.is_derived()) {
    const Aggregate* a = Find(kpi.id, subject, period.start);
    if (const std::optional<double> value =
            a == nullptr ? std::nullopt : ValueOf(*a)) {
      sample.value = *value;
      sample.count = a->count();
    }
  } else if (const std::optional<double> value =
                 ValueIn(kpi, subject, period)) {
    sample.value = *value;
    sample.count = CountIn(kpi, subject, period);
  }
  return sample;
}

uint64_t KpiProjection::CountIn(const config::KpiOptions& kpi,
                                absl::string_view subject,
                                const Period& period) const {
  if (!kpi.is_derived()) {
    const Aggregate* a = Find(kpi.id, subject, period.start);
    return a == nullptr ? 0 : a->count();
  }
  const auto& inputs = inputs_[&kpi - config_->kpis.data()];
  const bool change = kpi.derived.kind == config::DerivedKpi::Kind::kChange;
  uint64_t count = UINT64_MAX;
  for (const config::KpiOptions* input : inputs) {
    count = std::min(count, CountIn(*input, subject, period));
    if (change) {
      count =
          std::min(count, CountIn(*input, subject, ReferenceOf(kpi, period)));
    }
  }
  return count == UINT64_MAX ? 0 : count;
}

void KpiProjection::FindInputs(const config::KpiOptions& kpi,
                               absl::string_view subject,
                               const SubjectState* base,
                               InputStates* states) const {
  states->fill(nullptr);
  const auto& inputs = inputs_[&kpi - config_->kpis.data()];
  for (size_t i = 0; i < inputs.size() && i < states->size(); ++i) {
    if (inputs[i]->is_derived()) continue;
    if (base != nullptr && i == 0) {
      (*states)[i] = base;  // a measured first input is the base
      continue;
    }
    auto it = subjects_.find(KeyView(inputs[i]->id, subject));
    if (it != subjects_.end()) (*states)[i] = &it->second;
  }
}

std::optional<double> KpiProjection::DerivedValue(
    const config::KpiOptions& kpi, absl::string_view subject,
    const Period& period, const InputStates& states) const {
  const auto& inputs = inputs_[&kpi - config_->kpis.data()];
  // Input i in period p: from its state when measured, else derived.
  auto input = [&](size_t i, const Period& p) -> std::optional<double> {
    if (inputs[i]->is_derived()) return ValueIn(*inputs[i], subject, p);
    return states[i] == nullptr ? std::nullopt : ValueOf(*states[i], p);
  };
  const config::DerivedKpi& d = kpi.derived;
  if (d.kind == config::DerivedKpi::Kind::kRatio) {
    if (inputs.size() != 2) return std::nullopt;
    const std::optional<double> numerator = input(0, period);
    if (!numerator) return std::nullopt;
    const std::optional<double> denominator = input(1, period);
    if (!denominator || *denominator == 0) return std::nullopt;
    return Finite(*numerator / *denominator * d.scale);
  }
  if (inputs.size() != 1) return std::nullopt;
  const std::optional<double> now = input(0, period);
  if (!now) return std::nullopt;
  const std::optional<double> then = input(0, ReferenceOf(kpi, period));
  if (!then || (d.relative && *then == 0)) return std::nullopt;
  return Finite(d.relative ? (*now - *then) / *then : *now - *then);
}

void KpiProjection::Apply(const okrd::v1::StoredEvent& record) {
  ++changes_;
  sequence_ = std::max(sequence_, record.sequence());
  if (!record.has_event()) {
    if (record.has_tick()) {
      AdvanceClock(absl::FromUnixMicros(record.tick().wall_time_us()));
      RecordPipTransitions();
      // What the machines judged and recorded by now, they need not judge
      // again.
      SealPipMachines();
    }
    return;
  }
  const okrd::v1::KpiEvent& event = record.event();
  const absl::Time event_time = FromProto(event.event_time());
  AdvanceClock(absl::FromUnixMicros(record.ingest_time_us()));
  AdvanceClock(event_time);
  const config::KpiOptions* kpi = config_->FindKpi(event.kpi());
  // Derived KPIs take no events (ingest rejects them): like an unknown KPI.
  if (kpi == nullptr || kpi->is_derived()) return;
  Node& node = NodeOf(event.kpi(), event.subject());
  SubjectState& state = node.second;
  if (state.kpi == nullptr) InitPair(state, *kpi, event.subject());
  if (FromKafka(record.position())) {
    NotePartition(state, event.kpi(), event.subject(), record.position());
  }
  if (pip_watched_[kpi - config_->kpis.data()]) {
    pip_dirty_ = true;
    if (pip_states_->valid) pip_states_->dirty.insert(&node);
  }
  absl::Time t = event_time;
  if (event.kind() == okrd::v1::CORRECTION ||
      event.kind() == okrd::v1::RETRACTION) {
    // The log resolved what is amended; without that there is nothing to do.
    if (!record.has_amends()) return;
    t = FromProto(record.amends().target_event_time());
  } else {
    state.last_event_time = std::max(state.last_event_time, event_time);
  }
  const Period period = PeriodOf(*kpi, t);
  const int64_t start = absl::ToUnixMicros(period.start);
  const bool lets_go =
      history_ && !state.keeps_every_period && state.watched == nullptr;
  // No read reaches a period before the horizon any more.
  if (lets_go && start < HorizonOf(*kpi)) return;
  if (SubjectState::Watched* w = state.watched.get()) {
    w->first_period = std::min(w->first_period, start);
    w->first_sequence =
        std::min(w->first_sequence, record.has_amends()
                                        ? record.amends().target_sequence()
                                        : record.sequence());
    if (start < pip_sealed_before_[kpi - config_->kpis.data()]) {
      // A period some machine has judged: it judges every one again.
      pip_stale_.emplace(event.subject());
    }
    // Read back with the rest from the log.
    if (start < w->let_go_before) return;
  }
  const size_t held = state.periods.size();
  Aggregate& aggregate = AggregateOf(state, period);
  FoldInto(aggregate, period, record, kept_);
  if (aggregate.needs_refill()) {
    Refill(*kpi, event.subject(), period, aggregate);
  }
  // A new period is where the horizon may have passed older ones.
  if (lets_go && state.periods.size() > held) LetGoOfOldPeriods(state);
}

bool KpiProjection::KeepsEveryPeriod(const config::KpiOptions& kpi,
                                     absl::string_view subject) const {
  return key_result_subjects_[&kpi - config_->kpis.data()].contains(subject);
}

bool KpiProjection::PipWatchesPair(const config::KpiOptions& kpi,
                                   absl::string_view subject) const {
  const size_t index = &kpi - config_->kpis.data();
  for (size_t i = 0; i < pip_policies_.size(); ++i) {
    if (pip_policies_[i].inputs[index] &&
        PipWatches(config_->pip_policies[i], std::string(subject))) {
      return true;
    }
  }
  return false;
}

void KpiProjection::InitPair(SubjectState& state, const config::KpiOptions& kpi,
                             absl::string_view subject) const {
  state.kpi = &kpi;
  state.keeps_every_period = KeepsEveryPeriod(kpi, subject);
  if (PipWatchesPair(kpi, subject)) {
    state.watched = std::make_unique<SubjectState::Watched>();
  }
}

void KpiProjection::SetSealPoints(absl::Time at) {
  pip_sealed_at_ = at;
  const size_t n = config_->kpis.size();
  pip_seal_points_.assign(pip_policies_.size(), absl::InfinitePast());
  pip_sealed_before_.assign(n, INT64_MIN);
  pip_horizons_.assign(n, INT64_MIN);
  pip_seal_until_ = absl::InfinitePast();
  if (at == absl::InfinitePast()) return;
  // The exported series' horizons at `at`, then what the machines read from
  // their seal points on.
  pip_seal_until_ = ExportedHorizons(at, &pip_horizons_);
  for (size_t i = 0; i < pip_policies_.size(); ++i) {
    const config::KpiOptions* kpi = pip_policies_[i].kpi;
    if (kpi == nullptr) continue;
    const absl::Duration delay = PipClosingDelay(*kpi);
    const Period open = PeriodContaining(at - delay, *kpi);
    pip_seal_until_ = std::min(pip_seal_until_, open.end + delay);
    const Period sealed = PreviousPeriod(open, *kpi);
    pip_seal_points_[i] = sealed.start;
    NoteRead(*kpi, sealed, &pip_horizons_);
    for (size_t m = 0; m < n; ++m) {
      if (pip_policies_[i].inputs[m]) {
        pip_sealed_before_[m] =
            std::max(pip_sealed_before_[m], absl::ToUnixMicros(sealed.start));
      }
    }
  }
}

void KpiProjection::SealPipMachines() {
  if (!history_ || pip_policies_.empty() || clock_ < pip_seal_until_) return;
  RefillStalePipSubjects();
  SetSealPoints(clock_);
  const std::vector<config::PipPolicyOptions>& policies = config_->pip_policies;
  for (size_t i = 0; i < policies.size(); ++i) {
    const config::KpiOptions* kpi = pip_policies_[i].kpi;
    if (kpi == nullptr) continue;
    ForEachPairOf(
        pip_policies_[i].base->id, [&](const Key& key, SubjectState& state) {
          if (state.watched == nullptr ||
              state.watched->first_period == INT64_MAX ||
              !PipWatches(policies[i], key.second)) {
            return;
          }
          SubjectState::Watched& w = *state.watched;
          w.checkpoints.resize(policies.size());
          AdvancePipCheckpoint(policies[i], *kpi, key.second,
                               absl::FromUnixMicros(w.first_period), *this,
                               pip_seal_points_[i], &w.checkpoints[i]);
        });
  }
  for (size_t m = 0; m < config_->kpis.size(); ++m) {
    if (!pip_watched_[m]) continue;
    const int64_t horizon = pip_horizons_[m];
    ForEachPairOf(config_->kpis[m].id, [&](const Key&, SubjectState& state) {
      if (state.watched == nullptr || state.keeps_every_period) return;
      auto& periods = state.periods;
      periods.erase(periods.begin(), periods.lower_bound(horizon));
      state.watched->let_go_before =
          std::max(state.watched->let_go_before, horizon);
    });
  }
}

void KpiProjection::RefillStalePipSubjects() {
  if (pip_stale_.empty()) return;
  // The watched pairs of the stale subjects that let periods go.
  absl::flat_hash_map<KeyView, SubjectState*, KeyHash, KeyEq> refill;
  uint64_t from = UINT64_MAX;
  for (const std::string& subject : pip_stale_) {
    for (size_t m = 0; m < config_->kpis.size(); ++m) {
      if (!pip_watched_[m]) continue;
      auto it = subjects_.find(KeyView(config_->kpis[m].id, subject));
      if (it == subjects_.end() || it->second.watched == nullptr) continue;
      SubjectState::Watched& w = *it->second.watched;
      for (PipCheckpoint& c : w.checkpoints) c = PipCheckpoint();
      if (w.let_go_before == INT64_MIN) continue;
      refill.emplace(ViewOf(it->first), &it->second);
      from = std::min(from, w.first_sequence);
    }
  }
  pip_stale_.clear();
  ++pip_rejudged_;
  if (refill.empty() || !history_) return;
  const uint64_t until = sequence_;
  absl::Status read = history_(
      std::max<uint64_t>(from, 1), [&](const okrd::v1::StoredEvent& record) {
        if (record.sequence() > until) return false;
        if (!record.has_event()) return true;
        const okrd::v1::KpiEvent& e = record.event();
        auto it = refill.find(KeyView(e.kpi(), e.subject()));
        if (it == refill.end()) return true;
        SubjectState& state = *it->second;
        const bool amends = e.kind() == okrd::v1::CORRECTION ||
                            e.kind() == okrd::v1::RETRACTION;
        if (amends && !record.has_amends()) return true;
        const Period period = PeriodOf(
            *state.kpi, FromProto(amends ? record.amends().target_event_time()
                                         : e.event_time()));
        if (absl::ToUnixMicros(period.start) >= state.watched->let_go_before) {
          return true;  // held: folded already
        }
        FoldInto(AggregateOf(state, period), period, record, kept_);
        return true;
      });
  for (auto& [key, state] : refill) {
    const int64_t before = state->watched->let_go_before;
    state->watched->let_go_before = INT64_MIN;
    for (auto it = state->periods.begin();
         it != state->periods.end() && it->first < before; ++it) {
      if (!read.ok()) {
        // Without the log the machines cannot judge them: no value, rather
        // than a wrong one (as Refill).
        it->second = Aggregate(state->kpi->aggregation, state->kpi->quantile);
        continue;
      }
      if (it->second.needs_refill()) {
        Refill(*state->kpi, key.second,
               PeriodOf(*state->kpi, absl::FromUnixMicros(it->first)),
               it->second);
      }
    }
  }
}

void KpiProjection::RefillIfStale() const {
  if (pip_stale_.empty()) return;
  // Like the kept PIP states, changed by reads, which the owner serialises
  // with Apply().
  const_cast<KpiProjection*>(this)->RefillStalePipSubjects();
}

void KpiProjection::Settle() const {
  RefillIfStale();
  UpdatePipStates();
}

void KpiProjection::ForEachPipSubject(
    size_t policy, const std::function<void(const std::string&, absl::Time,
                                            const PipCheckpoint*)>& fn) const {
  RefillIfStale();
  const PipPolicyKpis& p = pip_policies_[policy];
  if (p.kpi == nullptr) return;
  ForEachPairOf(p.base->id, [&](const Key& key, const SubjectState& state) {
    if (state.watched == nullptr || state.watched->first_period == INT64_MAX ||
        !PipWatches(config_->pip_policies[policy], key.second)) {
      return;
    }

    fn(key.second, absl::FromUnixMicros(state.watched->first_period),
       state.watched->CheckpointOf(policy));
  });
}

int64_t KpiProjection::HorizonOf(const config::KpiOptions& kpi) {
  if (clock_ >= horizons_until_) {
    horizons_until_ = ExportedHorizons(clock_, &horizons_);
  }
  return horizons_[&kpi - config_->kpis.data()];
}

absl::Time KpiProjection::ExportedHorizons(absl::Time at,
                                           std::vector<int64_t>* horizons) {
  horizons->assign(config_->kpis.size(), INT64_MAX);
  absl::Time until = absl::InfiniteFuture();
  for (const config::KpiOptions& k : config_->kpis) {
    const Period current = PeriodContaining(at, k);
    until = std::min(until, current.end);
    NoteRead(k, PreviousPeriod(current, k), horizons);
  }
  return until;
}

void KpiProjection::NoteRead(const config::KpiOptions& kpi,
                             const Period& period,
                             std::vector<int64_t>* horizons) {
  const size_t index = &kpi - config_->kpis.data();
  if (!kpi.is_derived()) {
    (*horizons)[index] =
        std::min((*horizons)[index], absl::ToUnixMicros(period.start));
    return;
  }
  // As DerivedValue reads its inputs (the config has no cycles).
  for (const config::KpiOptions* input : inputs_[index]) {
    NoteRead(*input, period, horizons);
    if (kpi.derived.kind == config::DerivedKpi::Kind::kChange) {
      NoteRead(*input, ReferenceOf(kpi, period), horizons);
    }
  }
}

void KpiProjection::LetGoOfOldPeriods(SubjectState& state) {
  auto& periods = state.periods;
  periods.erase(periods.begin(), periods.lower_bound(HorizonOf(*state.kpi)));
}

size_t KpiProjection::period_count() const {
  size_t n = 0;
  for (const auto& [key, state] : subjects_) n += state.periods.size();
  return n;
}

uint32_t KpiProjection::PartitionIndex(const std::string& topic,
                                       int32_t partition) {
  // Events mostly come in runs of one partition.
  if (!partitions_.empty()) {
    const SourcePartition& last = partitions_.back();
    if (last.second == partition && last.first == topic) {
      return static_cast<uint32_t>(partitions_.size() - 1);
    }
  }
  auto [it, added] =
      partition_index_.try_emplace(SourcePartition(topic, partition),
                                   static_cast<uint32_t>(partitions_.size()));
  if (added) partitions_.push_back(it->first);
  return it->second;
}

void KpiProjection::NotePartition(SubjectState& state, absl::string_view kpi,
                                  absl::string_view subject,
                                  const okrd::v1::SourcePosition& position) {
  const uint32_t index = PartitionIndex(position.topic(), position.partition());
  if (state.partition == kNoPartition) {
    state.partition = index;
    return;
  }
  if (state.partition == index) return;
  ++partition_conflicts_;
  if (!state.partition_conflict) {
    state.partition_conflict = true;
    new_conflicts_.emplace_back(kpi, subject);
  }
}

uint32_t KpiProjection::PartitionOf(absl::string_view kpi,
                                    absl::string_view subject) const {
  const SubjectState* state = StateOf(kpi, subject);
  return state == nullptr ? kNoPartition : state->partition;
}

std::vector<std::pair<std::string, std::string>>
KpiProjection::TakeNewConflicts() {
  std::vector<std::pair<std::string, std::string>> out;
  out.swap(new_conflicts_);
  return out;
}

void KpiProjection::AdvanceClock(absl::Time now) {
  if (now > clock_) ++changes_;
  clock_ = std::max(clock_, now);
}

const OkrState& KpiProjection::okrs() const {
  if (okrs_ == nullptr || okrs_at_ != changes_) {
    okrs_ = std::make_unique<OkrState>(EvaluateOkrs(*config_, *this));
    okrs_at_ = changes_;
  }
  return *okrs_;
}

void KpiProjection::RecordPipTransitions() {
  if (config_->pip_policies.empty()) return;
  if (!pip_dirty_ && clock_ < pip_wakeup_) return;
  pip_dirty_ = false;
  ForEachPipState([&](const PipSubjectState& p) {
    if (p.transitions.empty()) return;
    const std::string* subject = &*pip_fired_subjects_.insert(p.subject).first;
    const uint32_t policy =
        static_cast<uint32_t>(p.policy - config_->pip_policies.data());
    for (const PipTransition& t : p.transitions) {
      FiredTransition fired{subject,
                            policy,
                            static_cast<uint8_t>(t.from),
                            static_cast<uint8_t>(t.to),
                            absl::ToUnixMicros(t.at),
                            INT64_MIN,
                            INT64_MAX,
                            {}};
      if (t.plan_start != absl::InfinitePast()) {
        fired.plan_start_us = absl::ToUnixMicros(t.plan_start);
        for (MilestoneStatus m : t.milestones) {
          fired.milestones.push_back(static_cast<uint8_t>(m));
        }
      }
      if (t.next_checkin != absl::InfiniteFuture()) {
        fired.next_checkin_us = absl::ToUnixMicros(t.next_checkin);
      }
      RecordFired(std::move(fired));
    }
  });
  // The kept states know when they can next change without new
  // measurements: a period close, or a plan's deadline (at worst earlier).
  pip_wakeup_ = pip_states_->valid_until;
}

void KpiProjection::RecordFired(FiredTransition fired) {
  if (pip_fired_keys_
          .insert({fired.subject, fired.policy, fired.to, fired.at_us})
          .second) {
    pip_fired_.push_back(std::move(fired));
  }
}

std::string KpiProjection::PipTransitionIdOf(const FiredTransition& t) const {
  return PipTransitionId(config_->pip_policies[t.policy], *t.subject,
                         absl::FromUnixMicros(t.at_us),
                         static_cast<PipState>(t.to));
}

okrd::v1::PipTransition KpiProjection::PipTransitionRecord(
    const FiredTransition& t) const {
  const config::PipPolicyOptions& policy = config_->pip_policies[t.policy];
  const absl::Time at = absl::FromUnixMicros(t.at_us);
  const PipState to = static_cast<PipState>(t.to);
  okrd::v1::PipTransition m;
  m.set_id(PipTransitionIdOf(t));
  m.set_policy(policy.id);
  m.set_subject(*t.subject);
  m.set_from_state(std::string(PipStateName(static_cast<PipState>(t.from))));
  m.set_to_state(std::string(PipStateName(to)));
  ToProto(at, m.mutable_at());
  if (to == PipState::kTriggered) {
    ToProto(PlanDay(policy, at, policy.plan_days), m.mutable_plan_deadline());
  }
  if (t.plan_start_us != INT64_MIN) {
    std::vector<MilestoneStatus> milestones;
    for (uint8_t status : t.milestones) {
      milestones.push_back(static_cast<MilestoneStatus>(status));
    }
    DescribePlan(policy, absl::FromUnixMicros(t.plan_start_us), milestones,
                 m.mutable_actions(), m.mutable_milestones());
  }
  if (t.next_checkin_us != INT64_MAX) {
    ToProto(absl::FromUnixMicros(t.next_checkin_us), m.mutable_next_checkin());
  }
  return m;
}

std::vector<okrd::v1::PipTransition> KpiProjection::PipTransitionRecords()
    const {
  std::vector<okrd::v1::PipTransition> out;
  out.reserve(pip_fired_.size());
  for (const FiredTransition& t : pip_fired_) {
    out.push_back(PipTransitionRecord(t));
  }
  return out;
}

void KpiProjection::ForEachSeries(
    const std::function<void(const KpiSeries&)>& fn) const {
  for (const config::KpiOptions* kpi : by_id_) {
    ForEachKpiPair(*kpi, SubjectRange{}, [&](const KpiPair& p) {
      for (size_t i = 0; i < 2; ++i) {
        if (p.values[i]) {
          fn(KpiSeries{p.kpi, p.subject, p.period_labels[i], p.periods[i],
                       *p.values[i], p.partition});
        }
      }
    });
  }
}

void KpiProjection::ForEachSubject(
    const std::function<void(const config::KpiOptions&, const std::string&,
                             absl::Time, uint32_t)>& fn) const {
  for (const config::KpiOptions* kpi : by_id_) {
    ForEachPairOf(
        BaseOf(*kpi).id, [&](const Key& key, const SubjectState& state) {
          fn(*kpi, key.second, LastEventTimeOf(*kpi, key.second, &state),
             state.partition);
        });
  }
}

void KpiProjection::ForEachKpiPair(
    const config::KpiOptions& kpi, const SubjectRange& range,
    absl::FunctionRef<void(const KpiPair&)> fn) const {
  KpiPair pair{};
  pair.kpi = &kpi;
  const bool ticked = clock_ != absl::InfinitePast();
  if (ticked) {
    pair.periods[0] = PeriodContaining(clock_, kpi);
    pair.periods[1] = PreviousPeriod(pair.periods[0], kpi);
  }
  const auto& inputs = inputs_[&kpi - config_->kpis.data()];
  ForEachPairOf(
      BaseOf(kpi).id, range, [&](const Key& key, const SubjectState& state) {
        pair.subject = &key.second;
        pair.partition = state.partition;
        if (!kpi.is_derived()) {
          for (size_t i = 0; i < 2; ++i) {
            pair.values[i] =
                ticked ? ValueOf(state, pair.periods[i]) : std::nullopt;
          }
          pair.last_event_time = state.last_event_time;
          fn(pair);
          return;
        }
        // The inputs' states, found once for the values and the time.
        InputStates states{};
        FindInputs(kpi, key.second, &state, &states);
        for (size_t i = 0; i < 2; ++i) {
          pair.values[i] =
              ticked ? DerivedValue(kpi, key.second, pair.periods[i], states)
                     : std::nullopt;
        }
        // LastEventTimeOf with the measured inputs' states at hand.
        pair.last_event_time = absl::InfinitePast();
        for (size_t i = 0; i < inputs.size(); ++i) {
          const absl::Time t =
              i < states.size() && !inputs[i]->is_derived()
                  ? (states[i] == nullptr ? absl::InfinitePast()
                                          : states[i]->last_event_time)
                  : LastEventTimeOf(*inputs[i], key.second,
                                    i == 0 ? &state : nullptr);
          pair.last_event_time = std::max(pair.last_event_time, t);
        }
        fn(pair);
      });
}

std::string KpiProjection::MiddleSubject(const config::KpiOptions& kpi) const {
  // Walks the keys alone (a view and a pointer each, in the tree's nodes);
  // the pairs' states are not touched.
  const std::string& base = BaseOf(kpi).id;
  const std::string after = base + '\0';
  const auto begin = ordered_.lower_bound(KeyView(base, ""));
  const auto end = ordered_.lower_bound(KeyView(after, ""));
  const auto size = std::distance(begin, end);
  if (size < 2) return "";
  return std::string(std::next(begin, size / 2)->first.second);
}

std::optional<double> KpiProjection::LatestValueWithin(
    const config::KpiOptions& kpi, const std::string& subject, absl::Time from,
    absl::Time until) const {
  // A derived KPI has a value only where its base has data.
  const SubjectState* state = StateOf(kpi.id, subject);
  if (state == nullptr) return std::nullopt;
  InputStates inputs{};
  if (kpi.is_derived()) FindInputs(kpi, subject, state, &inputs);
  const auto& periods = state->periods;
  // The period containing `from` is the first that overlaps the window.
  const int64_t first = absl::ToUnixMicros(PeriodContaining(from, kpi).start);
  // Newest first; periods emptied by retractions do not count.
  for (auto found = periods.lower_bound(absl::ToUnixMicros(until));
       found != periods.begin();) {
    --found;
    if (found->first < first) break;
    if (const std::optional<double> value =
            kpi.is_derived()
                ? DerivedValue(
                      kpi, subject,
                      PeriodContaining(absl::FromUnixMicros(found->first), kpi),
                      inputs)
                : ValueOf(found->second)) {
      return value;
    }
  }
  return std::nullopt;
}

absl::Time KpiProjection::LastEventTime(const std::string& kpi,
                                        const std::string& subject) const {
  const config::KpiOptions* options = config_->FindKpi(kpi);
  return options == nullptr ? absl::InfinitePast()
                            : LastEventTimeOf(*options, subject);
}

absl::Time KpiProjection::LastEventTimeOf(const config::KpiOptions& kpi,
                                          absl::string_view subject,
                                          const SubjectState* base) const {
  if (!kpi.is_derived()) {
    if (base != nullptr) return base->last_event_time;
    auto it = subjects_.find(KeyView(kpi.id, subject));
    return it == subjects_.end() ? absl::InfinitePast()
                                 : it->second.last_event_time;
  }
  // A derived KPI's newest measurement is its inputs' newest; its base is
  // its first input's.
  absl::Time newest = absl::InfinitePast();
  const auto& inputs = inputs_[&kpi - config_->kpis.data()];
  for (size_t i = 0; i < inputs.size(); ++i) {
    newest = std::max(
        newest, LastEventTimeOf(*inputs[i], subject, i == 0 ? base : nullptr));
  }
  return newest;
}

const Aggregate* KpiProjection::Find(absl::string_view kpi,
                                     absl::string_view subject,
                                     absl::Time period_start) const {
  auto it = subjects_.find(KeyView(kpi, subject));
  if (it == subjects_.end()) return nullptr;
  auto found = it->second.periods.find(absl::ToUnixMicros(period_start));
  return found == it->second.periods.end() ? nullptr : &found->second;
}

}  // namespace okrd::projection
