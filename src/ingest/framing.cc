#include "ingest/framing.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace okrd::ingest {
namespace {

constexpr char kMagic = 0x00;
constexpr size_t kHeaderBytes = 5;  // magic + schema id

// Reads a zig-zag varint of at most 10 bytes from `in`, advancing it.
bool ReadZigZag(absl::string_view* in, int64_t* out) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) return false;
    const uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *out =
          static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1);
      return true;
    }
  }
  return false;
}

}  // namespace

bool Unframe(absl::string_view message, bool json_hint, Frame* frame,
             std::string* detail) {
  *frame = Frame();
  frame->payload = message;
  if (message.empty() || message.front() != kMagic) return true;
  frame->framed = true;
  if (message.size() < kHeaderBytes) {
    *detail = absl::StrCat("schema registry frame truncated: ", message.size(),
                           " bytes, the header alone takes 5");
    return false;
  }
  for (size_t i = 1; i < kHeaderBytes; ++i) {
    frame->schema_id =
        (frame->schema_id << 8) | static_cast<uint8_t>(message[i]);
  }
  absl::string_view rest = message.substr(kHeaderBytes);
  const absl::string_view body = absl::StripLeadingAsciiWhitespace(rest);
  if (json_hint || (!body.empty() && body.front() == '{')) {
    frame->json = true;
    frame->payload = rest;
    return true;
  }
  int64_t count = 0;
  if (!ReadZigZag(&rest, &count)) {
    *detail = "schema registry frame: bad or truncated message-index count";
    return false;
  }
  if (count < 0 || count > 100) {
    *detail = absl::StrCat("schema registry frame: message-index count ", count,
                           " is not a count");
    return false;
  }
  for (int64_t i = 0; i < count; ++i) {
    int64_t index = 0;
    if (!ReadZigZag(&rest, &index)) {
      *detail = "schema registry frame: bad or truncated message index";
      return false;
    }
    // KpiEvent is the first message of its file: the path is [0].
    if (index != 0 || count != 1) {
      *detail = absl::StrCat(
          "schema registry frame names message ", index, " at depth ", i,
          " of ", count, "; KpiEvent is message 0 of okrd/v1/kpi_event.proto");
      return false;
    }
  }
  frame->payload = rest;
  return true;
}

std::string FrameMessage(uint32_t schema_id, bool json,
                         absl::string_view payload) {
  std::string out(1, kMagic);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((schema_id >> shift) & 0xff));
  }
  if (!json) out.push_back(kMagic);  // index list [0], as a count of 0
  out.append(payload.data(), payload.size());
  return out;
}

}  // namespace okrd::ingest
