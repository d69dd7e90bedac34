#ifndef OKRD_EVENTLOG_ID_TABLE_H_
#define OKRD_EVENTLOG_ID_TABLE_H_

// IdTable holds the event ids the log appended since its last sorted run of
// the id index was written: each id with the sequence it went to and the
// SHA-256 of its event. The log keeps the newest ids here, in memory, and
// writes them out as one sorted run once kRunIds have gathered (see
// event_log.h), so that an append inserts into a hash table instead of a
// RocksDB memtable.
//
// The ids' bytes are copied into the table's own blocks, so a table outlives
// the batches that filled it. Not thread-safe.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace okrd::eventlog {

// The SHA-256 of an event (see PayloadHash).
using Digest = std::array<char, 32>;

class IdTable {
 public:
  struct Entry {
    uint64_t sequence = 0;
    Digest hash{};
  };
  // One id of Sorted(): views into the table.
  struct Slot {
    absl::string_view id;
    uint64_t sequence = 0;
    absl::string_view hash;
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
  // Removes `id` (its bytes stay until the table is freed).
  void Erase(absl::string_view id);

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  // The entries in id order, as a sorted run is written.
  std::vector<Slot> Sorted() const;
  // Bytes held: the hash table's slots and the ids' blocks.
  size_t MemoryBytes() const;

 private:
  // A copy of `hash` then `id` in the table's blocks; views the id's copy,
  // whose hash is the kHashBytes before it.
  absl::string_view Store(absl::string_view id, const Digest& hash);
  static absl::string_view HashOf(absl::string_view stored_id);

  static constexpr size_t kHashBytes = sizeof(Digest);
  static constexpr size_t kBlockBytes = 256 << 10;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_used_ = kBlockBytes;  // bytes used of blocks_.back()
  std::vector<std::unique_ptr<char[]>> long_ids_;  // one each
  size_t long_id_bytes_ = 0;
  // id -> sequence. The slot is 24 bytes; the hash, read only when an id is
  // seen again, sits in the blocks next to the id, so the table's random
  // accesses touch less memory.
  absl::flat_hash_map<absl::string_view, uint64_t> map_;
};

}  // namespace okrd::eventlog

#endif  // OKRD_EVENTLOG_ID_TABLE_H_
