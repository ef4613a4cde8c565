// The runtime: one event-loop thread that spawns every child, drains every
// pipe and learns of every exit.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

namespace roadie {

namespace detail {
class RuntimeImpl;
}

struct RuntimeOptions {
  /// Make this process a child subreaper (PR_SET_CHILD_SUBREAPER), so that a
  /// service that daemonizes (double fork + setsid) is re-parented to us
  /// instead of init: roadie then finds it cheaply among its own children,
  /// reaps it, and CTest's timeout walk finds it too. Process-wide and never
  /// undone. Without it, stop() scans all of /proc for the marker.
  bool child_subreaper = true;
  /// Fork a watchdog process that outlives this one: if the process dies
  /// without destroying the runtime (SIGKILL, a crash), the watchdog kills
  /// what the runtime started, daemons included.
  bool watchdog = true;
};

/// Owns the event loop. Most code uses `Runtime::global()`; a separate runtime
/// is useful to isolate a group of processes (each has its own marker).
///
/// Every child gets the environment variable `ROADIE_SUPERVISOR` set to
/// `marker()` + "/" + a serial number. stop() finds descendants that left the
/// process group by that variable, compared exactly (never as a substring), so
/// one run can never stop another run's services.
///
/// Thread-safety: thread-safe. Any number of threads may spawn, wait for and
/// stop processes of one runtime at once; all waiting and I/O happens on its
/// event-loop thread.
class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  /// Processes keep the event loop alive: it ends when the runtime and every
  /// process spawned by it are gone.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// The process-wide runtime, created on first use.
  static Runtime& global();

  /// This runtime's marker: "<pid>.<random hex>".
  const std::string& marker() const noexcept;
  /// The watchdog process's pid (a child of this process), 0 without one.
  pid_t watchdog_pid() const noexcept;

  static constexpr std::string_view marker_variable = "ROADIE_SUPERVISOR";

  /// Internal.
  const std::shared_ptr<detail::RuntimeImpl>& impl() const noexcept { return impl_; }

 private:
  std::shared_ptr<detail::RuntimeImpl> impl_;
};

}  // namespace roadie
