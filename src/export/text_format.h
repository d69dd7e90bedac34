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
// The text goes out in pieces of about kPieceBytes, so an exposition of
// millions of series never has to be held whole: a family either hands its
// pieces to a TextSink as they fill, or keeps them (in pieces, never
// regrown and copied) until they are moved there.
//
// Thread-safety: a TextFamily or TextFamilies is used by one thread at a
// time.

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace okrd::exporter {

using Label = std::pair<absl::string_view, absl::string_view>;

enum class MetricKind { kGauge, kCounter };

// Labels escaped once for several samples that share them (a value and its
// period start, a subject's state series): written again as they are.
class LabelBlock {
 public:
  LabelBlock() = default;
  explicit LabelBlock(absl::Span<const Label> labels) { Set(labels); }
  void Set(absl::Span<const Label> labels);
  // The labels as written: `{a="x",b="y"` without the closing brace, or
  // empty. Kept elsewhere, it is written again as WrittenLabels.
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// A LabelBlock's text() kept elsewhere: a block for each of many samples,
// written once and read back in order.
struct WrittenLabels {
  absl::string_view text;
};

// How much text a family gathers before it hands on a piece.
inline constexpr size_t kPieceBytes = 256 << 10;

// Where an exposition goes: whole lines, in order, a piece at a time.
class TextSink {
 public:
  virtual ~TextSink() = default;
  virtual void Take(std::string piece) = 0;
};

// Gathers the pieces into one string.
class StringSink final : public TextSink {
 public:
  void Take(std::string piece) override {
    if (text_.empty()) {
      text_ = std::move(piece);
    } else {
      text_.append(piece);
    }
  }
  std::string& text() { return text_; }

 private:
  std::string text_;
};

// One metric family: HELP and TYPE lines, then its samples.
class TextFamily {
 public:
  // Hands its text to `*sink` as pieces fill, and the rest when destroyed;
  // nothing else may give `*sink` text while it lives.
  TextFamily(absl::string_view name, absl::string_view help, MetricKind kind,
             TextSink* sink);
  // Keeps its text until MoveTo(), for families whose samples interleave
  // with another's.
  TextFamily(absl::string_view name, absl::string_view help, MetricKind kind)
      : TextFamily(name, help, kind, nullptr) {}
  // More samples of family `name`, kept without its HELP and TYPE lines:
  // a part written beside the family's head, and spliced onto it.
  static TextFamily Continuing(absl::string_view name) {
    return TextFamily(name);
  }
  ~TextFamily();

  TextFamily(const TextFamily&) = delete;
  TextFamily& operator=(const TextFamily&) = delete;

  const std::string& name() const { return name_; }

  void Add(absl::Span<const Label> labels, double value) {
    AddWith(kNoLabels, labels, value);
  }
  // The labels of `shared`, then `labels`.
  void AddWith(WrittenLabels shared, absl::Span<const Label> labels,
               double value);
  void AddWith(const LabelBlock& shared, absl::Span<const Label> labels,
               double value) {
    AddWith(WrittenLabels{shared.text()}, labels, value);
  }
  void AddWith(const LabelBlock& shared, double value) {
    AddWith(shared, {}, value);
  }

  // Hands the text kept so far to `*sink`.
  void MoveTo(TextSink* sink);
  // Hands this family's text so far, then all of `rest` (a Continuing()
  // part of it), to its sink; needs a sink.
  void Splice(TextFamily& rest);

 private:
  // A part of a large family: full-sized pieces from the start.
  explicit TextFamily(absl::string_view name) : name_(name), sink_(nullptr) {
    piece_.reserve(kPieceBytes + 1024);
  }

  static const LabelBlock kNoLabels;

  void PieceFull();

  std::string name_;
  TextSink* sink_;
  std::vector<std::string> kept_;  // full pieces, without a sink
  std::string piece_;              // the piece being written
  std::string line_;               // room to write one sample's line in
};

// Families that keep their own text, written out in the order they were
// added.
class TextFamilies {
 public:
  // References stay valid while more families are added.
  TextFamily& Add(absl::string_view name, absl::string_view help,
                  MetricKind kind);
  void MoveTo(TextSink* sink);
  std::string Render();

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
