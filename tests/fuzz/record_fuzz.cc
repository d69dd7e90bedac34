// Stored records as a damaged log could hold them: whatever parses as a
// StoredEvent is folded into a projection and rendered, as `okrctl replay`
// and a start-up rebuild would, without crashing.

#include <cstdint>
#include <memory>

#include "config/config.h"
#include "export/metrics.h"
#include "okrd/v1/records.pb.h"
#include "projection/kpi_projection.h"

namespace {

std::shared_ptr<const okrd::config::Config> FuzzConfig() {
  static const auto config = [] {
    auto c = std::make_shared<okrd::config::Config>();
    for (auto [id, aggregation] :
         {std::pair{"signups", okrd::config::Aggregation::kSum},
          std::pair{"latest", okrd::config::Aggregation::kLatest},
          std::pair{"max", okrd::config::Aggregation::kMax}}) {
      okrd::config::KpiOptions kpi;
      kpi.id = id;
      kpi.aggregation = aggregation;
      c->kpis.push_back(kpi);
    }
    return std::shared_ptr<const okrd::config::Config>(c);
  }();
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  okrd::projection::KpiProjection projection(FuzzConfig());
  // Several records: the input split at each 0xff 0xfe marker.
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i < size && !(i + 1 < size && data[i] == 0xff && data[i + 1] == 0xfe)) {
      continue;
    }
    okrd::v1::StoredEvent record;
    if (record.ParseFromArray(data + start, static_cast<int>(i - start))) {
      projection.Apply(record);
    }
    start = i + 2;
    ++i;
  }
  okrd::exporter::RenderBusinessMetrics(projection);
  projection.Snapshot();
  return 0;
}
