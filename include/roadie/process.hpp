// A supervised child process: spawned into its own process group, its output
// drained continuously, its exit learned by an event, and stopped (group and
// escaped descendants) with an escalating signal sequence.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/command.hpp"
#include "roadie/exit_status.hpp"
#include "roadie/output.hpp"
#include "roadie/runtime.hpp"
#include "roadie/subscription.hpp"

namespace roadie {

namespace detail {
struct ProcessState;
}

/// How to stop: send `signal` to the process group and to descendants that left
/// it, wait up to `grace` for all of them to exit, then send `kill_signal` and
/// wait for the rest. Durations are taken literally (no time scale).
struct StopOptions {
  int signal = SIGTERM;
  std::chrono::milliseconds grace{10'000};
  int kill_signal = SIGKILL;
};

struct ProcessOptions {
  /// A name for messages and logs; defaults to the program's file name.
  std::string name;
  OutputOptions output;
  /// Used by stop() without arguments and by the destructor.
  StopOptions stop;
  /// Called for every output line, from the very first (installed before the
  /// pipes are read), on the event-loop thread.
  std::function<void(const Line&)> on_line;
};

/// A running (or finished) child process. Move-only; destroying a handle stops
/// the process (as stop()) and never throws.
///
/// The exited child stays a zombie until stop(), kill() or the destructor reaps
/// it: its pid and process group id stay reserved meanwhile, so a group signal
/// can never reach a stranger that reused the id.
///
/// Thread-safety: every const member, stop() and kill() may be called from any
/// thread at any time (stop() and kill() run one at a time; the first one to
/// finish decides the status, later ones return it). Moving, assigning and
/// destroying a handle must not race with other uses of that handle.
class Process {
 public:
  /// Starts `command` and returns once exec succeeded. Throws SpawnError when
  /// the program is missing or not executable, the working directory is bad,
  /// or the fork fails; the message names the command and the system reason.
  static Process spawn(const Command& command, ProcessOptions options = {},
                       Runtime& runtime = Runtime::global());

  Process() = default;  ///< An empty handle: valid() is false.
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();

  bool valid() const noexcept { return state_ != nullptr; }
  pid_t pid() const noexcept;
  const std::string& name() const noexcept;
  const Command& command() const noexcept;

  /// True until the process exits (an exit is known within microseconds).
  bool running() const;
  /// Asks the kernel now whether the process has exited, before the event
  /// loop may have announced it (under a sanitizer that can take a while).
  bool exited_now() const;
  /// The exit status once the process exited.
  std::optional<ExitStatus> exit_status() const;

  /// Waits for the process to exit. Everything it wrote before exiting is in
  /// output() when this returns.
  ExitStatus wait() const;
  /// wait() for at most `timeout` (any duration type: a huge one, such as
  /// hours::max(), waits for ever instead of overflowing). No value on timeout.
  template <class Rep, class Period>
  std::optional<ExitStatus> wait_for(std::chrono::duration<Rep, Period> timeout) const {
    return wait_for_ns(saturated_ns(timeout));
  }

  /// Sends a signal to the process group. No effect once the process is reaped.
  void signal(int signal) const;

  /// Stops the process group and its escaped descendants (see StopOptions),
  /// reaps what it can, closes the pipes after draining them, and returns the
  /// leader's exit status. Idempotent: later calls return the same status.
  ExitStatus stop() { return stop(options_stop()); }
  ExitStatus stop(const StopOptions& options);
  /// stop() with the kill signal at once.
  ExitStatus kill();
  /// The position in output() where the exit was published: every line with
  /// a smaller `seq` was written while the process ran (its last lines are
  /// drained before its exit is announced). The maximum while it runs.
  std::uint64_t exit_seq() const;
  /// True when the process had already exited when stop() (or kill()) was
  /// first called: nothing roadie sent ended it.
  bool exited_before_stop() const;
  /// True once stop()'s escalation or kill() sent the kill signal: a death by
  /// that signal is then roadie's doing, not a stranger's (`kill -9`, the
  /// OOM killer).
  bool kill_signal_sent() const noexcept;

  /// The captured output (valid as long as this handle is).
  Output& output() const;
  /// The captured output, kept alive as long as the pointer is held (the
  /// handle, the runtime and the process may go meanwhile).
  std::shared_ptr<Output> output_handle() const;

  /// Calls `on_exit` once when the process exits: on the event-loop thread, or
  /// on the thread running stop() if that one learns of the exit first (at
  /// once, on this thread, if it already has).
  Subscription on_exit(std::function<void(const ExitStatus&)> on_exit) const;

  /// Live processes started by this one (directly or not) that roadie can
  /// attribute to it: members of its process group and processes carrying its
  /// marker.
  std::vector<pid_t> descendants() const;

  /// The full value of this process's ROADIE_SUPERVISOR variable.
  const std::string& marker() const noexcept;

 private:
  Process(std::shared_ptr<detail::RuntimeImpl> runtime, std::shared_ptr<detail::ProcessState> s);
  const StopOptions& options_stop() const;
  std::optional<ExitStatus> wait_for_ns(std::chrono::nanoseconds timeout) const;

  std::shared_ptr<detail::RuntimeImpl> runtime_;
  std::shared_ptr<detail::ProcessState> state_;
};

}  // namespace roadie
