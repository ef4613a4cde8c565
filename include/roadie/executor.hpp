// Executors: one supervised service each. start() returns when the service is
// ready (or throws with a diagnosis), stop() escalates, the destructor cleans up.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/command.hpp"
#include "roadie/exit_status.hpp"
#include "roadie/output.hpp"
#include "roadie/ready.hpp"
#include "roadie/subscription.hpp"

namespace roadie {

class Executor;
class Runtime;

/// How an executor runs its service. Durations are stretched by
/// ROADIE_TIME_SCALE (see clock.hpp).
struct ExecutorOptions {
  /// For messages and events; defaults to the program's file name.
  std::string name;
  /// Start deadline: spawn to ready.
  std::chrono::milliseconds timeout{30'000};
  /// Grace between the stop signal and the kill signal.
  std::chrono::milliseconds stop_timeout{10'000};
  int stop_signal = SIGTERM;
  int kill_signal = SIGKILL;
  /// Exit codes stop() accepts besides 0 and death by the stop or kill signal.
  std::vector<int> expected_exit_codes;
  /// Variables set over the inherited environment (or over nothing, with
  /// `replace_env`).
  std::map<std::string, std::string> env;
  bool replace_env = false;
  std::optional<std::filesystem::path> cwd;
  /// Tee of both output streams (appended, flushed as it arrives).
  std::filesystem::path log_file;
  /// Bounds of the captured output.
  std::size_t max_output_lines = 10'000;
  std::size_t max_output_bytes = 8 * 1024 * 1024;
  /// The runtime that spawns and watches the service; null means
  /// Runtime::global(). Shared: the executor (and every copy of these
  /// options) keeps it alive, so it outlives the processes it spawned.
  std::shared_ptr<Runtime> runtime;
};

/// Lifecycle events of an executor, in firing order. Override what you need.
/// on_line runs on the event-loop thread, which serves every process of the
/// runtime: keep it short and never block in it; a listener that needs the
/// lines of a test takes Output::bookmark()s and reads Output::between()
/// later on its own thread (see output.hpp). The others run on the thread
/// that caused them, except on_exited (event-loop thread, or the thread of a
/// stop() that learns of the exit first). A listener may be called from
/// several threads, never twice at once for one event. Listeners are called
/// in add_listener() order (lowest priority first); one that throws is logged
/// and the others still run.
class ExecutorListener {
 public:
  virtual ~ExecutorListener() = default;
  /// start() begins (the service is not running). Always followed, on the same
  /// thread, by exactly one on_ready or on_start_failed.
  virtual void on_starting(const Executor&) {}
  virtual void on_ready(const Executor&, std::chrono::nanoseconds /*time_to_ready*/) {}
  /// start() is about to throw `error` (AlreadyRunning, SpawnError,
  /// ProcessExitedWithError, TimeoutExpired, Cancelled, or a probe's own
  /// error); the service was stopped already.
  virtual void on_start_failed(const Executor&, const std::exception_ptr& /*error*/) {}
  virtual void on_line(const Executor&, const Line&) {}
  /// The service exited by itself (not through stop() or kill()) after it was
  /// ready; once per run. (An exit before readiness is start()'s exception.)
  virtual void on_exited(const Executor&, const ExitStatus&) {}
  virtual void on_stopped(const Executor&, const ExitStatus&) {}
};

/// A service stopped for the length of a scope (see Executor::stopped()).
/// Used on one thread (a value, like a lock guard).
class StoppedScope {
 public:
  StoppedScope(StoppedScope&& other) noexcept
      : executor_(std::exchange(other.executor_, nullptr)) {}
  StoppedScope& operator=(StoppedScope&&) = delete;
  StoppedScope(const StoppedScope&) = delete;
  /// Starts the service again unless restart() did; a failure is logged (a
  /// destructor cannot throw): call restart() to see it as an exception.
  ~StoppedScope();
  /// Starts the service again now, readiness re-checked; throws like start().
  void restart();

 private:
  friend class Executor;
  explicit StoppedScope(Executor& executor) : executor_(&executor) {}
  Executor* executor_;
};

/// A service started for the length of a scope (see Executor::started()).
/// Used on one thread (a value, like a lock guard).
class StartedScope {
 public:
  StartedScope(StartedScope&& other) noexcept
      : executor_(std::exchange(other.executor_, nullptr)) {}
  StartedScope& operator=(StartedScope&&) = delete;
  StartedScope(const StartedScope&) = delete;
  /// Stops the service unless stop() did; a failure (an unexpected exit
  /// status) is logged (a destructor cannot throw): call stop() to see it as
  /// an exception.
  ~StartedScope();
  /// Stops the service now; throws like Executor::stop().
  void stop();

 private:
  friend class Executor;
  explicit StartedScope(Executor& executor) : executor_(&executor) {}
  Executor* executor_;
};

/// One supervised service: a command plus a readiness check.
///
///     roadie::TcpExecutor redis({"redis-server", "--port", "7001"}, "127.0.0.1", 7001);
///     redis.start();   // returns when 127.0.0.1:7001 accepts, or throws
///
/// Move-only; the destructor stops the service and never throws.
///
/// Thread-safety: start(), stop(), kill() and every const member may be called
/// from any thread at any time. start(), stop() and kill() run one at a time;
/// stop() or kill() on another thread during a start() cancels it (start()
/// throws Cancelled) and then stops the service, so a watchdog thread that
/// gives up on a test can always stop it. The reference output() returns is
/// valid until the next start(); output_handle() keeps a run's output for as
/// long as it is held. add_listener() may be called from any thread, from a
/// listener too. Moving, assigning, destroying, stopped() and started() must not race
/// with other uses of the executor. Listeners may call running(), pid(),
/// exit_status(), output() and add_listener() but must not call start(),
/// stop() or kill() from on_line or on_exited (the event-loop thread).
class Executor {
 public:
  explicit Executor(Command command, ExecutorOptions options = {});
  Executor(Command command, ReadinessCheck check, ExecutorOptions options = {});
  Executor(Executor&&) noexcept;
  Executor& operator=(Executor&&) noexcept;
  virtual ~Executor();

  /// Spawns the service and waits until it is ready. No effect if it is
  /// running. Throws:
  /// - AlreadyRunning: the endpoint is served before anything was started;
  /// - SpawnError: the program could not be executed;
  /// - ProcessExitedWithError: the process exited before it was ready (at
  ///   once, whatever its exit code);
  /// - TimeoutExpired: not ready within `timeout`; the process got its stop
  ///   escalation (stop signal, `stop_timeout`, kill signal) before this is
  ///   thrown, and the message says how it ended.
  /// Listeners see on_starting, then on_ready or (whatever is thrown)
  /// on_start_failed.
  Executor& start();
  /// start() that can be cancelled: when `cancel` is requested during the
  /// start, the process gets its stop escalation (stop signal, grace, kill
  /// signal) and Cancelled is thrown.
  Executor& start(std::stop_token cancel);
  /// Stops the service (stop signal, `stop_timeout`, kill signal). No effect if
  /// it was never started or this run was already stopped (or failed to
  /// start). Throws ProcessFinishedWithError when the exit code is not expected.
  Executor& stop();
  /// Kills the service at once with the kill signal.
  Executor& kill();
  /// Stops the service now and starts it again (readiness re-checked) when the
  /// returned scope ends. Throws roadie::Error if the service is not running.
  [[nodiscard]] StoppedScope stopped();
  /// Starts the service now (throws like start()) and stops it when the
  /// returned scope ends. Throws roadie::Error if the service is running
  /// already (the scope would stop what it did not start).
  [[nodiscard]] StartedScope started();

  bool running() const;
  /// The pid while started, -1 before.
  pid_t pid() const;
  /// The output of the current (or last) run; the reference is valid until
  /// the next start(). Throws roadie::Error before the first start.
  Output& output() const;
  /// The same output, kept alive as long as the pointer is held (across
  /// restarts and after the executor is gone). Throws like output().
  std::shared_ptr<Output> output_handle() const;
  /// The exit status of the last run, once it ended.
  std::optional<ExitStatus> exit_status() const;
  /// Waits until the current run's process exits (by itself, or through
  /// stop()/kill() on another thread) and returns its status; no value when
  /// `timeout` passes first or the service was never started. A huge timeout
  /// waits for ever.
  template <class Rep, class Period>
  std::optional<ExitStatus> wait_for_exit(std::chrono::duration<Rep, Period> timeout) const {
    return wait_for_exit_ns(saturated_ns(timeout));
  }
  /// Spawn to ready of the last start.
  std::chrono::nanoseconds time_to_ready() const;

  const std::string& name() const;
  const Command& command() const;
  const ExecutorOptions& options() const;
  const ReadinessCheck& check() const;

  /// Adds a listener for the lifecycle events, until the returned
  /// Subscription is reset or destroyed (which waits for a call of it in
  /// progress on another thread) or the executor goes. Listeners are called
  /// by `priority` ascending, then in the order they were added. A listener
  /// added while the service runs gets that run's lines from then on (one
  /// added before start() gets them from the first line). Throws
  /// roadie::Error when `listener` is null.
  Subscription add_listener(std::shared_ptr<ExecutorListener> listener, int priority = 0);

  /// "service 'redis' (`redis-server --port 7001`)", for messages.
  std::string describe() const;

 private:
  struct Impl;
  Impl& impl() const;  // throws on a moved-from executor
  std::optional<ExitStatus> wait_for_exit_ns(std::chrono::nanoseconds timeout) const;
  std::unique_ptr<Impl> impl_;
};

/// Ready when a regex banner appears on stdout or stderr (either when not given).
class OutputExecutor : public Executor {
 public:
  OutputExecutor(Command command, std::string banner, ExecutorOptions options = {},
                 std::optional<Stream> stream = {});
};

/// Ready when host:port accepts a TCP connection.
class TcpExecutor : public Executor {
 public:
  TcpExecutor(Command command, std::string host, Port port, ExecutorOptions options = {});
};

/// Ready when an HTTP request (HEAD by default) gets a status matching a regex
/// (2.. by default).
class HttpExecutor : public Executor {
 public:
  HttpExecutor(Command command, std::string url, ExecutorOptions options = {});
  HttpExecutor(Command command, HttpCheck request, ExecutorOptions options = {});
};

/// Ready when a file (a pid file) exists.
class PidExecutor : public Executor {
 public:
  PidExecutor(Command command, std::filesystem::path file, ExecutorOptions options = {});
};

/// Ready when a unix stream socket accepts a connection.
class UnixSocketExecutor : public Executor {
 public:
  UnixSocketExecutor(Command command, std::filesystem::path socket, ExecutorOptions options = {});
};

}  // namespace roadie
