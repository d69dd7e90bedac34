#include "export/http_server.h"

#include <cstring>
#include <vector>

#include "CivetServer.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/log.h"
#include "export/status_page.h"
#include "spdlog/spdlog.h"
#include "zlib.h"

namespace okrd::exporter {
namespace {

void Reply(mg_connection* conn, int code, absl::string_view content_type,
           absl::string_view body, absl::string_view extra_headers = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %.*s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\n%.*sConnection: close\r\n\r\n",
            code, mg_get_response_code_text(conn, code),
            static_cast<int>(content_type.size()), content_type.data(),
            body.size(), static_cast<int>(extra_headers.size()),
            extra_headers.data());
  if (std::strcmp(mg_get_request_info(conn)->request_method, "HEAD") != 0) {
    mg_write(conn, body.data(), body.size());
  }
}

class MetricsHandler final : public CivetHandler {
 public:
  explicit MetricsHandler(const SnapshotSource* source) : source_(source) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    std::string body;
    source_->Read([&](const projection::KpiProjection& p,
                      const DaemonState& s) { body = RenderMetrics(p, s); });
    const char* accept = mg_get_header(conn, "Accept-Encoding");
    if (accept != nullptr && AcceptsGzip(accept)) {
      Reply(conn, 200, kContentType, Gzip(body),
            "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    } else {
      Reply(conn, 200, kContentType, body, "Vary: Accept-Encoding\r\n");
    }
    return true;
  }

 private:
  const SnapshotSource* source_;
};

class StatusPageHandler final : public CivetHandler {
 public:
  explicit StatusPageHandler(const SnapshotSource* source) : source_(source) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    if (std::strcmp(mg_get_request_info(conn)->local_uri, "/") != 0) {
      Reply(conn, 404, "text/plain; charset=utf-8", "not found\n");
      return true;
    }
    std::string body;
    source_->Read([&](const projection::KpiProjection& p,
                      const DaemonState& s) { body = RenderStatusPage(p, s); });
    Reply(conn, 200, kHtmlContentType, body);
    return true;
  }

 private:
  const SnapshotSource* source_;
};

class HealthHandler final : public CivetHandler {
 public:
  bool handleGet(CivetServer*, mg_connection* conn) override {
    Reply(conn, 200, "text/plain; charset=utf-8", "ok\n");
    return true;
  }
};

class ReadyHandler final : public CivetHandler {
 public:
  explicit ReadyHandler(const SnapshotSource* source) : source_(source) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const Readiness r = source_->GetReadiness();
    if (r.ready()) {
      Reply(conn, 200, "text/plain; charset=utf-8", "ready\n");
      return true;
    }
    std::vector<absl::string_view> missing;
    if (!r.log_open) missing.push_back("event log not open");
    if (!r.consumer_assigned) missing.push_back("consumer not assigned");
    if (!r.rebuild_done) missing.push_back("projection rebuild running");
    Reply(conn, 503, "text/plain; charset=utf-8",
          absl::StrCat("not ready: ", absl::StrJoin(missing, ", "), "\n"));
    return true;
  }

 private:
  const SnapshotSource* source_;
};

}  // namespace

bool AcceptsGzip(absl::string_view accept_encoding) {
  for (absl::string_view item : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    const absl::string_view coding = absl::StripAsciiWhitespace(parts[0]);
    if (!absl::EqualsIgnoreCase(coding, "gzip") && coding != "*") continue;
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view param = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&param, "q=") && !absl::SimpleAtod(param, &q)) {
        q = 0;
      }
    }
    if (q > 0) return true;
  }
  return false;
}

std::string Gzip(absl::string_view data) {
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer around the deflate stream.
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::string();
  }
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct HttpServer::State {
  std::unique_ptr<CivetServer> server;
  std::unique_ptr<MetricsHandler> metrics;
  std::unique_ptr<HealthHandler> health;
  std::unique_ptr<ReadyHandler> ready;
  std::unique_ptr<StatusPageHandler> status;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, const SnapshotSource* source) {
  auto state = std::make_unique<State>();
  const std::vector<std::string> options = {
      "listening_ports",    listen,  "num_threads",       "4",
      "request_timeout_ms", "10000", "enable_keep_alive", "no"};
  try {
    state->server = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return absl::UnavailableError(
        absl::StrCat("http.listen ", listen, ": cannot listen: ", e.what()));
  }
  if (state->server->getContext() == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("http.listen ", listen, ": cannot listen"));
  }
  state->metrics = std::make_unique<MetricsHandler>(source);
  state->health = std::make_unique<HealthHandler>();
  state->ready = std::make_unique<ReadyHandler>(source);
  state->server->addHandler("/metrics", state->metrics.get());
  state->server->addHandler("/healthz", state->health.get());
  state->server->addHandler("/readyz", state->ready.get());
  state->status = std::make_unique<StatusPageHandler>(source);
  state->server->addHandler("/", state->status.get());
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  const std::vector<int> ports = state->server->getListeningPorts();
  server->port_ = ports.empty() ? 0 : ports.front();
  server->state_ = std::move(state);
  return server;
}

HttpServer::~HttpServer() {
  if (state_ && state_->server) state_->server->close();
}

}  // namespace okrd::exporter
