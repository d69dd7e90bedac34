#include "eventlog/id_table.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace okrd::eventlog {
namespace {

IdTable::Entry At(uint64_t sequence) { return {.sequence = sequence}; }

TEST(IdTableTest, KeepsItsOwnCopyOfEachId) {
  IdTable table(4);
  {
    std::string id = "event-1";
    EXPECT_EQ(table.InsertOrFind(id, At(1)), std::nullopt);
    id = "overwritten";  // the caller's buffer changes, the table's does not
  }
  const std::optional<IdTable::Entry> found = table.Find("event-1");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->sequence, 1u);
  EXPECT_EQ(table.Find("overwritten"), std::nullopt);
}

TEST(IdTableTest, FirstInsertWinsAndEraseForgets) {
  IdTable table;
  EXPECT_EQ(table.InsertOrFind("a", At(1)), std::nullopt);
  // Present: the first entry comes back, and stays.
  const std::optional<IdTable::Entry> present = table.InsertOrFind("a", At(2));
  ASSERT_TRUE(present.has_value());
  EXPECT_EQ(present->sequence, 1u);
  EXPECT_EQ(table.Find("a")->sequence, 1u);
  table.Erase("a");
  EXPECT_EQ(table.Find("a"), std::nullopt);
  EXPECT_EQ(table.InsertOrFind("a", At(3)), std::nullopt);
  EXPECT_EQ(table.Find("a")->sequence, 3u);
  EXPECT_EQ(table.size(), 1u);
  // The empty id is an id like any other.
  EXPECT_EQ(table.InsertOrFind("", At(4)), std::nullopt);
  EXPECT_EQ(table.Find("")->sequence, 4u);
  EXPECT_EQ(table.InsertOrFind("", At(5)), At(4));
}

TEST(IdTableTest, SortsByIdBytesAndKeepsLongIds) {
  IdTable table;
  const std::string long_id(100000, 'z');  // beyond a block's share
  table.InsertOrFind("b", At(2));
  table.InsertOrFind(long_id, At(4));
  table.InsertOrFind("a", At(1));
  table.InsertOrFind(std::string("a\0b", 3), At(3));
  // Enough short ids to need several blocks.
  for (int i = 0; i < 20000; ++i) {
    table.InsertOrFind("x" + std::to_string(i), At(9));
  }
  const auto sorted = table.Sorted();
  ASSERT_EQ(sorted.size(), 20004u);
  EXPECT_EQ(sorted[0].id, "a");
  EXPECT_EQ(sorted[1].id, std::string("a\0b", 3));
  EXPECT_EQ(sorted[2].id, "b");
  EXPECT_EQ(sorted.back().id, long_id);
  EXPECT_EQ(sorted.back().sequence, 4u);
  for (size_t i = 1; i < sorted.size(); ++i) {
    EXPECT_LT(sorted[i - 1].id, sorted[i].id);
  }
  EXPECT_GE(table.MemoryBytes(), long_id.size() + 20000 * 5);
}

// SortByIds must give std::sort's order for any ids: long shared prefixes,
// ids that end inside or before the 8 bytes it reads, NUL and high bytes,
// equal ids, an empty id.
TEST(SortByIdsTest, OrdersLikeComparingWholeIds) {
  std::mt19937 random(7);
  const std::vector<std::string> prefixes = {"", "order-", "order-2026-12-",
                                             std::string("a\0", 2)};
  const std::string alphabet = std::string("\0\x01az\x7f\x80\xff", 7);
  for (const std::string& prefix : prefixes) {
    for (int round = 0; round < 20; ++round) {
      std::vector<std::pair<std::string, int>> ids;
      const int n = 1 + static_cast<int>(random() % 300);
      for (int i = 0; i < n; ++i) {
        std::string id = prefix;
        const size_t length = random() % 14;
        for (size_t k = 0; k < length; ++k) {
          id.push_back(alphabet[random() % alphabet.size()]);
        }
        ids.emplace_back(id, i);
        if (random() % 8 == 0) ids.emplace_back(id, ++i);  // equal ids
      }
      if (prefix.empty() && round == 0) ids.emplace_back("", n + 1);
      std::vector<std::pair<std::string, int>> expected = ids;
      std::stable_sort(
          expected.begin(), expected.end(),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      SortByIds(ids,
                [](const auto& id) { return absl::string_view(id.first); });
      ASSERT_EQ(ids.size(), expected.size());
      for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_EQ(ids[i].first, expected[i].first)
            << "prefix " << prefix.size() << " round " << round << " at " << i;
      }
      // Every item is there once (equal ids may come in either order).
      std::vector<int> seen;
      for (const auto& [id, index] : ids) seen.push_back(index);
      std::vector<int> all;
      for (const auto& [id, index] : expected) all.push_back(index);
      std::sort(seen.begin(), seen.end());
      std::sort(all.begin(), all.end());
      EXPECT_EQ(seen, all);
    }
  }
}

}  // namespace
}  // namespace okrd::eventlog
