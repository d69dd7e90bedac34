#include "config/web_config.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace okrd::config {
namespace {

// exporter-toolkit resolves relative file names against the web config's
// directory.
std::string Resolve(const std::string& source_path, const std::string& file) {
  const std::filesystem::path p(file);
  if (p.is_absolute()) return file;
  return (std::filesystem::path(source_path).parent_path() / p).string();
}

void ReadTls(Reader& r, const YAML::Node& node, WebConfig* out) {
  const std::string path = "tls_server_config";
  if (!r.Map(node, path,
             {"cert_file", "key_file", "client_auth_type", "client_ca_file",
              "min_version", "max_version"})) {
    return;
  }
  const auto cert = r.String(node, path, "cert_file", true);
  const auto key = r.String(node, path, "key_file", true);
  if (!cert || !key) return;
  out->cert_file = Resolve(out->source_path, *cert);
  out->key_file = Resolve(out->source_path, *key);
  for (const auto& [field, file] : {std::pair{"cert_file", &out->cert_file},
                                    std::pair{"key_file", &out->key_file}}) {
    if (!std::ifstream(*file)) {
      r.Fail(node[field], absl::StrCat(path, ".", field),
             absl::StrCat("cannot read \"", *file, "\""));
      return;
    }
  }
  if (const auto ca = r.String(node, path, "client_ca_file", false)) {
    out->client_ca_file = Resolve(out->source_path, *ca);
    if (!std::ifstream(out->client_ca_file)) {
      r.Fail(node["client_ca_file"], path + ".client_ca_file",
             absl::StrCat("cannot read \"", out->client_ca_file, "\""));
      return;
    }
  }
  r.Choice<ClientAuth>(
      node, path, "client_auth_type",
      {{"NoClientCert", ClientAuth::kNone},
       {"RequestClientCert", ClientAuth::kRequest},
       {"RequireAnyClientCert", ClientAuth::kRequire},
       {"VerifyClientCertIfGiven", ClientAuth::kVerifyIfGiven},
       {"RequireAndVerifyClientCert", ClientAuth::kRequireVerify}},
      &out->client_auth);
  const bool verifies = out->client_auth == ClientAuth::kVerifyIfGiven ||
                        out->client_auth == ClientAuth::kRequireVerify;
  if (r.ok() && verifies && out->client_ca_file.empty()) {
    r.Fail(node["client_auth_type"], path + ".client_auth_type",
           "verifying client certificates needs client_ca_file");
  }
  const std::vector<std::pair<std::string, int>> versions = {
      {"TLS10", TLS1_VERSION},
      {"TLS11", TLS1_1_VERSION},
      {"TLS12", TLS1_2_VERSION},
      {"TLS13", TLS1_3_VERSION}};
  out->min_version = TLS1_2_VERSION;
  r.Choice<int>(node, path, "min_version", versions, &out->min_version);
  r.Choice<int>(node, path, "max_version", versions, &out->max_version);
  if (r.ok() && out->max_version != 0 && out->max_version < out->min_version) {
    r.Fail(node["max_version"], path + ".max_version", "is below min_version");
  }
}

void ReadUsers(Reader& r, const YAML::Node& node, WebConfig* out) {
  const std::string path = "basic_auth_users";
  if (!node.IsMap()) {
    r.Fail(node, path, "expected a mapping of user names to bcrypt hashes");
    return;
  }
  for (const auto& entry : node) {
    const std::string user = entry.first.Scalar();
    const std::string field = absl::StrCat(path, ".", user);
    if (user.empty() || absl::StrContains(user, ':')) {
      r.Fail(entry.first, field, "user names must be non-empty, without ':'");
      return;
    }
    if (!entry.second.IsScalar() ||
        !(absl::StartsWith(entry.second.Scalar(), "$2a$") ||
          absl::StartsWith(entry.second.Scalar(), "$2b$") ||
          absl::StartsWith(entry.second.Scalar(), "$2y$"))) {
      r.Fail(entry.second, field,
             "expected a bcrypt hash ($2a$, $2b$ or $2y$; see htpasswd -nB)");
      return;
    }
    out->users[user] = entry.second.Scalar();
  }
}

}  // namespace

absl::StatusOr<WebConfig> ParseWebConfig(const std::string& yaml,
                                         const std::string& source_path) {
  Reader r(source_path);
  WebConfig out;
  out.source_path = source_path;
  try {
    const YAML::Node root = YAML::Load(yaml);
    if (!root || root.IsNull()) return out;  // an empty file: plain HTTP
    if (!r.Map(root, "", {"tls_server_config", "basic_auth_users"})) {
      return r.status();
    }
    if (const YAML::Node tls = root["tls_server_config"]; tls) {
      ReadTls(r, tls, &out);
    }
    if (const YAML::Node users = root["basic_auth_users"]; users && r.ok()) {
      ReadUsers(r, users, &out);
    }
  } catch (const YAML::Exception& e) {
    r.FailAtLine(e.mark.line + 1, "(document)",
                 absl::StrCat("invalid YAML: ", e.msg));
  }
  if (!r.ok()) return r.status();
  return out;
}

absl::StatusOr<WebConfig> LoadWebConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open web config file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseWebConfig(text.str(), path);
}

bool CheckPassword(absl::string_view hash, absl::string_view password) {
  crypt_data data{};
  const std::string phrase(password);
  const std::string setting(hash);
  const char* computed = crypt_r(phrase.c_str(), setting.c_str(), &data);
  // crypt_r returns a string starting with '*' on failure.
  if (computed == nullptr || computed[0] == '*') return false;
  const size_t n = setting.size();
  return std::strlen(computed) == n &&
         CRYPTO_memcmp(computed, setting.data(), n) == 0;
}

}  // namespace okrd::config
