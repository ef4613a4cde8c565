// Thin wrappers over the Linux process interfaces roadie relies on: one owning
// descriptor type, pidfds, waitid, and one reader of /proc. A process that is
// gone is an empty result; a failure that would make a look silently blind
// (no free descriptors, no memory) is thrown as std::system_error, so that
// stop() can never mistake "could not look" for "nothing there".
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "roadie/exit_status.hpp"

namespace roadie::detail {

/// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// waitid's id type for a pidfd (Linux 5.4; glibc 2.36 may not name it).
inline constexpr idtype_t kPidFdIdType = static_cast<idtype_t>(3);

/// True for the errors that mean "out of descriptors or memory", as opposed
/// to "that process is gone".
bool is_resource_shortage(int error) noexcept;

/// A pidfd for `pid`; invalid with `ec` set if it cannot be had (ESRCH: gone).
UniqueFd open_pidfd(pid_t pid, std::error_code& ec) noexcept;

/// waitid() retried on EINTR. Returns 0 or the errno. Async-signal-safe.
int waitid_retry(idtype_t type, id_t id, siginfo_t& info, int flags) noexcept;

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
/// Reaps an exited child by pid; no value when it is not our child or not exited.
std::optional<ExitStatus> reap(pid_t pid, bool block) noexcept;

/// Fields of /proc/PID/stat.
struct ProcStat {
  char state = 0;  ///< 'R', 'S', 'Z', ...
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  unsigned long long start = 0;  ///< start time, clock ticks since boot
};
/// Parses the text of /proc/PID/stat. Async-signal-safe (the watchdog uses it).
bool parse_stat(const char* data, std::size_t size, ProcStat& stat) noexcept;
/// No value when the process is gone; throws std::system_error on a shortage.
std::optional<ProcStat> proc_stat(pid_t pid);

/// Now, in the unit and clock of ProcStat::start (CLOCK_BOOTTIME, clock ticks).
unsigned long long ticks_now() noexcept;

/// Finds, in a NUL-separated environment read in pieces of any size, an entry
/// that starts with a needle. No allocation: async-signal-safe.
class EntryPrefixMatcher {
 public:
  EntryPrefixMatcher(const char* needle, std::size_t size) noexcept
      : needle_(needle), size_(size) {}
  /// Feeds the next piece; true once a matching entry was seen.
  bool feed(const char* data, std::size_t size) noexcept;
  bool found() const noexcept { return found_; }

 private:
  const char* needle_;
  std::size_t size_;
  std::size_t matched_ = 0;
  bool in_entry_ = false;  // past the first byte of an entry that did not match
  bool found_ = false;
};

/// Calls `f(entry)` for each "NAME=value" of a NUL-separated environment until
/// it returns true.
template <class F>
void for_each_entry(std::string_view data, F&& f) {
  while (!data.empty()) {
    const auto nul = data.find('\0');
    if (f(data.substr(0, nul))) return;
    if (nul == std::string_view::npos) return;
    data.remove_prefix(nul + 1);
  }
}

/// The value of `variable` in a process's environment (as /proc shows it, read
/// in full), empty when absent or the process is gone; throws on a shortage.
std::string environ_value(pid_t pid, std::string_view variable);

/// Processes that belong to a supervised process: members of process group
/// `pgid`, and processes whose environment holds exactly `marker_entry`
/// ("ROADIE_SUPERVISOR=..."), among `candidates` (a list from own_children()
/// or all_pids()). Zombies are found by their group only.
std::vector<pid_t> attributed_among(const std::vector<pid_t>& candidates, pid_t pgid,
                                    std::string_view marker_entry);
/// The same looking only at our own children when `children_only` (we are a
/// subreaper, so escaped daemons are re-parented to us), else at all of /proc.
std::vector<pid_t> attributed_processes(pid_t pgid, std::string_view marker_entry,
                                        bool children_only);

/// True when `pid` is (still) attributed to the supervised process.
bool is_attributed(pid_t pid, pid_t pgid, std::string_view marker_entry);

/// Every process in /proc; throws on a shortage.
std::vector<pid_t> all_pids();

/// Our own children (all threads), zombies included, sorted; throws on a shortage.
std::vector<pid_t> own_children();

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
