// The YAML config loader and the web config loader: never crash, and every
// error is one line.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "config/web_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    // Relative files it names are looked up beside a directory that does
    // not exist.
    auto web = okrd::config::ParseWebConfig(text, "/nonexistent/web.yml");
    if (!web.ok() && web.status().message().find('\n') != std::string::npos) {
      std::abort();
    }
    return 0;
  }
  auto config = okrd::config::ParseConfig(text, "fuzz.yaml");
  if (!config.ok() &&
      config.status().message().find('\n') != std::string::npos) {
    std::abort();
  }
  return 0;
}
