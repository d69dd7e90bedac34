#include "eventlog/id_filter.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace okrd::eventlog {
namespace {

// The share of `probes` ids never added that `filter` answers "maybe" for.
double FalseMaybes(const IdFilter& filter, int probes) {
  int maybes = 0;
  for (int i = 0; i < probes; ++i) {
    maybes += filter.MayContain(absl::StrCat("never-added-", i)) ? 1 : 0;
  }
  return static_cast<double>(maybes) / probes;
}

TEST(IdFilterTest, NeverForgetsAnAddedIdAndRarelyClaimsAnother) {
  constexpr int kIds = 100000;
  IdFilter filter(kIds);
  EXPECT_FALSE(filter.MayContain("order-1"));
  for (int i = 0; i < kIds; ++i) filter.Add(absl::StrCat("order-", i));
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(filter.MayContain(absl::StrCat("order-", i))) << i;
  }
  EXPECT_EQ(filter.ids(), static_cast<size_t>(kIds));
  EXPECT_EQ(filter.capacity(), static_cast<size_t>(kIds));
  // kBitsPerId bits per id, in whole 32-byte blocks.
  EXPECT_GE(filter.MemoryBytes(), kIds * IdFilter::kBitsPerId / 8);
  EXPECT_LT(filter.MemoryBytes(), kIds * IdFilter::kBitsPerId / 8 + 32);
  // About 0.4% at capacity (12 bits per id).
  EXPECT_LT(FalseMaybes(filter, kIds), 0.008);
}

TEST(IdFilterTest, PastItsCapacityStillHoldsEveryIdWithMoreFalseMaybes) {
  IdFilter filter(1000);
  for (int i = 0; i < 4000; ++i) filter.Add(absl::StrCat("order-", i));
  for (int i = 0; i < 4000; ++i) {
    ASSERT_TRUE(filter.MayContain(absl::StrCat("order-", i))) << i;
  }
  EXPECT_GT(filter.ids(), filter.capacity());
  EXPECT_GT(FalseMaybes(filter, 20000), 0.008);
}

TEST(IdFilterTest, ATinyFilterHasOneBlock) {
  IdFilter filter(0);
  EXPECT_EQ(filter.MemoryBytes(), 32u);
  filter.Add("");
  EXPECT_TRUE(filter.MayContain(""));
}

// A reader probing while the writer adds sees every id added before it
// started (here: the first half, added before the reader's thread began).
TEST(IdFilterTest, ReadersSeeEarlierAddsWhileAnotherThreadAdds) {
  constexpr int kIds = 20000;
  IdFilter filter(2 * kIds);
  for (int i = 0; i < kIds; ++i) filter.Add(absl::StrCat("early-", i));
  int missing = 0;
  std::thread reader([&] {
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < kIds; ++i) {
        missing += filter.MayContain(absl::StrCat("early-", i)) ? 0 : 1;
      }
    }
  });
  for (int i = 0; i < kIds; ++i) filter.Add(absl::StrCat("late-", i));
  reader.join();
  EXPECT_EQ(missing, 0);
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(filter.MayContain(absl::StrCat("late-", i))) << i;
  }
}

}  // namespace
}  // namespace okrd::eventlog
