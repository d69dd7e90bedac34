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

void AppendHelp(absl::string_view help, std::string* out) {
  for (const char c : help) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

TextFamily::TextFamily(absl::string_view name, absl::string_view help,
                       MetricKind kind, std::string* sink)
    : name_(name), text_(sink) {
  text_->append("# HELP ").append(name_).push_back(' ');
  AppendHelp(help, text_);
  text_->append("\n# TYPE ").append(name_);
  text_->append(kind == MetricKind::kCounter ? " counter\n" : " gauge\n");
}

void TextFamily::Add(absl::Span<const Label> labels, double value) {
  std::string& text = *text_;
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
}

TextFamily& TextFamilies::Add(absl::string_view name, absl::string_view help,
                              MetricKind kind) {
  return families_.emplace_back(name, help, kind);
}

void TextFamilies::AppendTo(std::string* out) const {
  size_t size = out->size();
  for (const TextFamily& f : families_) size += f.text().size();
  out->reserve(size);
  for (const TextFamily& f : families_) out->append(f.text());
}

std::string TextFamilies::Render() const {
  std::string out;
  AppendTo(&out);
  return out;
}

}  // namespace okrd::exporter
