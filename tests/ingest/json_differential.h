#ifndef OKRD_TESTS_INGEST_JSON_DIFFERENTIAL_H_
#define OKRD_TESTS_INGEST_JSON_DIFFERENTIAL_H_

// Decodes one input with okrd's JSON decoder (ingest/json_event.h) and with
// protobuf's JsonStringToMessage, and says whether they agree: both reject,
// or both accept with equal events (doubles bit for bit). Where protobuf
// accepts what okrd rejects, the input is checked, independently of the
// decoder, for one of the README's intended differences. Shared by the
// differential unit test and the `json` fuzz target.

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "ingest/json_event.h"
#include "okrd/v1/kpi_event.pb.h"

namespace okrd::testing {

enum class Outcome {
  kBothAccept,
  kBothReject,
  kIntended,  // protobuf accepts, okrd rejects, for a listed reason
  kDisagree,
};

struct Comparison {
  Outcome outcome = Outcome::kDisagree;
  std::string intended;  // which difference, for kIntended
  std::string detail;    // what differs, for kDisagree
};

inline bool SameDouble(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

// An empty string when equal, else the first field that differs.
inline std::string FirstDifference(const okrd::v1::KpiEvent& a,
                                   const okrd::v1::KpiEvent& b) {
  if (a.event_id() != b.event_id()) return "event_id";
  if (a.kpi() != b.kpi()) return "kpi";
  if (a.subject() != b.subject()) return "subject";
  if (a.has_value() != b.has_value() || !SameDouble(a.value(), b.value())) {
    return absl::StrCat("value ", a.has_value(), ":", a.value(), " vs ",
                        b.has_value(), ":", b.value());
  }
  if (a.unit() != b.unit()) return "unit";
  if (a.has_event_time() != b.has_event_time() ||
      a.event_time().seconds() != b.event_time().seconds() ||
      a.event_time().nanos() != b.event_time().nanos()) {
    return absl::StrCat("event_time ", a.event_time().ShortDebugString(),
                        " vs ", b.event_time().ShortDebugString());
  }
  if (a.kind() != b.kind()) return "kind";
  if (a.corrects_event_id() != b.corrects_event_id()) {
    return "corrects_event_id";
  }
  if (a.source() != b.source()) return "source";
  const std::map<std::string, std::string> attributes_a(a.attributes().begin(),
                                                        a.attributes().end());
  const std::map<std::string, std::string> attributes_b(b.attributes().begin(),
                                                        b.attributes().end());
  if (attributes_a != attributes_b) return "attributes";
  return "";
}

// A strict RFC 8259 reader written for this check, sharing nothing with
// the decoder: grammar, escapes, UTF-8, and the top-level members' strings.
class StrictJson {
 public:
  struct Member {
    std::string key;
    bool is_string = false;
    bool is_null = false;
    std::string text;  // when is_string
    // An object holding a value other than a string or null.
    bool object_with_non_string = false;
  };

  explicit StrictJson(absl::string_view s) : s_(s) {}

  // Reads the whole input as one JSON value.
  bool Valid() {
    Space();
    if (!Value(0)) return false;
    Space();
    return at_ == s_.size();
  }
  // An integer literal (no fraction or exponent) beyond int64 and uint64.
  bool big_integer() const { return big_integer_; }
  const std::vector<Member>& members() const { return members_; }

 private:
  bool Peek(char c) const { return at_ < s_.size() && s_[at_] == c; }
  bool Eat(char c) {
    if (!Peek(c)) return false;
    ++at_;
    return true;
  }
  void Space() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' ||
                               s_[at_] == '\n' || s_[at_] == '\r')) {
      ++at_;
    }
  }
  bool Literal(absl::string_view word) {
    if (s_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  bool Value(int depth, Member* top = nullptr) {
    if (depth > 512 || at_ >= s_.size()) return false;
    const char c = s_[at_];
    if (c == '{') return Object(depth + 1, top);
    if (c == '[') return Array(depth + 1);
    if (c == '"') {
      std::string text;
      if (!String(&text)) return false;
      if (top != nullptr) {
        top->is_string = true;
        top->text = std::move(text);
      }
      return true;
    }
    if (c == 'n') {
      if (top != nullptr) top->is_null = true;
      return Literal("null");
    }
    if (c == 't') return Literal("true");
    if (c == 'f') return Literal("false");
    return Number();
  }

  // `owner`: the top-level member this object is the value of, if any.
  bool Object(int depth, Member* owner = nullptr) {
    ++at_;
    Space();
    if (Eat('}')) return true;
    while (true) {
      Member member;
      if (!Peek('"') || !String(&member.key)) return false;
      Space();
      if (!Eat(':')) return false;
      Space();
      if (owner != nullptr && !Peek('"') && !Peek('n')) {
        owner->object_with_non_string = true;
      }
      if (!Value(depth, depth == 1 ? &member : nullptr)) return false;
      if (depth == 1) members_.push_back(std::move(member));
      Space();
      if (Eat('}')) return true;
      if (!Eat(',')) return false;
      Space();
    }
  }

  bool Array(int depth) {
    ++at_;
    Space();
    if (Eat(']')) return true;
    while (true) {
      if (!Value(depth)) return false;
      Space();
      if (Eat(']')) return true;
      if (!Eat(',')) return false;
      Space();
    }
  }

  bool Number() {
    const size_t start = at_;
    const bool negative = Eat('-');
    auto digits = [&] {
      const size_t from = at_;
      while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
      return at_ - from;
    };
    if (Eat('0')) {
    } else if (digits() == 0) {
      return false;
    }
    bool integer = true;
    if (Eat('.')) {
      integer = false;
      if (digits() == 0) return false;
    }
    if (Eat('e') || Eat('E')) {
      integer = false;
      if (!Eat('+')) Eat('-');
      if (digits() == 0) return false;
    }
    if (integer) {
      const std::string token(s_.substr(start, at_ - start));
      errno = 0;
      if (negative) {
        (void)std::strtoll(token.c_str(), nullptr, 10);
      } else {
        (void)std::strtoull(token.c_str(), nullptr, 10);
      }
      if (errno == ERANGE) big_integer_ = true;
    }
    return true;
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool Hex4(uint32_t* out) {
    if (at_ + 4 > s_.size()) return false;
    *out = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = Hex(s_[at_++]);
      if (h < 0) return false;
      *out = *out * 16 + static_cast<uint32_t>(h);
    }
    return true;
  }
  static void Utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // One UTF-8 sequence at at_: shortest form, no surrogates, <= U+10FFFF.
  bool Utf8Sequence(std::string* out) {
    const auto lead = static_cast<unsigned char>(s_[at_]);
    int length;
    uint32_t cp;
    if (lead < 0x80) {
      length = 1;
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      cp = lead & 0x07;
    } else {
      return false;
    }
    if (at_ + length > s_.size()) return false;
    for (int i = 1; i < length; ++i) {
      const auto next = static_cast<unsigned char>(s_[at_ + i]);
      if ((next & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kShortest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kShortest[length] || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    out->append(s_.data() + at_, length);
    at_ += length;
    return true;
  }

  bool String(std::string* out) {
    ++at_;  // the opening quote
    while (at_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[at_]);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      if (c != '\\') {
        if (!Utf8Sequence(out)) return false;
        continue;
      }
      if (++at_ >= s_.size()) return false;
      const char e = s_[at_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (!Literal("\\u") || !Hex4(&low) || low < 0xDC00 ||
                low > 0xDFFF) {
              return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          Utf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  absl::string_view s_;
  size_t at_ = 0;
  bool big_integer_ = false;
  std::vector<Member> members_;
};

// The white space other than ' ' that strtod skips before a number and
// protobuf 3.21 after it ("\t12\r" is 12, " 12" is an error).
inline bool IsControlSpace(char c) { return c >= '\t' && c <= '\r'; }

// Why okrd may reject an input that protobuf accepts: each reason is a
// property of the input, found by StrictJson, not by okrd's decoder.
inline std::string IntendedDifference(absl::string_view input) {
  StrictJson json(input);
  if (!json.Valid()) return "not RFC 8259 JSON";
  if (json.big_integer()) return "integer literal beyond 64 bits";
  static const std::regex rfc3339(
      R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))");
  static const std::regex hexadecimal(R"([+-]?0[xX].*)");
  for (const StrictJson::Member& m : json.members()) {
    if ((m.key == "eventTime" || m.key == "event_time") && !m.is_null) {
      if (!m.is_string) return "timestamp not a string";
      if (!std::regex_match(m.text, rfc3339)) {
        return "timestamp without RFC 3339's fixed-width fields";
      }
    }
    if (m.key == "value" && m.is_string &&
        std::regex_match(m.text, hexadecimal)) {
      return "hexadecimal value string";
    }
    if (m.key == "value" && m.is_string &&
        m.text.find('\0') != std::string::npos) {
      return "value string with a NUL character";
    }
    if (m.key == "value" && m.is_string && !m.text.empty() &&
        (IsControlSpace(m.text.front()) || IsControlSpace(m.text.back()))) {
      return "value string with a tab or line break around the number";
    }
    if (m.key == "attributes" && m.object_with_non_string) {
      return "attributes value not a string";
    }
  }
  return "";
}

inline Comparison CompareWithProtobuf(absl::string_view input) {
  okrd::v1::KpiEvent ours;
  std::string error;
  const bool ours_ok = ingest::DecodeJsonEvent(input, &ours, &error);
  okrd::v1::KpiEvent theirs;
  // protobuf logs the invalid UTF-8 its parser lets through, then rejects.
  google::protobuf::LogSilencer quiet;
  const bool theirs_ok =
      google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(input.data(), input.size()), &theirs,
          google::protobuf::util::JsonParseOptions())
          .ok();
  Comparison c;
  if (ours_ok && theirs_ok) {
    c.detail = FirstDifference(ours, theirs);
    c.outcome = c.detail.empty() ? Outcome::kBothAccept : Outcome::kDisagree;
  } else if (!ours_ok && !theirs_ok) {
    c.outcome = Outcome::kBothReject;
  } else if (ours_ok) {
    c.detail = "okrd accepts what protobuf rejects";
  } else {
    c.intended = IntendedDifference(input);
    c.outcome = c.intended.empty() ? Outcome::kDisagree : Outcome::kIntended;
    c.detail = absl::StrCat("protobuf accepts what okrd rejects: ", error);
  }
  return c;
}

}  // namespace okrd::testing

#endif  // OKRD_TESTS_INGEST_JSON_DIFFERENTIAL_H_
