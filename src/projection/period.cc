#include "projection/period.h"

#include "absl/time/civil_time.h"

namespace okrd::projection {

Period PeriodContaining(absl::Time t, config::PeriodKind kind,
                        const absl::TimeZone& zone, int week_start) {
  const absl::CivilDay day = absl::ToCivilDay(t, zone);
  absl::CivilDay start;
  absl::CivilDay end;
  switch (kind) {
    case config::PeriodKind::kDay:
      start = day;
      end = day + 1;
      break;
    case config::PeriodKind::kWeek: {
      // absl numbers weekdays from Monday = 0.
      const int weekday = static_cast<int>(absl::GetWeekday(day));
      const int offset = (weekday - (week_start - 1) + 7) % 7;
      start = day - offset;
      end = start + 7;
      break;
    }
    case config::PeriodKind::kMonth: {
      const absl::CivilMonth month(day);
      start = absl::CivilDay(month);
      end = absl::CivilDay(month + 1);
      break;
    }
    case config::PeriodKind::kQuarter: {
      const absl::CivilMonth month(day);
      const absl::CivilMonth first(month.year(),
                                   (month.month() - 1) / 3 * 3 + 1);
      start = absl::CivilDay(first);
      end = absl::CivilDay(first + 3);
      break;
    }
  }
  return Period{absl::FromCivil(start, zone), absl::FromCivil(end, zone)};
}

}  // namespace okrd::projection
