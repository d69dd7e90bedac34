#include "core/pseudonym.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace okrd {

std::string Pseudonym(absl::string_view key, absl::string_view subject) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(subject.data()), subject.size(),
       digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "p-";
  for (unsigned int i = 0; i < 8 && i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace okrd
