#include "export/tls_frontend.h"

#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "core/log.h"
#include "spdlog/spdlog.h"

namespace okrd::exporter {
namespace {

constexpr int kIoTimeoutMs = 10000;

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return code == 0 ? "unknown error" : text;
}

// Request/RequireAny client auth: a certificate is asked for, any accepted.
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

absl::Status Configure(SSL_CTX* ctx, const config::WebConfig& web) {
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(web.source_path, ": ", what, ": ", OpenSslError()));
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, web.cert_file.c_str()) != 1) {
    return fail(absl::StrCat("tls_server_config.cert_file ", web.cert_file));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, web.key_file.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return fail(absl::StrCat("tls_server_config.key_file ", web.key_file));
  }
  SSL_CTX_set_min_proto_version(ctx, web.min_version);
  SSL_CTX_set_max_proto_version(ctx, web.max_version);
  if (!web.client_ca_file.empty() &&
      SSL_CTX_load_verify_locations(ctx, web.client_ca_file.c_str(), nullptr) !=
          1) {
    return fail(
        absl::StrCat("tls_server_config.client_ca_file ", web.client_ca_file));
  }
  switch (web.client_auth) {
    case config::ClientAuth::kNone:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
      break;
    case config::ClientAuth::kRequest:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, AcceptAnyCertificate);
      break;
    case config::ClientAuth::kRequire:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         AcceptAnyCertificate);
      break;
    case config::ClientAuth::kVerifyIfGiven:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      break;
    case config::ClientAuth::kRequireVerify:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         nullptr);
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Listen(const std::string& listen) {
  std::string host;
  int port = 0;
  if (absl::Status s = config::ParseHostPort(listen, &host, &port); !s.ok()) {
    return s;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = absl::StrCat(port);
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                 service.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(absl::StrCat(
        "http.listen ", listen, ": cannot resolve: ", gai_strerror(rc)));
  }
  const int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0);
  const int one = 1;
  const bool ok =
      fd >= 0 &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
      bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
      ::listen(fd, 128) == 0;
  const int error = errno;
  freeaddrinfo(found);
  if (!ok) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(absl::StrCat(
        "http.listen ", listen, ": cannot listen: ", std::strerror(error)));
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

int ConnectBackend(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 &&
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return fd;
  }
  if (fd >= 0) close(fd);
  return -1;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

struct TlsFrontend::Context {
  SSL_CTX* ctx = nullptr;
  ~Context() { SSL_CTX_free(ctx); }
};

absl::StatusOr<std::unique_ptr<TlsFrontend>> TlsFrontend::Start(
    const std::string& listen, const config::WebConfig& web, int backend_port) {
  auto context = std::make_unique<Context>();
  context->ctx = SSL_CTX_new(TLS_server_method());
  if (context->ctx == nullptr) {
    return absl::InternalError(absl::StrCat("TLS: ", OpenSslError()));
  }
  if (absl::Status s = Configure(context->ctx, web); !s.ok()) return s;
  absl::StatusOr<int> fd = Listen(listen);
  if (!fd.ok()) return fd.status();
  auto frontend = std::unique_ptr<TlsFrontend>(new TlsFrontend());
  frontend->context_ = std::move(context);
  frontend->listen_fd_ = *fd;
  frontend->port_ = BoundPort(*fd);
  frontend->backend_port_ = backend_port;
  frontend->acceptor_ = std::thread([f = frontend.get()] { f->AcceptLoop(); });
  return frontend;
}

TlsFrontend::~TlsFrontend() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* active) { return *active == 0; }, &active_));
}

void TlsFrontend::AcceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    {
      absl::MutexLock lock(&mu_);
      if (active_ >= kMaxConnections) {
        close(client);
        continue;
      }
      ++active_;
    }
    std::thread([this, client] {
      Serve(client);
      absl::MutexLock lock(&mu_);
      --active_;
    }).detach();
  }
}

void TlsFrontend::Serve(int client) {
  timeval timeout{kIoTimeoutMs / 1000, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  SSL* ssl = SSL_new(context_->ctx);
  SSL_set_fd(ssl, client);
  int backend = -1;
  if (SSL_accept(ssl) != 1) {
    spdlog::debug("TLS handshake failed: {}", OpenSslError());
  } else if ((backend = ConnectBackend(backend_port_)) < 0) {
    spdlog::warn("TLS: cannot reach the HTTP server on 127.0.0.1:{}",
                 backend_port_);
  } else {
    // Relay until the server has sent its whole response (it closes every
    // connection) or a side goes quiet for kIoTimeoutMs.
    char buf[16384];
    bool client_open = true;
    while (!stop_.load()) {
      pollfd p[2] = {{backend, POLLIN, 0}, {client, POLLIN, 0}};
      const bool pending = client_open && SSL_pending(ssl) > 0;
      if (!pending && poll(p, client_open ? 2 : 1, kIoTimeoutMs) <= 0) break;
      if (pending || (client_open && (p[1].revents & (POLLIN | POLLHUP)))) {
        const int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) {
          client_open = false;
          shutdown(backend, SHUT_WR);
        } else if (!WriteAll(backend, buf, static_cast<size_t>(n))) {
          break;
        }
      }
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = read(backend, buf, sizeof(buf));
        if (n <= 0 || SSL_write(ssl, buf, static_cast<int>(n)) <= 0) break;
      }
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  if (backend >= 0) close(backend);
  close(client);
}

}  // namespace okrd::exporter
