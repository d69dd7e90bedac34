#include "projection/ownership.h"

namespace okrd::projection {

bool Ownership::current() const {
  for (const auto& [partition, caught_up] : owned_) {
    if (!caught_up) return false;
  }
  return true;
}

Ownership::Mask Ownership::MaskFor(
    const std::vector<SourcePartition>& partitions) const {
  Mask mask;
  mask.all_ = all_;
  mask.sole_ = sole_owner();
  if (all_) return mask;
  mask.unpartitioned_ = false;
  mask.exported_.assign(partitions.size(), false);
  for (size_t i = 0; i < partitions.size(); ++i) {
    auto it = owned_.find(partitions[i]);
    mask.exported_[i] = it != owned_.end() && it->second;
  }
  for (const auto& [partition, caught_up] : owned_) {
    if (caught_up) mask.unpartitioned_ = true;
  }
  return mask;
}

bool Ownership::Mask::ExportsPair(const KpiProjection& projection,
                                  absl::string_view kpi,
                                  absl::string_view subject) const {
  if (all_) return true;
  if (!projection.Tracks(kpi, subject)) return sole_;
  return Exports(projection.PartitionOf(kpi, subject));
}

}  // namespace okrd::projection
