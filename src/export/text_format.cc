#include "export/text_format.h"

#include <charconv>
#include <cmath>

namespace okrd::exporter {

void AppendValue(double value, std::string* out) {
  if (std::isnan(value)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(value)) {
    out->append(value > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buffer[32];
  const std::to_chars_result r =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, r.ptr);
}

void AppendLabelValue(absl::string_view value, std::string* out) {
  size_t plain = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out->append(value.data() + plain, i - plain);
    out->append(c == '\\' ? "\\\\" : c == '"' ? "\\\"" : "\\n");
    plain = i + 1;
  }
  out->append(value.data() + plain, value.size() - plain);
}

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

void TextFamily::Add(absl::Span<const Label> labels, double value) {
  std::string& text = piece_;
  text.append(name_);
  if (!labels.empty()) {
    char separator = '{';
    for (const auto& [name, label_value] : labels) {
      text.push_back(separator);
      text.append(name.data(), name.size()).append("=\"");
      AppendLabelValue(label_value, &text);
      text.push_back('"');
      separator = ',';
    }
    text.push_back('}');
  }
  text.push_back(' ');
  AppendValue(value, &text);
  text.push_back('\n');
  if (text.size() >= kPieceBytes) PieceFull();
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
