// The watchdog: a small process, forked from the runtime, that outlives the
// test binary. If the test binary dies without saying goodbye (SIGKILL, a
// crash, the OOM killer), it kills what the runtime started: its children die
// by PR_SET_PDEATHSIG anyway, but daemons that were re-parented to us would be
// re-parented to init and run on.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace roadie::detail {

class Watchdog {
 public:
  /// Forks the watchdog for the runtime with `marker`. Returns nullptr (after
  /// a warning) when the system refuses; roadie then runs without one.
  static std::unique_ptr<Watchdog> start(const std::string& marker);

  /// Says goodbye (the watchdog exits without touching anything) and reaps it.
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// A process to kill, with its process group if it leads one, should the
  /// test binary die. Identified by pid and start time, so a recycled pid is
  /// never mistaken for it.
  void guard(pid_t pid) noexcept;
  /// The process was reaped: nothing to do for it any more.
  void forget(pid_t pid) noexcept;

  pid_t pid() const noexcept { return pid_; }

 private:
  Watchdog(pid_t pid, int pidfd, int socket) : pid_(pid), pidfd_(pidfd), socket_(socket) {}
  void send(int op, pid_t pid, unsigned long long start) noexcept;

  pid_t pid_;
  int pidfd_;
  int socket_;
};

/// True for the watchdog of any runtime in this process.
bool is_watchdog(pid_t pid);

/// A process's start time (clock ticks since boot, /proc/PID/stat field 22),
/// process group and state letter. False if it is gone. Async-signal-safe:
/// raw system calls and a buffer on the stack.
bool start_time_of(pid_t pid, unsigned long long& ticks, pid_t& pgrp, char& state) noexcept;

}  // namespace roadie::detail
