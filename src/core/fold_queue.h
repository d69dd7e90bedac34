#ifndef OKRD_CORE_FOLD_QUEUE_H_
#define OKRD_CORE_FOLD_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace okrd {

// Lets a writer fold batches into state that readers hold for a long time
// (a scrape renders every series under a reader lock) without waiting for
// them. The writer pushes each batch here and folds the queue when the state
// is free; a batch that comes while a read holds the state waits here, and
// the read folds the queue when it ends, before the next read may begin.
// So the writer never waits for a read, every read sees the state after
// whole folds only, and no batch waits for longer than the read it came
// during (back-to-back reads included).
//
// With `mu` the mutex guarding the state:
//   writer: queue.Push(batch);
//           if (queue.LockToFold(mu)) { fold queue.TakeAll(); mu.Unlock(); }
//   reader: queue.Read(mu, read, fold), `fold` folding queue.TakeAll().
template <typename Batch>
class FoldQueue {
 public:
  void Push(Batch batch) {
    {
      absl::MutexLock lock(&mu_);
      batches_.push_back(std::move(batch));
    }
    size_.fetch_add(1);
  }

  // Returns true holding `state_mu` exclusively when batches wait and
  // should be folded now. Returns false, holding nothing, when none wait or
  // a read is under way: that read folds them when it ends. A writer that
  // pushed raises size_ before it looks at reading_; a read lowers
  // reading_ before it looks at size_; both orders are sequentially
  // consistent, so at least one of the two sees the other's change.
  bool LockToFold(absl::Mutex& state_mu)
      ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, state_mu) {
    if (size_.load() == 0) return false;
    if (state_mu.TryLock()) return true;
    if (reading_.load()) return false;
    // Held briefly by someone else (a reload's switch, a shared look).
    state_mu.Lock();
    return true;
  }

  // The waiting batches, oldest first; call with the state's lock held.
  std::deque<Batch> TakeAll() {
    std::deque<Batch> out;
    absl::MutexLock lock(&mu_);
    out.swap(batches_);
    size_.fetch_sub(out.size());
    return out;
  }

  // Calls `read()` holding `state_mu` shared, then `fold()` holding it
  // exclusively if batches came meanwhile. Reads take turns: the next one
  // begins after this one's fold, so a stream of reads cannot keep batches
  // waiting, and `read` need not be safe beside itself.
  template <typename ReadFn, typename FoldFn>
  void Read(absl::Mutex& state_mu, ReadFn read, FoldFn fold) {
    absl::MutexLock turn(&turn_mu_);
    reading_.store(true);
    {
      absl::ReaderMutexLock lock(&state_mu);
      read();
    }
    reading_.store(false);
    if (LockToFold(state_mu)) {
      fold();
      state_mu.Unlock();
    }
  }

  size_t size() const { return size_.load(); }

 private:
  absl::Mutex mu_;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> size_{0};
  absl::Mutex turn_mu_;
  std::atomic<bool> reading_{false};
};

}  // namespace okrd

#endif  // OKRD_CORE_FOLD_QUEUE_H_
