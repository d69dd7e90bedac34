#ifndef OKRD_CORE_ARGS_H_
#define OKRD_CORE_ARGS_H_

// A small command-line parser shared by okrd and okrctl. Accepts
// "--name value", "--name=value", boolean "--name", and positionals. Unknown
// flags and missing values are errors naming the flag.
//
// Thread-safety: not thread-safe; parse once in main.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace okrd {

class Args {
 public:
  // `valued` flags take a value; `switches` do not. Names without "--".
  // Repeated valued flags keep every value (see All()).
  Args(std::set<std::string> valued, std::set<std::string> switches)
      : valued_(std::move(valued)), switches_(std::move(switches)) {}

  absl::Status Parse(const std::vector<std::string>& argv);

  bool Has(const std::string& name) const { return values_.contains(name); }
  std::optional<std::string> Get(const std::string& name) const;
  std::vector<std::string> All(const std::string& name) const;
  // Integer value of `name`, or `fallback` when absent; error when not an
  // integer in [min, max].
  absl::Status GetInt(const std::string& name, long long min, long long max,
                      long long fallback, long long* out) const;
  // Every "KEY=VALUE" given to the repeated flag `name`, into `out` (a later
  // key wins); error naming the flag when a value has no "=".
  absl::Status GetPairs(const std::string& name,
                        std::map<std::string, std::string>* out) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::set<std::string> valued_;
  std::set<std::string> switches_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace okrd

#endif  // OKRD_CORE_ARGS_H_
