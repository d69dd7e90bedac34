#ifndef OKRD_EXPORT_TEXT_FORMAT_H_
#define OKRD_EXPORT_TEXT_FORMAT_H_

// A purpose-built writer of the Prometheus text exposition format 0.0.4.
//
// prometheus-cpp's TextSerializer wants every sample as a ClientMetric (a
// vector of label strings per sample) and formats through an ostream; at a
// million series that costs more than the projection it renders. This writes
// each sample straight into its family's buffer: labels are string views,
// values are formatted by std::to_chars (shortest text that reads back as the
// same double), escaping follows the format's rules.
//
// Thread-safety: a TextFamilies is used by one thread at a time.

#include <deque>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace okrd::exporter {

using Label = std::pair<absl::string_view, absl::string_view>;

enum class MetricKind { kGauge, kCounter };

// One metric family: HELP and TYPE lines, then its samples.
class TextFamily {
 public:
  // Writes straight into `*sink`; nothing else may write there until the
  // last sample of this family is added.
  TextFamily(absl::string_view name, absl::string_view help, MetricKind kind,
             std::string* sink);
  // Keeps its own text, for families whose samples interleave with
  // another's.
  TextFamily(absl::string_view name, absl::string_view help, MetricKind kind)
      : TextFamily(name, help, kind, &own_) {}

  TextFamily(const TextFamily&) = delete;
  TextFamily& operator=(const TextFamily&) = delete;

  void Add(absl::Span<const Label> labels, double value);

  // The family's text, when it keeps its own.
  const std::string& text() const { return own_; }

 private:
  std::string own_;
  std::string name_;
  std::string* text_;
};

// Families that keep their own text, written out in the order they were
// added.
class TextFamilies {
 public:
  // References stay valid while more families are added.
  TextFamily& Add(absl::string_view name, absl::string_view help,
                  MetricKind kind);
  void AppendTo(std::string* out) const;
  std::string Render() const;

 private:
  std::deque<TextFamily> families_;
};

// Appends `value` as the text format writes sample values: NaN, +Inf, -Inf,
// or the shortest decimal that reads back as the same double.
void AppendValue(double value, std::string* out);

// Appends `value` escaped for a label value (backslash, quote, newline).
void AppendLabelValue(absl::string_view value, std::string* out);

}  // namespace okrd::exporter

#endif  // OKRD_EXPORT_TEXT_FORMAT_H_
