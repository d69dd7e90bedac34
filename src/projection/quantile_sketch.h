#ifndef OKRD_PROJECTION_QUANTILE_SKETCH_H_
#define OKRD_PROJECTION_QUANTILE_SKETCH_H_

// QuantileSketch answers quantiles (median, p90, ...) of a multiset of
// doubles within a relative error of 1%, in memory bounded whatever the
// number of values, and takes values out again (corrections, retractions).
//
// It is a DDSketch-style histogram on a logarithmic scale: a value v > 0
// falls in bucket i = ceil(log(v) / log(gamma)), gamma = (1 + a) / (1 - a)
// with a = kRelativeError, and a bucket answers with 2 gamma^i / (gamma + 1),
// within a * v of every value in it. Negative values mirror positive ones;
// magnitudes below kSmallest count as 0. Each sign keeps at most
// kMaxBuckets buckets, which covers values across 17 orders of magnitude;
// past that the buckets of the smallest magnitudes are merged, and
// quantiles that fall in the merged one lose the error bound.
//
// The q-quantile of n values is the value of rank floor(q * (n - 1)) in
// ascending order (the lower median for even n), so that the answer is
// always within the error bound of a value actually measured.

#include <cstdint>

#include "absl/container/btree_map.h"
#include "okrd/v1/snapshot.pb.h"

namespace okrd::projection {

class QuantileSketch {
 public:
  static constexpr double kRelativeError = 0.01;
  static constexpr double kSmallest = 1e-9;
  static constexpr size_t kMaxBuckets = 2048;

  void Add(double value);
  // Takes out a value added before; nothing when the sketch is empty.
  void Remove(double value);

  uint64_t count() const { return count_; }
  // Requires count() > 0 and 0 <= q <= 1.
  double Quantile(double q) const;

  void SaveTo(okrd::v1::PeriodSnapshot* out) const;
  void LoadFrom(const okrd::v1::PeriodSnapshot& in);

 private:
  // Buckets of one sign, by index; index order is magnitude order.
  using Buckets = absl::btree_map<int32_t, uint64_t>;

  static int32_t IndexOf(double magnitude);
  static double ValueOf(int32_t index);
  // The bucket `magnitude` is counted in: past the merged ones, the
  // merged bucket.
  static int32_t BucketFor(const Buckets& buckets, double magnitude);
  static void Bound(Buckets& buckets);

  Buckets positive_;
  Buckets negative_;  // by the magnitude's index
  uint64_t zero_ = 0;
  uint64_t count_ = 0;
};

}  // namespace okrd::projection

#endif  // OKRD_PROJECTION_QUANTILE_SKETCH_H_
