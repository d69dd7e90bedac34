#include "projection/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace okrd::projection {
namespace {

constexpr double kQuantiles[] = {0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1};

// The value of rank floor(q * (n - 1)) of `values`, exactly.
double Exact(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(
      std::floor(q * static_cast<double>(values.size() - 1)))];
}

// Every quantile within the relative error of the exact one.
void ExpectWithinBound(const QuantileSketch& sketch,
                       const std::vector<double>& values) {
  ASSERT_EQ(sketch.count(), values.size());
  for (double q : kQuantiles) {
    const double exact = Exact(values, q);
    const double bound =
        std::fabs(exact) < QuantileSketch::kSmallest
            ? QuantileSketch::kSmallest
            : QuantileSketch::kRelativeError * std::fabs(exact) * (1 + 1e-12);
    EXPECT_LE(std::fabs(sketch.Quantile(q) - exact), bound)
        << "q=" << q << " exact=" << exact;
  }
}

TEST(QuantileSketchTest, WithinOnePercentOnRandomData) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(50, 20);
  std::lognormal_distribution<double> lognormal(0, 3);
  std::uniform_real_distribution<double> uniform(-1000, 1000);
  std::uniform_int_distribution<int> small(0, 5);
  for (int data = 0; data < 4; ++data) {
    for (size_t n : {1, 2, 3, 10, 1000, 20000}) {
      QuantileSketch sketch;
      std::vector<double> values;
      for (size_t i = 0; i < n; ++i) {
        const double v = data == 0   ? normal(rng)
                         : data == 1 ? lognormal(rng)
                         : data == 2 ? uniform(rng)
                                     : small(rng);  // ties and zeros
        sketch.Add(v);
        values.push_back(v);
      }
      SCOPED_TRACE(testing::Message() << "data " << data << ", n " << n);
      ExpectWithinBound(sketch, values);
    }
  }
}

TEST(QuantileSketchTest, RemovingValuesGivesTheSketchOfTheRest) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> lognormal(2, 2);
  QuantileSketch sketch;
  std::vector<double> values;
  for (int i = 0; i < 5000; ++i) {
    const double v = (i % 3 == 0 ? -1 : 1) * lognormal(rng);
    sketch.Add(v);
    values.push_back(v);
  }
  std::shuffle(values.begin(), values.end(), rng);
  for (int i = 0; i < 3000; ++i) {
    sketch.Remove(values.back());
    values.pop_back();
  }
  ExpectWithinBound(sketch, values);
  while (!values.empty()) {
    sketch.Remove(values.back());
    values.pop_back();
  }
  EXPECT_EQ(sketch.count(), 0u);
  EXPECT_EQ(sketch.Quantile(0.5), 0);
}

TEST(QuantileSketchTest, MemoryIsBoundedAcrossAnyRange) {
  QuantileSketch sketch;
  // 1e-300 .. 1e300 in steps of 1%: far more buckets than kept.
  for (double v = 1e-300; v < 1e300; v *= 1.01) sketch.Add(v);
  okrd::v1::PeriodSnapshot saved;
  sketch.SaveTo(&saved);
  EXPECT_EQ(static_cast<size_t>(saved.sketch().positive_index_size()),
            QuantileSketch::kMaxBuckets);
  // The top keeps its bound; everything merged sits at the bottom.
  EXPECT_NEAR(sketch.Quantile(1), 1e300, 1e298);
}

TEST(QuantileSketchTest, SnapshotRoundTrips) {
  QuantileSketch sketch;
  for (double v : {-5.0, 0.0, 1e-12, 3.0, 3.0, 7.5, 1e9}) sketch.Add(v);
  okrd::v1::PeriodSnapshot saved;
  sketch.SaveTo(&saved);
  QuantileSketch loaded;
  loaded.LoadFrom(saved);
  EXPECT_EQ(loaded.count(), sketch.count());
  for (double q : kQuantiles) EXPECT_EQ(loaded.Quantile(q), sketch.Quantile(q));
  okrd::v1::PeriodSnapshot again;
  loaded.SaveTo(&again);
  EXPECT_EQ(again.SerializeAsString(), saved.SerializeAsString());
}

}  // namespace
}  // namespace okrd::projection
