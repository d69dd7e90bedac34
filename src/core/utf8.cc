#include "core/utf8.h"

#include "google/protobuf/stubs/common.h"

namespace okrd {

std::string ValidUtf8(absl::string_view text) {
  std::string out(text.size(), '\0');
  // Protobuf's own check, so that what passes here also parses there.
  const char* valid = google::protobuf::internal::UTF8CoerceToStructurallyValid(
      google::protobuf::StringPiece(text.data(), text.size()), out.data(), '?');
  if (valid == text.data()) return std::string(text);
  return out;
}

}  // namespace okrd
