#ifndef OKRD_EVENTLOG_ID_TABLE_H_
#define OKRD_EVENTLOG_ID_TABLE_H_

// IdTable holds the event ids the log appended since its last sorted run of
// the id index was written, each with the sequence it went to. The log keeps
// the newest ids here, in memory, and writes them out as one sorted run once
// kRunIds have gathered (see event_log.h), so that an append inserts into a
// hash table instead of a RocksDB memtable.
//
// The ids' bytes are copied into the table's own blocks, so a table outlives
// the batches that filled it. Not thread-safe.

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace okrd::eventlog {

// Sorts `items` into the bytewise order of the ids `id_of(item)` views, as
// std::sort comparing the ids would, in a fraction of the time. Ids share
// long prefixes ("order-" and a counter, a tenant, a date), and comparing
// them whole was 42% of the id index's run writer and 6% of the consume
// thread (its lookups). So the bytes every id shares from the start are
// skipped, the next 8 are read once per id as a big-endian number, and the
// numbers are radix-sorted, a pass per byte that differs between them; only
// ids with equal numbers are then compared whole.
template <typename T, typename IdOf>
void SortByIds(std::vector<T>& items, IdOf id_of) {
  const size_t n = items.size();
  if (n < 2) return;
  const absl::string_view first = id_of(items[0]);
  size_t common = first.size();
  for (size_t i = 1; i < n && common > 0; ++i) {
    const absl::string_view id = id_of(items[i]).substr(0, common);
    common = static_cast<size_t>(
        std::mismatch(id.begin(), id.end(), first.begin()).first - id.begin());
  }
  // A number per id: its 8 bytes after the common prefix, zeros past its
  // end. A smaller number means a smaller id; equal ones say nothing.
  struct Keyed {
    uint64_t key;
    uint32_t index;
  };
  std::vector<Keyed> keyed(n);
  uint64_t all_and = ~uint64_t{0};
  uint64_t all_or = 0;
  for (size_t i = 0; i < n; ++i) {
    const absl::string_view rest = id_of(items[i]).substr(common);
    uint64_t key = 0;
    if (rest.size() >= sizeof(key)) {
      std::memcpy(&key, rest.data(), sizeof(key));
      if constexpr (std::endian::native == std::endian::little) {
        key = __builtin_bswap64(key);
      }
    } else {
      for (size_t k = 0; k < sizeof(key); ++k) {
        key = key << 8 | (k < rest.size() ? static_cast<uint8_t>(rest[k]) : 0);
      }
    }
    keyed[i] = {key, static_cast<uint32_t>(i)};
    all_and &= key;
    all_or |= key;
  }
  // Least significant byte first, each pass stable; a byte equal in every
  // number needs none.
  const uint64_t varying = all_and ^ all_or;
  std::vector<Keyed> scratch(n);
  for (int shift = 0; shift < 64; shift += 8) {
    if (((varying >> shift) & 0xff) == 0) continue;
    std::array<size_t, 257> start{};
    for (const Keyed& k : keyed) ++start[((k.key >> shift) & 0xff) + 1];
    for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
    for (const Keyed& k : keyed) scratch[start[(k.key >> shift) & 0xff]++] = k;
    keyed.swap(scratch);
  }
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && keyed[j].key == keyed[i].key) ++j;
    if (j - i > 1) {
      std::sort(keyed.begin() + static_cast<std::ptrdiff_t>(i),
                keyed.begin() + static_cast<std::ptrdiff_t>(j),
                [&](const Keyed& a, const Keyed& b) {
                  return id_of(items[a.index]) < id_of(items[b.index]);
                });
    }
    i = j;
  }
  std::vector<T> sorted;
  sorted.reserve(n);
  for (const Keyed& k : keyed) sorted.push_back(std::move(items[k.index]));
  items = std::move(sorted);
}

class IdTable {
 public:
  struct Entry {
    uint64_t sequence = 0;
    bool operator==(const Entry&) const = default;
  };
  // One id of Sorted(): a view into the table.
  struct Slot {
    absl::string_view id;
    uint64_t sequence = 0;
  };

  // Room for `expected` ids without rehashing.
  explicit IdTable(size_t expected = 0);
  IdTable(const IdTable&) = delete;
  IdTable& operator=(const IdTable&) = delete;

  // The entry of `id`, or nothing.
  std::optional<Entry> Find(absl::string_view id) const;
  // Adds `id` with `entry` and returns nothing; when `id` is already present,
  // changes nothing and returns its entry. One probe either way.
  std::optional<Entry> InsertOrFind(absl::string_view id, const Entry& entry);
  // Starts loading the memory that Find() or InsertOrFind() of `id` reads
  // first, so that probes issued a few ids ahead overlap their cache misses
  // (a table of id_run_ids ids is larger than the cache).
  void Prefetch(absl::string_view id) const { map_.prefetch(id); }
  // Removes `id` (its bytes stay until the table is freed).
  void Erase(absl::string_view id);

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  // The entries in id order, as a sorted run is written.
  std::vector<Slot> Sorted() const;
  // Bytes held: the hash table's slots and the ids' blocks.
  size_t MemoryBytes() const;

 private:
  // A copy of `id` in the table's blocks; views it.
  absl::string_view Store(absl::string_view id);

  static constexpr size_t kBlockBytes = 256 << 10;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_used_ = kBlockBytes;  // bytes used of blocks_.back()
  std::vector<std::unique_ptr<char[]>> long_ids_;  // one each
  size_t long_id_bytes_ = 0;
  // id -> sequence: a 24-byte slot.
  absl::flat_hash_map<absl::string_view, uint64_t> map_;
};

}  // namespace okrd::eventlog

#endif  // OKRD_EVENTLOG_ID_TABLE_H_
