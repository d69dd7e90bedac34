#include "export/text_format.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace okrd::exporter {

namespace {

// The longest text WriteValue writes: a sign, 17 digits, a point and an
// exponent such as "e-308".
constexpr size_t kValueRoom = 32;

// Copies `size` bytes, between one and two `Word`s, as two words that may
// overlap.
template <typename Word>
inline void PutTwoWords(const char* from, size_t size, char* out) {
  Word head, tail;
  std::memcpy(&head, from, sizeof(Word));
  std::memcpy(&tail, from + size - sizeof(Word), sizeof(Word));
  std::memcpy(out, &head, sizeof(Word));
  std::memcpy(out + size - sizeof(Word), &tail, sizeof(Word));
}

// Copies `size` bytes to `out`; returns the end. The runs a line is made
// of (names, label values) are short: they are copied inline, where a call
// to memmove for each cost more than the copy.
inline char* Put(const char* from, size_t size, char* out) {
  if (size > 16) {
    std::memcpy(out, from, size);
  } else if (size >= 8) {
    PutTwoWords<uint64_t>(from, size, out);
  } else if (size >= 4) {
    PutTwoWords<uint32_t>(from, size, out);
  } else {
    for (size_t i = 0; i < size; ++i) out[i] = from[i];
  }
  return out + size;
}

inline char* Put(absl::string_view text, char* out) {
  return Put(text.data(), text.size(), out);
}

// Doubles below this magnitude that are whole are integers exactly, and
// so is every double between them: no shorter digits name the same value.
constexpr double kExactWhole = 9007199254740992.0;  // 2^53

// Writes `value` at `out`; returns the end. The text is std::to_chars'
// shortest form.
char* WriteValue(double value, char* out) {
  // Most values are whole (timestamps, counts, the 0 and 1 of state
  // series): written as integers, which is to_chars' form for them unless
  // they end in five zeros or more (1e+06 is shorter than 1000000) or are
  // -0.
  if (value > -kExactWhole && value < kExactWhole) {
    const auto whole = static_cast<int64_t>(value);
    if (static_cast<double>(whole) == value && whole % 100000 != 0) {
      return std::to_chars(out, out + kValueRoom, whole).ptr;
    }
    if (value == 0 && !std::signbit(value)) {
      *out = '0';
      return out + 1;
    }
  }
  if (std::isnan(value)) return std::copy_n("NaN", 3, out);
  if (std::isinf(value))
    return std::copy_n(value > 0 ? "+Inf" : "-Inf", 4, out);
  return std::to_chars(out, out + kValueRoom, value).ptr;
}

// The bytes a label value escapes.
constexpr std::array<bool, 256> kEscaped = [] {
  std::array<bool, 256> escaped{};
  escaped['\\'] = escaped['"'] = escaped['\n'] = true;
  return escaped;
}();

// Whether any byte of `word` is `byte` (exact as a yes or no).
constexpr bool HasByte(uint64_t word, unsigned char byte) {
  constexpr uint64_t kOnes = 0x0101010101010101;
  constexpr uint64_t kHighs = 0x8080808080808080;
  const uint64_t x = word ^ (kOnes * byte);
  return ((x - kOnes) & ~x & kHighs) != 0;
}

// Whether `value` has a byte that escapes: eight bytes at a time, the
// last word overlapping the one before it.
inline bool Escapes(absl::string_view value) {
  const char* const c = value.data();
  const size_t size = value.size();
  const auto any = [](uint64_t word) {
    return HasByte(word, '\\') || HasByte(word, '"') || HasByte(word, '\n');
  };
  uint64_t word = 0;  // a zero byte escapes nothing
  if (size >= 8) {
    for (size_t i = 0; i + 8 < size; i += 8) {
      std::memcpy(&word, c + i, 8);
      if (any(word)) return true;
    }
    std::memcpy(&word, c + size - 8, 8);
  } else if (size >= 4) {
    uint32_t head, tail;
    std::memcpy(&head, c, 4);
    std::memcpy(&tail, c + size - 4, 4);
    word = head | uint64_t{tail} << 32;
  } else {
    for (size_t i = 0; i < size; ++i) {
      word |= uint64_t{static_cast<unsigned char>(c[i])} << (8 * i);
    }
  }
  return any(word);
}

// Writes `value`, which has a byte that escapes, escaped at `out`;
// returns the end.
[[gnu::noinline]] char* WriteEscaped(absl::string_view value, char* out) {
  const char* plain = value.data();
  const char* const end = value.data() + value.size();
  for (const char* c = plain; c != end; ++c) {
    if (!kEscaped[static_cast<unsigned char>(*c)]) continue;
    out = Put(plain, c - plain, out);
    *out++ = '\\';
    *out++ = *c == '\n' ? 'n' : *c;
    plain = c + 1;
  }
  return Put(plain, end - plain, out);
}

// Writes `value` escaped at `out`, which has room for twice its size;
// returns the end. Most values escape nothing and are copied whole.
inline char* WriteLabelValue(absl::string_view value, char* out) {
  if (!Escapes(value)) return Put(value, out);
  return WriteEscaped(value, out);
}

// The room `labels` take at most, escaped, with their separators.
size_t LabelRoom(absl::Span<const Label> labels) {
  size_t room = 0;
  for (const auto& [name, value] : labels) {
    room += name.size() + 4 + 2 * value.size();  // ,name="value"
  }
  return room;
}

// Writes `labels` at `out`, each after `separator` and then a comma; returns
// the end.
char* WriteLabels(absl::Span<const Label> labels, char separator, char* out) {
  for (const auto& [name, value] : labels) {
    *out++ = separator;
    out = Put(name, out);
    *out++ = '=';
    *out++ = '"';
    out = WriteLabelValue(value, out);
    *out++ = '"';
    separator = ',';
  }
  return out;
}

}  // namespace

void AppendValue(double value, std::string* out) {
  char buffer[kValueRoom];
  out->append(buffer, WriteValue(value, buffer));
}

void AppendLabelValue(absl::string_view value, std::string* out) {
  const size_t size = out->size();
  out->resize(size + 2 * value.size());
  char* const start = out->data() + size;
  out->resize(size + (WriteLabelValue(value, start) - start));
}

void LabelBlock::Set(absl::Span<const Label> labels) {
  text_.resize(LabelRoom(labels));
  text_.resize(WriteLabels(labels, '{', text_.data()) - text_.data());
}

const LabelBlock TextFamily::kNoLabels;

namespace {

// Appends the plain runs between escapes whole: a family's help is written
// once per scrape, but the fuzzers build every family once per input.
void AppendHelp(absl::string_view help, std::string* out) {
  size_t plain = 0;
  for (size_t i = 0; i < help.size(); ++i) {
    const char c = help[i];
    if (c != '\\' && c != '\n') continue;
    out->append(help.data() + plain, i - plain);
    out->append(c == '\\' ? "\\\\" : "\\n");
    plain = i + 1;
  }
  out->append(help.data() + plain, help.size() - plain);
}

}  // namespace

TextFamily::TextFamily(absl::string_view name, absl::string_view help,
                       MetricKind kind, TextSink* sink)
    : name_(name), sink_(sink) {
  piece_.append("# HELP ").append(name_).push_back(' ');
  AppendHelp(help, &piece_);
  piece_.append("\n# TYPE ").append(name_);
  piece_.append(kind == MetricKind::kCounter ? " counter\n" : " gauge\n");
}

TextFamily::~TextFamily() {
  if (sink_ != nullptr) MoveTo(sink_);
}

void TextFamily::AddWith(WrittenLabels shared, absl::Span<const Label> labels,
                         double value) {
  // The line is written into room sized for it, then appended whole: one
  // bounds check and one copy instead of one per part.
  const size_t room =
      name_.size() + shared.text.size() + LabelRoom(labels) + kValueRoom + 3;
  if (line_.size() < room) line_.resize(std::max(room, size_t{256}));
  char* out = Put(name_, line_.data());
  out = Put(shared.text, out);
  out = WriteLabels(labels, shared.text.empty() ? '{' : ',', out);
  if (!shared.text.empty() || !labels.empty()) *out++ = '}';
  *out++ = ' ';
  out = WriteValue(value, out);
  *out++ = '\n';
  piece_.append(line_.data(), out);
  if (piece_.size() >= kPieceBytes) PieceFull();
}

void TextFamily::PieceFull() {
  if (sink_ != nullptr) {
    sink_->Take(std::move(piece_));
  } else {
    kept_.push_back(std::move(piece_));
  }
  // A family that filled one piece is a large one: give the next its full
  // size at once (a small family's only piece grows as it needs).
  piece_ = std::string();
  piece_.reserve(kPieceBytes + 1024);
}

void TextFamily::Splice(TextFamily& rest) {
  if (!piece_.empty()) {
    sink_->Take(std::move(piece_));
    piece_ = std::string();
    piece_.reserve(kPieceBytes + 1024);
  }
  rest.MoveTo(sink_);
}

void TextFamily::MoveTo(TextSink* sink) {
  for (std::string& piece : kept_) sink->Take(std::move(piece));
  kept_.clear();
  if (!piece_.empty()) sink->Take(std::move(piece_));
  piece_ = std::string();
}

TextFamily& TextFamilies::Add(absl::string_view name, absl::string_view help,
                              MetricKind kind) {
  return families_.emplace_back(name, help, kind);
}

void TextFamilies::MoveTo(TextSink* sink) {
  for (TextFamily& f : families_) f.MoveTo(sink);
}

std::string TextFamilies::Render() {
  StringSink sink;
  MoveTo(&sink);
  return std::move(sink.text());
}

}  // namespace okrd::exporter
