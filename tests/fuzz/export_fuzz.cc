// okrd's own exposition and HTTP code: label values escaped so that they
// read back as written, sample values that parse back to the same double,
// Accept-Encoding headers of any shape, and gzip bodies that inflate back.

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "export/http_server.h"
#include "export/text_format.h"
#include "fuzz/check.h"

namespace {

// Undoes AppendLabelValue's escaping of what sits between the quotes.
std::string Unescape(const std::string& quoted) {
  std::string out;
  for (size_t i = 0; i < quoted.size(); ++i) {
    if (quoted[i] != '\\') {
      FUZZ_CHECK(quoted[i] != '"' && quoted[i] != '\n');
      out.push_back(quoted[i]);
      continue;
    }
    FUZZ_CHECK(i + 1 < quoted.size());
    const char next = quoted[++i];
    FUZZ_CHECK(next == '\\' || next == '"' || next == 'n');
    out.push_back(next == 'n' ? '\n' : next);
  }
  return out;
}

std::string Gunzip(const std::string& gz) {
  z_stream z{};
  FUZZ_CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out;
  char buffer[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof(buffer);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - z.avail_out);
  }
  inflateEnd(&z);
  FUZZ_CHECK(rc == Z_STREAM_END);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  okrd::exporter::AcceptsGzip(input);

  std::string escaped;
  okrd::exporter::AppendLabelValue(input, &escaped);
  FUZZ_CHECK(Unescape(escaped) == input);

  if (size >= sizeof(double)) {
    double value;
    std::memcpy(&value, data, sizeof(value));
    std::string text;
    okrd::exporter::AppendValue(value, &text);
    if (std::isnan(value)) {
      FUZZ_CHECK(text == "NaN");
    } else {
      FUZZ_CHECK(std::strtod(text.c_str(), nullptr) == value ||
                 (std::isinf(value) && text == (value > 0 ? "+Inf" : "-Inf")));
    }
  }
  if (size < 4096) FUZZ_CHECK(Gunzip(okrd::exporter::Gzip(input)) == input);
  return 0;
}
