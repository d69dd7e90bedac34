#ifndef OKRD_EXPORT_HTTP_SERVER_H_
#define OKRD_EXPORT_HTTP_SERVER_H_

// okrd's HTTP endpoint (civetweb underneath):
//   /metrics  Prometheus text 0.0.4 of one consistent snapshot, gzip-encoded
//             when the scraper accepts it, streamed as it is rendered
//             (chunked to HTTP/1.1 clients)
//   /         status page (export/status_page.h)
//   /api/v1/  JSON views of the same snapshot (export/view.h)
//   /healthz  200 while the process serves requests
//   /readyz   200 once the log is open, the consumer assigned and the
//             projection rebuilt; 503 with the missing parts otherwise
//
// Thread-safety: requests are served on civetweb's worker threads; the
// SnapshotSource must be safe for concurrent Read() calls.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/web_config.h"
#include "export/metrics.h"

struct z_stream_s;  // zlib.h

namespace okrd::exporter {

// Whether an Accept-Encoding header value admits gzip ("gzip" or "*" with a
// non-zero q).
bool AcceptsGzip(absl::string_view accept_encoding);

// A gzip stream written a piece at a time (fastest level: scrapes are
// latency-bound). Compressed bytes go to `out` in pieces of up to 64 KiB as
// they are ready; `out` returns false when it cannot take them (the client
// left), and so do Write() and Finish() from then on.
class GzipWriter {
 public:
  explicit GzipWriter(std::function<bool(absl::string_view)> out);
  ~GzipWriter();
  GzipWriter(const GzipWriter&) = delete;
  GzipWriter& operator=(const GzipWriter&) = delete;

  bool Write(absl::string_view data);
  // Ends the stream (its trailer); nothing may be written after.
  bool Finish();

 private:
  bool Deflate(absl::string_view data, int flush);

  std::function<bool(absl::string_view)> out_;
  std::unique_ptr<z_stream_s> z_;
  std::string buffer_;
  bool ok_ = true;
};

// `data` as one gzip stream.
std::string Gzip(absl::string_view data);

class HttpServer {
 public:
  // Binds `listen` ("host:port"; port 0 picks a free one). With `web`
  // (--web.config.file), serves TLS and/or requires basic auth as it says;
  // a certificate or key OpenSSL refuses is an InvalidArgument error.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, SnapshotSource* source,
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
