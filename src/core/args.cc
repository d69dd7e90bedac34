#include "core/args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace okrd {

absl::Status Args::Parse(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      positional_.insert(positional_.end(), argv.begin() + i + 1, argv.end());
      break;
    }
    if (!arg.starts_with("--")) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (switches_.contains(name)) {
      if (value) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      }
      values_[name].push_back("true");
    } else if (valued_.contains(name)) {
      if (!value) {
        if (i + 1 >= argv.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("--", name, " needs a value"));
        }
        value = argv[++i];
      }
      values_[name].push_back(*value);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see --help)"));
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Args::All(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::Status Args::GetInt(const std::string& name, long long min, long long max,
                          long long fallback, long long* out) const {
  const std::optional<std::string> text = Get(name);
  if (!text) {
    *out = fallback;
    return absl::OkStatus();
  }
  long long value = 0;
  if (!absl::SimpleAtoi(*text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": expected an integer in [", min, ", ", max,
                     "], got \"", *text, "\""));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status Args::GetPairs(const std::string& name,
                            std::map<std::string, std::string>* out) const {
  for (const std::string& pair : All(name)) {
    const size_t eq = pair.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " wants KEY=VALUE, got \"", pair, "\""));
    }
    (*out)[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return absl::OkStatus();
}

}  // namespace okrd
