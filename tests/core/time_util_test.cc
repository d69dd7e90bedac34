#include "core/time_util.h"

#include "gtest/gtest.h"

namespace okrd {
namespace {

TEST(ParseHumanDurationTest, AcceptsEveryUnitAndSums) {
  EXPECT_EQ(*ParseHumanDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseHumanDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseHumanDuration("15m"), absl::Minutes(15));
  EXPECT_EQ(*ParseHumanDuration("48h"), absl::Hours(48));
  EXPECT_EQ(*ParseHumanDuration("7d"), absl::Hours(168));
  EXPECT_EQ(*ParseHumanDuration("1h30m"), absl::Minutes(90));
}

TEST(ParseHumanDurationTest, RejectsMissingOrUnknownUnits) {
  for (const char* bad : {"", "10", "h", "5 weeks", "3y", "-1s"}) {
    EXPECT_FALSE(ParseHumanDuration(bad).ok()) << bad;
  }
}

TEST(TimestampTest, RoundTripsThroughProto) {
  const absl::Time t = absl::FromUnixNanos(1795634360111666123);
  google::protobuf::Timestamp ts;
  ToProto(t, &ts);
  EXPECT_EQ(ts.seconds(), 1795634360);
  EXPECT_EQ(ts.nanos(), 111666123);
  EXPECT_EQ(FromProto(ts), t);
  EXPECT_EQ(FormatUtc(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace okrd
