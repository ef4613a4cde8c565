// STATE/lock: one owner per state directory. Whoever brings a stack up into a
// state directory (foreground `up`, `run`, the detached supervisor) holds an
// flock on STATE/lock for as long as the stack is up; a second one is refused
// with a message naming the holder. The lock file records the holder (pid,
// verb, stack file) for that message; the kernel drops the lock when the
// holder dies, SIGKILL included, so a crashed owner never blocks the next.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

namespace roadie::cli {

class StateLock {
 public:
  /// Takes STATE/lock (creating the directory) and records this process as
  /// its holder. On failure returns none after printing why on stderr
  /// ("roadie VERB: a stack is already running in DIR: FILE (... pid N)", or
  /// the system error); the verb then exits 3.
  static std::optional<StateLock> take(const std::filesystem::path& state_dir, const char* verb,
                                       const std::filesystem::path& stack_file);
  StateLock(StateLock&& other) noexcept;
  StateLock& operator=(StateLock&&) = delete;
  StateLock(const StateLock&) = delete;
  ~StateLock();

  /// Records `pid` as the holder (up --detach: its supervisor).
  void record(pid_t pid, const char* verb, const std::filesystem::path& stack_file) const;
  /// The descriptor (O_CLOEXEC), to hand the lock on to the supervisor.
  int fd() const noexcept { return fd_; }
  /// Gives the descriptor up without unlocking or closing it.
  int release() noexcept;

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

/// "a stack is already running in DIR: FILE (supervisor pid N)" or
/// "... : roadie run of FILE (pid N)": from the state file when there is one,
/// else from the lock file's record.
std::string describe_running(const std::filesystem::path& state_dir);

/// `roadie VERB: warning: ...` on stderr when the stack file recorded in a
/// state file changed (or is gone) since the stack was brought up.
void warn_if_stack_file_changed(const char* verb, const std::string& stack_file,
                                const std::string& recorded_hash);

}  // namespace roadie::cli
