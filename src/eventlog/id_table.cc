#include "eventlog/id_table.h"

#include <algorithm>
#include <cstring>

namespace okrd::eventlog {

IdTable::IdTable(size_t expected) { map_.reserve(expected); }

const IdTable::Entry* IdTable::Find(absl::string_view id) const {
  auto it = map_.find(id);
  return it == map_.end() ? nullptr : &it->second;
}

bool IdTable::Insert(absl::string_view id, const Entry& entry) {
  // One probe: the id is copied into the table's blocks only when new.
  bool inserted = false;
  map_.lazy_emplace(id, [&](const auto& construct) {
    construct(Store(id), entry);
    inserted = true;
  });
  return inserted;
}

void IdTable::Erase(absl::string_view id) { map_.erase(id); }

std::vector<std::pair<absl::string_view, const IdTable::Entry*>>
IdTable::Sorted() const {
  std::vector<std::pair<absl::string_view, const Entry*>> sorted;
  sorted.reserve(map_.size());
  for (const auto& [id, entry] : map_) sorted.emplace_back(id, &entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return sorted;
}

size_t IdTable::MemoryBytes() const {
  // A slot is its key, its value and one control byte.
  return map_.capacity() * (sizeof(absl::string_view) + sizeof(Entry) + 1) +
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
