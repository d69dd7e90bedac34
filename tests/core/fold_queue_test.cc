#include "core/fold_queue.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace okrd {
namespace {

// State guarded by `mu`, folded from batches of ints by the protocol in
// fold_queue.h.
struct Folded {
  absl::Mutex mu;
  std::vector<int> values ABSL_GUARDED_BY(mu);
  FoldQueue<std::vector<int>> queue;

  void FoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (std::vector<int>& batch : queue.TakeAll()) {
      values.insert(values.end(), batch.begin(), batch.end());
    }
  }

  void Write(std::vector<int> batch) {
    queue.Push(std::move(batch));
    if (!queue.LockToFold(mu)) return;
    FoldLocked();
    mu.Unlock();
  }

  template <typename Fn>
  void Read(Fn fn) {
    queue.Read(
        mu, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { fn(values); },
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { FoldLocked(); });
  }

  std::vector<int> Values() {
    absl::MutexLock lock(&mu);
    return values;
  }
};

TEST(FoldQueueTest, WriterGoesOnWhileAReadHoldsTheStateWhichFoldsAfter) {
  Folded f;
  f.Write({1});
  absl::Notification inside, release;
  std::thread reader([&] {
    f.Read([&](const std::vector<int>& values) {
      EXPECT_EQ(values, std::vector<int>({1}));
      inside.Notify();
      release.WaitForNotification();
    });
  });
  inside.WaitForNotification();
  absl::Notification written;
  std::thread writer([&] {
    f.Write({2, 3});
    f.Write({4});
    written.Notify();
  });
  // The writer returns while the read still holds the state; a writer that
  // waited for the lock would not.
  EXPECT_TRUE(written.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(f.queue.size(), 2u);
  release.Notify();
  reader.join();
  writer.join();
  // The read folded both batches, in order, on its way out.
  EXPECT_EQ(f.queue.size(), 0u);
  EXPECT_EQ(f.Values(), std::vector<int>({1, 2, 3, 4}));
}

// The read that a batch came during folds it before the next read begins,
// even when that read was already waiting.
TEST(FoldQueueTest, TheNextReadSeesWhatCameDuringTheOneBefore) {
  Folded f;
  f.Write({1});
  absl::Notification inside, release;
  std::thread first([&] {
    f.Read([&](const std::vector<int>&) {
      inside.Notify();
      release.WaitForNotification();
    });
  });
  inside.WaitForNotification();
  f.Write({2});
  std::vector<int> seen;
  std::thread second(
      [&] { f.Read([&](const std::vector<int>& values) { seen = values; }); });
  // Lets the second read queue behind the first; it sees the same either
  // way, but without the wait it might not have to queue.
  absl::SleepFor(absl::Milliseconds(50));
  release.Notify();
  first.join();
  second.join();
  EXPECT_EQ(seen, std::vector<int>({1, 2}));
}

TEST(FoldQueueTest, WithoutReadsTheWriterFoldsAtOnce) {
  Folded f;
  f.Write({7});
  f.Write({8});
  EXPECT_EQ(f.queue.size(), 0u);
  EXPECT_EQ(f.Values(), std::vector<int>({7, 8}));
}

// Readers and a writer race; every batch is folded exactly once, in order,
// whole, and none is left waiting once all have finished, without a final
// fold by the test.
TEST(FoldQueueTest, NoBatchIsLostOrSplitWhenReadsAndWritesRace) {
  Folded f;
  constexpr int kBatches = 20000;
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        f.Read([&](const std::vector<int>& values) {
          // Batches are pairs: a read never sees half of one.
          ASSERT_EQ(values.size() % 2, 0u);
          if (!values.empty()) {
            ASSERT_EQ(static_cast<size_t>(values.back()), values.size() / 2);
          }
        });
        reads.fetch_add(1);
      }
    });
  }
  for (int i = 1; i <= kBatches; ++i) f.Write({i, i});
  done.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(f.queue.size(), 0u);
  const std::vector<int> values = f.Values();
  ASSERT_EQ(values.size(), 2u * kBatches);
  for (int i = 0; i < kBatches; ++i) {
    ASSERT_EQ(values[2 * i], i + 1);
    ASSERT_EQ(values[2 * i + 1], i + 1);
  }
}

}  // namespace
}  // namespace okrd
