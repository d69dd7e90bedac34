#include "core/args.h"

#include "gtest/gtest.h"

namespace okrd {
namespace {

TEST(ArgsTest, ParsesValuesSwitchesAndPositionals) {
  Args args({"config", "topic"}, {"json"});
  ASSERT_TRUE(args.Parse({"check", "--config", "a.yaml", "--topic=t1",
                          "--topic", "t2", "--json"})
                  .ok());
  EXPECT_EQ(args.Get("config"), "a.yaml");
  EXPECT_EQ(args.All("topic"), (std::vector<std::string>{"t1", "t2"}));
  EXPECT_TRUE(args.Has("json"));
  EXPECT_EQ(args.positional(), (std::vector<std::string>{"check"}));
}

TEST(ArgsTest, NamesTheOffendingFlag) {
  Args args({"config"}, {"json"});
  EXPECT_EQ(args.Parse({"--nope"}).message(),
            "unknown flag --nope (see --help)");
  Args missing({"config"}, {});
  EXPECT_EQ(missing.Parse({"--config"}).message(), "--config needs a value");
  Args with_value({}, {"json"});
  EXPECT_EQ(with_value.Parse({"--json=1"}).message(), "--json takes no value");
}

TEST(ArgsTest, CheckedIntegers) {
  Args args({"count"}, {});
  ASSERT_TRUE(args.Parse({"--count", "12x"}).ok());
  long long out = 0;
  EXPECT_FALSE(args.GetInt("count", 0, 100, 5, &out).ok());
  Args absent({"count"}, {});
  ASSERT_TRUE(absent.Parse({}).ok());
  ASSERT_TRUE(absent.GetInt("count", 0, 100, 5, &out).ok());
  EXPECT_EQ(out, 5);
}

TEST(ArgsTest, KeyValuePairs) {
  Args args({"property"}, {});
  ASSERT_TRUE(args.Parse({"--property", "acks=all", "--property=a=b=c",
                          "--property", "acks=1"})
                  .ok());
  std::map<std::string, std::string> pairs;
  ASSERT_TRUE(args.GetPairs("property", &pairs).ok());
  EXPECT_EQ(pairs,
            (std::map<std::string, std::string>{{"acks", "1"}, {"a", "b=c"}}));
  Args bad({"property"}, {});
  ASSERT_TRUE(bad.Parse({"--property", "acks"}).ok());
  EXPECT_EQ(bad.GetPairs("property", &pairs).message(),
            "--property wants KEY=VALUE, got \"acks\"");
}

}  // namespace
}  // namespace okrd
