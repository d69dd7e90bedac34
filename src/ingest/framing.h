#ifndef OKRD_INGEST_FRAMING_H_
#define OKRD_INGEST_FRAMING_H_

// The Confluent Schema Registry wire format, which producers using
// Confluent-compatible serializers wrap around each message:
//
//   byte 0      0x00 (magic)
//   bytes 1-4   schema id, big-endian
//   protobuf:   the message-index list: a zig-zag varint count, then that
//               many zig-zag varints (a count of 0, one 0x00 byte, means
//               [0], the first message of the schema's file)
//   then        the payload, protobuf or JSON as without the frame
//
// A raw KpiEvent never starts with 0x00 (field number 0 is invalid) and raw
// JSON never does either, so a leading 0x00 always means a frame. JSON
// frames carry no index list; a payload whose first byte after the schema
// id (past whitespace) is '{' is read as one.
//
// Pure functions; safe from any thread.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace okrd::ingest {

struct Frame {
  bool framed = false;
  uint32_t schema_id = 0;
  bool json = false;          // a JSON frame (no index list)
  absl::string_view payload;  // the message inside the frame, or all of it
};

// Splits `message` into its frame and payload. Unframed messages come back
// whole with framed = false. With `json_hint` (a JSON content type or
// topic) a frame is read as a JSON frame. Returns false, with a one-line
// `detail`, when the frame is truncated, a varint is bad, or the index
// list does not name KpiEvent (message 0 of kpi_event.proto).
bool Unframe(absl::string_view message, bool json_hint, Frame* frame,
             std::string* detail);

// `payload` framed as a producer with schema id `schema_id` frames it.
std::string FrameMessage(uint32_t schema_id, bool json,
                         absl::string_view payload);

}  // namespace okrd::ingest

#endif  // OKRD_INGEST_FRAMING_H_
