// scrape_bench: /metrics latency and resident memory per series, okrd's
// exporter side by side with the plain prometheus-cpp path.
//
//   scrape_bench [--series 10000,100000,1000000] [--scrapes N]
//   scrape_bench --config FILE [--subjects 100000,1000000] [--scrapes N]
//                [--no-peer] [--render-only] [--laid-out]
//
// For each series count, in a fresh child process each:
//   okrd         a KPI projection whose subjects give that many series
//                (okr_kpi_value, okr_kpi_period_start_timestamp_seconds and
//                okr_kpi_last_event_timestamp_seconds per subject), served by
//                okrd's HttpServer
//   prometheus-cpp  the same series as one Family<Gauge> each with one Gauge
//                per series, served by prometheus-cpp's Exposer
// then scrapes it over 127.0.0.1 N times (plain text, then gzip for okrd)
// and prints p50/p99 latency, body size and resident bytes per series (RSS
// growth from building the series, divided by their count).
//
// With --config, a user's mix of series instead: each subject gets one
// event per KPI of the config (as `okrctl produce --config FILE --subjects
// N --count N*KPIs` sends them), a logged tick judges the PIP policies,
// and every series /metrics then exports (KPI values, objectives, key
// results, PIP states) is measured. prometheus-cpp gets the same series,
// read back from okrd's body, as gauges (unless --no-peer: at 1M subjects
// it needs more than 12 GB). Also printed: the time to render alone, per
// 100k series, with the CPU time it took on all threads (steadier than the
// wall time on a busy machine; --render-only stops after it); the whole
// process's resident set per series and per subject after the scrapes; and
// the floor under a plain scrape:
// the same bytes written to the same client by a bare server.
// With --laid-out the projection is measured as a running okrd keeps it at
// worst: laid out in subject order (restored from its snapshot, as okrd's
// relayout does) after four fifths of the subjects, the last fifth folded
// after that (okrd lays it out again from a fifth new pairs on); without,
// as folding events grew it, each KPI's walk striding through memory.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "config/config.h"
#include "core/args.h"
#include "core/log.h"
#include "core/time_util.h"
#include "export/http_server.h"
#include "export/metrics.h"
#include "projection/kpi_projection.h"
#include "projection/pip.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace okrd {
namespace {

constexpr int kSeriesPerSubject = 3;

long ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// GETs `path` on 127.0.0.1:port; returns the body size, or -1.
long Scrape(int port, bool gzip) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string request = absl::StrCat(
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n",
      gzip ? "Accept-Encoding: gzip\r\n" : "", "Connection: close\r\n\r\n");
  if (::write(fd, request.data(), request.size()) < 0) {
    ::close(fd);
    return -1;
  }
  // Reads to the last byte, keeping only the head: a scraper parses as the
  // body streams in, so the client's own copying is not what is measured.
  std::string head;
  size_t total = 0;
  std::vector<char> buf(1 << 18);
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) {
    if (head.size() < 4096) head.append(buf.data(), static_cast<size_t>(n));
    total += static_cast<size_t>(n);
  }
  ::close(fd);
  const size_t body = head.find("\r\n\r\n");
  if (head.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) {
    return -1;
  }
  return static_cast<long>(total - body - 4);
}

struct Result {
  double p50_ms = 0;
  double p99_ms = 0;
  long body_bytes = 0;
};

Result Measure(int port, int scrapes, bool gzip) {
  std::vector<double> ms;
  Result r;
  for (int i = 0; i < scrapes; ++i) {
    const absl::Time start = absl::Now();
    r.body_bytes = Scrape(port, gzip);
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    if (r.body_bytes < 0) return r;
  }
  std::sort(ms.begin(), ms.end());
  r.p50_ms = ms[ms.size() / 2];
  r.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  return r;
}

// The floor under a plain scrape of `body`: the same bytes written to the
// same client by a bare server (no HTTP library, no rendering, no chunk
// framing), as many times as it scrapes.
Result MeasureFloor(const std::string& body, int scrapes) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, 4) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length) !=
          0) {
    ::close(listener);
    return Result{.body_bytes = -1};
  }
  std::thread server([&] {
    constexpr absl::string_view kHead =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\n\r\n";
    for (int i = 0; i < scrapes; ++i) {
      const int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      std::string request;
      char buf[4096];
      for (ssize_t n; request.find("\r\n\r\n") == std::string::npos &&
                      (n = ::read(fd, buf, sizeof(buf))) > 0;) {
        request.append(buf, static_cast<size_t>(n));
      }
      std::string out(kHead);
      bool ok = ::write(fd, out.data(), out.size()) > 0;
      for (size_t at = 0; ok && at < body.size();) {
        const ssize_t n = ::write(fd, body.data() + at,
                                  std::min<size_t>(body.size() - at, 1 << 18));
        ok = n > 0;
        at += ok ? static_cast<size_t>(n) : 0;
      }
      ::close(fd);
    }
  });
  const Result r = Measure(ntohs(addr.sin_port), scrapes, false);
  server.join();
  ::close(listener);
  return r;
}

std::string SubjectName(long i) { return absl::StrCat("team-", i); }

void Print(const char* path, long series, long rss, const char* encoding,
           const Result& r) {
  std::printf(
      "%-15s %9ld %-6s p50 %8.2f ms  p99 %8.2f ms  body %10ld B  "
      "%6.1f B/series\n",
      path, series, encoding, r.p50_ms, r.p99_ms, r.body_bytes,
      static_cast<double>(rss) / static_cast<double>(series));
  std::fflush(stdout);
}

class Source final : public exporter::SnapshotSource {
 public:
  explicit Source(const projection::KpiProjection* p) : projection_(p) {}
  void Read(
      const std::function<void(const projection::KpiProjection&,
                               const exporter::DaemonState&)>& fn) override {
    fn(*projection_, state_);
  }
  exporter::Readiness GetReadiness() const override { return {}; }

 private:
  const projection::KpiProjection* projection_;
  exporter::DaemonState state_;
};

// Milliseconds of `scrapes` renders without HTTP (what a scrape holds the
// daemon's lock for), sorted.
// Counts an exposition's series as it is rendered, and writes it to
// `file` when one is open; keeps nothing, as /metrics sends the pieces on.
class CountingSink final : public exporter::TextSink {
 public:
  explicit CountingSink(std::ofstream* file = nullptr) : file_(file) {}
  void Take(std::string piece) override {
    for (absl::string_view line : absl::StrSplit(piece, '\n')) {
      if (!line.empty() && line[0] != '#') ++series_;
    }
    if (file_ != nullptr) *file_ << piece;
  }
  long series() const { return series_; }

 private:
  std::ofstream* file_;
  long series_ = 0;
};

// CPU time of the whole process, all threads.
double ProcessCpuMs() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 +
         static_cast<double>(t.tv_nsec) / 1e6;
}

// The times to render alone, into pieces that are dropped as they come (the
// server sends them on), sorted: wall and CPU milliseconds.
struct RenderTimes {
  std::vector<double> wall_ms;
  std::vector<double> cpu_ms;
};
RenderTimes TimeRenders(const projection::KpiProjection& projection,
                        int scrapes) {
  struct Drop final : exporter::TextSink {
    void Take(std::string) override {}
  };
  RenderTimes times;
  for (int i = 0; i < scrapes; ++i) {
    const absl::Time start = absl::Now();
    const double cpu = ProcessCpuMs();
    Drop sink;
    exporter::RenderMetrics(projection, exporter::DaemonState(), &sink);
    times.cpu_ms.push_back(ProcessCpuMs() - cpu);
    times.wall_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  std::sort(times.wall_ms.begin(), times.wall_ms.end());
  std::sort(times.cpu_ms.begin(), times.cpu_ms.end());
  return times;
}

int RunOkrd(long series, int scrapes) {
  auto config = std::make_shared<config::Config>();
  config::KpiOptions kpi;
  kpi.id = "signups";
  kpi.aggregation = config::Aggregation::kSum;
  config->kpis.push_back(kpi);
  const long before = ResidentBytes();
  projection::KpiProjection projection(config);
  const absl::Time now = absl::Now();
  okrd::v1::StoredEvent record;
  record.mutable_event()->set_kpi("signups");
  record.set_ingest_time_us(absl::ToUnixMicros(now));
  ToProto(now, record.mutable_event()->mutable_event_time());
  for (long i = 0; i < series / kSeriesPerSubject; ++i) {
    record.set_sequence(static_cast<uint64_t>(i + 1));
    record.mutable_event()->set_subject(SubjectName(i));
    record.mutable_event()->set_value(static_cast<double>(i % 1000));
    projection.Apply(record);
  }
  const long rss = ResidentBytes() - before;
  {
    const std::vector<double> ms = TimeRenders(projection, scrapes).wall_ms;
    std::printf("okrd %ld series: render alone p50 %.2f ms\n", series,
                ms[ms.size() / 2]);
  }
  Source source(&projection);
  auto server = exporter::HttpServer::Start("127.0.0.1:0", &source);
  if (!server.ok()) return 1;
  Print("okrd", series, rss, "plain",
        Measure((*server)->port(), scrapes, false));
  Print("okrd", series, rss, "gzip", Measure((*server)->port(), scrapes, true));
  return 0;
}

int RunPrometheusCpp(long series, int scrapes) {
  const long before = ResidentBytes();
  auto registry = std::make_shared<prometheus::Registry>();
  auto& value = prometheus::BuildGauge()
                    .Name("okr_kpi_value")
                    .Help("KPI value.")
                    .Register(*registry);
  auto& start = prometheus::BuildGauge()
                    .Name("okr_kpi_period_start_timestamp_seconds")
                    .Help("Start of the period.")
                    .Register(*registry);
  auto& last = prometheus::BuildGauge()
                   .Name("okr_kpi_last_event_timestamp_seconds")
                   .Help("Newest event time.")
                   .Register(*registry);
  const double now = absl::ToUnixSeconds(absl::Now());
  for (long i = 0; i < series / kSeriesPerSubject; ++i) {
    const std::string subject = SubjectName(i);
    value.Add({{"kpi", "signups"}, {"subject", subject}, {"period", "current"}})
        .Set(static_cast<double>(i % 1000));
    start.Add({{"kpi", "signups"}, {"subject", subject}, {"period", "current"}})
        .Set(now);
    last.Add({{"kpi", "signups"}, {"subject", subject}}).Set(now);
  }
  const long rss = ResidentBytes() - before;
  prometheus::Exposer exposer("127.0.0.1:0");
  exposer.RegisterCollectable(registry);
  const std::vector<int> ports = exposer.GetListeningPorts();
  if (ports.empty()) return 1;
  Print("prometheus-cpp", series, rss, "plain",
        Measure(ports.front(), scrapes, false));
  return 0;
}

// Where the --config cases hand okrd's body to the prometheus-cpp one.
std::string BodyPath() {
  return absl::StrCat("/tmp/scrape_bench_body_", getppid(), ".txt");
}

// A value in the ranges the example's units have, varying by subject.
double SampleValue(const std::string& unit, long i) {
  if (unit == "percent") return static_cast<double>(i % 1000) / 10;
  if (unit == "hours") return static_cast<double>(i % 97) + 0.5;
  return static_cast<double>(i % 5000);
}

// With `peer`, also leaves the body in BodyPath() for RunPrometheusCppConfig.
int RunOkrdConfig(const std::string& path, long subjects, int scrapes,
                  bool peer, bool render_only, bool laid_out) {
  const long before = ResidentBytes();
  auto config = config::LoadConfig(path);
  if (!config.ok()) {
    std::fprintf(stderr, "scrape_bench: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  auto grown = std::make_unique<projection::KpiProjection>(*config);
  const absl::Time now = absl::Now();
  okrd::v1::StoredEvent record;
  record.set_ingest_time_us(absl::ToUnixMicros(now));
  uint64_t sequence = 0;
  for (long i = 0; i < subjects; ++i) {
    if (laid_out && i == subjects * 4 / 5) {
      // As okrd's relayout leaves it: restored from its snapshot, pairs in
      // memory in the order scrapes walk them. okrd lays it out again once
      // a fifth of the pairs are newer than that, so the fifth still to
      // come is the most it ever walks in the order it grew.
      const okrd::v1::ProjectionSnapshot snapshot = grown->Snapshot();
      grown = std::make_unique<projection::KpiProjection>(*config);
      if (absl::Status s = grown->Restore(snapshot); !s.ok()) {
        std::fprintf(stderr, "scrape_bench: %s\n",
                     std::string(s.message()).c_str());
        return 1;
      }
    }
    for (const config::KpiOptions& kpi : (*config)->kpis) {
      if (kpi.is_derived()) continue;  // computed from the others
      record.set_sequence(++sequence);
      okrd::v1::KpiEvent* e = record.mutable_event();
      e->set_kpi(kpi.id);
      e->set_subject(SubjectName(i));
      e->set_value(SampleValue(kpi.unit, i));
      ToProto(now - absl::Seconds(static_cast<double>(sequence % 60)),
              e->mutable_event_time());
      grown->Apply(record);
    }
  }
  okrd::v1::StoredEvent tick;
  tick.set_sequence(++sequence);
  tick.mutable_tick()->set_wall_time_us(absl::ToUnixMicros(now));
  grown->Apply(tick);
  const projection::KpiProjection& projection = *grown;
  const long built = ResidentBytes() - before;
  long series = 0;
  {
    std::ofstream out;
    if (peer) out.open(BodyPath());
    CountingSink sink(peer ? &out : nullptr);
    exporter::RenderMetrics(projection, exporter::DaemonState(), &sink);
    series = sink.series();
  }
  const RenderTimes times = TimeRenders(projection, scrapes);
  const std::vector<double>& ms = times.wall_ms;
  const double p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  std::printf(
      "okrd %ld subjects, %ld series: render alone p50 %.2f ms, p99 %.2f ms "
      "(%.2f ms per 100k series); CPU p50 %.2f ms (%.0f ns per series)\n",
      subjects, series, ms[ms.size() / 2], p99,
      p99 * 1e5 / static_cast<double>(series),
      times.cpu_ms[times.cpu_ms.size() / 2],
      times.cpu_ms[times.cpu_ms.size() / 2] * 1e6 /
          static_cast<double>(series));
  std::fflush(stdout);
  if (render_only) return 0;
  {
    // What every scrape did before the projection kept PIP states: run
    // every machine again.
    const absl::Time start = absl::Now();
    const size_t states =
        projection::EvaluatePips(projection.config(), projection).size();
    std::printf(
        "okrd %ld subjects: running all %zu PIP machines again takes %.2f "
        "ms\n",
        subjects, states, absl::ToDoubleMilliseconds(absl::Now() - start));
    std::fflush(stdout);
  }
  Source source(&projection);
  auto server = exporter::HttpServer::Start("127.0.0.1:0", &source);
  if (!server.ok()) return 1;
  const Result plain = Measure((*server)->port(), scrapes, false);
  Print("okrd", series, built, "plain", plain);
  Print("okrd", series, built, "gzip",
        Measure((*server)->port(), scrapes, true));
  std::printf(
      "okrd %ld series: plain p99 %.2f ms per 100k series; whole process "
      "after %d scrapes: RSS %.0f MB, %.0f B per series, %.0f B per "
      "subject\n",
      series, plain.p99_ms * 1e5 / static_cast<double>(series), 2 * scrapes,
      static_cast<double>(ResidentBytes()) / 1e6,
      static_cast<double>(ResidentBytes()) / static_cast<double>(series),
      static_cast<double>(ResidentBytes()) / static_cast<double>(subjects));
  {
    // After the resident figure, which the held body would swell.
    exporter::StringSink body;
    exporter::RenderMetrics(projection, exporter::DaemonState(), &body);
    const Result floor = MeasureFloor(body.text(), scrapes);
    std::printf(
        "floor: the same %zu bytes written by a bare server to the same "
        "client: p50 %.2f ms, p99 %.2f ms (%.2f ms per 100k series)\n",
        body.text().size(), floor.p50_ms, floor.p99_ms,
        floor.p99_ms * 1e5 / static_cast<double>(series));
  }
  std::fflush(stdout);  // the child ends with _exit()
  return 0;
}

// Reads back `text` lines `name{label="value",...} value` (okrd's body).
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
bool ParseSample(absl::string_view line, Sample* out) {
  out->labels.clear();
  size_t i = line.find_first_of("{ ");
  if (i == absl::string_view::npos) return false;
  out->name = std::string(line.substr(0, i));
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find("=\"", i);
      if (eq == absl::string_view::npos) return false;
      std::string key(line.substr(i, eq - i));
      std::string value;
      size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value.push_back(line[j] == 'n' ? '\n' : line[j]);
        } else {
          value.push_back(line[j]);
        }
      }
      out->labels[key] = value;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    ++i;  // past '}'
  }
  return absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(i)),
                          &out->value);
}

int RunPrometheusCppConfig(long subjects, int scrapes) {
  std::ifstream in(BodyPath());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.push_back(std::move(line));
  }
  std::remove(BodyPath().c_str());
  const long before = ResidentBytes();
  auto registry = std::make_shared<prometheus::Registry>();
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> families;
  Sample sample;
  long series = 0;
  for (const std::string& line : lines) {
    if (!ParseSample(line, &sample)) continue;
    auto [it, added] = families.try_emplace(sample.name, nullptr);
    if (added) {
      it->second = &prometheus::BuildGauge()
                        .Name(sample.name)
                        .Help(sample.name)
                        .Register(*registry);
    }
    it->second->Add(sample.labels).Set(sample.value);
    ++series;
  }
  lines.clear();
  lines.shrink_to_fit();
  const long rss = ResidentBytes() - before;
  prometheus::Exposer exposer("127.0.0.1:0");
  exposer.RegisterCollectable(registry);
  const std::vector<int> ports = exposer.GetListeningPorts();
  if (ports.empty()) return 1;
  const Result plain = Measure(ports.front(), scrapes, false);
  Print("prometheus-cpp", series, rss, "plain", plain);
  std::printf(
      "prometheus-cpp %ld subjects: plain p99 %.2f ms per 100k series\n",
      subjects, plain.p99_ms * 1e5 / static_cast<double>(series));
  std::fflush(stdout);  // the child ends with _exit()
  return 0;
}

// Runs `fn` in a child so each case starts from a fresh heap.
int InChild(int (*fn)(long, int), long series, int scrapes) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn(series, scrapes));
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int Main(int argc, char** argv) {
  (void)InitLogging("warn");
  Args args({"series", "scrapes", "config", "subjects"},
            {"no-peer", "render-only", "laid-out"});
  if (absl::Status s =
          args.Parse(std::vector<std::string>(argv + 1, argv + argc));
      !s.ok()) {
    std::fprintf(stderr, "scrape_bench: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  long long scrapes = 0;
  if (absl::Status s = args.GetInt("scrapes", 1, 100000, 20, &scrapes);
      !s.ok()) {
    std::fprintf(stderr, "scrape_bench: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  const std::optional<std::string> config = args.Get("config");
  std::vector<long> counts;
  for (absl::string_view item : absl::StrSplit(
           config ? args.Get("subjects").value_or("100000,1000000")
                  : args.Get("series").value_or("10000,100000,1000000"),
           ',')) {
    long n = 0;
    if (!absl::SimpleAtoi(item, &n) || n < kSeriesPerSubject) {
      std::fprintf(stderr, "scrape_bench: --%s: bad count '%.*s'\n",
                   config ? "subjects" : "series",
                   static_cast<int>(item.size()), item.data());
      return 2;
    }
    counts.push_back(n);
  }
  int failed = 0;
  if (config) {
    for (long n : counts) {
      const pid_t pid = fork();
      if (pid == 0)
        _exit(RunOkrdConfig(*config, n, static_cast<int>(scrapes),
                            !args.Has("no-peer") && !args.Has("render-only"),
                            args.Has("render-only"), args.Has("laid-out")));
      int status = 0;
      waitpid(pid, &status, 0);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      failed |= ok ? 0 : 1;
      if (ok && !args.Has("no-peer") && !args.Has("render-only")) {
        failed |= InChild(RunPrometheusCppConfig, n, static_cast<int>(scrapes));
      }
    }
    return failed;
  }
  for (long n : counts) {
    failed |= InChild(RunOkrd, n, static_cast<int>(scrapes));
    failed |= InChild(RunPrometheusCpp, n, static_cast<int>(scrapes));
  }
  return failed;
}

}  // namespace
}  // namespace okrd

int main(int argc, char** argv) { return okrd::Main(argc, argv); }
