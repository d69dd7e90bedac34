#include "core/pseudonym.h"

#include "gtest/gtest.h"

namespace okrd {
namespace {

TEST(PseudonymTest, MatchesHmacSha256ComputedIndependently) {
  // Python: hmac.new(b"a-very-secret-key-0123456789", b"ann",
  //                  hashlib.sha256).hexdigest()[:16]
  EXPECT_EQ(Pseudonym("a-very-secret-key-0123456789", "ann"),
            "p-73a46ffd9d71852a");
}

TEST(PseudonymTest, StablePerKeyAndDistinctAcrossKeysAndSubjects) {
  const std::string key = "0123456789abcdef";
  EXPECT_EQ(Pseudonym(key, "ann"), Pseudonym(key, "ann"));
  EXPECT_NE(Pseudonym(key, "ann"), Pseudonym(key, "bob"));
  EXPECT_NE(Pseudonym(key, "ann"), Pseudonym("fedcba9876543210", "ann"));
  EXPECT_EQ(Pseudonym(key, "ann").size(), 18u);
}

}  // namespace
}  // namespace okrd
