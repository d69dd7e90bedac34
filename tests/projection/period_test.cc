#include "projection/period.h"

#include "gtest/gtest.h"

namespace okrd::projection {
namespace {

using config::PeriodKind;

absl::TimeZone Zone(const char* name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name;
  return zone;
}

absl::Time At(const char* rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

TEST(PeriodTest, MonthIsHalfOpenAtMonthEnd) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const Period jan =
      PeriodContaining(At("2026-01-31T23:59:59.999Z"), PeriodKind::kMonth, utc);
  EXPECT_EQ(jan.start, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(jan.end, At("2026-02-01T00:00:00Z"));
  // The end instant belongs to the next period.
  EXPECT_EQ(PeriodContaining(jan.end, PeriodKind::kMonth, utc).start, jan.end);
}

TEST(PeriodTest, LeapDay) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const Period feb =
      PeriodContaining(At("2028-02-29T12:00:00Z"), PeriodKind::kMonth, utc);
  EXPECT_EQ(feb.end - feb.start, absl::Hours(24 * 29));
  const Period day =
      PeriodContaining(At("2028-02-29T12:00:00Z"), PeriodKind::kDay, utc);
  EXPECT_EQ(day.start, At("2028-02-29T00:00:00Z"));
  EXPECT_EQ(day.end, At("2028-03-01T00:00:00Z"));
}

TEST(PeriodTest, DaysAcrossDstChangeInBerlin) {
  const absl::TimeZone berlin = Zone("Europe/Berlin");
  // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; the day has 23 hours.
  const Period spring = PeriodContaining(At("2026-03-29T12:00:00+02:00"),
                                         PeriodKind::kDay, berlin);
  EXPECT_EQ(spring.start, At("2026-03-29T00:00:00+01:00"));
  EXPECT_EQ(spring.end - spring.start, absl::Hours(23));
  // 2026-10-25: back from 03:00 CEST to 02:00 CET; 25 hours.
  const Period autumn = PeriodContaining(At("2026-10-25T12:00:00+01:00"),
                                         PeriodKind::kDay, berlin);
  EXPECT_EQ(autumn.end - autumn.start, absl::Hours(25));
  // A month in local time starts at local midnight, not UTC midnight.
  const Period april =
      PeriodContaining(At("2026-03-31T22:30:00Z"), PeriodKind::kMonth, berlin);
  EXPECT_EQ(april.start, At("2026-04-01T00:00:00+02:00"));
}

TEST(PeriodTest, WeekStartsOnConfiguredDay) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  // 2026-11-25 is a Wednesday.
  const absl::Time wed = At("2026-11-25T10:00:00Z");
  const Period iso = PeriodContaining(wed, PeriodKind::kWeek, utc, 1);
  EXPECT_EQ(iso.start, At("2026-11-23T00:00:00Z"));
  EXPECT_EQ(iso.end, At("2026-11-30T00:00:00Z"));
  const Period sunday = PeriodContaining(wed, PeriodKind::kWeek, utc, 7);
  EXPECT_EQ(sunday.start, At("2026-11-22T00:00:00Z"));
  // Monday 00:00 starts a new ISO week.
  EXPECT_EQ(PeriodContaining(At("2026-11-30T00:00:00Z"), PeriodKind::kWeek, utc)
                .start,
            At("2026-11-30T00:00:00Z"));
  // Weeks span year ends.
  const Period new_year =
      PeriodContaining(At("2027-01-01T00:00:00Z"), PeriodKind::kWeek, utc);
  EXPECT_EQ(new_year.start, At("2026-12-28T00:00:00Z"));
}

TEST(PeriodTest, Quarters) {
  const absl::TimeZone ny = Zone("America/New_York");
  const Period q4 =
      PeriodContaining(At("2026-11-25T10:00:00Z"), PeriodKind::kQuarter, ny);
  EXPECT_EQ(q4.start, At("2026-10-01T00:00:00-04:00"));
  EXPECT_EQ(q4.end, At("2027-01-01T00:00:00-05:00"));
  // 2027-01-01T03:00Z is still 2026-12-31 in New York.
  EXPECT_EQ(
      PeriodContaining(At("2027-01-01T03:00:00Z"), PeriodKind::kQuarter, ny),
      q4);
}

TEST(PeriodTest, PreviousPeriod) {
  config::KpiOptions kpi;
  kpi.period = PeriodKind::kMonth;
  const Period march = PeriodContaining(At("2028-03-10T00:00:00Z"), kpi);
  const Period feb = PreviousPeriod(march, kpi);
  EXPECT_EQ(feb.start, At("2028-02-01T00:00:00Z"));
  EXPECT_EQ(feb.end, march.start);
}

}  // namespace
}  // namespace okrd::projection
