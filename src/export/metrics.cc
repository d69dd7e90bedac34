#include "export/metrics.h"

#include <cassert>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/version.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace okrd::exporter {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr size_t kFamilyCount = 8;

MetricFamily& AddFamily(std::vector<MetricFamily>& families, std::string name,
                        std::string help, MetricType type) {
  assert(families.size() < families.capacity());
  MetricFamily& family = families.emplace_back();
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void AddSample(MetricFamily& family, std::vector<ClientMetric::Label> labels,
               double value) {
  ClientMetric& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
}

double Seconds(absl::Time t) {
  return absl::ToDoubleSeconds(t - absl::UnixEpoch());
}

}  // namespace

std::string RenderMetrics(const projection::KpiProjection& projection,
                          const DaemonState& state) {
  std::vector<MetricFamily> families;
  // AddFamily hands out references into `families`: never reallocate.
  families.reserve(kFamilyCount);
  MetricFamily& value = AddFamily(
      families, "okr_kpi_value",
      "KPI value by its configured aggregation, for the current and previous "
      "calendar period.",
      MetricType::Gauge);
  MetricFamily& start = AddFamily(
      families, "okr_kpi_period_start_timestamp_seconds",
      "Start of the period an okr_kpi_value series covers.", MetricType::Gauge);
  projection.ForEachSeries([&](const projection::KpiSeries& s) {
    std::vector<ClientMetric::Label> labels = {{"kpi", s.kpi->id},
                                               {"subject", *s.subject},
                                               {"period", s.period_label}};
    AddSample(value, labels, s.value);
    AddSample(start, std::move(labels), Seconds(s.period.start));
  });
  MetricFamily& last =
      AddFamily(families, "okr_kpi_last_event_timestamp_seconds",
                "Event time of the newest measurement of a KPI for a subject.",
                MetricType::Gauge);
  projection.ForEachSubject([&](const config::KpiOptions& kpi,
                                const std::string& subject, absl::Time t) {
    AddSample(last, {{"kpi", kpi.id}, {"subject", subject}}, Seconds(t));
  });

  MetricFamily& events =
      AddFamily(families, "okrd_events_total",
                "Kafka messages by outcome (accepted, duplicate, rejected) and "
                "rejection reason; persisted in the event log.",
                MetricType::Counter);
  for (const auto& [key, count] : state.log.counters) {
    AddSample(events, {{"outcome", key.first}, {"reason", key.second}},
              static_cast<double>(count));
  }
  AddSample(AddFamily(families, "okrd_eventlog_last_sequence",
                      "Sequence number of the newest event in the log.",
                      MetricType::Gauge),
            {}, static_cast<double>(state.log.last_sequence));
  AddSample(AddFamily(families, "okrd_projection_sequence",
                      "Log sequence every series of this scrape reflects.",
                      MetricType::Gauge),
            {}, static_cast<double>(projection.sequence()));
  MetricFamily& lag = AddFamily(
      families, "okrd_consumer_lag_messages",
      "Messages between the log's next offset and the partition's high "
      "watermark.",
      MetricType::Gauge);
  for (const auto& [key, messages] : state.lag) {
    AddSample(lag,
              {{"topic", key.first}, {"partition", absl::StrCat(key.second)}},
              static_cast<double>(messages));
  }
  AddSample(
      AddFamily(families, "okrd_build_info",
                "Build of the running okrd; always 1.", MetricType::Gauge),
      {{"version", Version()}}, 1);
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace okrd::exporter
