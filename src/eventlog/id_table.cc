#include "eventlog/id_table.h"

#include <algorithm>
#include <cstring>

namespace okrd::eventlog {

IdTable::IdTable(size_t expected) { map_.reserve(expected); }

std::optional<IdTable::Entry> IdTable::Find(absl::string_view id) const {
  auto it = map_.find(id);
  if (it == map_.end()) return std::nullopt;
  return Entry{.sequence = it->second};
}

std::optional<IdTable::Entry> IdTable::InsertOrFind(absl::string_view id,
                                                    const Entry& entry) {
  // One probe: the id is copied into the table's blocks only when new.
  bool inserted = false;
  auto it = map_.lazy_emplace(id, [&](const auto& construct) {
    construct(Store(id), entry.sequence);
    inserted = true;
  });
  if (inserted) return std::nullopt;
  return Entry{.sequence = it->second};
}

void IdTable::Erase(absl::string_view id) { map_.erase(id); }

std::vector<IdTable::Slot> IdTable::Sorted() const {
  std::vector<Slot> sorted;
  sorted.reserve(map_.size());
  for (const auto& [id, sequence] : map_) {
    sorted.push_back({.id = id, .sequence = sequence});
  }
  SortByIds(sorted, [](const Slot& slot) { return slot.id; });
  return sorted;
}

size_t IdTable::MemoryBytes() const {
  // A slot is its key, its value and one control byte.
  return map_.capacity() * (sizeof(absl::string_view) + sizeof(uint64_t) + 1) +
         blocks_.size() * kBlockBytes + long_id_bytes_;
}

absl::string_view IdTable::Store(absl::string_view id) {
  if (id.empty()) return absl::string_view();
  char* copy = nullptr;
  if (id.size() > kBlockBytes / 8) {
    // A rare long id gets a block of its own.
    copy = long_ids_.emplace_back(std::make_unique<char[]>(id.size())).get();
    long_id_bytes_ += id.size();
  } else {
    if (block_used_ + id.size() > kBlockBytes) {
      blocks_.push_back(std::make_unique<char[]>(kBlockBytes));
      block_used_ = 0;
    }
    copy = blocks_.back().get() + block_used_;
    block_used_ += id.size();
  }
  std::memcpy(copy, id.data(), id.size());
  return absl::string_view(copy, id.size());
}

}  // namespace okrd::eventlog
