#include "core/utf8.h"

#include "google/protobuf/stubs/common.h"

namespace okrd {

std::string ValidUtf8(absl::string_view text) {
  std::string out(text);
  // Protobuf's own check, so that what passes here also parses there. It
  // leaves `out` alone when `text` is valid, and otherwise writes all of the
  // coerced text into it.
  google::protobuf::internal::UTF8CoerceToStructurallyValid(
      google::protobuf::StringPiece(text.data(), text.size()), out.data(), '?');
  return out;
}

}  // namespace okrd
