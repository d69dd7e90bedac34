#ifndef OKRD_TOOLS_OKRCTL_PROGRESS_H_
#define OKRD_TOOLS_OKRCTL_PROGRESS_H_

// Progress of a long okrctl operation (replay, import) on stderr: on a
// terminal one line redrawn in place with a bar, the rate and the time
// left; otherwise a plain line a second, for logs. Throttled: Update() is
// cheap enough to call per record.
//
// Thread-safety: one thread.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace okrd::okrctl {

class Progress {
 public:
  // `what` names the operation ("replay"), `unit` what `done` and `total`
  // count ("records", "bytes").
  Progress(std::string what, std::string unit, uint64_t total)
      : what_(std::move(what)),
        unit_(std::move(unit)),
        total_(total),
        tty_(isatty(STDERR_FILENO) != 0) {}

  void Update(uint64_t done) {
    if ((++calls_ & 0x3ff) != 0 || absl::Now() < next_) return;
    next_ = absl::Now() + (tty_ ? absl::Milliseconds(250) : absl::Seconds(1));
    Print(done);
  }
  // The last state, and the end of the redrawn line.
  void Finish(uint64_t done) {
    if (!started_) return;
    Print(done);
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  void Print(uint64_t done) {
    started_ = true;
    const double share =
        total_ == 0 ? 1
                    : static_cast<double>(done) / static_cast<double>(total_);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    const double left = rate > 0 && total_ > done
                            ? static_cast<double>(total_ - done) / rate
                            : 0;
    if (tty_) {
      const int width = 30;
      const int filled = static_cast<int>(std::min(share, 1.0) * width);
      std::fprintf(stderr, "\r%s [%s%s] %llu/%llu %s, %.0f/s, %.0f s left   ",
                   what_.c_str(), std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(),
                   static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(total_), unit_.c_str(), rate,
                   left);
    } else {
      std::fprintf(stderr, "%s: %llu/%llu %s (%.1f%%), %.0f/s, %.0f s left\n",
                   what_.c_str(), static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(total_), unit_.c_str(),
                   100 * share, rate, left);
    }
  }

  std::string what_;
  std::string unit_;
  uint64_t total_;
  bool tty_;
  bool started_ = false;
  uint64_t calls_ = 0;
  absl::Time start_ = absl::Now();
  absl::Time next_ = absl::Now() + absl::Seconds(1);
};

}  // namespace okrd::okrctl

#endif  // OKRD_TOOLS_OKRCTL_PROGRESS_H_
