#ifndef OKRD_EXPORT_HTTP_SERVER_H_
#define OKRD_EXPORT_HTTP_SERVER_H_

// okrd's HTTP endpoint (civetweb underneath):
//   /metrics  Prometheus text 0.0.4 of one consistent snapshot, gzip-encoded
//             when the scraper accepts it
//   /         status page (export/status_page.h)
//   /api/v1/  JSON views of the same snapshot (export/view.h)
//   /healthz  200 while the process serves requests
//   /readyz   200 once the log is open, the consumer assigned and the
//             projection rebuilt; 503 with the missing parts otherwise
//
// Thread-safety: requests are served on civetweb's worker threads; the
// SnapshotSource must be safe for concurrent Read() calls.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/web_config.h"
#include "export/metrics.h"

namespace okrd::exporter {

// Whether an Accept-Encoding header value admits gzip ("gzip" or "*" with a
// non-zero q).
bool AcceptsGzip(absl::string_view accept_encoding);

// `data` as a gzip stream (fastest level: scrapes are latency-bound).
std::string Gzip(absl::string_view data);

class HttpServer {
 public:
  // Binds `listen` ("host:port"; port 0 picks a free one). With `web`
  // (--web.config.file), serves TLS and/or requires basic auth as it says;
  // a certificate or key OpenSSL refuses is an InvalidArgument error.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, const SnapshotSource* source,
      const config::WebConfig* web = nullptr);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

 private:
  struct State;
  HttpServer() = default;
  std::unique_ptr<State> state_;
  int port_ = 0;
};

}  // namespace okrd::exporter

#endif  // OKRD_EXPORT_HTTP_SERVER_H_
