#include "eventlog/id_table.h"

#include <string>

#include "gtest/gtest.h"

namespace okrd::eventlog {
namespace {

IdTable::Entry At(uint64_t sequence) {
  IdTable::Entry entry;
  entry.sequence = sequence;
  entry.hash[0] = static_cast<char>(sequence);
  return entry;
}

TEST(IdTableTest, KeepsItsOwnCopyOfEachId) {
  IdTable table(4);
  {
    std::string id = "event-1";
    EXPECT_TRUE(table.Insert(id, At(1)));
    id = "overwritten";  // the caller's buffer changes, the table's does not
  }
  const IdTable::Entry* found = table.Find("event-1");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->sequence, 1u);
  EXPECT_EQ(found->hash[0], 1);
  EXPECT_EQ(table.Find("overwritten"), nullptr);
}

TEST(IdTableTest, FirstInsertWinsAndEraseForgets) {
  IdTable table;
  EXPECT_TRUE(table.Insert("a", At(1)));
  EXPECT_FALSE(table.Insert("a", At(2)));
  EXPECT_EQ(table.Find("a")->sequence, 1u);
  table.Erase("a");
  EXPECT_EQ(table.Find("a"), nullptr);
  EXPECT_TRUE(table.Insert("a", At(3)));
  EXPECT_EQ(table.Find("a")->sequence, 3u);
  EXPECT_EQ(table.size(), 1u);
}

TEST(IdTableTest, SortsByIdBytesAndKeepsLongIds) {
  IdTable table;
  const std::string long_id(100000, 'z');  // beyond a block's share
  table.Insert("b", At(2));
  table.Insert(long_id, At(4));
  table.Insert("a", At(1));
  table.Insert(std::string("a\0b", 3), At(3));
  // Enough short ids to need several blocks.
  for (int i = 0; i < 20000; ++i) table.Insert("x" + std::to_string(i), At(9));
  const auto sorted = table.Sorted();
  ASSERT_EQ(sorted.size(), 20004u);
  EXPECT_EQ(sorted[0].first, "a");
  EXPECT_EQ(sorted[1].first, std::string("a\0b", 3));
  EXPECT_EQ(sorted[2].first, "b");
  EXPECT_EQ(sorted.back().first, long_id);
  EXPECT_EQ(sorted.back().second->sequence, 4u);
  for (size_t i = 1; i < sorted.size(); ++i) {
    EXPECT_LT(sorted[i - 1].first, sorted[i].first);
  }
  EXPECT_GE(table.MemoryBytes(), long_id.size() + 20000 * 5);
}

}  // namespace
}  // namespace okrd::eventlog
