#include "export/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/pseudonym.h"
#include "core/time_util.h"
#include "export/http_server.h"
#include "export/status_page.h"
#include "export/text_format.h"
#include "gtest/gtest.h"
#include "projection/pip.h"

namespace okrd::exporter {
namespace {

// Expects every one of `parts` somewhere in `text`.
void ExpectContainsAll(const std::string& text,
                       std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    EXPECT_NE(text.find(part), std::string::npos) << "missing: " << part << "\n"
                                                  << text;
  }
}

std::shared_ptr<const config::Config> OneKpi() {
  auto config = std::make_shared<config::Config>();
  config::KpiOptions kpi;
  kpi.id = "signups";
  kpi.aggregation = config::Aggregation::kSum;
  config->kpis.push_back(kpi);
  return config;
}

// signups' change against the previous period.
config::KpiOptions SignupGrowth() {
  config::KpiOptions growth;
  growth.id = "signup_growth";
  growth.derived.kind = config::DerivedKpi::Kind::kChange;
  growth.derived.inputs = {"signups"};
  return growth;
}

void ApplyEvent(projection::KpiProjection& p, uint64_t seq, double value) {
  okrd::v1::StoredEvent record;
  record.set_sequence(seq);
  record.set_ingest_time_us(1795634360000000);
  auto* e = record.mutable_event();
  e->set_kpi("signups");
  e->set_subject("team \"a\"");
  e->set_value(value);
  e->mutable_event_time()->set_seconds(1795634300);
  p.Apply(record);
}

TEST(RenderMetricsTest, RendersKpiAndDaemonSeries) {
  projection::KpiProjection projection(OneKpi());
  ApplyEvent(projection, 1, 2.5);
  ApplyEvent(projection, 2, 4);
  DaemonState state;
  state.log.last_sequence = 2;
  state.log.counters[{"accepted", ""}] = 2;
  state.log.counters[{"rejected", "malformed"}] = 1;
  state.lag[{"kpi-events", 3}] = 7;
  const std::string text = RenderMetrics(projection, state);
  ExpectContainsAll(
      text,
      {
          "# TYPE okr_kpi_value gauge",
          "okr_kpi_value{kpi=\"signups\",subject=\"team "
          "\\\"a\\\"\",period=\"current\"} 6.5",
          "# TYPE okrd_events_total counter",
          "okrd_events_total{outcome=\"accepted\",reason=\"\"} 2",
          "okrd_events_total{outcome=\"rejected\",reason=\"malformed\"} 1",
          "okrd_eventlog_last_sequence 2",
          "okrd_projection_sequence 2",
          "okrd_consumer_lag_messages{topic=\"kpi-events\",partition=\"3\"} 7",
          "okr_kpi_last_event_timestamp_seconds{kpi=\"signups\",subject="
          "\"team \\\"a\\\"\"} 1795634300",
      });
}

// The event log's memory by kind, and the process collector's series under
// the names Prometheus' client libraries give them, read from /proc.
TEST(RenderMetricsTest, RendersMemoryAndProcessSeries) {
  projection::KpiProjection projection(OneKpi());
  DaemonState state;
  state.log_memory.memtables = 1024;
  state.log_memory.id_tables = 4096;
  state.log_memory.id_filter = 2048;
  const std::string text = RenderMetrics(projection, state);
  ExpectContainsAll(text,
                    {"okrd_eventlog_memory_bytes{kind=\"memtables\"} 1024\n",
                     "okrd_eventlog_memory_bytes{kind=\"block_cache\"} 0\n",
                     "okrd_eventlog_memory_bytes{kind=\"table_readers\"} 0\n",
                     "okrd_eventlog_memory_bytes{kind=\"id_tables\"} 4096\n",
                     "okrd_eventlog_memory_bytes{kind=\"id_filter\"} 2048\n",
                     "# TYPE process_cpu_seconds_total counter",
                     "# TYPE process_resident_memory_bytes gauge"});
  double resident = 0;
  double start = 0;
  double fds = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    auto value = [&](absl::string_view name, double* out) {
      if (absl::ConsumePrefix(&line, name) && absl::ConsumePrefix(&line, " ")) {
        ASSERT_TRUE(absl::SimpleAtod(line, out)) << line;
      }
    };
    value("process_resident_memory_bytes", &resident);
    value("process_start_time_seconds", &start);
    value("process_open_fds", &fds);
  }
  // This test process: a few MB at least, started within the last hour,
  // with stdin, stdout and stderr open.
  EXPECT_GT(resident, 1 << 20);
  const double now = absl::ToUnixSeconds(absl::Now());
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);
  EXPECT_GE(fds, 3);
}

// Counters whose labels are known in advance start at 0, so that rate()
// and increase() see their first step; per partition too, for each one the
// log has taken from.
TEST(RenderMetricsTest, KnownCountersStartAtZero) {
  projection::KpiProjection projection(OneKpi());
  DaemonState state;
  state.log.counters[{"rejected", "malformed"}] = 3;
  state.log.counters[{"rejected", "from_a_newer_build"}] = 1;
  state.log.partition_counters[{"kpi-events", 2}][{"accepted", ""}] = 5;
  const std::string text = RenderMetrics(projection, state);
  ExpectContainsAll(text,
                    {"okrd_events_total{outcome=\"accepted\",reason=\"\"} 0",
                     "okrd_events_total{outcome=\"duplicate\",reason=\"\"} 0",
                     "okrd_events_total{outcome=\"rejected\",reason="
                     "\"malformed\"} 3",
                     "okrd_events_total{outcome=\"rejected\",reason="
                     "\"from_a_newer_build\"} 1",
                     "okrd_partition_events_total{topic=\"kpi-events\","
                     "partition=\"2\",outcome=\"accepted\",reason=\"\"} 5",
                     "okrd_partition_events_total{topic=\"kpi-events\","
                     "partition=\"2\",outcome=\"duplicate\",reason=\"\"} 0"});
  for (std::string_view reason : eventlog::kRejectionReasons) {
    if (reason == "malformed") continue;
    const std::string series =
        absl::StrCat("okrd_events_total{outcome=\"rejected\",reason=\"",
                     std::string(reason), "\"} 0\n");
    EXPECT_NE(text.find(series), std::string::npos) << series;
    const std::string per_partition = absl::StrCat(
        "okrd_partition_events_total{topic=\"kpi-events\",partition=\"2\","
        "outcome=\"rejected\",reason=\"",
        std::string(reason), "\"} 0\n");
    EXPECT_NE(text.find(per_partition), std::string::npos) << per_partition;
  }
}

// The reasons exported at 0 are the ones the README lists.
TEST(RenderMetricsTest, KnownReasonsAreTheReadmesList) {
  std::ifstream in(std::string(OKRD_SOURCE_DIR) + "/README.md");
  const std::string readme((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
  const size_t start = readme.find("Rejection reasons (");
  ASSERT_NE(start, std::string::npos);
  const size_t colon = readme.find("):", start);
  const size_t end = readme.find(". Each", start);
  ASSERT_NE(end, std::string::npos);
  // Every `word` of the paragraph after its heading, in order.
  std::vector<std::string> listed;
  for (size_t at = readme.find('`', colon); at < end;
       at = readme.find('`', at + 1)) {
    const size_t close = readme.find('`', at + 1);
    const std::string word = readme.substr(at + 1, close - at - 1);
    if (word.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") ==
        std::string::npos) {
      listed.push_back(word);
    }
    at = close;
  }
  const std::vector<std::string> known(eventlog::kRejectionReasons.begin(),
                                       eventlog::kRejectionReasons.end());
  EXPECT_EQ(listed, known);
}

// Objective "growth" titled `title`, over the ten days either side of the
// test events, with one key result: sign-ups of team "a" from 0 to 10.
config::ObjectiveOptions GrowthObjective(const std::string& title) {
  config::ObjectiveOptions o;
  o.id = "growth";
  o.title = title;
  o.owner = "team \"a\"";
  o.start = absl::FromUnixSeconds(1795634360) - absl::Hours(24 * 10);
  o.end = absl::FromUnixSeconds(1795634360) + absl::Hours(24 * 10);
  config::KeyResultOptions kr;
  kr.id = "signups-up";
  kr.kpi = "signups";
  kr.subject = "team \"a\"";
  kr.baseline = 0;
  kr.target = 10;
  o.key_results.push_back(kr);
  return o;
}

TEST(RenderMetricsTest, RendersKeyResultsAndObjectives) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config->objectives.push_back(GrowthObjective("Grow monthly sign-ups 15%"));
  projection::KpiProjection projection(config);
  ApplyEvent(projection, 1, 4);
  const std::string text = RenderMetrics(projection, DaemonState{});
  ExpectContainsAll(
      text,
      {
          "okr_key_result_progress_ratio{objective=\"growth\",key_result="
          "\"signups-up\"} 0.4",
          "okr_key_result_expected_progress_ratio{objective=\"growth\",key_"
          "result=\"signups-up\"} 0.5",
          "okr_key_result_value{objective=\"growth\",key_result=\"signups-"
          "up\"} 4",
          "okr_key_result_target{objective=\"growth\",key_result=\"signups-"
          "up\"} 10",
          "okr_key_result_baseline{objective=\"growth\",key_result=\"signups-"
          "up\"} 0",
          "okr_key_result_status{objective=\"growth\",key_result=\"signups-"
          "up\",status=\"on_track\"} 1",
          "okr_key_result_status{objective=\"growth\",key_result=\"signups-"
          "up\",status=\"at_risk\"} 0",
          "okr_key_result_status{objective=\"growth\",key_result=\"signups-"
          "up\",status=\"no_data\"} 0",
          "okr_objective_progress_ratio{objective=\"growth\"} 0.4",
          "okr_objective_info{objective=\"growth\",title=\"Grow monthly "
          "sign-ups 15%\",owner=\"team \\\"a\\\"\",parent=\"\"} 1",
      });
}

// Expects none of `parts` in `text`.
void ExpectContainsNone(const std::string& text,
                        std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    EXPECT_EQ(text.find(part), std::string::npos) << "present: " << part << "\n"
                                                  << text;
  }
}

// A sign-up of `subject` consumed from kpi-events/`partition`.
void ApplyFrom(projection::KpiProjection& p, uint64_t seq,
               const std::string& subject, int32_t partition, double value,
               const std::string& kpi = "signups",
               int64_t event_time = 1795634300) {
  okrd::v1::StoredEvent record;
  record.set_sequence(seq);
  record.set_ingest_time_us(1795634360000000);
  auto* e = record.mutable_event();
  e->set_kpi(kpi);
  e->set_subject(subject);
  e->set_value(value);
  e->mutable_event_time()->set_seconds(event_time);
  record.mutable_position()->set_topic("kpi-events");
  record.mutable_position()->set_partition(partition);
  p.Apply(record);
}

// The families' names in the order their HELP lines come.
std::vector<std::string> FamilyOrder(const std::string& text) {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "# HELP ")) continue;
    names.emplace_back(line.substr(0, line.find(' ')));
  }
  return names;
}

// From 4096 pairs on, the OKR and PIP families are rendered on a second
// thread: the body has the same families in the same order, each once, and
// the same values as when one thread renders it all.
TEST(RenderMetricsTest, TwoThreadsRenderWhatOneDoes) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config->objectives.push_back(GrowthObjective("Grow monthly sign-ups 15%"));
  projection::KpiProjection small(config);
  projection::KpiProjection large(config);
  ApplyEvent(small, 1, 4);
  ApplyEvent(large, 1, 4);
  for (int i = 0; i < 5000; ++i) {
    ApplyFrom(large, 2 + i, absl::StrCat("subject-", i), 0, i);
  }
  ASSERT_GE(large.subject_count(), 4096u);
  const std::string one = RenderMetrics(small, DaemonState{});
  const std::string two = RenderMetrics(large, DaemonState{});
  const std::vector<std::string> order = FamilyOrder(one);
  EXPECT_EQ(FamilyOrder(two), order);
  EXPECT_EQ(std::set<std::string>(order.begin(), order.end()).size(),
            order.size());
  // Every business line of the small body is in the large one too: the
  // objective, the key result, the team's KPI series.
  for (absl::string_view line : absl::StrSplit(one, '\n')) {
    if (line.empty() || absl::StartsWith(line, "okrd_") ||
        absl::StartsWith(line, "process_")) {
      continue;  // the daemon's and the process's own figures
    }
    EXPECT_TRUE(absl::StrContains(two, absl::StrCat(line, "\n"))) << line;
  }
  EXPECT_TRUE(absl::StrContains(
      two,
      "okr_kpi_value{kpi=\"signups\",subject=\"subject-4999\","
      "period=\"current\"} 4999\n"));
}

// The sample lines of family `name` in `text`, in order.
std::vector<std::string> SamplesOf(const std::string& text,
                                   const std::string& name) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, name + "{")) lines.emplace_back(line);
  }
  return lines;
}

std::string Formatted(double value) {
  std::string text;
  AppendValue(value, &text);
  return text;
}

// From 4096 pairs on, the large families are written in halves by subject on
// two threads: each still has every sample once, in its walk's order.
TEST(RenderMetricsTest, HalvesWriteEachFamilyInItsWalkOrder) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config->kpis.push_back(SignupGrowth());
  config::KpiOptions visits;
  visits.id = "visits";
  visits.aggregation = config::Aggregation::kSum;
  config->kpis.push_back(visits);
  // Its last event is the newer of its inputs'.
  config::KpiOptions conversion;
  conversion.id = "conversion";
  conversion.derived.kind = config::DerivedKpi::Kind::kRatio;
  conversion.derived.inputs = {"signups", "visits"};
  config->kpis.push_back(conversion);
  config::PipPolicyOptions policy;
  policy.id = "quota";
  policy.kpi = "signups";
  config->pip_policies.push_back(policy);
  projection::KpiProjection projection(config);
  for (int i = 0; i < 5000; ++i) {
    ApplyFrom(projection, 1 + i, absl::StrCat("subject-", i), i % 4, i);
  }
  for (int i = 0; i < 5000; i += 3) {
    ApplyFrom(projection, 10000 + i, absl::StrCat("subject-", i), i % 4, 10,
              "visits", 1795634300 + (i % 2 == 0 ? 60 : -60));
  }
  ASSERT_GE(projection.subject_count(), 4096u);
  const std::string text = RenderMetrics(projection, DaemonState{});
  std::vector<std::string> values, starts, lasts, states;
  projection.ForEachSeries([&](const projection::KpiSeries& s) {
    const std::string labels =
        absl::StrCat("{kpi=\"", s.kpi->id, "\",subject=\"", *s.subject,
                     "\",period=\"", s.period_label, "\"} ");
    values.push_back(absl::StrCat("okr_kpi_value", labels, Formatted(s.value)));
    starts.push_back(
        absl::StrCat("okr_kpi_period_start_timestamp_seconds", labels,
                     Formatted(absl::ToUnixSeconds(s.period.start))));
  });
  projection.ForEachSubject([&](const config::KpiOptions& kpi,
                                const std::string& subject, absl::Time t,
                                uint32_t) {
    lasts.push_back(absl::StrCat("okr_kpi_last_event_timestamp_seconds{kpi=\"",
                                 kpi.id, "\",subject=\"", subject, "\"} ",
                                 Formatted(absl::ToUnixSeconds(t))));
  });
  projection.ForEachPipState([&](const projection::PipSubjectState& p) {
    for (projection::PipState s : projection::kAllPipStates) {
      states.push_back(absl::StrCat(
          "okr_pip_state{policy=\"quota\",subject=\"", p.subject, "\",state=\"",
          projection::PipStateName(s), "\"} ", s == p.state ? 1 : 0));
    }
  });
  // signups', visits' and conversion's; signup_growth has no previous
  // period to change from.
  ASSERT_EQ(values.size(), 5000u + 2 * 1667u);
  EXPECT_EQ(SamplesOf(text, "okr_kpi_value"), values);
  EXPECT_EQ(SamplesOf(text, "okr_kpi_period_start_timestamp_seconds"), starts);
  // conversion's, signups', signup_growth's and visits'.
  ASSERT_EQ(lasts.size(), 5000u * 3 + 1667u);
  EXPECT_EQ(SamplesOf(text, "okr_kpi_last_event_timestamp_seconds"), lasts);
  ASSERT_EQ(states.size(), 5000 * projection::kAllPipStates.size());
  EXPECT_EQ(SamplesOf(text, "okr_pip_state"), states);
}

// Two instances split kpi-events: each exports only the series of the
// partitions it owns and has caught up on, and the contributions of its key
// results; the objective's progress only where all of them are its own.
TEST(RenderMetricsTest, ExportsOnlyOwnedCaughtUpPartitions) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config::ObjectiveOptions growth = GrowthObjective("Growth");
  growth.key_results[0].subject = "a";
  config::KeyResultOptions b = growth.key_results[0];
  b.id = "b-up";
  b.subject = "b";
  b.weight = 3;
  growth.key_results.push_back(b);
  config->objectives.push_back(growth);
  projection::KpiProjection projection(config);
  ApplyFrom(projection, 1, "a", 0, 4);  // progress 0.4, weight 1
  ApplyFrom(projection, 2, "b", 1, 8);  // progress 0.8, weight 3

  DaemonState first;
  first.ownership = projection::Ownership(
      {{{"kpi-events", 0}, true}, {{"kpi-events", 2}, true}}, false);
  first.log.offsets[{"kpi-events", 1}] = 1;  // held before, owned elsewhere
  first.log.first_offsets[{"kpi-events", 0}] = 0;
  first.log.first_offsets[{"kpi-events", 1}] = 5;
  first.log.partition_counters[{"kpi-events", 0}][{"accepted", ""}] = 1;
  const std::string a = RenderMetrics(projection, first);
  ExpectContainsAll(
      a,
      {
          "okr_kpi_value{kpi=\"signups\",subject=\"a\",period=\"current\"} 4",
          "okr_key_result_progress_ratio{objective=\"growth\",key_result="
          "\"signups-up\"} 0.4",
          "okr_objective_progress_contribution_ratio{objective=\"growth\","
          "key_result_objective=\"growth\",key_result=\"signups-up\"} "
          "0.1",
          "okrd_partition_owned{topic=\"kpi-events\",partition=\"0\"} 1",
          "okrd_partition_owned{topic=\"kpi-events\",partition=\"1\"} 0",
          "okrd_partition_caught_up{topic=\"kpi-events\",partition=\"2\"} 1",
          "okrd_partition_history_incomplete{topic=\"kpi-events\","
          "partition=\"0\"} 0",
          "okrd_partition_history_incomplete{topic=\"kpi-events\","
          "partition=\"1\"} 1",
          "okrd_partition_events_total{topic=\"kpi-events\",partition="
          "\"0\",outcome=\"accepted\",reason=\"\"} 1",
          "okrd_subject_partition_conflicts_total 0",
          "okr_objective_info{objective=\"growth\"",
      });
  ExpectContainsNone(a, {"subject=\"b\"", "key_result=\"b-up\"",
                         "okr_objective_progress_ratio{"});

  // The other instance, still catching up on partition 1: nothing of it yet.
  DaemonState second;
  second.ownership = projection::Ownership({{{"kpi-events", 1}, false}}, false);
  const std::string catching_up = RenderMetrics(projection, second);
  ExpectContainsNone(catching_up,
                     {"subject=\"b\"", "key_result=\"b-up\"", "subject=\"a\"",
                      "key_result=\"signups-up\""});
  ExpectContainsAll(catching_up, {"okrd_partition_caught_up{topic=\"kpi-"
                                  "events\",partition=\"1\"} 0"});
  second.ownership = projection::Ownership({{{"kpi-events", 1}, true}}, false);
  const std::string b_text = RenderMetrics(projection, second);
  ExpectContainsAll(
      b_text,
      {"okr_kpi_value{kpi=\"signups\",subject=\"b\",period=\"current\"} 8",
       "okr_objective_progress_contribution_ratio{objective=\"growth\","
       "key_result_objective=\"growth\",key_result=\"b-up\"} 0.6"});
  // 0.1 + 0.6: the recording rule's sum is the one-instance answer.
  ExpectContainsAll(RenderMetrics(projection, DaemonState{}),
                    {"okr_objective_progress_ratio{objective=\"growth\"} 0.7"});

  // The status page of the first instance shows b-up as another's, and
  // no partial progress for the objective.
  const std::string page = RenderStatusPage(projection, first);
  ExpectContainsAll(
      page, {"owned by another instance", "key results on other instances"});
  ExpectContainsNone(page, {"data-progress="});

  // More instances than partitions: a standby exports no business series.
  DaemonState standby;
  standby.ownership = projection::Ownership({}, false);
  const std::string idle = RenderMetrics(projection, standby);
  ExpectContainsNone(
      idle, {"okr_kpi_value{", "okr_key_result", "okr_objective", "okr_pip"});
  ExpectContainsAll(idle, {"okrd_projection_sequence 2"});
}

// Transition counters exist at 0 before the first transition fires, so
// that rate() and increase() count that one too; per exported partition.
TEST(RenderMetricsTest, TransitionCountersStartAtZero) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config::PipPolicyOptions policy;
  policy.id = "quota";
  policy.kpi = "signups";
  config->pip_policies.push_back(policy);
  projection::KpiProjection projection(config);
  ApplyFrom(projection, 1, "a", 2, 4);
  ApplyFrom(projection, 2, "b", 5, 4);
  DaemonState state;
  state.ownership = projection::Ownership({{{"kpi-events", 2}, true}}, false);
  const std::string text = RenderMetrics(projection, state);
  ExpectContainsAll(
      text, {"okr_pip_transitions_total{policy=\"quota\",to=\"triggered\","
             "topic=\"kpi-events\",partition=\"2\"} 0",
             "okr_pip_transitions_total{policy=\"quota\",to=\"ok\","
             "topic=\"kpi-events\",partition=\"2\"} 0"});
  ExpectContainsNone(text, {"partition=\"5\"} 0"});
}

// A policy on a derived KPI has machines for the subjects of its base KPI,
// exported by the instance that owns the base's partition.
TEST(RenderMetricsTest, PipStatesOfDerivedKpisFollowTheirBasePartition) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config->kpis.push_back(SignupGrowth());
  config::PipPolicyOptions policy;
  policy.id = "shrinking";
  policy.kpi = "signup_growth";
  policy.trigger = -0.1;
  policy.recovery = 0;
  config->pip_policies.push_back(policy);
  projection::KpiProjection projection(config);
  ApplyFrom(projection, 1, "a", 0, 4);
  ApplyFrom(projection, 2, "b", 1, 4);
  DaemonState state;
  state.ownership = projection::Ownership({{{"kpi-events", 1}, true}}, false);
  const std::string text = RenderMetrics(projection, state);
  ExpectContainsAll(text, {"okr_pip_state{policy=\"shrinking\",subject=\"b\","
                           "state=\"ok\"} 1"});
  ExpectContainsNone(text, {"subject=\"a\""});
}

TEST(RenderMetricsTest, PseudonymizedSubjectsNeverAppearRaw) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config->exporter.pseudonym_key = "0123456789abcdef";
  config::PipPolicyOptions policy;
  policy.id = "quota";
  policy.kpi = "signups";
  // Triggered by November's 4, with a plan: its series name the subject
  // too.
  policy.comparator = config::Comparator::kAbove;
  policy.trigger = 2;
  policy.recovery = 1;
  policy.consecutive_periods = 1;
  policy.milestones = {{"halfway", 7, 3}};
  policy.checkin_every = absl::Hours(24 * 7);
  config->pip_policies.push_back(policy);
  projection::KpiProjection projection(config);
  ApplyEvent(projection, 1, 4);
  projection.AdvanceClock(absl::FromUnixSeconds(1796083200 + 3600));
  const std::string text = RenderMetrics(projection, DaemonState{});
  ExpectContainsAll(text, {"okr_pip_next_checkin_timestamp_seconds{",
                           "okr_pip_milestone_status{"});
  EXPECT_EQ(text.find("team"), std::string::npos) << text;
  const std::string page = RenderStatusPage(projection, DaemonState{});
  ExpectContainsAll(page, {"halfway: at most 3"});
  EXPECT_EQ(page.find("team"), std::string::npos) << page;
  const std::string pseudonym = Pseudonym("0123456789abcdef", "team \"a\"");
  EXPECT_NE(text.find("okr_kpi_value{kpi=\"signups\",subject=\"" + pseudonym),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("okr_pip_state{policy=\"quota\",subject=\"" + pseudonym),
            std::string::npos)
      << text;
}

TEST(StatusPageTest, ShowsObjectivesEscapedWithProgressAndHealth) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  const config::ObjectiveOptions o =
      GrowthObjective("Grow <sign-ups> & \"more\"");
  config->objectives.push_back(o);
  config::ObjectiveOptions child = o;
  child.id = "growth-child";
  child.parent = "growth";
  child.title = "Child";
  child.key_results.clear();
  config->objectives.push_back(child);
  projection::KpiProjection projection(config);
  ApplyEvent(projection, 1, 4);
  DaemonState state;
  state.log.last_sequence = 9;
  state.log.counters[{"rejected", "malformed"}] = 2;
  state.log.counters[{"rejected", "<script>"}] = 1;
  state.lag[{"kpi-events", 0}] = 5;
  const std::string page = RenderStatusPage(projection, state);
  ExpectContainsAll(
      page, {
                "<li class=\"objective\" data-objective=\"growth\">",
                "Grow &lt;sign-ups&gt; &amp; &quot;more&quot;",
                // Half its key result (0.4), half its child without any (0).
                "<div class=\"fill s-at_risk\" style=\"width:20.0%\">",
                "data-progress=\"0.2\">20%</span>",
                "expected 50%",
                "owner team &quot;a&quot;",
                "<tr data-key-result=\"signups-up\">",
                "<td class=\"num value\">4</td>",
                "class=\"status s-on_track\">on_track</span>",
                "<ul class=\"tree\">\n<li class=\"objective\" "
                "data-objective=\"growth-child\">",
                "<p>None open.</p>",
                "id=\"last-sequence\">9</td>",
                "id=\"lag\">5</td>",
                "id=\"rejected\">3</td>",
                "&lt;script&gt;",
            });
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_EQ(page.find("http"), std::string::npos);  // no external assets
}

// Serves a fixed projection for the HTTP tests.
class FixedSource final : public SnapshotSource {
 public:
  // `more` subjects besides "team \"a\"", to make a large exposition.
  explicit FixedSource(int more = 0) : projection_(OneKpi()) {
    ApplyEvent(projection_, 1, 3);
    okrd::v1::StoredEvent record;
    record.set_ingest_time_us(1795634360000000);
    auto* e = record.mutable_event();
    e->set_kpi("signups");
    e->mutable_event_time()->set_seconds(1795634300);
    for (int i = 0; i < more; ++i) {
      record.set_sequence(2 + i);
      e->set_subject(absl::StrCat("team-", i));
      e->set_value(i);
      projection_.Apply(record);
    }
  }
  void Read(const std::function<void(const projection::KpiProjection&,
                                     const DaemonState&)>& fn) override {
    fn(projection_, state_);
  }
  Readiness GetReadiness() const override { return readiness; }
  Readiness readiness;

 private:
  projection::KpiProjection projection_;
  DaemonState state_;
};

// A minimal HTTP/1.0 (or `version`) request on 127.0.0.1; returns the
// whole response.
std::string Request(int port, const std::string& method,
                    const std::string& path, const std::string& headers = "",
                    const std::string& version = "1.0") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = method + " " + path + " HTTP/" + version +
                              "\r\nHost: x\r\nConnection: close\r\n" + headers +
                              "\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
    response.append(buf, n);
  ::close(fd);
  return response;
}

std::string Get(int port, const std::string& path,
                const std::string& headers = "") {
  return Request(port, "GET", path, headers);
}

// An open plan shows what it asks for, its milestones with their status,
// and the next check-in, by the logged clock.
TEST(StatusPageTest, OpenPlansShowActionsMilestonesAndCheckins) {
  auto config = std::make_shared<config::Config>(*OneKpi());
  config::PipPolicyOptions policy;
  policy.id = "quota";
  policy.kpi = "signups";
  policy.trigger = 10;
  policy.recovery = 20;
  policy.consecutive_periods = 1;
  policy.milestones = {{"halfway", 7, 15}};
  policy.actions = {
      {"coach", "Weekly <coaching>", config::PipAction::Kind::kMentoring, 2}};
  policy.checkin_every = absl::Hours(24 * 7);
  config->pip_policies.push_back(policy);
  projection::KpiProjection projection(config);
  ApplyEvent(projection, 1, 4);  // November 2026: 4, below 10
  // November closed on December 1st: triggered then; a week and a day on.
  projection.AdvanceClock(absl::FromUnixSeconds(1796083200) +
                          absl::Hours(24 * 8));
  const std::string page = RenderStatusPage(projection, DaemonState{});
  ExpectContainsAll(
      page,
      {"<td>2026-12-01T00:00:00Z</td><td>2026-12-31T00:00:00Z</td>",
       "<td class=\"checkin\">2026-12-15T00:00:00Z</td><td class=\"num\">1"
       "</td>",
       "<li>2026-12-03T00:00:00Z <b>Weekly &lt;coaching&gt;</b> <span "
       "class=\"meta\">(mentoring)</span></li>",
       "<li>2026-12-08T00:00:00Z halfway: at least 15 <span class=\"status "
       "m-pending\">pending</span></li>"});
  ExpectContainsAll(
      RenderMetrics(projection, DaemonState{}),
      {"okr_pip_next_checkin_timestamp_seconds{policy=\"quota\",subject="
       "\"team \\\"a\\\"\"} 1797292800",
       "okr_pip_checkins_overdue{policy=\"quota\",subject=\"team "
       "\\\"a\\\"\"} 1",
       "okr_pip_milestone_status{policy=\"quota\",subject=\"team "
       "\\\"a\\\"\",milestone=\"halfway\",status=\"pending\"} 1",
       "okr_pip_action_info{policy=\"quota\",action=\"coach\",title="
       "\"Weekly <coaching>\",kind=\"mentoring\",due_day=\"2\"} 1"});
}

TEST(HttpServerTest, ServesMetricsHealthAndReadiness) {
  FixedSource source;
  auto server = HttpServer::Start("127.0.0.1:0", &source);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  const std::string metrics = Get(port, "/metrics");
  EXPECT_NE(metrics.find("HTTP/1.1 200"), std::string::npos) << metrics;
  EXPECT_NE(
      metrics.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
      std::string::npos);
  EXPECT_NE(metrics.find("okr_kpi_value{kpi=\"signups\""), std::string::npos);

  EXPECT_NE(Get(port, "/healthz").find("HTTP/1.1 200"), std::string::npos);
  const std::string page = Get(port, "/");
  EXPECT_NE(page.find("HTTP/1.1 200"), std::string::npos) << page;
  EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8"),
            std::string::npos);
  EXPECT_NE(page.find("<section id=\"health\">"), std::string::npos);
  EXPECT_NE(Get(port, "/no-such-page").find("HTTP/1.1 404"), std::string::npos);

  const std::string not_ready = Get(port, "/readyz");
  EXPECT_NE(not_ready.find("HTTP/1.1 503"), std::string::npos);
  EXPECT_NE(not_ready.find("consumer not assigned"), std::string::npos);
  source.readiness = {
      .log_open = true, .consumer_assigned = true, .rebuild_done = true};
  const std::string catching_up = Get(port, "/readyz");
  EXPECT_NE(catching_up.find("HTTP/1.1 503"), std::string::npos);
  EXPECT_NE(catching_up.find("owned partitions catching up"), std::string::npos)
      << catching_up;
  source.readiness.caught_up = true;
  const std::string ready = Get(port, "/readyz");
  EXPECT_NE(ready.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(ready.find("standby"), std::string::npos) << ready;
  // A full disk pauses ingest: not ready, and /readyz says why.
  source.readiness.write_error = "IO error: No space left on device";
  const std::string paused = Get(port, "/readyz");
  EXPECT_NE(paused.find("HTTP/1.1 503"), std::string::npos);
  EXPECT_NE(paused.find("event log not writable, ingest paused (IO error: "
                        "No space left on device)"),
            std::string::npos)
      << paused;
  source.readiness.write_error.clear();
  // No partition owned: ready, and says why it exports no business series.
  source.readiness.standby = true;
  const std::string standby = Get(port, "/readyz");
  EXPECT_NE(standby.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_NE(standby.find("standby"), std::string::npos) << standby;
}

// HEAD answers as GET does, without the body; the endpoints are read-only.
TEST(HttpServerTest, HeadAsGetOtherMethodsNotAllowed) {
  FixedSource source;
  auto server = HttpServer::Start("127.0.0.1:0", &source);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  // The headers without Content-Length's value (the status page shows the
  // process's own figures, which move between two answers). /metrics is
  // streamed as it is rendered, without a length.
  const std::regex length("Content-Length: [1-9][0-9]*\r\n");
  for (const std::string path : {"/metrics", "/healthz", "/readyz", "/"}) {
    const std::string get = Get(port, path);
    const std::string head = Request(port, "HEAD", path);
    const size_t end = get.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << get;
    EXPECT_EQ(std::regex_search(head, length), path != "/metrics") << head;
    EXPECT_EQ(std::regex_replace(head, length, "Content-Length: N\r\n"),
              std::regex_replace(get.substr(0, end + 4), length,
                                 "Content-Length: N\r\n"))
        << path;
  }
  EXPECT_NE(Request(port, "HEAD", "/no-such-page").find("HTTP/1.1 404"),
            std::string::npos);
  for (const std::string method : {"POST", "PUT", "DELETE", "PATCH"}) {
    const std::string reply =
        Request(port, method, "/metrics", "Content-Length: 0\r\n");
    EXPECT_NE(reply.find("HTTP/1.1 405"), std::string::npos)
        << method << ": " << reply;
    EXPECT_NE(reply.find("Allow: GET, HEAD\r\n"), std::string::npos) << reply;
  }
}

// `text` without the process's own figures, which move between two
// scrapes.
std::string Steady(absl::string_view text) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, "process_")) absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string Gunzip(absl::string_view data) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  char buf[4096];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

TEST(HttpServerTest, GzipWhenTheScraperAcceptsIt) {
  FixedSource source;
  auto server = HttpServer::Start("127.0.0.1:0", &source);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string plain = Get((*server)->port(), "/metrics");
  const size_t plain_body = plain.find("\r\n\r\n");
  ASSERT_NE(plain_body, std::string::npos);
  EXPECT_EQ(plain.find("Content-Encoding"), std::string::npos);

  const std::string zipped =
      Get((*server)->port(), "/metrics", "Accept-Encoding: gzip\r\n");
  EXPECT_NE(zipped.find("Content-Encoding: gzip"), std::string::npos);
  EXPECT_NE(zipped.find("Vary: Accept-Encoding"), std::string::npos);
  const size_t body = zipped.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(Steady(Gunzip(absl::string_view(zipped).substr(body + 4))),
            Steady(absl::string_view(plain).substr(plain_body + 4)));
}

// Splits a response into its head and its body, decoding a chunked one.
std::pair<std::string, std::string> HeadAndBody(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return {response, ""};
  std::string head = response.substr(0, end + 4);
  absl::string_view rest = absl::string_view(response).substr(end + 4);
  if (head.find("Transfer-Encoding: chunked\r\n") == std::string::npos) {
    return {head, std::string(rest)};
  }
  std::string body;
  while (true) {
    const size_t line = rest.find("\r\n");
    size_t size = 0;
    if (line == absl::string_view::npos ||
        !absl::SimpleHexAtoi(rest.substr(0, line), &size) ||
        rest.size() < line + 2 + size + 2 ||
        rest.substr(line + 2 + size, 2) != "\r\n") {
      ADD_FAILURE() << "bad chunk at " << rest.substr(0, 40);
      return {head, body};
    }
    absl::StrAppend(&body, rest.substr(line + 2, size));
    rest.remove_prefix(line + 2 + size + 2);
    if (size == 0) break;
  }
  EXPECT_EQ(rest, "") << "bytes after the last chunk";
  return {head, body};
}

// An exposition of many pieces goes out as rendered: chunked to HTTP/1.1
// clients, up to the close to HTTP/1.0 ones, plain or gzip; the client gets
// exactly what RenderMetrics renders.
TEST(HttpServerTest, StreamsLargeExpositionsInChunksToHttp11) {
  FixedSource source(20000);
  std::string rendered;
  source.Read([&](const projection::KpiProjection& p, const DaemonState& s) {
    rendered = RenderMetrics(p, s);
  });
  ASSERT_GT(rendered.size(), 4 * kPieceBytes);
  auto server = HttpServer::Start("127.0.0.1:0", &source);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  for (const bool gzip : {false, true}) {
    const std::string accept = gzip ? "Accept-Encoding: gzip\r\n" : "";
    for (const std::string version : {"1.0", "1.1"}) {
      SCOPED_TRACE(absl::StrCat("HTTP/", version, gzip ? " gzip" : ""));
      auto [head, body] =
          HeadAndBody(Request(port, "GET", "/metrics", accept, version));
      EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 200 OK\r\n")) << head;
      EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
      EXPECT_EQ(
          head.find("Transfer-Encoding: chunked\r\n") != std::string::npos,
          version == "1.1")
          << head;
      EXPECT_EQ(head.find("Content-Encoding: gzip\r\n") != std::string::npos,
                gzip);
      if (gzip) body = Gunzip(body);
      EXPECT_EQ(Steady(body), Steady(rendered));
    }
  }
}

// A scraper that leaves in the middle of the body costs the server nothing
// but that answer.
TEST(HttpServerTest, ClientLeavingMidBodyLeavesTheServerServing) {
  FixedSource source(20000);
  auto server = HttpServer::Start("127.0.0.1:0", &source);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
              0);
    const std::string request =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(::write(fd, request.data(), request.size()),
              static_cast<ssize_t>(request.size()));
    char buf[4096];
    EXPECT_GT(::read(fd, buf, sizeof(buf)), 0);
    ::close(fd);
  }
  auto [head, body] = HeadAndBody(Request(port, "GET", "/metrics", "", "1.1"));
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_NE(body.find("okr_kpi_value{kpi=\"signups\",subject=\"team-19999\""),
            std::string::npos);
  EXPECT_TRUE(absl::EndsWith(body, "\n"));
}

TEST(HttpServerTest, AcceptEncodingIsParsedWithQValues) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzipped"));
  EXPECT_FALSE(AcceptsGzip(""));
}

TEST(TextFormatTest, EscapesLabelsAndHelpAndFormatsValues) {
  TextFamilies families;
  TextFamily& f =
      families.Add("okr_x", "Help with \\ and\nnewline.", MetricKind::kGauge);
  f.Add({{"a", "quote \" back \\ nl \n end"}}, 0.1);
  f.Add({}, 31.1);
  families.Add("okr_y_total", "Counter.", MetricKind::kCounter)
      .Add({{"a", "1"}, {"b", ""}}, 1e21);
  TextFamily& specials = families.Add("okr_z", "Specials.", MetricKind::kGauge);
  specials.Add({}, std::numeric_limits<double>::quiet_NaN());
  specials.Add({}, std::numeric_limits<double>::infinity());
  specials.Add({}, -std::numeric_limits<double>::infinity());
  specials.Add({}, -0.0);
  specials.Add({}, 1793487600);
  EXPECT_EQ(families.Render(),
            "# HELP okr_x Help with \\\\ and\\nnewline.\n"
            "# TYPE okr_x gauge\n"
            "okr_x{a=\"quote \\\" back \\\\ nl \\n end\"} 0.1\n"
            "okr_x 31.1\n"
            "# HELP okr_y_total Counter.\n"
            "# TYPE okr_y_total counter\n"
            "okr_y_total{a=\"1\",b=\"\"} 1e+21\n"
            "# HELP okr_z Specials.\n"
            "# TYPE okr_z gauge\n"
            "okr_z NaN\nokr_z +Inf\nokr_z -Inf\nokr_z -0\nokr_z 1793487600\n");
}

TEST(TextFormatTest, ValuesAreWrittenInToCharsShortestForm) {
  // Whole numbers take a path of their own; each must read as to_chars
  // writes it, including where 1e+06 is shorter than the digits.
  std::vector<double> values = {0.0,
                                -0.0,
                                1,
                                -1,
                                9,
                                10,
                                99999,
                                100000,
                                -100000,
                                1e6,
                                1234500000,
                                1764633600,
                                1e15,
                                1e16,
                                9007199254740991.0,
                                9007199254740992.0,
                                -9007199254740991.0,
                                9007199254740994.0,
                                0.5,
                                1e-7,
                                123.25,
                                1e21,
                                -1e300};
  for (double p = 1; p < 1e17; p *= 10) {
    for (double m : {1.0, 3.0, 12.0, 120.0, 1200.0, 99999.0, 100001.0}) {
      values.push_back(p * m);
      values.push_back(-p * m);
      values.push_back(p * m + 1);
    }
  }
  std::mt19937_64 random(7);
  for (int i = 0; i < 100000; ++i) {
    const int digits = static_cast<int>(random() % 16);
    const double whole = static_cast<double>(
        static_cast<int64_t>(random() % 9007199254740992ULL) /
        static_cast<int64_t>(std::pow(10, digits)));
    values.push_back(whole * std::pow(10, random() % 8));
    values.push_back(-whole);
  }
  for (double value : values) {
    char expected[64];
    const auto end =
        std::to_chars(expected, expected + sizeof(expected), value).ptr;
    std::string text;
    AppendValue(value, &text);
    ASSERT_EQ(text, std::string(expected, end)) << value;
  }
}

TEST(TextFormatTest, LabelValuesEscapeAnywhereInTheirWords) {
  // Each escaped byte at each place of values up to three words long, and
  // plain ones of every length.
  for (size_t size = 0; size < 25; ++size) {
    const std::string plain(size, 'a');
    std::string text;
    AppendLabelValue(plain, &text);
    EXPECT_EQ(text, plain);
    for (size_t at = 0; at < size; ++at) {
      for (char c : {'\\', '"', '\n'}) {
        std::string value = plain;
        value[at] = c;
        std::string want = plain.substr(0, at) + '\\' + (c == '\n' ? 'n' : c) +
                           plain.substr(at + 1);
        text.clear();
        AppendLabelValue(value, &text);
        EXPECT_EQ(text, want) << size << " " << at;
      }
    }
  }
}

TEST(TextFormatTest, SharedLabelsAreWrittenAsPlainOnes) {
  // Every byte of a long value escaped: the line outgrows any room kept
  // from the lines before it.
  const std::string quotes(5000, '"');
  const LabelBlock shared({{"policy", "p\\1"}, {"subject", quotes}});
  TextFamilies with_block;
  TextFamily& a = with_block.Add("okr_s", "S.", MetricKind::kGauge);
  a.AddWith(shared, 1);
  a.AddWith(shared, {{"state", "ok"}, {"n", "x\ny"}}, 2);
  a.AddWith(LabelBlock(), {{"state", "ok"}}, 3);
  a.AddWith(LabelBlock(), 4);
  TextFamilies plain;
  TextFamily& b = plain.Add("okr_s", "S.", MetricKind::kGauge);
  b.Add({{"policy", "p\\1"}, {"subject", quotes}}, 1);
  b.Add(
      {{"policy", "p\\1"}, {"subject", quotes}, {"state", "ok"}, {"n", "x\ny"}},
      2);
  b.Add({{"state", "ok"}}, 3);
  b.Add({}, 4);
  const std::string text = plain.Render();
  EXPECT_EQ(with_block.Render(), text);
  std::string escaped_quotes;
  for (int i = 0; i < 5000; ++i) escaped_quotes += "\\\"";
  EXPECT_NE(text.find("okr_s{policy=\"p\\\\1\",subject=\"" + escaped_quotes +
                      "\",state=\"ok\",n=\"x\\ny\"} 2\nokr_s{state=\"ok\"} "
                      "3\nokr_s 4\n"),
            std::string::npos);
}
TEST(HttpServerTest, BasicAuthFromTheWebConfig) {
  FixedSource source;
  config::WebConfig web;
  // bcrypt (cost 5) of "s3cret".
  web.users["alice"] =
      "$2b$05$LZzM133rkoheZNi8uWrDQOCSdBDAjAbETu45YXlXCEQ9oeOYajQXm";
  auto server = HttpServer::Start("127.0.0.1:0", &source, &web);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  for (const char* path : {"/metrics", "/", "/healthz", "/readyz"}) {
    const std::string denied = Get(port, path);
    EXPECT_NE(denied.find("HTTP/1.1 401"), std::string::npos) << denied;
    EXPECT_NE(denied.find("WWW-Authenticate: Basic realm=\"okrd\""),
              std::string::npos);
    EXPECT_EQ(denied.find("okr_kpi_value"), std::string::npos);
  }
  // alice:wrong, bob:s3cret, alice:s3cret
  EXPECT_NE(Get(port, "/metrics", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n")
                .find("HTTP/1.1 401"),
            std::string::npos);
  EXPECT_NE(Get(port, "/metrics", "Authorization: Basic Ym9iOnMzY3JldA==\r\n")
                .find("HTTP/1.1 401"),
            std::string::npos);
  for (int i = 0; i < 2; ++i) {  // the second check comes from the cache
    const std::string ok =
        Get(port, "/metrics", "Authorization: Basic YWxpY2U6czNjcmV0\r\n");
    EXPECT_NE(ok.find("HTTP/1.1 200"), std::string::npos) << ok;
    EXPECT_NE(ok.find("okr_kpi_value"), std::string::npos);
  }
}

TEST(HttpServerTest, BadCertificateIsAClearError) {
  FixedSource source;
  config::WebConfig web;
  web.source_path = "web.yml";
  const std::string tls = std::string(OKRD_SOURCE_DIR) + "/tests/testdata/tls";
  web.cert_file = tls + "/server.crt";
  web.key_file = tls + "/other.key";  // not server.crt's key
  web.min_version = 0;
  auto server = HttpServer::Start("127.0.0.1:0", &source, &web);
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(server.status())) << server.status();
  EXPECT_NE(server.status().message().find(
                "web.yml: tls_server_config.key_file " + tls + "/other.key: "),
            absl::string_view::npos)
      << server.status();
  EXPECT_NE(server.status().message().find("key values mismatch"),
            absl::string_view::npos)
      << server.status();
}

TEST(HttpServerTest, BusyPortIsAClearError) {
  FixedSource source;
  auto first = HttpServer::Start("127.0.0.1:0", &source);
  ASSERT_TRUE(first.ok());
  auto second = HttpServer::Start(
      "127.0.0.1:" + std::to_string((*first)->port()), &source);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace okrd::exporter
