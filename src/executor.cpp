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
  ~Impl() override { ::close(wake_fd); }

  Process& process() override { return proc; }
  void wake() override {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }
  void drain_wake() {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(wake_fd, &count, sizeof count);
  }

  template <class F>
  void fire(F&& f) {
    Executor* owner = self.load();
    std::vector<std::shared_ptr<ExecutorListener>> snapshot;
    {
      std::lock_guard lock(listeners_mutex);  // add_listener() may run meanwhile
      snapshot = listeners;
    }
    for (const auto& listener : snapshot) {
      try {
        f(*listener, *owner);
      } catch (const std::exception& e) {
        detail::log().error("{}: listener threw: {}", name, e.what());
      } catch (...) {
        detail::log().error("{}: listener threw", name);
      }
    }
  }

  bool expected(const ExitStatus& status) const {
    if (status.code() == 0) return true;
    if (status.is_signaled() &&
        (status.signal() == options.stop_signal || status.signal() == options.kill_signal)) {
      return true;
    }
    const auto& codes = options.expected_exit_codes;
    return std::find(codes.begin(), codes.end(), status.code()) != codes.end();
  }

  std::string describe() const { return "service '" + name + "' (`" + command.display() + "`)"; }

  // Ends the current run (if any) and reports it once.
  ExitStatus finish(bool kill_now) {
    stopping.store(true);
    ExitStatus status = kill_now ? proc.kill() : proc.stop();
    exit_subscription.reset();
    if (!stop_reported) {
      stop_reported = true;
      fire([&](ExecutorListener& l, const Executor& e) { l.on_stopped(e, status); });
    }
    return status;
  }

  Command command;
  ReadinessCheck check;
  ExecutorOptions options;
  std::string name;
  Process proc;
  std::mutex listeners_mutex;
  std::vector<std::shared_ptr<ExecutorListener>> listeners;
  Subscription exit_subscription;
  std::atomic<bool> stopping{false};
  bool stop_reported = true;
  std::chrono::nanoseconds time_to_ready{0};
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
    if (impl_ && impl_->proc.valid()) {
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
  if (!impl_ || !impl_->proc.valid()) return;
  try {
    stop();
  } catch (const std::exception& e) {
    detail::log().error("{}", e.what());
  } catch (...) {
    detail::log().error("{}: stop failed", impl_->name);
  }
}

Executor& Executor::start() {
  return start(std::stop_token());
}

Executor& Executor::start(std::stop_token cancel) {
  Impl& d = *impl_;
  if (d.proc.valid() && d.proc.running()) return *this;
  if (d.proc.valid()) d.finish(false);  // the last run ended by itself: reap it quietly

  try {
    d.check.check().ensure_free();
  } catch (const AlreadyRunning& e) {
    throw AlreadyRunning(d.describe() + " not started: " + e.what());
  }
  d.fire([](ExecutorListener& l, const Executor& e) { l.on_starting(e); });

  Command command = d.command;
  if (d.options.replace_env) command.clear_env();
  for (const auto& [key, value] : d.options.env) command.set_env(key, value);
  if (d.options.cwd) command.set_cwd(*d.options.cwd);
  ProcessOptions process_options;
  process_options.name = d.name;
  process_options.output.max_lines = d.options.max_output_lines;
  process_options.output.max_bytes = d.options.max_output_bytes;
  process_options.output.log_file = d.options.log_file;
  process_options.stop.signal = d.options.stop_signal;
  process_options.stop.kill_signal = d.options.kill_signal;
  process_options.stop.grace =
      std::chrono::duration_cast<std::chrono::milliseconds>(scaled(d.options.stop_timeout));

  if (std::lock_guard lock(d.listeners_mutex); !d.listeners.empty()) {
    process_options.on_line = [&d](const Line& line) {
      d.fire([&](ExecutorListener& l, const Executor& e) { l.on_line(e, line); });
    };
  }
  const auto timeout = scaled(d.options.timeout);
  const auto t0 = Clock::now();
  const auto deadline = t0 + timeout;
  d.drain_wake();
  try {
    d.proc = Process::spawn(command, process_options);
  } catch (const SpawnError& e) {
    throw SpawnError("service '" + d.name + "': " + e.what(), e.command(), e.code());
  }
  d.stopping.store(false);
  d.stop_reported = false;
  d.exit_subscription = d.proc.on_exit([&d](const ExitStatus& status) {
    d.wake();
    if (!d.stopping.load()) {
      d.fire([&](ExecutorListener& l, const Executor& e) { l.on_exited(e, status); });
    }
  });

  std::atomic<bool> cancelled{false};
  std::stop_callback on_cancel(cancel, [&] {
    cancelled.store(true);
    d.wake();
  });
  // Any exception from here on (a probe that throws, a bad address) must not
  // leave the service running unsupervised.
  try {
    auto probe = d.check.check().arm(d);
    auto fds = probe->wake_fds();
    std::vector<pollfd> polls{{d.wake_fd, POLLIN, 0}};
    for (int fd : fds) polls.push_back({fd, POLLIN, 0});
    std::chrono::microseconds interval(1000);
    for (;;) {
      bool ready = probe->attempt(deadline);
      if (auto status = d.proc.exit_status()) {
        auto elapsed = Clock::now() - t0;
        std::string pending = d.check.describe();
        auto failure = probe->last_failure();
        probe.reset();
        d.finish(false);
        std::string message =
            d.describe() + " " + status->describe() + " after " + seconds(elapsed) +
            (ready ? ", right after it was ready (" : ", before it was ready (waiting for ") +
            pending + (failure.empty() || ready ? "" : "; last attempt: " + failure) + ").";
        if (status->code() == 0) {
          message +=
              " It exited with code 0 before it was ready: a service that daemonizes itself must be"
              " run in the foreground.";
        }
        throw ProcessExitedWithError(message + " " + last_output(d.proc.output()), status->code());
      }
      if (ready) break;
      if (cancelled.load()) {
        // Asked to stop (a scheduler's abort or job timeout): the service gets
        // its stop escalation (stop signal, grace, kill signal) like any stop.
        probe.reset();
        const auto waited = Clock::now() - t0;
        ExitStatus status = d.finish(false);
        throw Cancelled(d.describe() + ": start cancelled after " + seconds(waited) +
                        " while waiting for " + d.check.describe() + "; stopped, " +
                        status.describe());
      }
      auto now = Clock::now();
      if (now >= deadline) {
        std::string failure = probe->last_failure();
        probe.reset();
        pid_t pid = d.proc.pid();
        d.finish(true);
        char scale[64] = "";
        if (time_scale() != 1.0)
          std::snprintf(scale, sizeof scale, " (ROADIE_TIME_SCALE=%g)", time_scale());
        throw TimeoutExpired(d.describe() + " (pid " + std::to_string(pid) +
                             ") was not ready within " + seconds(timeout) + scale +
                             ": waiting for " + d.check.describe() +
                             (failure.empty() ? "" : "; last attempt: " + failure) +
                             ". It was killed. " + last_output(d.proc.output()));
      }
      interval = std::min(interval, probe->max_interval());
      auto wake_at = std::min(deadline, now + interval);
      auto wait_ms = std::chrono::duration<double, std::milli>(wake_at - now).count();
      // poll() counts in milliseconds: round up so a 1 ms back-off is not a spin.
      ::poll(polls.data(), polls.size(), static_cast<int>(std::ceil(wait_ms)));
      d.drain_wake();
      interval = std::min(interval * 2, probe->max_interval());
    }
  } catch (...) {
    if (!d.stop_reported) d.finish(true);
    throw;
  }
  d.time_to_ready = Clock::now() - t0;
  d.fire([&](ExecutorListener& l, const Executor& e) { l.on_ready(e, d.time_to_ready); });
  return *this;
}

Executor& Executor::stop() {
  Impl& d = *impl_;
  // A run is judged once: when stop() (or a failed start) ended it.
  if (!d.proc.valid() || d.stop_reported) return *this;
  ExitStatus status = d.finish(false);
  if (!d.expected(status)) {
    std::string expected = "0";
    for (int code : d.options.expected_exit_codes) expected += ", " + std::to_string(code);
    throw ProcessFinishedWithError(d.describe() + " (pid " + std::to_string(d.proc.pid()) + ") " +
                                       status.describe() + "; expected exit codes: " + expected +
                                       ", or " + signal_name(d.options.stop_signal) + ". " +
                                       last_output(d.proc.output()),
                                   status.code());
  }
  return *this;
}

Executor& Executor::kill() {
  if (impl_->proc.valid()) impl_->finish(true);
  return *this;
}

StoppedScope Executor::stopped() {
  if (!running()) {
    throw Error(describe() + ": stopped() needs a running service; start() it first");
  }
  stop();
  return StoppedScope(*this);
}

bool Executor::running() const {
  return impl_->proc.valid() && impl_->proc.running();
}
pid_t Executor::pid() const {
  return impl_->proc.valid() ? impl_->proc.pid() : -1;
}

Output& Executor::output() const {
  if (!impl_->proc.valid())
    throw Error(describe() + ": no output yet, the service was never started");
  return impl_->proc.output();
}

std::optional<ExitStatus> Executor::exit_status() const {
  return impl_->proc.valid() ? impl_->proc.exit_status() : std::nullopt;
}

std::optional<ExitStatus> Executor::wait_for_exit(std::chrono::nanoseconds timeout) const {
  if (!impl_->proc.valid()) return std::nullopt;
  return impl_->proc.wait_for(timeout);
}

std::chrono::nanoseconds Executor::time_to_ready() const {
  return impl_->time_to_ready;
}
const std::string& Executor::name() const {
  return impl_->name;
}
const Command& Executor::command() const {
  return impl_->command;
}
const ExecutorOptions& Executor::options() const {
  return impl_->options;
}
const ReadinessCheck& Executor::check() const {
  return impl_->check;
}
std::string Executor::describe() const {
  return impl_->describe();
}

Executor& Executor::add_listener(std::shared_ptr<ExecutorListener> listener) {
  if (!listener) return *this;
  std::lock_guard lock(impl_->listeners_mutex);
  impl_->listeners.push_back(std::move(listener));
  return *this;
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
