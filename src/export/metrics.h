#ifndef OKRD_EXPORT_METRICS_H_
#define OKRD_EXPORT_METRICS_H_

// Renders one consistent snapshot of okrd's state as Prometheus text
// exposition format 0.0.4: the KPI projection and the daemon's own counters,
// all read under the caller's lock so every series reflects one log
// sequence.
//
// Thread-safety: the functions here are pure; callers provide consistency.

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "eventlog/event_log.h"
#include "export/text_format.h"
#include "projection/kpi_projection.h"
#include "projection/okr.h"
#include "projection/ownership.h"

namespace okrd::exporter {

// The daemon's state exported beside the projection.
struct DaemonState {
  eventlog::Stats log;
  std::map<eventlog::PartitionKey, int64_t> lag;
  // How long the last start-up rebuild (snapshot load + tail replay) took.
  double rebuild_seconds = 0;
  // Which business series this instance exports; by default all of them.
  projection::Ownership ownership;
  // Failed attempts to write a batch to the event log (a full disk).
  uint64_t write_errors = 0;
  // What the event log holds in memory.
  eventlog::EventLog::MemoryUse log_memory;
};

// What /readyz reports.
struct Readiness {
  bool log_open = false;
  // The consumer has joined its group and has been told what it owns.
  bool consumer_assigned = false;
  bool rebuild_done = false;
  // Every owned partition has caught up to where it stood when assigned.
  bool caught_up = false;
  // Owns no partition (more instances than partitions): ready, exporting
  // no business series.
  bool standby = false;
  // Why the last write to the event log failed, while it has not
  // succeeded since; ingest is paused meanwhile.
  std::string write_error = std::string();
  bool ready() const {
    return log_open && write_error.empty() && consumer_assigned &&
           rebuild_done && caught_up;
  }
};

// Gives the exporter a consistent view. Implementations must call `fn`
// while holding whatever lock keeps the projection and state from changing.
// Not const: a read may fold in what was logged while it held the lock.
class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  virtual void Read(const std::function<void(const projection::KpiProjection&,
                                             const DaemonState&)>& fn) = 0;
  virtual Readiness GetReadiness() const = 0;
};

inline constexpr char kContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

// How a subject appears in exported series and views: the id itself, or its
// keyed pseudonym when export.pseudonymize_subjects is configured.
std::string SubjectLabel(const config::Config& config,
                         const std::string& subject);

// What /metrics and the JSON API (export/view.h) both follow, so that they
// show the same:
// The partition a fired transition is counted by: that of its policy's KPI
// and subject (kNoPartition for an unknown policy or an imported subject).
uint32_t TransitionPartition(const projection::KpiProjection& projection,
                             const projection::FiredTransition& transition);
// The objectives with a key result below them that `mask` leaves to another
// instance: their progress here would be partial.
std::set<const config::ObjectiveOptions*> PartialObjectives(
    const projection::OkrState& okrs,
    const projection::KpiProjection& projection,
    const projection::Ownership::Mask& mask);

// Business series (okr_*) and okrd_projection_sequence: a pure function of
// the projection, equal for a live daemon that owns every partition and
// `okrctl replay` at the same log sequence.
std::string RenderBusinessMetrics(const projection::KpiProjection& projection);

// Everything /metrics serves: the business series `state.ownership` lets
// this instance export, and the daemon's own.
std::string RenderMetrics(const projection::KpiProjection& projection,
                          const DaemonState& state);
// The same, handed to `sink` in pieces of about kPieceBytes as it is
// rendered: what is held at once is the families kept for ordering (period
// starts; the OKR and PIP families, rendered on a second thread beside the
// KPI families) and what the sink keeps.
void RenderMetrics(const projection::KpiProjection& projection,
                   const DaemonState& state, TextSink* sink);

}  // namespace okrd::exporter

#endif  // OKRD_EXPORT_METRICS_H_
