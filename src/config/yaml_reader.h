#ifndef OKRD_CONFIG_YAML_READER_H_
#define OKRD_CONFIG_YAML_READER_H_

// Reads typed fields out of a yaml-cpp tree for okrd's config files and
// remembers the first problem as "FILE:LINE: field: problem", the one error
// line okrd prints for a bad file.
//
// Thread-safety: one Reader per parse.

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/time_util.h"
#include "yaml-cpp/yaml.h"

namespace okrd::config {

// Walks the YAML tree and remembers the first problem with its position.
// Callers keep yaml-cpp's exceptions inside their parse function.
class Reader {
 public:
  explicit Reader(absl::string_view source) : source_(source) {}

  bool ok() const { return !error_.has_value(); }
  absl::Status status() const {
    return error_ ? absl::InvalidArgumentError(*error_) : absl::OkStatus();
  }

  // Records a problem at `node`'s position unless one is already recorded.
  void Fail(const YAML::Node& node, absl::string_view field,
            absl::string_view problem) {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    Record(absl::StrCat(source_, ":", line > 0 ? absl::StrCat(line) : "?", ": ",
                        field, ": ", problem));
  }
  void FailAtLine(int line, absl::string_view field,
                  absl::string_view problem) {
    Record(absl::StrCat(source_, ":", line, ": ", field, ": ", problem));
  }

  // `text` quoted for an error line: a value that runs over several lines or
  // on and on is cut after 60 bytes (at a character boundary).
  static std::string Quote(absl::string_view text) {
    constexpr size_t kShown = 60;
    if (text.size() <= kShown) return absl::StrCat("\"", text, "\"");
    size_t cut = kShown;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;  // inside a UTF-8 sequence: leave all of it out
    }
    return absl::StrCat("\"", text.substr(0, cut), "...\"");
  }

  // A mapping node whose keys are all in `allowed`.
  bool Map(const YAML::Node& node, const std::string& path,
           const std::set<std::string>& allowed) {
    if (!node.IsMap()) {
      Fail(node, path, "expected a mapping");
      return false;
    }
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      if (!allowed.contains(key)) {
        Fail(entry.first, Join(path, key),
             absl::StrCat("unknown field (expected one of ",
                          absl::StrJoin(allowed, ", "), ")"));
        return false;
      }
    }
    return true;
  }

  std::optional<std::string> String(const YAML::Node& parent,
                                    const std::string& path,
                                    const std::string& key, bool required) {
    const YAML::Node node = parent[key];
    if (!node) {
      if (required) Fail(parent, Join(path, key), "required field is missing");
      return std::nullopt;
    }
    if (!node.IsScalar()) {
      Fail(node, Join(path, key), "expected a string");
      return std::nullopt;
    }
    if (required && node.Scalar().empty()) {
      Fail(node, Join(path, key), "must not be empty");
      return std::nullopt;
    }
    return node.Scalar();
  }

  void Int(const YAML::Node& parent, const std::string& path,
           const std::string& key, int min, int max, int* out) {
    auto text = String(parent, path, key, false);
    if (!text) return;
    int value = 0;
    if (!absl::SimpleAtoi(*text, &value) || value < min || value > max) {
      Fail(parent[key], Join(path, key),
           absl::StrCat("expected an integer in [", min, ", ", max, "], got ",
                        Quote(*text)));
      return;
    }
    *out = value;
  }

  // Returns true when the field was present and parsed.
  bool Double(const YAML::Node& parent, const std::string& path,
              const std::string& key, double* out) {
    auto text = String(parent, path, key, false);
    if (!text) return false;
    double value = 0;
    if (!absl::SimpleAtod(*text, &value) || !std::isfinite(value)) {
      Fail(parent[key], Join(path, key),
           absl::StrCat("expected a finite number, got ", Quote(*text)));
      return false;
    }
    *out = value;
    return true;
  }

  void Size(const YAML::Node& parent, const std::string& path,
            const std::string& key, size_t* out) {
    int value = static_cast<int>(*out);
    Int(parent, path, key, 1, 1 << 30, &value);
    *out = static_cast<size_t>(value);
  }

  void Bool(const YAML::Node& parent, const std::string& path,
            const std::string& key, bool* out) {
    auto text = String(parent, path, key, false);
    if (!text) return;
    if (*text == "true") {
      *out = true;
    } else if (*text == "false") {
      *out = false;
    } else {
      Fail(parent[key], Join(path, key),
           absl::StrCat("expected true or false, got ", Quote(*text)));
    }
  }

  void Duration(const YAML::Node& parent, const std::string& path,
                const std::string& key, absl::Duration* out) {
    auto text = String(parent, path, key, false);
    if (!text) return;
    absl::StatusOr<absl::Duration> parsed = ParseHumanDuration(*text);
    if (!parsed.ok()) {
      Fail(parent[key], Join(path, key), parsed.status().message());
      return;
    }
    *out = *parsed;
  }

  void StringList(const YAML::Node& parent, const std::string& path,
                  const std::string& key, std::vector<std::string>* out) {
    const YAML::Node node = parent[key];
    if (!node) return;
    if (!node.IsSequence()) {
      Fail(node, Join(path, key), "expected a list of strings");
      return;
    }
    out->clear();
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar() || node[i].Scalar().empty()) {
        Fail(node[i], absl::StrCat(Join(path, key), "[", i, "]"),
             "expected a non-empty string");
        return;
      }
      out->push_back(node[i].Scalar());
    }
  }

  template <typename Enum>
  void Choice(const YAML::Node& parent, const std::string& path,
              const std::string& key,
              const std::vector<std::pair<std::string, Enum>>& choices,
              Enum* out) {
    auto text = String(parent, path, key, false);
    if (!text) return;
    std::vector<std::string> names;
    for (const auto& [name, value] : choices) {
      if (name == *text) {
        *out = value;
        return;
      }
      names.push_back(name);
    }
    Fail(parent[key], Join(path, key),
         absl::StrCat("unknown value ", Quote(*text), " (expected one of ",
                      absl::StrJoin(names, ", "), ")"));
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : absl::StrCat(path, ".", key);
  }

 private:
  // Keeps the first problem, on one line whatever the file quoted into it.
  void Record(std::string error) {
    if (error_) return;
    for (char& c : error) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    error_ = std::move(error);
  }

  std::string source_;
  std::optional<std::string> error_;
};

}  // namespace okrd::config

#endif  // OKRD_CONFIG_YAML_READER_H_
