// Thin wrappers over the Linux process interfaces roadie relies on: pidfds,
// waitid on a pidfd, /proc. All failures are reported as std::error_code or
// an empty result; the callers turn them into exceptions at the API edge.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "roadie/exit_status.hpp"

namespace roadie::detail {

/// A pidfd, closed on destruction.
class PidFd {
 public:
  PidFd() = default;
  explicit PidFd(int fd) noexcept : fd_(fd) {}
  PidFd(PidFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  PidFd& operator=(PidFd&& other) noexcept;
  PidFd(const PidFd&) = delete;
  PidFd& operator=(const PidFd&) = delete;
  ~PidFd();

  /// Opens a pidfd for `pid`; an invalid PidFd if the process is gone.
  static PidFd open(pid_t pid, std::error_code& ec) noexcept;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

/// Sends a signal through a pidfd (never reaches a process that reused the pid).
std::error_code send_signal(int pidfd, int signal) noexcept;

/// True when the process behind the pidfd has exited (it may still be a zombie).
bool has_exited(int pidfd) noexcept;

/// Waits until one of `pidfds` reports an exit or the deadline passes.
void wait_any_exit(const std::vector<int>& pidfds, std::chrono::steady_clock::time_point deadline);

/// What waitid says of our child behind a pidfd, without reaping it.
enum class ChildState {
  running,   ///< not exited (a wake-up that said otherwise was stale)
  exited,    ///< exited, a zombie still holding its pid: the status is known
  not_ours,  ///< not our child any more: somebody reaped it (or never ours)
};
struct ChildPeek {
  ChildState state = ChildState::running;
  ExitStatus status = ExitStatus::exited(-1);  ///< meaningful when `exited`
};
/// One waitid(P_PIDFD, WEXITED | WNOWAIT | WNOHANG): never reaps, never blocks.
ChildPeek peek_child(int pidfd) noexcept;
/// Reaps the exited child behind a pidfd (never a stranger that reused its pid);
/// no value when it is not our child or (unless `block`) has not exited.
std::optional<ExitStatus> reap_pidfd(int pidfd, bool block = false) noexcept;
/// Reaps an exited child; no value when it is not our child or not exited.
std::optional<ExitStatus> reap(pid_t pid, bool block) noexcept;

/// Processes that belong to a supervised process: members of process group
/// `pgid`, and processes whose environment holds exactly `marker_entry`
/// ("ROADIE_SUPERVISOR=..."). Looks only at our own children when
/// `children_only` (we are a subreaper, so escaped daemons are re-parented to
/// us), else at every process in /proc. Zombies are found by their group only.
std::vector<pid_t> attributed_processes(pid_t pgid, std::string_view marker_entry,
                                        bool children_only);

/// The same among `candidates` (a list from own_children() or all_pids()).
std::vector<pid_t> attributed_among(const std::vector<pid_t>& candidates, pid_t pgid,
                                    std::string_view marker_entry);

/// Every process in /proc.
std::vector<pid_t> all_pids();

/// True when `pid` is (still) attributed to the supervised process.
bool is_attributed(pid_t pid, pid_t pgid, std::string_view marker_entry);

/// Every process whose environment has a `variable` whose value is exactly
/// `value` or starts with `value` + "/" (for leak checks in tests).
std::vector<pid_t> processes_with_marker(std::string_view variable, std::string_view value);

/// The value of `variable` in a process's environment (as /proc shows it),
/// empty when absent or unreadable.
std::string environ_value(pid_t pid, std::string_view variable);

/// Our own children (all threads), zombies included.
std::vector<pid_t> own_children();

/// Fields of /proc/PID/stat.
struct ProcStat {
  char state = 0;  ///< 'R', 'S', 'Z', ...
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  unsigned long long start = 0;  ///< start time, clock ticks since boot
};
/// No value when the process is gone.
std::optional<ProcStat> proc_stat(pid_t pid);

/// Now, in the unit and clock of ProcStat::start (CLOCK_BOOTTIME, clock ticks).
unsigned long long ticks_now() noexcept;

/// The command name of `pid` (/proc/PID/comm), empty if gone.
std::string process_name(pid_t pid);

/// Process group of `pid`, 0 if gone.
pid_t process_group(pid_t pid);

/// Process state letter from /proc/PID/stat ('R', 'S', 'Z', ...), 0 if gone.
char process_state(pid_t pid);

/// In a freshly forked or vforked child: every signal to its default
/// (`ignored`, when not 0, to SIG_IGN), then all unblocked. Raw system calls
/// (the kernel's sigaction, no sanitizer interceptor): async-signal-safe, and
/// writes nothing but the stack.
void reset_signals_in_child(int ignored) noexcept;

/// Makes this process a child subreaper. Returns false if refused.
bool make_child_subreaper() noexcept;

}  // namespace roadie::detail
