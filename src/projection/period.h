#ifndef OKRD_PROJECTION_PERIOD_H_
#define OKRD_PROJECTION_PERIOD_H_

// Calendar periods of a KPI: day, week, month or quarter in the KPI's time
// zone, half-open [start, end). Pure functions of their arguments.

#include "absl/time/time.h"
#include "config/config.h"

namespace okrd::projection {

struct Period {
  absl::Time start;
  absl::Time end;  // exclusive

  bool Contains(absl::Time t) const { return t >= start && t < end; }
  friend bool operator==(const Period&, const Period&) = default;
};

// The period of `kind` containing `t`, in `zone`. Week periods begin on
// `week_start` (1 = Monday .. 7 = Sunday). Periods begin at local midnight,
// so across a DST change a day is 23 or 25 hours long.
Period PeriodContaining(absl::Time t, config::PeriodKind kind,
                        const absl::TimeZone& zone, int week_start = 1);

inline Period PeriodContaining(absl::Time t, const config::KpiOptions& kpi) {
  return PeriodContaining(t, kpi.period, kpi.zone, kpi.week_start);
}

// The period just before `p`.
inline Period PreviousPeriod(const Period& p, const config::KpiOptions& kpi) {
  return PeriodContaining(p.start - absl::Nanoseconds(1), kpi);
}

}  // namespace okrd::projection

#endif  // OKRD_PROJECTION_PERIOD_H_
