#include "roadie/executor.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stop_token>

#include "callback_list.hpp"
#include "log.hpp"
#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/process.hpp"
#include "text.hpp"

namespace roadie {

using detail::default_name;
using detail::seconds;

namespace {

using Clock = std::chrono::steady_clock;

std::string last_output(const Output& output) {
  std::string excerpt = output.excerpt(20);
  return excerpt.empty() ? "It printed nothing." : "Last output:\n" + excerpt;
}

}  // namespace

struct Executor::Impl final : ready::ProbeContext {
  Impl(Command c, ReadinessCheck r, ExecutorOptions o)
      : command(std::move(c)), check(std::move(r)), options(std::move(o)) {
    name = options.name.empty() ? default_name(command) : options.name;
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw Error("eventfd: " + std::string(std::strerror(errno)));
  }
  ~Impl() override {
    // The exit callback writes to wake_fd, on_line fires through `this`: both
    // end before the descriptor closes and the members go.
    exit_subscription.reset();
    late_lines.reset();
    proc.reset();
    ::close(wake_fd);
  }

  Process& process() override { return *proc; }
  void wake() override {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }
  void drain_wake() {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(wake_fd, &count, sizeof count);
  }

  // One event for every listener, in order; one that throws is logged and
  // the others still run.
  template <class F>
  void fire(F&& f) {
    if (listeners.empty()) return;
    Executor* owner = self.load();
    const ListenerEvent event = [&](ExecutorListener& l) { f(l, *owner); };
    listeners.call(event, [this](const std::exception_ptr& error) {
      detail::log_callback_error(name + ": listener", error);
    });
  }

  // The current run's lines go to the listeners: from the first line when
  // there were listeners at the spawn (ProcessOptions::on_line), else from
  // the first listener's add_listener() on. Under lines_mutex.
  void hook_lines() {
    std::lock_guard lock(lines_mutex);
    if (lines_hooked || !proc || listeners.empty()) return;
    lines_hooked = true;
    late_lines = proc->output().subscribe([this](const Line& line) { on_line(line); });
  }
  void on_line(const Line& line) {
    fire([&](ExecutorListener& l, const Executor& e) { l.on_line(e, line); });
  }

  // The current run's process, for readers on any thread.
  std::shared_ptr<Process> current() const {
    std::lock_guard lock(handle_mutex);
    return proc;
  }

  // A death is roadie's doing only when roadie sent the signal: the stop
  // signal to a process still running when stop() began, the kill signal
  // only when stop()'s escalation (or kill()) sent it.
  bool expected(const ExitStatus& status) const {
    if (status.is_exited()) {
      if (status.code() == 0) return true;
      const auto& codes = options.expected_exit_codes;
      return std::find(codes.begin(), codes.end(), status.code()) != codes.end();
    }
    if (proc->exited_before_stop()) return false;
    if (status.signal() == options.stop_signal) return true;
    return status.signal() == options.kill_signal && proc->kill_signal_sent();
  }

  std::string describe() const { return "service '" + name + "' (`" + command.display() + "`)"; }

  // Ends the current run (if any) and reports it once.
  ExitStatus finish(bool kill_now) {
    // An exit that happened before this stop is reported as such, even if the
    // event loop has not run the exit callback yet.
    if (auto status = proc->exit_status()) report_unexpected_exit(*status);
    stopping.store(true);
    ExitStatus status = kill_now ? proc->kill() : proc->stop();
    exit_subscription.reset();
    if (!stop_reported) {
      stop_reported = true;
      fire([&](ExecutorListener& l, const Executor& e) { l.on_stopped(e, status); });
    }
    return status;
  }

  // Reports an exit nobody asked for, once, and only for a service that was
  // ready (before that, start() reports it by throwing).
  void report_unexpected_exit(const ExitStatus& status) {
    {
      std::lock_guard lock(exit_report_mutex);
      if (!was_ready || exit_reported || stopping.load()) return;
      exit_reported = true;
    }
    // Outside the lock: a listener may look at the executor.
    fire([&](ExecutorListener& l, const Executor& e) { l.on_exited(e, status); });
  }

  ProcessOptions process_options() {
    ProcessOptions o;
    o.name = name;
    o.output.max_lines = options.max_output_lines;
    o.output.max_bytes = options.max_output_bytes;
    o.output.log_file = options.log_file;
    o.stop.signal = options.stop_signal;
    o.stop.kill_signal = options.kill_signal;
    o.stop.grace = std::chrono::duration_cast<std::chrono::milliseconds>(
        scaled(options.stop_timeout));
    if (!listeners.empty()) o.on_line = [this](const Line& line) { on_line(line); };
    return o;
  }

  Command run_command() const {
    Command c = command;
    if (options.replace_env) c.clear_env();
    for (const auto& [key, value] : options.env) c.set_env(key, value);
    if (options.cwd) c.set_cwd(*options.cwd);
    return c;
  }

  void spawn() {
    ProcessOptions o = process_options();
    const bool hooked = static_cast<bool>(o.on_line);
    std::shared_ptr<Process> fresh;
    try {
      Runtime& runtime = options.runtime ? *options.runtime : Runtime::global();
      fresh = std::make_shared<Process>(Process::spawn(run_command(), std::move(o), runtime));
    } catch (const SpawnError& e) {
      throw SpawnError("service '" + name + "': " + e.what(), e.command(), e.code());
    }
    Subscription previous;  // reset outside lines_mutex: its call may add a listener
    {
      std::scoped_lock lock(lines_mutex, handle_mutex);
      previous = std::move(late_lines);
      proc = std::move(fresh);
      lines_hooked = hooked;
    }
    previous.reset();
    // A listener added during the spawn gets the lines from now on.
    if (!hooked) hook_lines();
    stopping.store(false);
    stop_reported = false;
    {
      std::lock_guard lock(exit_report_mutex);
      was_ready = false;
      exit_reported = false;
    }
    exit_subscription = proc->on_exit([this](const ExitStatus& status) {
      wake();
      report_unexpected_exit(status);
    });
  }

  [[noreturn]] void fail_exited(const ExitStatus& status, std::chrono::nanoseconds elapsed,
                                const std::string& failure) {
    finish(false);
    std::string message = describe() + " " + status.describe() + " after " + seconds(elapsed) +
                          ", before it was ready (waiting for " + check.describe() +
                          (failure.empty() ? "" : "; last attempt: " + failure) + ").";
    if (status.code() == 0) {
      message +=
          " It exited with code 0 before it was ready: a service that daemonizes itself must be"
          " run in the foreground.";
    }
    throw ProcessExitedWithError(message + " " + last_output(proc->output()), status, name,
                                 proc->output().excerpt(20));
  }

  [[noreturn]] void fail_cancelled(std::chrono::nanoseconds waited, bool by_stop, bool by_kill) {
    // Asked to stop (a scheduler's abort, a job timeout, stop() on another
    // thread): the service gets its stop escalation like any stop; asked to
    // kill (kill() on another thread), the kill signal at once.
    ExitStatus status = finish(by_kill);
    throw Cancelled(describe() + ": start cancelled" +
                    (by_kill   ? " by kill() on another thread"
                     : by_stop ? " by stop() on another thread"
                               : "") +
                    " after " +
                    seconds(waited) + " while waiting for " + check.describe() + "; stopped, " +
                    status.describe());
  }

  [[noreturn]] void fail_timeout(std::chrono::nanoseconds timeout, const std::string& failure) {
    pid_t pid = proc->pid();
    // The stop escalation, as for a cancelled start: a service that is slow,
    // not hung, gets to remove its pid file or socket (which would make the
    // next start() AlreadyRunning) and say why it was slow; a hung one gets
    // the kill signal after `stop_timeout`.
    ExitStatus status = finish(false);
    char scale[64] = "";
    if (time_scale() != 1.0) std::snprintf(scale, sizeof scale, " (ROADIE_TIME_SCALE=%g)", time_scale());
    throw TimeoutExpired(describe() + " (pid " + std::to_string(pid) + ") was not ready within " +
                         seconds(timeout) + scale + ": waiting for " + check.describe() +
                         (failure.empty() ? "" : "; last attempt: " + failure) +
                         ". It was stopped: " + status.describe() + ". " +
                         last_output(proc->output()));
  }

  // Attempts, then sleeps on the wake-up descriptors until the next attempt is
  // due, until the check passes. Once it has passed the service is ready,
  // whatever happens after (a one-shot command may exit 0 at once).
  void wait_until_ready(Clock::time_point t0, std::chrono::nanoseconds timeout,
                        const std::stop_token& cancel) {
    const auto deadline = deadline_after(timeout, t0);
    auto probe = check.check().arm(*this);
    std::vector<pollfd> polls{{wake_fd, POLLIN, 0}};
    for (int fd : probe->wake_fds()) polls.push_back({fd, POLLIN, 0});
    std::chrono::microseconds interval(1000);
    for (;;) {
      // Ready when the check passed while the process ran: it still runs
      // once the check has passed (the kernel's view, asked after the
      // attempt), or the probe saw its event before the exit (a one-shot's
      // banner). A daemonizing leader exits before its daemon writes the pid
      // file (2 ms for redis), so it is never taken for ready.
      if (probe->attempt(deadline) && (!proc->exited_now() || probe->seen_before_exit())) return;
      if (auto status = proc->exit_status()) {
        auto failure = probe->last_failure();
        probe.reset();
        fail_exited(*status, Clock::now() - t0, failure);
      }
      if (cancel.stop_requested()) {
        probe.reset();
        bool by_stop, by_kill;
        {
          std::lock_guard lock(handle_mutex);
          by_stop = stop_requested_by_stop;
          by_kill = kill_requested;
        }
        fail_cancelled(Clock::now() - t0, by_stop, by_kill);
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        auto failure = probe->last_failure();
        probe.reset();
        fail_timeout(timeout, failure);
      }
      interval = std::min(interval, probe->max_interval());
      const auto wake_at = std::min(deadline, deadline_after(interval, now));
      const auto wait_ms = std::chrono::duration<double, std::milli>(wake_at - now).count();
      // poll() counts in milliseconds: round up so a 1 ms back-off is not a spin.
      ::poll(polls.data(), polls.size(), static_cast<int>(std::min(std::ceil(wait_ms), 60'000.0)));
      drain_wake();
      interval = std::min(interval * 2, probe->max_interval());
    }
  }

  // stop() or kill() on another thread cancels a start in progress, then waits
  // for it to end (run_mutex).
  void cancel_start(bool kill) {
    std::lock_guard lock(handle_mutex);
    if (starting) {
      stop_requested_by_stop = true;
      kill_requested = kill_requested || kill;
      start_cancel.request_stop();
    }
  }

  Command command;
  ReadinessCheck check;
  ExecutorOptions options;
  std::string name;

  // start(), stop() and kill() run one at a time (recursive: a listener on
  // the starting thread may stop the service).
  std::recursive_mutex run_mutex;
  mutable std::mutex handle_mutex;  // guards the three below
  std::shared_ptr<Process> proc;    // replaced by start() (also under run_mutex)
  bool starting = false;
  std::stop_source start_cancel;
  bool stop_requested_by_stop = false;
  bool kill_requested = false;

  using ListenerEvent = std::function<void(ExecutorListener&)>;
  detail::CallbackList<const ListenerEvent&> listeners{"listener"};
  // Guards the two below; never held while waiting for the event loop (a
  // listener may call add_listener() from on_line).
  std::mutex lines_mutex;
  bool lines_hooked = false;  // the current run's lines reach the listeners
  Subscription late_lines;    // hook_lines() after the spawn
  Subscription exit_subscription;
  std::atomic<bool> stopping{false};
  bool stop_reported = true;  // under run_mutex
  std::mutex exit_report_mutex;
  bool was_ready = false;      // under exit_report_mutex
  bool exit_reported = false;  // under exit_report_mutex
  std::atomic<std::chrono::nanoseconds::rep> time_to_ready{0};
  std::atomic<Executor*> self{nullptr};
  int wake_fd = -1;
};

Executor::Executor(Command command, ExecutorOptions options)
    : Executor(std::move(command), ready::spawned(), std::move(options)) {}

Executor::Executor(Command command, ReadinessCheck check, ExecutorOptions options)
    : impl_(std::make_unique<Impl>(std::move(command), std::move(check), std::move(options))) {
  impl_->self.store(this);
}

Executor::Executor(Executor&& other) noexcept : impl_(std::move(other.impl_)) {
  if (impl_) impl_->self.store(this);
}

Executor& Executor::operator=(Executor&& other) noexcept {
  if (this != &other) {
    if (impl_ && impl_->current()) {
      try {
        stop();
      } catch (const std::exception& e) {
        detail::log().error("{}", e.what());
      }
    }
    impl_ = std::move(other.impl_);
    if (impl_) impl_->self.store(this);
  }
  return *this;
}

Executor::~Executor() {
  if (!impl_ || !impl_->current()) return;
  try {
    stop();
  } catch (const std::exception& e) {
    detail::log().error("{}", e.what());
  } catch (...) {
    detail::log().error("{}: stop failed", impl_->name);
  }
}

Executor::Impl& Executor::impl() const {
  if (!impl_) throw Error("this Executor was moved from; use the one it was moved to");
  return *impl_;
}

Executor& Executor::start() {
  return start(std::stop_token());
}

Executor& Executor::start(std::stop_token cancel) {
  Impl& d = impl();
  std::lock_guard run(d.run_mutex);
  if (d.proc && d.proc->running()) return *this;
  // From here a stop() or kill() on another thread cancels this start.
  std::stop_token own_cancel;
  {
    std::lock_guard lock(d.handle_mutex);
    d.start_cancel = std::stop_source();
    d.stop_requested_by_stop = false;
    d.kill_requested = false;
    d.starting = true;
    own_cancel = d.start_cancel.get_token();
  }
  struct EndStart {
    Impl& d;
    ~EndStart() {
      std::lock_guard lock(d.handle_mutex);
      d.starting = false;
    }
  } end_start{d};
  std::stop_callback forward(cancel, [&d] { d.start_cancel.request_stop(); });
  std::stop_callback on_cancel(own_cancel, [&d] { d.wake(); });

  if (d.proc) d.finish(false);  // the last run ended by itself: reap it quietly
  // From on_starting on, every way out is on_ready or on_start_failed (once).
  d.fire([](ExecutorListener& l, const Executor& e) { l.on_starting(e); });
  const auto t0 = Clock::now();
  try {
    try {
      d.check.check().ensure_free();
    } catch (const AlreadyRunning& e) {
      throw AlreadyRunning(d.describe() + " not started: " + e.what());
    }
    if (own_cancel.stop_requested()) {
      throw Cancelled(d.describe() + ": start cancelled before the service was spawned");
    }
    const auto timeout = scaled(d.options.timeout);
    d.drain_wake();
    d.spawn();
    // Any exception from here on (a probe that throws, a bad address) must not
    // leave the service running unsupervised.
    try {
      d.wait_until_ready(t0, timeout, own_cancel);
    } catch (...) {
      if (!d.stop_reported) d.finish(true);
      throw;
    }
  } catch (...) {
    const auto error = std::current_exception();
    d.fire([&](ExecutorListener& l, const Executor& e) { l.on_start_failed(e, error); });
    throw;
  }
  d.time_to_ready.store((Clock::now() - t0).count());
  d.fire([&](ExecutorListener& l, const Executor& e) {
    l.on_ready(e, std::chrono::nanoseconds(d.time_to_ready.load()));
  });
  {
    std::lock_guard lock(d.exit_report_mutex);
    d.was_ready = true;
  }
  // Exited between the check and now (a one-shot command): reported now.
  if (auto status = d.proc->exit_status()) d.report_unexpected_exit(*status);
  return *this;
}

Executor& Executor::stop() {
  Impl& d = impl();
  d.cancel_start(/*kill=*/false);
  std::lock_guard run(d.run_mutex);
  // A run is judged once: when stop() (or a failed start) ended it.
  if (!d.proc || d.stop_reported) return *this;
  ExitStatus status = d.finish(false);
  if (!d.expected(status)) {
    std::string expected = "0";
    for (int code : d.options.expected_exit_codes) expected += ", " + std::to_string(code);
    const bool before = d.proc->exited_before_stop();
    throw ProcessFinishedWithError(
        d.describe() + " (pid " + std::to_string(d.proc->pid()) + ") " + status.describe() +
            (before ? " before stop() was called" : "") + "; expected exit codes: " + expected +
            ", or " + signal_name(d.options.stop_signal) + ". " +
            last_output(d.proc->output()),
        status, d.name, d.proc->output().excerpt(20));
  }
  return *this;
}

Executor& Executor::kill() {
  Impl& d = impl();
  d.cancel_start(/*kill=*/true);
  std::lock_guard run(d.run_mutex);
  if (d.proc) d.finish(true);
  return *this;
}

StoppedScope Executor::stopped() {
  if (!running()) {
    throw Error(describe() + ": stopped() needs a running service; start() it first");
  }
  stop();
  return StoppedScope(*this);
}

StartedScope Executor::started() {
  if (running()) {
    throw Error(describe() + ": started() needs a service that is not running; it would stop "
                             "what it did not start");
  }
  start();
  return StartedScope(*this);
}

bool Executor::running() const {
  if (!impl_) return false;
  auto p = impl_->current();
  return p && p->running();
}
pid_t Executor::pid() const {
  if (!impl_) return -1;
  auto p = impl_->current();
  return p ? p->pid() : -1;
}

Output& Executor::output() const {
  return *output_handle();
}

std::shared_ptr<Output> Executor::output_handle() const {
  auto p = impl().current();
  if (!p) throw Error(describe() + ": no output yet, the service was never started");
  return p->output_handle();
}

std::optional<ExitStatus> Executor::exit_status() const {
  if (!impl_) return std::nullopt;
  auto p = impl_->current();
  return p ? p->exit_status() : std::nullopt;
}

std::optional<ExitStatus> Executor::wait_for_exit_ns(std::chrono::nanoseconds timeout) const {
  auto p = impl().current();
  if (!p) return std::nullopt;
  return p->wait_for(timeout);
}

std::chrono::nanoseconds Executor::time_to_ready() const {
  return std::chrono::nanoseconds(impl().time_to_ready.load());
}
const std::string& Executor::name() const {
  return impl().name;
}
const Command& Executor::command() const {
  return impl().command;
}
const ExecutorOptions& Executor::options() const {
  return impl().options;
}
const ReadinessCheck& Executor::check() const {
  return impl().check;
}
std::string Executor::describe() const {
  return impl().describe();
}

Subscription Executor::add_listener(std::shared_ptr<ExecutorListener> listener, int priority) {
  Impl& d = impl();
  if (!listener) throw Error(d.describe() + ": add_listener() needs a listener, not a null pointer");
  auto subscription = d.listeners.add(
      [listener = std::move(listener)](const Impl::ListenerEvent& event) { event(*listener); },
      priority);
  d.hook_lines();
  return subscription;
}

StoppedScope::~StoppedScope() {
  if (executor_ == nullptr) return;
  try {
    executor_->start();
  } catch (const std::exception& e) {
    detail::log().error("restarting after stopped(): {}", e.what());
  }
}

void StoppedScope::restart() {
  Executor* executor = std::exchange(executor_, nullptr);
  if (executor != nullptr) executor->start();
}

StartedScope::~StartedScope() {
  if (executor_ == nullptr) return;
  try {
    executor_->stop();
  } catch (const std::exception& e) {
    detail::log().error("stopping after started(): {}", e.what());
  }
}

void StartedScope::stop() {
  Executor* executor = std::exchange(executor_, nullptr);
  if (executor != nullptr) executor->stop();
}

OutputExecutor::OutputExecutor(Command command, std::string banner, ExecutorOptions options,
                               std::optional<Stream> stream)
    : Executor(std::move(command), ready::banner(std::move(banner), stream), std::move(options)) {}

TcpExecutor::TcpExecutor(Command command, std::string host, Port port,
                         ExecutorOptions options)
    : Executor(std::move(command), ready::tcp(std::move(host), port), std::move(options)) {}

HttpExecutor::HttpExecutor(Command command, std::string url, ExecutorOptions options)
    : Executor(std::move(command), ready::http(std::move(url)), std::move(options)) {}

HttpExecutor::HttpExecutor(Command command, HttpCheck request, ExecutorOptions options)
    : Executor(std::move(command), ready::http(std::move(request)), std::move(options)) {}

PidExecutor::PidExecutor(Command command, std::filesystem::path file, ExecutorOptions options)
    : Executor(std::move(command), ready::pid_file(std::move(file)), std::move(options)) {}

UnixSocketExecutor::UnixSocketExecutor(Command command, std::filesystem::path socket,
                                       ExecutorOptions options)
    : Executor(std::move(command), ready::unix_socket(std::move(socket)), std::move(options)) {}

}  // namespace roadie
