#ifndef OKRD_CORE_PSEUDONYM_H_
#define OKRD_CORE_PSEUDONYM_H_

// Pseudonyms for subject ids that name people: a keyed HMAC-SHA256, so the
// same id always maps to the same pseudonym under one key, and without the
// key the mapping can neither be reversed nor recomputed. Thread-safe.

#include <string>

#include "absl/strings/string_view.h"

namespace okrd {

// "p-" followed by the first 16 hex digits of HMAC-SHA256(key, subject).
std::string Pseudonym(absl::string_view key, absl::string_view subject);

}  // namespace okrd

#endif  // OKRD_CORE_PSEUDONYM_H_
