#ifndef OKRD_EXPORT_TLS_FRONTEND_H_
#define OKRD_EXPORT_TLS_FRONTEND_H_

// Terminates TLS for okrd's HTTP endpoints. It accepts TLS connections on the
// configured address (OpenSSL, settings from the web config), and relays
// each one, decrypted, to the HTTP server listening on a loopback port only
// it knows.
//
// Why not civetweb's own TLS: Debian 12's libcivetweb loads libssl at run
// time by the OpenSSL 1.1 names, and calls SSL_get_peer_certificate, which
// OpenSSL 3 no longer exports, on every TLS connection: a null call.
//
// Thread-safety: Start/destructor from one thread; one accept thread plus a
// thread per connection (at most kMaxConnections), each owning its sockets.

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "config/web_config.h"

namespace okrd::exporter {

class TlsFrontend {
 public:
  static constexpr int kMaxConnections = 64;

  // Listens on `listen` ("host:port"; port 0 picks one) and relays to
  // 127.0.0.1:`backend_port`. A certificate, key or CA file OpenSSL refuses
  // is an InvalidArgument error naming the web config field.
  static absl::StatusOr<std::unique_ptr<TlsFrontend>> Start(
      const std::string& listen, const config::WebConfig& web,
      int backend_port);

  // Stops accepting and waits for the connections in flight.
  ~TlsFrontend();
  TlsFrontend(const TlsFrontend&) = delete;
  TlsFrontend& operator=(const TlsFrontend&) = delete;

  int port() const { return port_; }

 private:
  TlsFrontend() = default;
  void AcceptLoop();
  void Serve(int client);

  struct Context;
  std::unique_ptr<Context> context_;
  int listen_fd_ = -1;
  int port_ = 0;
  int backend_port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace okrd::exporter

#endif  // OKRD_EXPORT_TLS_FRONTEND_H_
