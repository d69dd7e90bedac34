#ifndef OKRD_PROJECTION_OWNERSHIP_H_
#define OKRD_PROJECTION_OWNERSHIP_H_

// Ownership says which of a projection's series an instance exports
// (DESIGN.md, Scale). Several okrd in one consumer group each fold what
// their local log holds, which after a rebalance includes partitions now
// owned by another instance. Only the series of partitions the group has
// assigned to this instance, and that it has caught up on, are exported, so
// every (KPI, subject) is exported by exactly one instance once the group
// has settled.
//
// The rules, for a series that belongs to a (KPI, subject):
//   - its partition owned and caught up: exported;
//   - its partition not owned, or owned but still catching up: not;
//   - no partition (events imported with `okrctl log import`): exported
//     while the instance exports any partition;
//   - a key result or PIP subject without any data: exported only by a
//     sole owner (an instance owning every partition of its topics), since
//     no instance can tell which partition its data would come on.
// A default Ownership exports everything: one okrd over its whole log, as
// `okrctl replay` folds it.
//
// Thread-safety: a value type; const methods may run concurrently.

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "projection/kpi_projection.h"

namespace okrd::projection {

class Ownership {
 public:
  // Exports every series.
  Ownership() = default;
  // `owned`: the partitions assigned to this instance, each mapped to
  // whether it has caught up. `sole`: they are every partition of every
  // subscribed topic.
  Ownership(std::map<SourcePartition, bool> owned, bool sole)
      : all_(false), sole_(sole), owned_(std::move(owned)) {}

  bool all() const { return all_; }
  // Owns every partition of its topics (or exports everything).
  bool sole_owner() const { return all_ || sole_; }
  // Owns no partition: exports no business series.
  bool standby() const { return !all_ && owned_.empty(); }
  // Every owned partition has caught up.
  bool current() const;
  const std::map<SourcePartition, bool>& owned() const { return owned_; }

  // Whether series of partition `index` are exported, for the partition
  // table of one projection (KpiProjection::partitions()).
  class Mask {
   public:
    bool Exports(uint32_t index) const {
      if (all_) return true;
      if (index == kNoPartition) return unpartitioned_;
      return index < exported_.size() && exported_[index];
    }
    // A series of `kpi`/`subject`, which may have no data at all.
    bool ExportsPair(const KpiProjection& projection, absl::string_view kpi,
                     absl::string_view subject) const;

   private:
    friend class Ownership;
    bool all_ = true;
    bool sole_ = true;
    bool unpartitioned_ = true;
    std::vector<bool> exported_;
  };
  Mask MaskFor(const std::vector<SourcePartition>& partitions) const;

 private:
  bool all_ = true;
  bool sole_ = false;
  std::map<SourcePartition, bool> owned_;
};

}  // namespace okrd::projection

#endif  // OKRD_PROJECTION_OWNERSHIP_H_
