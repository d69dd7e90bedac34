#ifndef OKRD_CONFIG_WEB_CONFIG_H_
#define OKRD_CONFIG_WEB_CONFIG_H_

// The web config file (`okrd --web.config.file FILE`), in the format of the
// Prometheus exporter-toolkit that node_exporter and friends read:
//
//   tls_server_config:
//     cert_file: server.crt          # PEM; relative paths are relative to
//     key_file: server.key           # the web config file
//     client_auth_type: RequireAndVerifyClientCert   # optional
//     client_ca_file: ca.crt         # needed by the Verify types
//     min_version: TLS12             # TLS10..TLS13, default TLS12
//     max_version: TLS13
//   basic_auth_users:
//     alice: $2y$10$...              # bcrypt hashes (htpasswd -nB alice)
//
// Every endpoint then needs TLS and, with users configured, HTTP basic auth.
// Fields okrd does not implement are errors, never silently ignored.
//
// Thread-safety: a loaded WebConfig is immutable; CheckPassword is
// thread-safe.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace okrd::config {

enum class ClientAuth {
  kNone,           // NoClientCert
  kRequest,        // RequestClientCert: asked for, not verified
  kRequire,        // RequireAnyClientCert: required, not verified
  kVerifyIfGiven,  // VerifyClientCertIfGiven
  kRequireVerify,  // RequireAndVerifyClientCert
};

struct WebConfig {
  std::string source_path;
  // TLS is on when cert_file is set.
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  ClientAuth client_auth = ClientAuth::kNone;
  // OpenSSL protocol versions (TLS1_2_VERSION...); max 0 means no limit.
  int min_version = 0;
  int max_version = 0;
  // User name -> bcrypt hash.
  std::map<std::string, std::string> users;

  bool tls() const { return !cert_file.empty(); }
};

// Reads and validates `path`; errors are one line "FILE:LINE: field:
// problem".
absl::StatusOr<WebConfig> LoadWebConfig(const std::string& path);
absl::StatusOr<WebConfig> ParseWebConfig(const std::string& yaml,
                                         const std::string& source_path);

// Whether `password` matches the bcrypt `hash` ($2a$, $2b$ or $2y$).
bool CheckPassword(absl::string_view hash, absl::string_view password);

}  // namespace okrd::config

#endif  // OKRD_CONFIG_WEB_CONFIG_H_
