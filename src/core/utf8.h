#ifndef OKRD_CORE_UTF8_H_
#define OKRD_CORE_UTF8_H_

// Untrusted bytes (a Kafka header, a parser quoting its input) end up in log
// lines and in proto3 `string` fields of stored records. Protobuf refuses to
// parse a string field that is not UTF-8, so one such record would make the
// rejected log unreadable; they are made UTF-8 before they are kept.

#include <string>

#include "absl/strings/string_view.h"

namespace okrd {

// `text` with each byte that is not part of well-formed UTF-8 replaced by '?'.
std::string ValidUtf8(absl::string_view text);

}  // namespace okrd

#endif  // OKRD_CORE_UTF8_H_
