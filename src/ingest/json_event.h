#ifndef OKRD_INGEST_JSON_EVENT_H_
#define OKRD_INGEST_JSON_EVENT_H_

// A KpiEvent decoder for proto3 JSON, built on simdjson's DOM parser (its
// SIMD kernels are picked for the CPU at run time) for the ingest path's
// speed. It implements the proto3 JSON mapping for
// KpiEvent as protobuf's JsonStringToMessage (without ignore_unknown_fields)
// reads it, which tests/ingest/json_event_test.cc checks on generated and
// damaged inputs:
//
//   - field names in lowerCamelCase or as in the .proto, exact case;
//     an unknown field is an error;
//   - `null` leaves a field as it is; a repeated key: the last one wins,
//     except `value` (set twice is an error, as for any oneof member) and a
//     key repeated inside one `attributes` object; two `attributes` objects
//     merge;
//   - `value`: a number, or a string holding a decimal number, "NaN",
//     "Infinity" or "-Infinity"; an integer literal is read as an integer
//     first, so -0 is +0; out of double's range is an error;
//   - `kind`: an EventKind name, or an integral number in int32's range;
//   - `eventTime`: RFC 3339, "Z" or a +hh:mm offset, fractions beyond
//     nanoseconds cut off;
//   - `attributes`: an object of strings (null reads as "").
//
// Where it differs, on purpose, it is stricter than protobuf 3.21's lenient
// parser (the README lists each difference, and each has its own test):
// input must be RFC 8259 JSON (no single quotes, bare keys, trailing commas,
// unknown escapes or raw control characters in strings), integer literals
// must fit in 64 bits (write 1.2e30, not 1200...0), timestamps need RFC
// 3339's two-digit fields and a string form, and `value` strings are
// decimal, not hexadecimal.
//
// Thread-safe: each thread parses with its own buffers.

#include <string>

#include "absl/strings/string_view.h"
#include "okrd/v1/kpi_event.pb.h"

namespace okrd::ingest {

// Fills `event` (which must be empty) and returns true, or returns false
// with a one-line reason in `error` naming the field.
bool DecodeJsonEvent(absl::string_view json, okrd::v1::KpiEvent* event,
                     std::string* error);

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_JSON_EVENT_H_
