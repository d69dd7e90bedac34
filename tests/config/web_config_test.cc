#include "config/web_config.h"

#include <openssl/ssl.h>

#include <string>

#include "gtest/gtest.h"

namespace okrd::config {
namespace {

const std::string kTls = std::string(OKRD_SOURCE_DIR) + "/tests/testdata/tls";
// bcrypt (cost 5) of "s3cret".
constexpr char kHash[] =
    "$2b$05$LZzM133rkoheZNi8uWrDQOCSdBDAjAbETu45YXlXCEQ9oeOYajQXm";

std::string ErrorOf(const std::string& yaml) {
  auto web = ParseWebConfig(yaml, kTls + "/web.yml");
  if (web.ok()) return "ok";
  return std::string(web.status().message());
}

TEST(WebConfigTest, ReadsTlsAndUsersWithPathsRelativeToTheFile) {
  auto web = ParseWebConfig(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: server.key\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  client_ca_file: other.crt\n"
      "  min_version: TLS13\n"
      "basic_auth_users:\n"
      "  alice: " +
          std::string(kHash) + "\n",
      kTls + "/web.yml");
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_TRUE(web->tls());
  EXPECT_EQ(web->cert_file, kTls + "/server.crt");
  EXPECT_EQ(web->key_file, kTls + "/server.key");
  EXPECT_EQ(web->client_ca_file, kTls + "/other.crt");
  EXPECT_EQ(web->client_auth, ClientAuth::kRequireVerify);
  EXPECT_EQ(web->min_version, TLS1_3_VERSION);
  EXPECT_EQ(web->max_version, 0);
  EXPECT_EQ(web->users.at("alice"), kHash);
}

TEST(WebConfigTest, EmptyFileMeansPlainHttp) {
  auto web = ParseWebConfig("", "web.yml");
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_FALSE(web->tls());
  EXPECT_TRUE(web->users.empty());
}

TEST(WebConfigTest, ErrorsNameFileLineAndField) {
  const std::string path = kTls + "/web.yml";
  EXPECT_EQ(ErrorOf("tls_server_config:\n  cert_file: server.crt\n"
                    "  key_file: server.key\n  cipher_suites: [x]\n"),
            path +
                ":4: tls_server_config.cipher_suites: unknown field (expected "
                "one of cert_file, client_auth_type, client_ca_file, "
                "key_file, max_version, min_version)");
  EXPECT_EQ(ErrorOf("tls_server_config:\n  cert_file: server.crt\n"),
            path + ":2: tls_server_config.key_file: required field is missing");
  EXPECT_EQ(ErrorOf("tls_server_config:\n  cert_file: nope.crt\n"
                    "  key_file: server.key\n"),
            path + ":2: tls_server_config.cert_file: cannot read \"" + kTls +
                "/nope.crt\"");
  EXPECT_EQ(ErrorOf("tls_server_config:\n  cert_file: server.crt\n"
                    "  key_file: server.key\n  min_version: TLS14\n"),
            path +
                ":4: tls_server_config.min_version: unknown value \"TLS14\" "
                "(expected one of TLS10, TLS11, TLS12, TLS13)");
  EXPECT_EQ(ErrorOf("tls_server_config:\n  cert_file: server.crt\n"
                    "  key_file: server.key\n  min_version: TLS13\n"
                    "  max_version: TLS12\n"),
            path + ":5: tls_server_config.max_version: is below min_version");
  EXPECT_EQ(ErrorOf("tls_server_config:\n  cert_file: server.crt\n"
                    "  key_file: server.key\n"
                    "  client_auth_type: VerifyClientCertIfGiven\n"),
            path +
                ":4: tls_server_config.client_auth_type: verifying client "
                "certificates needs client_ca_file");
  EXPECT_EQ(ErrorOf("basic_auth_users:\n  alice: plaintext\n"),
            path +
                ":2: basic_auth_users.alice: expected a bcrypt hash ($2a$, "
                "$2b$ or $2y$; see htpasswd -nB)");
  EXPECT_EQ(ErrorOf("http_server_config:\n  http2: false\n"),
            path +
                ":1: http_server_config: unknown field (expected one of "
                "basic_auth_users, tls_server_config)");
  EXPECT_EQ(ErrorOf("basic_auth_users: [alice]\n"),
            path +
                ":1: basic_auth_users: expected a mapping of user names to "
                "bcrypt hashes");
  EXPECT_EQ(LoadWebConfig("/nonexistent/web.yml").status().message(),
            "/nonexistent/web.yml: cannot open web config file");
}

TEST(WebConfigTest, ChecksBcryptPasswords) {
  EXPECT_TRUE(CheckPassword(kHash, "s3cret"));
  EXPECT_FALSE(CheckPassword(kHash, "s3cret "));
  EXPECT_FALSE(CheckPassword(kHash, ""));
  EXPECT_FALSE(CheckPassword("$2b$05$broken", "s3cret"));
  EXPECT_FALSE(CheckPassword("", ""));
}

}  // namespace
}  // namespace okrd::config
