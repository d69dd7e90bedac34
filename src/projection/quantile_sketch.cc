#include "projection/quantile_sketch.h"

#include <cmath>
#include <iterator>

namespace okrd::projection {
namespace {

constexpr double kGamma =
    (1 + QuantileSketch::kRelativeError) / (1 - QuantileSketch::kRelativeError);
const double kLogGamma = std::log(kGamma);

}  // namespace

int32_t QuantileSketch::IndexOf(double magnitude) {
  return static_cast<int32_t>(std::ceil(std::log(magnitude) / kLogGamma));
}

double QuantileSketch::ValueOf(int32_t index) {
  return 2 * std::pow(kGamma, index) / (kGamma + 1);
}

int32_t QuantileSketch::BucketFor(const Buckets& buckets, double magnitude) {
  const int32_t index = IndexOf(magnitude);
  // Once buckets were merged, the lowest one holds everything below it.
  if (buckets.size() >= kMaxBuckets && index < buckets.begin()->first) {
    return buckets.begin()->first;
  }
  return index;
}

void QuantileSketch::Bound(Buckets& buckets) {
  while (buckets.size() > kMaxBuckets) {
    auto lowest = buckets.begin();
    std::next(lowest)->second += lowest->second;
    buckets.erase(lowest);
  }
}

void QuantileSketch::Add(double value) {
  ++count_;
  if (std::fabs(value) < kSmallest) {
    ++zero_;
    return;
  }
  Buckets& buckets = value > 0 ? positive_ : negative_;
  ++buckets[BucketFor(buckets, std::fabs(value))];
  Bound(buckets);
}

void QuantileSketch::Remove(double value) {
  if (count_ == 0) return;
  --count_;
  if (std::fabs(value) < kSmallest) {
    if (zero_ > 0) --zero_;
    return;
  }
  Buckets& buckets = value > 0 ? positive_ : negative_;
  auto it = buckets.find(BucketFor(buckets, std::fabs(value)));
  if (it == buckets.end()) {
    // Merged into the lowest bucket after it was added.
    if (buckets.empty()) return;
    it = buckets.begin();
  }
  if (--it->second == 0) buckets.erase(it);
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return 0;
  const double rank = std::floor(q * static_cast<double>(count_ - 1));
  double seen = 0;
  // Ascending: negatives from the largest magnitude, zero, positives.
  for (auto it = negative_.rbegin(); it != negative_.rend(); ++it) {
    seen += static_cast<double>(it->second);
    if (seen > rank) return -ValueOf(it->first);
  }
  seen += static_cast<double>(zero_);
  if (seen > rank) return 0;
  for (const auto& [index, n] : positive_) {
    seen += static_cast<double>(n);
    if (seen > rank) return ValueOf(index);
  }
  return positive_.empty() ? 0 : ValueOf(positive_.rbegin()->first);
}

void QuantileSketch::SaveTo(okrd::v1::PeriodSnapshot* out) const {
  okrd::v1::QuantileSketchSnapshot* s = out->mutable_sketch();
  s->set_zero(zero_);
  for (const auto& [index, n] : positive_) {
    s->add_positive_index(index);
    s->add_positive_count(n);
  }
  for (const auto& [index, n] : negative_) {
    s->add_negative_index(index);
    s->add_negative_count(n);
  }
}

void QuantileSketch::LoadFrom(const okrd::v1::PeriodSnapshot& in) {
  const okrd::v1::QuantileSketchSnapshot& s = in.sketch();
  positive_.clear();
  negative_.clear();
  zero_ = s.zero();
  count_ = zero_;
  for (int i = 0; i < s.positive_index_size() && i < s.positive_count_size();
       ++i) {
    positive_[s.positive_index(i)] += s.positive_count(i);
    count_ += s.positive_count(i);
  }
  for (int i = 0; i < s.negative_index_size() && i < s.negative_count_size();
       ++i) {
    negative_[s.negative_index(i)] += s.negative_count(i);
    count_ += s.negative_count(i);
  }
  Bound(positive_);
  Bound(negative_);
}

}  // namespace okrd::projection
