#ifndef OKRD_EVENTLOG_ID_FILTER_H_
#define OKRD_EVENTLOG_ID_FILTER_H_

// IdFilter answers "might the id index's runs hold this id?" for every run
// at once, in one probe of memory. Without it each lookup of a new id went
// through RocksDB's MultiGet, which probes the bloom filter of each run
// whose key range holds the id: about a fifth of the consume and append
// threads at 1M events with five runs, and more as runs pile up.
//
// A split-block bloom filter: an id sets one bit in each of the 8 32-bit
// words of one 32-byte block, so a probe touches one cache line. It never
// answers "no" for an id added to it; it answers "maybe" for an id never
// added about 0.4% of the time at kBitsPerId bits per id (its capacity), and
// less while it holds fewer. Past its capacity it keeps working, with more
// false "maybe"s: the event log then adds another filter beside it.
//
// One thread at a time may add; any number may probe meanwhile: the bits
// are atomics. A reader sees the ids whose Add() happened before its probe
// (through a mutex or an atomic the two threads share).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/string_view.h"

namespace okrd::eventlog {

class IdFilter {
 public:
  static constexpr size_t kBitsPerId = 12;

  // Room for `capacity` ids at kBitsPerId bits each (at least one block).
  explicit IdFilter(size_t capacity);
  IdFilter(const IdFilter&) = delete;
  IdFilter& operator=(const IdFilter&) = delete;

  // What Add() and MayContain() probe for `id`.
  static uint64_t Hash(absl::string_view id);

  void Add(absl::string_view id) { AddHash(Hash(id)); }
  void AddHash(uint64_t hash);
  // AddHash() of each, fetching each block a few hashes ahead: ids in id
  // order reach the blocks at random.
  void AddHashes(const std::vector<uint64_t>& hashes);
  bool MayContain(absl::string_view id) const {
    return MayContainHash(Hash(id));
  }
  bool MayContainHash(uint64_t hash) const;
  // Starts loading the block MayContainHash(hash) reads.
  void Prefetch(uint64_t hash) const {
    __builtin_prefetch(&blocks_[BlockOf(hash)]);
  }

  size_t capacity() const { return capacity_; }
  // Ids added, counting an id added twice twice.
  size_t ids() const { return ids_.load(std::memory_order_relaxed); }
  size_t MemoryBytes() const { return block_count_ * sizeof(Block); }

 private:
  struct alignas(32) Block {
    std::atomic<uint32_t> words[8];
  };
  size_t BlockOf(uint64_t hash) const {
    return static_cast<size_t>(((hash >> 32) * block_count_) >> 32);
  }

  size_t capacity_;
  size_t block_count_;
  std::unique_ptr<Block[]> blocks_;
  std::atomic<size_t> ids_{0};
};

}  // namespace okrd::eventlog

#endif  // OKRD_EVENTLOG_ID_FILTER_H_
