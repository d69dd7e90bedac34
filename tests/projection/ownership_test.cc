#include "projection/ownership.h"

#include <memory>
#include <string>

#include "core/time_util.h"
#include "gtest/gtest.h"
#include "projection/kpi_projection.h"

namespace okrd::projection {
namespace {

class OwnershipTest : public ::testing::Test {
 protected:
  OwnershipTest() {
    auto config = std::make_shared<config::Config>();
    config::KpiOptions kpi;
    kpi.id = "sales";
    kpi.aggregation = config::Aggregation::kSum;
    config->kpis.push_back(kpi);
    config_ = config;
    projection_ = std::make_unique<KpiProjection>(config_);
  }

  // A measurement consumed from `topic`/`partition` (imported when the
  // topic is "import:FILE").
  void Apply(const std::string& subject, const std::string& topic,
             int32_t partition, double value = 1) {
    okrd::v1::StoredEvent record;
    record.set_sequence(++sequence_);
    record.set_ingest_time_us(absl::ToUnixMicros(absl::FromUnixSeconds(1e9)));
    auto* e = record.mutable_event();
    e->set_event_id("e" + std::to_string(sequence_));
    e->set_kpi("sales");
    e->set_subject(subject);
    e->set_value(value);
    ToProto(absl::FromUnixSeconds(1e9), e->mutable_event_time());
    record.mutable_position()->set_topic(topic);
    record.mutable_position()->set_partition(partition);
    projection_->Apply(record);
  }

  std::shared_ptr<const config::Config> config_;
  std::unique_ptr<KpiProjection> projection_;
  uint64_t sequence_ = 0;
};

TEST_F(OwnershipTest, PairsKeepTheirFirstPartitionAndCountOthers) {
  Apply("team-a", "kpi-events", 3);
  Apply("team-b", "kpi-events", 5);
  Apply("team-c", "import:file.jsonl", 0);
  Apply("team-a", "kpi-events", 3);
  ASSERT_EQ(projection_->partitions().size(), 2u);
  EXPECT_EQ(
      projection_->partitions()[projection_->PartitionOf("sales", "team-a")],
      SourcePartition("kpi-events", 3));
  EXPECT_EQ(projection_->PartitionOf("sales", "team-c"), kNoPartition);
  EXPECT_EQ(projection_->PartitionOf("sales", "nobody"), kNoPartition);
  EXPECT_EQ(projection_->partition_conflicts(), 0u);
  EXPECT_TRUE(projection_->TakeNewConflicts().empty());

  // Producers that do not key by subject: counted per event, named once.
  Apply("team-a", "kpi-events", 1);
  Apply("team-a", "kpi-events", 2);
  EXPECT_EQ(projection_->partition_conflicts(), 2u);
  const auto conflicts = projection_->TakeNewConflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0],
            std::make_pair(std::string("sales"), std::string("team-a")));
  EXPECT_TRUE(projection_->TakeNewConflicts().empty());
  // The pair stays with its first partition.
  EXPECT_EQ(
      projection_->partitions()[projection_->PartitionOf("sales", "team-a")],
      SourcePartition("kpi-events", 3));
}

TEST_F(OwnershipTest, SnapshotKeepsPartitionsAndConflicts) {
  Apply("team-a", "kpi-events", 3);
  Apply("team-b", "kpi-events", 5);
  Apply("team-b", "kpi-events", 6);
  KpiProjection restored(config_);
  ASSERT_TRUE(restored.Restore(projection_->Snapshot()).ok());
  EXPECT_EQ(restored.partition_conflicts(), 1u);
  EXPECT_EQ(restored.partitions()[restored.PartitionOf("sales", "team-b")],
            SourcePartition("kpi-events", 5));
  EXPECT_EQ(restored.partitions()[restored.PartitionOf("sales", "team-a")],
            SourcePartition("kpi-events", 3));
  // Logged before the snapshot: not logged again.
  EXPECT_TRUE(restored.TakeNewConflicts().empty());
}

TEST_F(OwnershipTest, MaskExportsOwnedCaughtUpPartitionsOnly) {
  Apply("owned", "kpi-events", 0);
  Apply("catching-up", "kpi-events", 1);
  Apply("elsewhere", "kpi-events", 2);
  Apply("imported", "import:f", 0);
  const Ownership ownership({{{"kpi-events", 0}, true},
                             {{"kpi-events", 1}, false},
                             {{"kpi-events", 3}, true}},
                            /*sole=*/false);
  EXPECT_FALSE(ownership.all());
  EXPECT_FALSE(ownership.standby());
  EXPECT_FALSE(ownership.current());
  const Ownership::Mask mask = ownership.MaskFor(projection_->partitions());
  const KpiProjection& p = *projection_;
  EXPECT_TRUE(mask.ExportsPair(p, "sales", "owned"));
  EXPECT_FALSE(mask.ExportsPair(p, "sales", "catching-up"));
  EXPECT_FALSE(mask.ExportsPair(p, "sales", "elsewhere"));
  EXPECT_TRUE(mask.ExportsPair(p, "sales", "imported"));
  // No instance can tell where a pair without data would live: only a sole
  // owner reports it.
  EXPECT_FALSE(mask.ExportsPair(p, "sales", "no-data"));
  const Ownership sole({{{"kpi-events", 0}, true}}, /*sole=*/true);
  EXPECT_TRUE(sole.current());
  EXPECT_TRUE(sole.MaskFor(p.partitions()).ExportsPair(p, "sales", "no-data"));
}

TEST_F(OwnershipTest, StandbyAndEverything) {
  Apply("team-a", "kpi-events", 0);
  const Ownership standby({}, false);
  EXPECT_TRUE(standby.standby());
  const Ownership::Mask none = standby.MaskFor(projection_->partitions());
  EXPECT_FALSE(none.ExportsPair(*projection_, "sales", "team-a"));
  EXPECT_FALSE(none.Exports(kNoPartition));

  const Ownership all;
  EXPECT_TRUE(all.all());
  EXPECT_FALSE(all.standby());
  EXPECT_TRUE(all.current());
  const Ownership::Mask every = all.MaskFor(projection_->partitions());
  EXPECT_TRUE(every.ExportsPair(*projection_, "sales", "team-a"));
  EXPECT_TRUE(every.ExportsPair(*projection_, "sales", "no-data"));
}

}  // namespace
}  // namespace okrd::projection
