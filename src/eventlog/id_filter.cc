#include "eventlog/id_filter.h"

#include <algorithm>

#include "absl/hash/hash.h"

namespace okrd::eventlog {
namespace {

// Odd multipliers, one per word of a block, that spread the hash's low 32
// bits into the bit each word sets (Parquet's split-block bloom filter).
constexpr uint32_t kSalt[8] = {0x47b6137bU, 0x44974d91U, 0x8824ad5bU,
                               0xa2b7289dU, 0x705495c7U, 0x2df1424bU,
                               0x9efc4947U, 0x5c6bfb31U};

}  // namespace

IdFilter::IdFilter(size_t capacity)
    : capacity_(capacity),
      block_count_(
          std::max<size_t>(1, (capacity * kBitsPerId + 8 * sizeof(Block) - 1) /
                                  (8 * sizeof(Block)))),
      // Value-initialized: every word 0.
      blocks_(new Block[block_count_]()) {}

uint64_t IdFilter::Hash(absl::string_view id) {
  // absl's string hash, mixed once more so that the block (high half) and
  // the bits (low half) come from independent-looking halves.
  uint64_t h = absl::Hash<absl::string_view>{}(id);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

void IdFilter::AddHash(uint64_t hash) {
  Block& block = blocks_[BlockOf(hash)];
  const auto low = static_cast<uint32_t>(hash);
  for (int i = 0; i < 8; ++i) {
    // A load and a store, not an atomic or: adds are one thread's.
    std::atomic<uint32_t>& word = block.words[i];
    word.store(word.load(std::memory_order_relaxed) |
                   uint32_t{1} << ((low * kSalt[i]) >> 27),
               std::memory_order_relaxed);
  }
  ids_.store(ids_.load(std::memory_order_relaxed) + 1,
             std::memory_order_relaxed);
}

void IdFilter::AddHashes(const std::vector<uint64_t>& hashes) {
  constexpr size_t kPrefetchAhead = 8;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (i + kPrefetchAhead < hashes.size())
      Prefetch(hashes[i + kPrefetchAhead]);
    AddHash(hashes[i]);
  }
}

bool IdFilter::MayContainHash(uint64_t hash) const {
  const Block& block = blocks_[BlockOf(hash)];
  const auto low = static_cast<uint32_t>(hash);
  for (int i = 0; i < 8; ++i) {
    const uint32_t bit = uint32_t{1} << ((low * kSalt[i]) >> 27);
    if ((block.words[i].load(std::memory_order_relaxed) & bit) == 0) {
      return false;
    }
  }
  return true;
}

}  // namespace okrd::eventlog
