// okrd's proto3 JSON decoder (ingest/json_event.h) against protobuf's
// JsonStringToMessage: on every input they agree (both reject, or both
// accept the same event), or the input is one of the README's intended
// differences, found by a reader independent of the decoder.

#include <cstdint>
#include <cstdio>

#include "absl/strings/string_view.h"
#include "fuzz/check.h"
#include "ingest/json_differential.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const okrd::testing::Comparison c = okrd::testing::CompareWithProtobuf(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  if (c.outcome == okrd::testing::Outcome::kDisagree) {
    std::fprintf(stderr, "json decoders disagree: %s\n", c.detail.c_str());
  }
  FUZZ_CHECK(c.outcome != okrd::testing::Outcome::kDisagree);
  return 0;
}
