// Connecting roadie's own producers to a bus: an executor's lifecycle events
// and a scheduler's job events.
#include <chrono>
#include <exception>
#include <memory>
#include <string>

#include "bus_impl.hpp"
#include "roadie/executor.hpp"
#include "roadie/hooks.hpp"
#include "roadie/output.hpp"
#include "roadie/scheduler.hpp"

namespace roadie {

namespace {

std::string message_of(const std::exception_ptr& error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "an exception that is not a std::exception";
}

// Turns an executor's listener calls into bus events. Calls on the event-loop
// thread (on_line, on_exited) are posted, never fired there: a hook must not
// hold up every service's output. The bus ends the registration before it goes
// (disconnect_all), so `impl->bus` is valid in every call; the weak pointer
// covers a listener that outlives the bus's state.
class ServiceEvents : public ExecutorListener {
 public:
  ServiceEvents(std::weak_ptr<HookBus::Impl> impl, std::shared_ptr<detail::Connection> connection)
      : impl_(std::move(impl)), connection_(std::move(connection)) {}

  void on_starting(const Executor& executor) override {
    auto impl = impl_.lock();
    if (!impl) return;
    lines_wanted_.store(impl->bus->listens(events::service_line), std::memory_order_relaxed);
    update(*impl, [&](ServiceEntry& e) {
      e.name = executor.name();
      e.running = false;
    });
    if (!impl->bus->listens(events::service_starting)) return;
    impl->bus->fire(events::service_starting,
                    {{"service_name", executor.name()}, {"command", executor.command().argv()}});
  }

  void on_ready(const Executor& executor, std::chrono::nanoseconds time_to_ready) override {
    auto impl = impl_.lock();
    if (!impl) return;
    const pid_t pid = executor.pid();
    update(*impl, [&](ServiceEntry& e) {
      e.pid = pid;
      e.running = true;
      e.output = executor.output_handle();
    });
    if (!impl->bus->listens(events::service_ready)) return;
    impl->bus->fire(events::service_ready,
                    {{"service_name", executor.name()},
                     {"pid", static_cast<std::int64_t>(pid)},
                     {"time_to_ready", std::chrono::duration<double>(time_to_ready).count()}});
  }

  void on_start_failed(const Executor& executor, const std::exception_ptr& error) override {
    auto impl = impl_.lock();
    if (!impl) return;
    std::shared_ptr<Output> output;
    try {
      output = executor.output_handle();
    } catch (const Error&) {
      // Never spawned (no output yet): the entry keeps what it had.
    }
    update(*impl, [&](ServiceEntry& e) {
      e.running = false;
      if (output) e.output = std::move(output);
    });
    if (!impl->bus->listens(events::service_start_failed)) return;
    impl->bus->fire(events::service_start_failed,
                    {{"service_name", executor.name()}, {"error", message_of(error)}});
  }

  void on_line(const Executor& executor, const Line& line) override {
    if (!lines_wanted_.load(std::memory_order_relaxed)) return;
    auto impl = impl_.lock();
    if (!impl) return;
    impl->bus->post(std::string(events::service_line),
                    {{"service_name", executor.name()},
                     {"stream", std::string(to_string(line.stream))},
                     {"text", line.text},
                     {"seq", static_cast<std::int64_t>(line.seq)}});
  }

  // The service's entry reads not running; returns the pid it had.
  pid_t mark_ended(HookBus::Impl& impl) {
    pid_t pid = -1;
    update(impl, [&](ServiceEntry& e) {
      e.running = false;
      pid = e.pid;
    });
    return pid;
  }

  void on_exited(const Executor& executor, const ExitStatus& status) override {
    auto impl = impl_.lock();
    if (!impl) return;
    const pid_t pid = mark_ended(*impl);
    if (!impl->bus->listens(events::service_exited)) return;
    std::vector<std::string> last;
    try {
      for (auto& line : executor.output().tail(10)) last.push_back(std::move(line.text));
    } catch (const Error&) {
      // No output to show (never started): the list stays empty.
    }
    impl->bus->post(std::string(events::service_exited),
                    {{"service_name", executor.name()},
                     {"pid", static_cast<std::int64_t>(pid)},
                     {"exit_code", status.code()},
                     {"exit_status", status.describe()},
                     {"last_lines", std::move(last)}});
  }

  void on_stopped(const Executor& executor, const ExitStatus& status) override {
    auto impl = impl_.lock();
    if (!impl) return;
    const pid_t pid = mark_ended(*impl);
    if (!impl->bus->listens(events::service_stopped)) return;
    impl->bus->fire(events::service_stopped, {{"service_name", executor.name()},
                                              {"pid", static_cast<std::int64_t>(pid)},
                                              {"exit_code", status.code()},
                                              {"exit_status", status.describe()}});
  }

  // The executor went away (it owned this listener): the service leaves
  // services().
  ~ServiceEvents() override {
    if (auto impl = impl_.lock()) {
      std::lock_guard lock(impl->mu);
      auto& list = impl->connections;
      std::erase_if(list, [&](const auto& c) { return c == connection_; });
    }
  }

 private:
  template <class F>
  void update(HookBus::Impl& impl, F&& change) {
    std::lock_guard lock(impl.mu);
    change(connection_->entry);
  }

  std::weak_ptr<HookBus::Impl> impl_;
  std::shared_ptr<detail::Connection> connection_;
  std::atomic<bool> lines_wanted_{false};
};

// Fires job_start / job_done on the run's threads (never the event loop's):
// the observer is called one event at a time per scheduler, so a job's events
// reach the bus in order. A hook failure is the scheduler's to log (an
// observer's exception never stops a run); squash it to record it instead.
class JobEvents : public SchedulerObserver {
 public:
  explicit JobEvents(HookBus& bus) : bus_(bus) {}

  void on_job_start(const JobView& job) override {
    if (!bus_.listens(events::job_start)) return;
    bus_.fire(events::job_start, {{"job_label", job.label}, {"job_path", job.path}});
  }

  void on_job_done(const JobView& job) override {
    if (!bus_.listens(events::job_done)) return;
    bus_.fire(events::job_done,
              {{"job_label", job.label},
               {"job_path", job.path},
               {"job_state", std::string(to_string(job.state))},
               {"job_duration", std::chrono::duration<double>(job.duration).count()},
               {"job_reason", job.reason.empty() ? job.error : job.reason}});
  }

 private:
  HookBus& bus_;
};

}  // namespace

Subscription HookBus::connect(Executor& executor) {
  auto connection = std::make_shared<detail::Connection>();
  connection->entry.name = executor.name();
  connection->entry.running = executor.running();
  connection->entry.pid = connection->entry.running ? executor.pid() : -1;
  if (connection->entry.running) connection->entry.output = executor.output_handle();
  {
    std::lock_guard lock(impl_->mu);
    connection->id = impl_->next_connection++;
    impl_->connections.push_back(connection);
  }
  try {
    auto listening = executor.add_listener(std::make_shared<ServiceEvents>(impl_, connection));
    std::lock_guard lock(impl_->mu);
    connection->listening = std::move(listening);
  } catch (...) {
    std::lock_guard lock(impl_->mu);
    std::erase(impl_->connections, connection);
    throw;
  }
  std::weak_ptr<Impl> weak = impl_;
  return Subscription([weak, connection] {
    Subscription listening;
    if (auto impl = weak.lock()) {
      std::lock_guard lock(impl->mu);
      std::erase(impl->connections, connection);
      listening = std::move(connection->listening);
    }
    listening.reset();  // outside the lock: it waits for a call in progress
  });
}

Subscription HookBus::connect(Scheduler& scheduler) {
  return scheduler.add_observer(std::make_shared<JobEvents>(*this));
}

std::vector<ServiceEntry> HookBus::services() const {
  std::lock_guard lock(impl_->mu);
  std::vector<ServiceEntry> list;
  list.reserve(impl_->connections.size());
  for (const auto& c : impl_->connections) list.push_back(c->entry);
  return list;
}

}  // namespace roadie
