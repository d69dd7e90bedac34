#ifndef OKRD_PROJECTION_KPI_PROJECTION_H_
#define OKRD_PROJECTION_KPI_PROJECTION_H_

// KpiProjection folds accepted events, in log order, into per-KPI,
// per-subject, per-period aggregates. It is a pure, deterministic function of
// (config, events): the same log gives the same state whether folded live,
// after a restart, or by `okrctl replay`. No I/O.
//
// Time comes from the log only: the projection clock is the largest ingest or
// event time folded so far, and "current" and "previous" periods are read
// against it, never against the wall clock.
//
// Thread-safety: not thread-safe. The owner serialises Apply() and reads
// (okrd holds one mutex around both, so a scrape sees one log sequence).

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "core/source.h"
#include "okrd/v1/records.pb.h"
#include "okrd/v1/snapshot.pb.h"
#include "projection/period.h"
#include "projection/quantile_sketch.h"

namespace okrd::projection {

// The running aggregate of one KPI, subject and period. Holds just what its
// aggregation needs to also take values out again (corrections,
// retractions): sum and count always; for min and max the smallest or
// largest values, for latest the newest ones by (event time, sequence).
//
// Those are bounded by `kept` (given to Add): past it, the least extreme
// values are let go and only counted. Since every value let go is less
// extreme than every value held, the value stays exact until retractions
// take out every held one while some let go remain; then needs_refill()
// says so, and the owner rebuilds the aggregate from the log (Refill).
//
// Quantile aggregates (median, p90, ...) keep a QuantileSketch of every
// value instead, within its relative error and bounded in size.
class Aggregate {
 public:
  // `quantile` is read for config::Aggregation::kQuantile only.
  explicit Aggregate(config::Aggregation aggregation, double quantile = 0.5);

  // Folds in a value; `sequence` is its event's (for a correction, the
  // corrected event's).
  void Add(double value, absl::Time event_time, uint64_t sequence,
           size_t kept = SIZE_MAX);
  // Takes out a value added before with the same time and sequence.
  void Remove(double value, absl::Time event_time, uint64_t sequence);

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // The smallest sequence ever added: the log before it holds nothing of
  // this aggregate.
  uint64_t first_sequence() const { return first_sequence_; }
  bool needs_refill() const { return needs_refill_; }
  // Takes the values of `full`, the same aggregate rebuilt from the log with
  // every value held, keeping `kept` of them.
  void Refill(const Aggregate& full, size_t kept);

  void SaveTo(okrd::v1::PeriodSnapshot* out) const;
  void LoadFrom(const okrd::v1::PeriodSnapshot& in, size_t kept = SIZE_MAX);
  // The value okr_kpi_value reports; requires count() > 0.
  double Value() const;

 private:
  // Values counted but let go.
  uint64_t let_go() const { return count_ - held_; }
  bool HoldsValues() const {
    return aggregation_ == config::Aggregation::kMin ||
           aggregation_ == config::Aggregation::kMax ||
           aggregation_ == config::Aggregation::kLatest;
  }
  // Lets go of the least extreme values past `kept` distinct ones.
  void Trim(size_t kept);

  config::Aggregation aggregation_;
  bool needs_refill_ = false;
  uint32_t held_ = 0;  // values in values_ or by_time_
  uint64_t count_ = 0;
  double sum_ = 0;
  uint64_t first_sequence_ = UINT64_MAX;
  absl::btree_map<double, uint32_t> values_;                       // min, max
  absl::btree_map<std::pair<int64_t, uint64_t>, double> by_time_;  // latest
  struct Quantiles {
    double q;
    QuantileSketch sketch;
  };
  std::unique_ptr<Quantiles> quantiles_;  // quantile KPIs only
};

// How many extreme values a latest, min or max aggregate holds when its
// projection can read the log (KpiProjection::SetHistory).
inline constexpr size_t kKeptExtremes = 16;

struct PipSubjectState;  // pip.h
struct PipCheckpoint;    // pip.h
struct OkrState;         // okr.h

// A PIP transition recorded at a logged clock tick: what its record
// (KpiProjection::PipTransitionRecord) is built from. States are
// PipState's and statuses MilestoneStatus's values (pip.h).
struct FiredTransition {
  const std::string* subject;  // one string per subject, however many fire
  uint32_t policy;             // config order
  uint8_t from;
  uint8_t to;
  int64_t at_us;
  int64_t plan_start_us = INT64_MIN;    // none: no plan
  int64_t next_checkin_us = INT64_MAX;  // none
  std::vector<uint8_t> milestones;
};

// A Kafka (topic, partition) that events came from.
using SourcePartition = std::pair<std::string, int32_t>;

// Index of a SourcePartition in KpiProjection::partitions(), or
// kNoPartition for events without one (imported, not consumed).
inline constexpr uint32_t kNoPartition = UINT32_MAX;

// One exported KPI series: `period_label` is "current" or "previous".
struct KpiSeries {
  const config::KpiOptions* kpi;
  const std::string* subject;
  const char* period_label;
  Period period;
  double value;
  uint32_t partition;  // of the (KPI, subject)
};

// A (KPI, subject) pair as /metrics writes it: its series, where it has a
// value, and its last event time.
struct KpiPair {
  const config::KpiOptions* kpi;
  const std::string* subject;
  uint32_t partition;
  absl::Time last_event_time;
  // The current period, then the previous one, with the value in each.
  std::array<const char*, 2> period_labels = {"current", "previous"};
  std::array<Period, 2> periods;
  std::array<std::optional<double>, 2> values;
};

// Hash of what shapes the projection's state (KPI ids, aggregations,
// periods, zones, week starts, lateness; PIP policies): snapshots taken under
// another hash are not reused.
std::string ConfigHash(const config::Config& config);

class KpiProjection {
 public:
  explicit KpiProjection(std::shared_ptr<const config::Config> config);

  // Reads the log's records from `from` on, in order, until `fn` returns
  // false.
  using History = std::function<absl::Status(
      uint64_t from,
      const std::function<bool(const okrd::v1::StoredEvent&)>& fn)>;
  // Lets latest, min and max aggregates hold at most `kept` values each,
  // and rebuild one from `history` in the rare case retractions leave it
  // without its extreme (Aggregate). Lets go, too, of the periods no read
  // can reach any more (see `horizons_`). Without a history every value and
  // period is held. What every read answers is the same either way.
  void SetHistory(History history, size_t kept = kKeptExtremes);
  // Periods held over every (KPI, subject) pair.
  size_t period_count() const;
  // Aggregates rebuilt from the history so far.
  uint64_t refills() const { return refills_; }

  ~KpiProjection();
  KpiProjection(const KpiProjection&) = delete;
  KpiProjection& operator=(const KpiProjection&) = delete;

  // Folds one log record: an accepted event, or a clock tick that advances
  // the clock and records the PIP transitions fired by then. Events of KPIs
  // absent from the config are skipped (ingest validated them against an older
  // config); they still advance the sequence.
  void Apply(const okrd::v1::StoredEvent& record);

  // Advances the logged clock without an event.
  void AdvanceClock(absl::Time now);

  uint64_t sequence() const { return sequence_; }
  absl::Time clock() const { return clock_; }
  // Number of (KPI, subject) pairs with state, and whether one has.
  size_t subject_count() const { return subjects_.size(); }
  // A derived KPI's pair is tracked when its base KPI's is (BaseOf).
  bool Tracks(absl::string_view kpi, absl::string_view subject) const;

  // Calls `fn` for the current and previous period of every (KPI, subject)
  // that has a value there, ordered by KPI id, subject, then period label.
  // Derived KPIs (ratios, changes) are computed from their inputs' values
  // here, for the subjects of their base KPI.
  void ForEachSeries(const std::function<void(const KpiSeries&)>& fn) const;

  // Calls `fn(kpi, subject, last event time, partition)` for every
  // (KPI, subject).
  void ForEachSubject(
      const std::function<void(const config::KpiOptions&, const std::string&,
                               absl::Time, uint32_t)>& fn) const;

  // The walks above one KPI at a time, over a range of its subjects, so
  // that a reader can split them (between threads) and still write in
  // their order. KPIs in the walks' order:
  const std::vector<const config::KpiOptions*>& kpis_by_id() const {
    return by_id_;
  }
  // The subjects from `from` on, before `until` (none: to the last).
  struct SubjectRange {
    absl::string_view from;
    std::optional<absl::string_view> until;
  };
  // Both walks above in one, for `kpi`'s subjects in `range`, pair by pair.
  void ForEachKpiPair(const config::KpiOptions& kpi, const SubjectRange& range,
                      absl::FunctionRef<void(const KpiPair&)> fn) const;
  // The subject that splits `kpi`'s pairs (its base's, for a derived KPI)
  // into halves: the first of the second half; empty with fewer than two.
  std::string MiddleSubject(const config::KpiOptions& kpi) const;

  // Every partition events came from, in order of first appearance; a
  // (KPI, subject) names one by its index.
  const std::vector<SourcePartition>& partitions() const { return partitions_; }
  // The partition of `kpi`/`subject`'s events (the first, when they came on
  // several); kNoPartition without data or position.
  uint32_t PartitionOf(absl::string_view kpi, absl::string_view subject) const;
  // Events of a (KPI, subject) that came on another partition than its
  // first: producers that do not key by subject. Such a pair's series are
  // exported by the owner of its first partition here, and by whoever folds
  // the other partition there: split, hence counted.
  uint64_t partition_conflicts() const { return partition_conflicts_; }
  // The (KPI, subject) pairs that saw a second partition since the last
  // call, each once per projection, for the owner to log.
  std::vector<std::pair<std::string, std::string>> TakeNewConflicts();

  // The value of the newest period of `kpi`/`subject` that overlaps
  // [from, until) and starts before `until`; none without data there.
  std::optional<double> LatestValueWithin(const config::KpiOptions& kpi,
                                          const std::string& subject,
                                          absl::Time from,
                                          absl::Time until) const;

  // Calls `fn(subject, first, from)` for every subject with data that PIP
  // policy `policy` (config order) watches, in subject order: its machine
  // starts with the period starting at `first` (its base KPI's first with
  // data), or resumes from `from` when that is not nullptr.
  void ForEachPipSubject(
      size_t policy, const std::function<void(const std::string&, absl::Time,
                                              const PipCheckpoint*)>& fn) const;
  // Times PIP machines' checkpoints were judged again from periods read
  // back from the log (a measurement or amendment for a period they had
  // judged).
  uint64_t pip_rejudged() const { return pip_rejudged_; }

  // Event time of the newest event of `kpi`/`subject`; InfinitePast if none.
  absl::Time LastEventTime(const std::string& kpi,
                           const std::string& subject) const;

  const config::Config& config() const { return *config_; }

  // PIP transitions fired so far, oldest first (subjects as logged, not
  // pseudonymized). Each logged clock tick runs the PIP machines over the
  // closed periods and records the transitions not recorded before. A
  // recorded transition is a fact: an event arriving later for a period
  // already judged never takes it back, so okr_pip_transitions_total only
  // grows and the outbound topic never sees a transition withdrawn.
  const std::vector<FiredTransition>& pip_transitions() const {
    return pip_fired_;
  }
  // The record of `t` as the outbound topic and the API show it: its id
  // (policy/subject/time/state), states, time, and the plan it leaves.
  okrd::v1::PipTransition PipTransitionRecord(const FiredTransition& t) const;
  // Its id alone (PipTransitionId).
  std::string PipTransitionIdOf(const FiredTransition& t) const;
  // Every transition's record, oldest first.
  std::vector<okrd::v1::PipTransition> PipTransitionRecords() const;

  // Calls `fn` for the state of every (PIP policy, subject) at the clock,
  // in EvaluatePips' order and equal to its answer. The states are kept:
  // only those of subjects with new measurements are judged again, and all
  // of them once the clock passes a period close or a plan's deadline, so
  // a scrape renders what is there instead of running every machine.
  void ForEachPipState(
      const std::function<void(const PipSubjectState&)>& fn) const;
  // Those of PIP policy `policy` (config order) over a range of subjects,
  // after Settle(): in the order ForEachPipState calls them.
  void ForEachPipStateOf(
      size_t policy, const SubjectRange& range,
      absl::FunctionRef<void(const PipSubjectState&)> fn) const;
  // The subject that splits policy `policy`'s states into halves, after
  // Settle(); empty with fewer than two.
  std::string MiddlePipSubject(size_t policy) const;

  // Objectives and key results at the clock, equal to EvaluateOkrs' answer
  // (okr.h). Kept until the projection next changes (a record folded, the
  // clock moved, a snapshot restored), so /metrics, the status page and the
  // API between two changes read one evaluation. Valid until then.
  const OkrState& okrs() const;

  // Brings up to date what PIP reads would first: the periods read back
  // from the log for machines that must judge every period again, and the
  // kept PIP states. Reads do it themselves; a caller reading from two
  // threads at once calls it before, so that neither changes what the
  // other reads.
  void Settle() const;

  // The state as a snapshot, stamped with ConfigHash(config()).
  okrd::v1::ProjectionSnapshot Snapshot() const;
  // Replaces the state with `snapshot`; fails when it was taken under a
  // config whose KPI definitions differ.
  absl::Status Restore(const okrd::v1::ProjectionSnapshot& snapshot);

  // The value of `kpi` (measured or derived) for `subject` in `period`;
  // none without one. A ratio has none while its denominator is 0 or
  // missing, a change none while its reference period has no value (or 0,
  // for a relative change): never NaN or infinity.
  std::optional<double> ValueIn(const config::KpiOptions& kpi,
                                absl::string_view subject,
                                const Period& period) const;

  // A period of `kpi`/`subject` as a PIP machine judges it: its value, and
  // the number of events it rests on. A derived KPI's count is the smallest
  // of its measured inputs' counts in the periods its value is computed
  // from; without a value the count is 0.
  struct Sample {
    uint64_t count = 0;
    double value = 0;
  };
  Sample SampleIn(const config::KpiOptions& kpi, absl::string_view subject,
                  const Period& period) const;

  // The measured KPI whose subjects and partitions a derived KPI has: its
  // first input (a ratio's numerator, a change's KPI), followed through
  // derived inputs. A measured KPI is its own base.
  const config::KpiOptions& BaseOf(const config::KpiOptions& kpi) const;

  // The aggregate of `kpi`/`subject` in the period starting at
  // `period_start`; nullptr when there is none.
  const Aggregate* Find(absl::string_view kpi, absl::string_view subject,
                        absl::Time period_start) const;

 private:
  struct SubjectState {
    const config::KpiOptions* kpi = nullptr;
    uint32_t partition = kNoPartition;
    bool partition_conflict = false;
    // Every period is held: a key result reads the pair, and reads periods
    // of any age. Pairs a PIP policy watches have `watched`; the others
    // read only the periods from their KPI's horizon on.
    bool keeps_every_period = true;
    absl::Time last_event_time = absl::InfinitePast();
    // Keyed by period start in Unix microseconds.
    absl::btree_map<int64_t, Aggregate> periods;
    struct Watched;
    std::unique_ptr<Watched> watched;  // pairs a PIP policy watches
  };

  // (KPI id, subject) keys are looked up by string views: folding an event
  // copies its ids only when it opens a new pair.
  using Key = std::pair<std::string, std::string>;
  using KeyView = std::pair<absl::string_view, absl::string_view>;
  static KeyView ViewOf(const Key& k) { return KeyView(k.first, k.second); }
  static const KeyView& ViewOf(const KeyView& k) { return k; }
  struct KeyHash {
    using is_transparent = void;
    template <typename K>
    size_t operator()(const K& k) const {
      return absl::Hash<KeyView>{}(ViewOf(k));
    }
  };
  struct KeyEq {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return ViewOf(a) == ViewOf(b);
    }
  };

  // Finds or adds the state of `kpi`/`subject`.
  SubjectState& StateOf(absl::string_view kpi, absl::string_view subject) {
    return NodeOf(kpi, subject).second;
  }
  using Node =
      std::pair<const std::pair<std::string, std::string>, SubjectState>;
  Node& NodeOf(absl::string_view kpi, absl::string_view subject);

  // The states of a derived KPI's measured inputs for one subject, by input
  // (nullptr for a derived input, or one without data).
  using InputStates = std::array<const SubjectState*, 2>;
  // Finds them; `base`, when given, is the subject's state of the base KPI.
  void FindInputs(const config::KpiOptions& kpi, absl::string_view subject,
                  const SubjectState* base, InputStates* states) const;
  // The period of a change KPI's input that `period` is compared with.
  static Period ReferenceOf(const config::KpiOptions& kpi,
                            const Period& period);
  // The count of SampleIn for a derived `kpi` with a value in `period`.
  uint64_t CountIn(const config::KpiOptions& kpi, absl::string_view subject,
                   const Period& period) const;
  // Marks, in `marks` (per KPI, config order), the measured KPIs whose
  // events move `kpi`: itself, or a derived KPI's inputs, followed through.
  void MarkMeasuredInputs(const config::KpiOptions& kpi,
                          std::vector<bool>* marks) const;
  // The value of derived `kpi` in `period` from its inputs' `states`.
  std::optional<double> DerivedValue(const config::KpiOptions& kpi,
                                     absl::string_view subject,
                                     const Period& period,
                                     const InputStates& states) const;
  // LastEventTime by the KPI's options; `base`, when given, is the state
  // of BaseOf(kpi) for `subject`, which then needs no lookup.
  absl::Time LastEventTimeOf(const config::KpiOptions& kpi,
                             absl::string_view subject,
                             const SubjectState* base = nullptr) const;

  // The value of `aggregate`; none when no value is left there (every one
  // retracted, or one the log could not refill).
  static std::optional<double> ValueOf(const Aggregate& aggregate);
  // The value of `state` in `period`, likewise.
  static std::optional<double> ValueOf(const SubjectState& state,
                                       const Period& period);
  // The state of `kpi`/`subject`, or for a derived KPI its base's; nullptr
  // without one.
  const SubjectState* StateOf(absl::string_view kpi,
                              absl::string_view subject) const;
  // Calls `fn(key, state)` for every pair of KPI `kpi`, in subject order.
  template <typename F>
  void ForEachPairOf(const std::string& kpi, F fn) const {
    ForEachPairOf(kpi, SubjectRange{}, fn);
  }
  // Those with subjects in `range`.
  template <typename F>
  void ForEachPairOf(const std::string& kpi, const SubjectRange& range,
                     F fn) const {
    // Every key of `kpi` sorts before (kpi + '\0', ""), and every other
    // key after it: the bounds are found once, not a string compared per
    // pair.
    const std::string after = kpi + '\0';
    const auto end = range.until
                         ? ordered_.lower_bound(KeyView(kpi, *range.until))
                         : ordered_.lower_bound(KeyView(after, ""));
    for (auto it = ordered_.lower_bound(KeyView(kpi, range.from)); it != end;
         ++it) {
      fn(it->second->first, it->second->second);
    }
  }

  // Whether a key result reads the pair of measured `kpi` and `subject`
  // (SubjectState::keeps_every_period).
  bool KeepsEveryPeriod(const config::KpiOptions& kpi,
                        absl::string_view subject) const;
  // Whether a PIP policy watches the pair of measured `kpi` and `subject`.
  bool PipWatchesPair(const config::KpiOptions& kpi,
                      absl::string_view subject) const;
  // Sets what `state` (of `kpi`/`subject`, just made) keeps.
  void InitPair(SubjectState& state, const config::KpiOptions& kpi,
                absl::string_view subject) const;
  // The seal points, PIP horizons and when they next move, at `at`
  // (`pip_sealed_at_`).
  void SetSealPoints(absl::Time at);
  // At a tick that moved the seal points: moves every watched subject's
  // checkpoints past the periods before them, then lets go of the watched
  // pairs' periods before the PIP horizons.
  void SealPipMachines();
  // Reads back from the log the periods let go of the subjects in
  // `pip_stale_`, and drops their checkpoints, so that their machines judge
  // every period again. Reads call it, through Settle().
  void RefillStalePipSubjects();
  // The horizon of measured `kpi` at the clock (`horizons_`).
  int64_t HorizonOf(const config::KpiOptions& kpi);
  // Sets `horizons` (per KPI, config order) to the oldest period start the
  // exported series read at `at` (the current and previous periods, and
  // what derived KPIs read for them); returns when they next move.
  absl::Time ExportedHorizons(absl::Time at, std::vector<int64_t>* horizons);
  // Lowers the horizons of the measured KPIs that `kpi`'s value in
  // `period` is computed from.
  void NoteRead(const config::KpiOptions& kpi, const Period& period,
                std::vector<int64_t>* horizons);
  // Lets go of `state`'s periods before its KPI's horizon, unless it keeps
  // every period.
  void LetGoOfOldPeriods(SubjectState& state);

  // The period of `kpi` containing `t`.
  Period PeriodOf(const config::KpiOptions& kpi, absl::Time t);
  // The aggregate of `state` for `period`.
  static Aggregate& AggregateOf(SubjectState& state, const Period& period);
  // Folds `record` (of `aggregate`'s KPI and subject) into `aggregate`
  // when it falls in `period`.
  static void FoldInto(Aggregate& aggregate, const Period& period,
                       const okrd::v1::StoredEvent& record, size_t kept);
  // Rebuilds `aggregate` of `kpi`/`subject` and `period` from the history.
  void Refill(const config::KpiOptions& kpi, absl::string_view subject,
              const Period& period, Aggregate& aggregate);

  void RecordPipTransitions();
  // Brings the kept PIP states up to the clock and the data.
  void UpdatePipStates() const;
  // Reads back the periods of subjects whose machines must judge every
  // period again (pip_stale_).
  void RefillIfStale() const;

  // The index of `topic`/`partition` in partitions_, added when new.
  uint32_t PartitionIndex(const std::string& topic, int32_t partition);
  // Notes that `state` (of `kpi`/`subject`) got an event from `position`.
  void NotePartition(SubjectState& state, absl::string_view kpi,
                     absl::string_view subject,
                     const okrd::v1::SourcePosition& position);

  std::shared_ptr<const config::Config> config_;
  // Per KPI (config order), a derived KPI's inputs; and every KPI in id
  // order, as series are exported.
  std::vector<std::vector<const config::KpiOptions*>> inputs_;
  std::vector<const config::KpiOptions*> by_id_;
  History history_;
  size_t kept_ = SIZE_MAX;
  uint64_t refills_ = 0;
  std::vector<FiredTransition> pip_fired_;
  // What identifies a transition (its id's parts), for firing each once.
  struct FiredKey {
    const std::string* subject;
    uint32_t policy;
    uint8_t to;
    int64_t at_us;
    friend bool operator==(const FiredKey&, const FiredKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const FiredKey& k) {
      return H::combine(std::move(h), k.subject, k.policy, k.to, k.at_us);
    }
  };
  absl::flat_hash_set<FiredKey> pip_fired_keys_;
  absl::node_hash_set<std::string> pip_fired_subjects_;
  // Records `fired` unless fired before.
  void RecordFired(FiredTransition fired);
  // Ticks come every few seconds; the machines' answer changes only with a
  // measurement of a watched KPI (`pip_dirty_`) or when the clock reaches
  // `pip_wakeup_` (a period close or a plan deadline). Other ticks skip it.
  std::vector<bool> pip_watched_;  // per KPI, config order
  // Per policy (config order): the KPI it watches (nullptr when unknown),
  // that KPI's base (BaseOf), and per KPI the measured KPIs whose events
  // move it.
  struct PipPolicyKpis {
    const config::KpiOptions* kpi = nullptr;
    const config::KpiOptions* base = nullptr;
    std::vector<bool> inputs;
  };
  std::vector<PipPolicyKpis> pip_policies_;
  bool pip_dirty_ = true;
  absl::Time pip_wakeup_ = absl::InfinitePast();
  // Bumped by every change; okrs() evaluates again when it moved.
  uint64_t changes_ = 0;
  mutable uint64_t okrs_at_ = UINT64_MAX;
  mutable std::unique_ptr<OkrState> okrs_;
  // The kept PIP states (ForEachPipState); changed by reads, which the
  // owner serialises with Apply() anyway.
  struct PipStates;
  mutable std::unique_ptr<PipStates> pip_states_;
  // The state of every (KPI id, subject), found by hash. Nodes never move,
  // so `ordered_` holds views of their keys and pointers to their states.
  absl::node_hash_map<Key, SubjectState, KeyHash, KeyEq> subjects_;
  // The same pairs in (KPI id, subject) order, for rendering and snapshots.
  absl::btree_map<KeyView, Node*> ordered_;
  // Per KPI (config order; measured ones only), the start in Unix
  // microseconds of the oldest period any read of the series can still reach
  // at the clock or later: the previous period's, or for an input of a
  // change KPI, its reference's. Horizons only move forward with the clock,
  // so a pair that does not keep every period lets go of the periods before
  // its horizon, and an event for one of them changes nothing read. With a
  // history only; recomputed when the clock reaches `horizons_until_`.
  std::vector<int64_t> horizons_;
  absl::Time horizons_until_ = absl::InfinitePast();
  // Per KPI (config order), the subjects whose pairs a key result reads.
  std::vector<absl::flat_hash_set<std::string>> key_result_subjects_;
  // PIP machines resume from checkpoints instead of judging every period
  // again (with a history only). At the last tick that moved them
  // (`pip_sealed_at_`), each policy's seal point was the start of the
  // period before the open one (the one containing the clock less the
  // closing delay); checkpoints were moved up to it, and watched pairs let
  // go of their periods before the PIP horizon: what the machines from the
  // seal point on and the exported series read. A measurement or
  // amendment for a period before a seal point (`pip_sealed_before_`, per
  // measured KPI) makes its subject stale: its periods are read back from
  // the log and its machines judge every period again.
  absl::Time pip_sealed_at_ = absl::InfinitePast();
  absl::Time pip_seal_until_ = absl::InfinitePast();
  std::vector<absl::Time> pip_seal_points_;  // per policy
  std::vector<int64_t> pip_sealed_before_;   // per KPI
  std::vector<int64_t> pip_horizons_;        // per KPI
  absl::flat_hash_set<std::string> pip_stale_;
  uint64_t pip_rejudged_ = 0;
  // Per KPI (config order), the period last looked up: most events of a
  // KPI fall in the same period, and the calendar arithmetic is not free.
  std::vector<Period> period_cache_;
  uint64_t sequence_ = 0;
  absl::Time clock_ = absl::InfinitePast();
  std::vector<SourcePartition> partitions_;
  absl::flat_hash_map<SourcePartition, uint32_t> partition_index_;
  uint64_t partition_conflicts_ = 0;
  std::vector<std::pair<std::string, std::string>> new_conflicts_;
};

}  // namespace okrd::projection

#endif  // OKRD_PROJECTION_KPI_PROJECTION_H_
