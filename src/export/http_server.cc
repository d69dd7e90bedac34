#include "export/http_server.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "CivetServer.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/log.h"
#include "export/status_page.h"
#include "export/tls_frontend.h"
#include "export/view.h"
#include "spdlog/spdlog.h"
#include "zlib.h"

namespace okrd::exporter {
namespace {

// Answers a GET with `body`, and a HEAD with the same head and no body.
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

// okrd's endpoints are read-only. HEAD is answered as GET without the body
// (HTTP requires both, and uptime checkers send HEAD); other methods get 405
// rather than civetweb's fallback, a 404 for POST.
class ReadOnlyHandler : public CivetHandler {
 public:
  bool handleHead(CivetServer* server, mg_connection* conn) final {
    return handleGet(server, conn);
  }
  bool handlePost(CivetServer*, mg_connection* conn) final {
    return NotAllowed(conn);
  }
  bool handlePut(CivetServer*, mg_connection* conn) final {
    return NotAllowed(conn);
  }
  bool handleDelete(CivetServer*, mg_connection* conn) final {
    return NotAllowed(conn);
  }
  bool handlePatch(CivetServer*, mg_connection* conn) final {
    return NotAllowed(conn);
  }
  bool handleOptions(CivetServer*, mg_connection* conn) final {
    return NotAllowed(conn);
  }

 private:
  static bool NotAllowed(mg_connection* conn) {
    Reply(conn, 405, "text/plain; charset=utf-8", "method not allowed\n",
          "Allow: GET, HEAD\r\n");
    return true;
  }
};

// Carries an exposition's pieces from the thread that renders it, under the
// projection's lock, to the one that sends them. The scrape holds the lock
// no longer than rendering takes, however slowly the client reads, and
// what waits in memory is what the client has not taken yet.
class PieceQueue final : public TextSink {
 public:
  void Take(std::string piece) override {
    absl::MutexLock lock(&mu_);
    if (!dropping_) pieces_.push_back(std::move(piece));
  }
  // No more pieces will come.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  // The client is gone: the rest is dropped as it comes.
  void Drop() {
    absl::MutexLock lock(&mu_);
    dropping_ = true;
    pieces_.clear();
  }
  // Waits for the next piece; false once the queue is closed and empty.
  bool Next(std::string* piece) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &PieceQueue::Ready));
    if (pieces_.empty()) return false;
    *piece = std::move(pieces_.front());
    pieces_.pop_front();
    return true;
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || !pieces_.empty();
  }

  absl::Mutex mu_;
  std::deque<std::string> pieces_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool dropping_ ABSL_GUARDED_BY(mu_) = false;
};

// Writes a body whose length is not known in advance: in chunks to an
// HTTP/1.1 client, up to the connection's close to an HTTP/1.0 one.
class BodyWriter {
 public:
  BodyWriter(mg_connection* conn, bool chunked)
      : conn_(conn), chunked_(chunked) {}
  bool Write(absl::string_view data) {
    if (data.empty()) return true;
    if (chunked_ && mg_printf(conn_, "%zx\r\n", data.size()) <= 0) {
      return false;
    }
    if (mg_write(conn_, data.data(), data.size()) <= 0) return false;
    return !chunked_ || mg_write(conn_, "\r\n", 2) > 0;
  }
  bool Finish() { return !chunked_ || mg_write(conn_, "0\r\n\r\n", 5) > 0; }

 private:
  mg_connection* conn_;
  bool chunked_;
};

class MetricsHandler final : public ReadOnlyHandler {
 public:
  explicit MetricsHandler(SnapshotSource* source) : source_(source) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const mg_request_info* request = mg_get_request_info(conn);
    const char* accept = mg_get_header(conn, "Accept-Encoding");
    const bool gzip = accept != nullptr && AcceptsGzip(accept);
    const bool chunked = std::strcmp(request->http_version, "1.0") != 0;
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
              "Cache-Control: no-store\r\n%sVary: Accept-Encoding\r\n"
              "%sConnection: close\r\n\r\n",
              kContentType, gzip ? "Content-Encoding: gzip\r\n" : "",
              chunked ? "Transfer-Encoding: chunked\r\n" : "");
    if (std::strcmp(request->request_method, "HEAD") == 0) return true;
    PieceQueue queue;
    std::thread sender([&] {
      BodyWriter body(conn, chunked);
      std::optional<GzipWriter> zip;
      if (gzip) {
        zip.emplace([&body](absl::string_view out) { return body.Write(out); });
      }
      bool ok = true;
      std::string piece;
      while (queue.Next(&piece)) {
        if (ok && !(zip ? zip->Write(piece) : body.Write(piece))) {
          ok = false;
          queue.Drop();
        }
        piece = std::string();  // freed here, not held to the next piece
      }
      if (ok && (!zip || zip->Finish())) body.Finish();
    });
    // Closed as soon as the render ends: the body's end does not wait for
    // what the source does after reading (folding what came meanwhile).
    source_->Read(
        [&](const projection::KpiProjection& p, const DaemonState& s) {
          RenderMetrics(p, s, &queue);
          queue.Close();
        });
    queue.Close();  // also when the source did not call back
    sender.join();
    return true;
  }

 private:
  SnapshotSource* source_;
};

class StatusPageHandler final : public ReadOnlyHandler {
 public:
  explicit StatusPageHandler(SnapshotSource* source) : source_(source) {}
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
  SnapshotSource* source_;
};

// /api/v1/<resource>: JSON views of the same snapshot /metrics renders
// (export/view.h).
class ApiHandler final : public ReadOnlyHandler {
 public:
  explicit ApiHandler(SnapshotSource* source) : source_(source) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const mg_request_info* request = mg_get_request_info(conn);
    absl::string_view resource(request->local_uri);
    resource.remove_prefix(std::min(resource.size(), sizeof(kApiPrefix) - 1));
    const absl::string_view query(
        request->query_string == nullptr ? "" : request->query_string);
    ApiAnswer answer;
    source_->Read(
        [&](const projection::KpiProjection& p, const DaemonState& s) {
          answer = AnswerApi(resource, query, p, s);
        });
    Reply(conn, answer.status, kJsonContentType, answer.body);
    return true;
  }

  static constexpr char kApiPrefix[] = "/api/v1/";

 private:
  SnapshotSource* source_;
};

class HealthHandler final : public ReadOnlyHandler {
 public:
  bool handleGet(CivetServer*, mg_connection* conn) override {
    Reply(conn, 200, "text/plain; charset=utf-8", "ok\n");
    return true;
  }
};

class ReadyHandler final : public ReadOnlyHandler {
 public:
  explicit ReadyHandler(SnapshotSource* source) : source_(source) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const Readiness r = source_->GetReadiness();
    if (r.ready()) {
      Reply(conn, 200, "text/plain; charset=utf-8",
            r.standby ? "ready: standby, no partition owned\n" : "ready\n");
      return true;
    }
    std::vector<std::string> missing;
    if (!r.log_open) missing.push_back("event log not open");
    if (!r.write_error.empty()) {
      missing.push_back(absl::StrCat("event log not writable, ingest paused (",
                                     r.write_error, ")"));
    }
    if (!r.consumer_assigned) missing.push_back("consumer not assigned");
    if (!r.rebuild_done) missing.push_back("projection rebuild running");
    if (!r.caught_up) missing.push_back("owned partitions catching up");
    Reply(conn, 503, "text/plain; charset=utf-8",
          absl::StrCat("not ready: ", absl::StrJoin(missing, ", "), "\n"));
    return true;
  }

 private:
  SnapshotSource* source_;
};

// HTTP basic auth against the web config's bcrypt hashes. bcrypt is slow by
// design (tens of milliseconds), so credentials that passed are remembered
// by a SHA-256 of user and password, as exporter-toolkit does.
class BasicAuth final : public CivetAuthHandler {
 public:
  explicit BasicAuth(std::map<std::string, std::string> users)
      : users_(std::move(users)) {}

  bool authorize(CivetServer*, mg_connection* conn) override {
    const char* header = mg_get_header(conn, "Authorization");
    std::string decoded;
    absl::string_view value = header == nullptr ? "" : header;
    if (absl::ConsumePrefix(&value, "Basic ") &&
        absl::Base64Unescape(absl::StripAsciiWhitespace(value), &decoded)) {
      const size_t colon = decoded.find(':');
      if (colon != std::string::npos &&
          Check(decoded.substr(0, colon), decoded.substr(colon + 1))) {
        return true;
      }
    }
    Reply(conn, 401, "text/plain; charset=utf-8", "Unauthorized\n",
          "WWW-Authenticate: Basic realm=\"okrd\", charset=\"UTF-8\"\r\n");
    return false;
  }

 private:
  bool Check(const std::string& user, const std::string& password) {
    auto found = users_.find(user);
    if (found == users_.end()) return false;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const std::string both = absl::StrCat(user, ":", password);
    SHA256(reinterpret_cast<const unsigned char*>(both.data()), both.size(),
           digest);
    const std::string key(reinterpret_cast<const char*>(digest),
                          sizeof(digest));
    {
      absl::MutexLock lock(&mu_);
      if (passed_.contains(key)) return true;
    }
    if (!config::CheckPassword(found->second, password)) return false;
    absl::MutexLock lock(&mu_);
    if (passed_.size() >= 1024) passed_.clear();
    passed_.insert(key);
    return true;
  }

  const std::map<std::string, std::string> users_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> passed_ ABSL_GUARDED_BY(mu_);
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

GzipWriter::GzipWriter(std::function<bool(absl::string_view)> out)
    : out_(std::move(out)), z_(std::make_unique<z_stream>()) {
  // windowBits 15 + 16: a gzip header and trailer around the deflate stream.
  ok_ = deflateInit2(z_.get(), Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) == Z_OK;
  buffer_.resize(64 << 10);
}

GzipWriter::~GzipWriter() { deflateEnd(z_.get()); }

bool GzipWriter::Write(absl::string_view data) {
  return Deflate(data, Z_NO_FLUSH);
}

bool GzipWriter::Finish() { return Deflate({}, Z_FINISH); }

bool GzipWriter::Deflate(absl::string_view data, int flush) {
  if (!ok_) return false;
  z_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z_->avail_in = static_cast<uInt>(data.size());
  while (true) {
    z_->next_out = reinterpret_cast<Bytef*>(buffer_.data());
    z_->avail_out = static_cast<uInt>(buffer_.size());
    const int rc = deflate(z_.get(), flush);
    const size_t ready = buffer_.size() - z_->avail_out;
    if (rc == Z_STREAM_ERROR ||
        (ready > 0 && !out_(absl::string_view(buffer_.data(), ready)))) {
      ok_ = false;
      return false;
    }
    // Done when the input is taken and deflate had room to spare (or, at
    // the finish, wrote its trailer).
    if (flush == Z_FINISH ? rc == Z_STREAM_END
                          : z_->avail_in == 0 && z_->avail_out > 0) {
      return true;
    }
  }
}

std::string Gzip(absl::string_view data) {
  std::string out;
  GzipWriter writer([&out](absl::string_view piece) {
    out.append(piece.data(), piece.size());
    return true;
  });
  writer.Write(data);
  writer.Finish();
  return out;
}

struct HttpServer::State {
  std::unique_ptr<CivetServer> server;
  std::unique_ptr<TlsFrontend> tls;
  std::unique_ptr<BasicAuth> auth;
  std::unique_ptr<MetricsHandler> metrics;
  std::unique_ptr<HealthHandler> health;
  std::unique_ptr<ReadyHandler> ready;
  std::unique_ptr<StatusPageHandler> status;
  std::unique_ptr<ApiHandler> api;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, SnapshotSource* source,
    const config::WebConfig* web) {
  auto state = std::make_unique<State>();
  // With TLS, civetweb serves plain HTTP on a loopback port only the TLS
  // frontend (tls_frontend.h) connects to.
  const bool tls = web != nullptr && web->tls();
  const std::string http_listen = tls ? "127.0.0.1:0" : listen;
  const std::vector<std::string> options = {
      "listening_ports",    http_listen, "num_threads",       "4",
      "request_timeout_ms", "10000",     "enable_keep_alive", "no"};
  try {
    state->server = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return absl::UnavailableError(absl::StrCat("http.listen ", http_listen,
                                               ": cannot listen: ", e.what()));
  }
  if (state->server->getContext() == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("http.listen ", listen, ": cannot listen"));
  }
  // Authorization first, so no request is served before it is in place.
  if (web != nullptr && !web->users.empty()) {
    state->auth = std::make_unique<BasicAuth>(web->users);
    for (const char* uri :
         {"/", "/metrics", "/healthz", "/readyz", "/api/v1"}) {
      state->server->addAuthHandler(uri, state->auth.get());
    }
  }
  state->metrics = std::make_unique<MetricsHandler>(source);
  state->health = std::make_unique<HealthHandler>();
  state->ready = std::make_unique<ReadyHandler>(source);
  state->server->addHandler("/metrics", state->metrics.get());
  state->server->addHandler("/healthz", state->health.get());
  state->server->addHandler("/readyz", state->ready.get());
  state->api = std::make_unique<ApiHandler>(source);
  state->server->addHandler("/api/v1", state->api.get());
  state->status = std::make_unique<StatusPageHandler>(source);
  state->server->addHandler("/", state->status.get());
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  const std::vector<int> ports = state->server->getListeningPorts();
  server->port_ = ports.empty() ? 0 : ports.front();
  if (tls) {
    absl::StatusOr<std::unique_ptr<TlsFrontend>> frontend =
        TlsFrontend::Start(listen, *web, server->port_);
    if (!frontend.ok()) {
      state->server->close();
      return frontend.status();
    }
    state->tls = std::move(*frontend);
    server->port_ = state->tls->port();
  }
  server->state_ = std::move(state);
  return server;
}

HttpServer::~HttpServer() {
  if (state_ == nullptr) return;
  state_->tls.reset();  // its connections talk to the server below
  if (state_->server) state_->server->close();
}

}  // namespace okrd::exporter
