// How a process ended.
#pragma once

#include <string>

namespace roadie {

/// The end of a process: a normal exit with a code, or death by a signal.
/// `code()` folds both into one integer: the exit code, or -N for signal N.
class ExitStatus {
 public:
  static constexpr ExitStatus exited(int code) noexcept { return ExitStatus(code, 0); }
  static constexpr ExitStatus killed(int signal) noexcept { return ExitStatus(0, signal); }

  constexpr bool is_exited() const noexcept { return signal_ == 0; }
  constexpr bool is_signaled() const noexcept { return signal_ != 0; }
  /// The exit code, or -N when killed by signal N.
  constexpr int code() const noexcept { return signal_ != 0 ? -signal_ : code_; }
  /// The signal that ended the process, 0 if it exited.
  constexpr int signal() const noexcept { return signal_; }
  constexpr bool success() const noexcept { return signal_ == 0 && code_ == 0; }

  /// "exited with code 3" or "killed by signal 9 (SIGKILL)".
  std::string describe() const;

  friend constexpr bool operator==(const ExitStatus&, const ExitStatus&) = default;

 private:
  constexpr ExitStatus(int code, int signal) noexcept : code_(code), signal_(signal) {}
  int code_;
  int signal_;
};

/// The conventional name of a signal ("SIGTERM"), or "signal N" if unknown.
std::string signal_name(int signal);

}  // namespace roadie
