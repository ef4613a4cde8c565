// roadie::Stack: a checked stack spec turned into a Scheduler graph of
// executors and job callables, with its ports reserved for its whole life and
// its services and jobs connected to a hook bus.
#include "roadie/artifacts.hpp"
#include "roadie/stack.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <utility>

#include "../log.hpp"
#include "roadie/error.hpp"
#include "roadie/hooks.hpp"
#include "roadie/ports.hpp"
#include "roadie/process.hpp"
#include "roadie/runtime.hpp"

namespace roadie {

namespace fs = std::filesystem;

struct Stack::Impl {
  StackSpec spec;
  StackOptions options;
  // Declared before the scheduler: destroyed after it, so a port is released
  // only once nothing started on it can still run.
  std::vector<PortReservation> reservations;
  std::map<std::string, Port> ports;
  std::unique_ptr<HookBus> own_bus;
  HookBus* bus = nullptr;
  Scheduler scheduler;
  // Immutable after load: read without a lock from any thread.
  std::map<std::string, Job, std::less<>> services;
  std::vector<std::string> service_order;
  // Last members: they end before the scheduler and the bus go.
  std::vector<Subscription> connections;
  bool brought_up = false;

  explicit Impl(SchedulerOptions scheduler_options) : scheduler(std::move(scheduler_options)) {}

  ~Impl() {
    try {
      down();
    } catch (const std::exception& e) {
      detail::log().error("stack '{}': teardown failed: {}", name(), e.what());
    } catch (...) {
      detail::log().error("stack '{}': teardown failed", name());
    }
    connections.clear();
  }

  std::string name() const { return spec.file.empty() ? "<memory>" : spec.file.string(); }

  std::vector<StopOutcome> down() { return scheduler.shutdown(); }

  std::string known_services() const {
    std::string text;
    for (const auto& name : service_order) text += (text.empty() ? "'" : ", '") + name + "'";
    return text.empty() ? "none" : text;
  }
};

namespace {

// A job: runs its command to completion on the job's thread; exit 0 or it
// throws with the status and the last lines. Asked to stop (an abort, its
// timeout), it stops the command and throws Cancelled.
class JobRunner {
 public:
  JobRunner(std::string name, Command command, fs::path log_file,
            std::chrono::milliseconds stop_timeout, std::shared_ptr<Runtime> runtime)
      : name_(std::move(name)),
        command_(std::move(command)),
        log_file_(std::move(log_file)),
        stop_timeout_(stop_timeout),
        runtime_(std::move(runtime)) {}

  void operator()(JobContext& context) const {
    ProcessOptions options;
    options.name = name_;
    options.output.log_file = log_file_;
    options.stop.grace = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min<std::chrono::nanoseconds>(scaled(stop_timeout_), std::chrono::hours(24 * 365)));
    Process process = Process::spawn(command_, options, runtime_ ? *runtime_ : Runtime::global());
    std::mutex mutex;
    std::condition_variable_any changed;
    bool exited = false;
    Subscription on_exit = process.on_exit([&](const ExitStatus&) {
      {
        std::lock_guard lock(mutex);
        exited = true;
      }
      changed.notify_all();
    });
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, context.stop_token(), [&] { return exited; });
    }
    on_exit.reset();
    if (!exited) {
      const ExitStatus status = process.stop();
      throw Cancelled("job '" + name_ + "' was stopped (" + status.describe() + "): `" +
                      command_.display() + "`");
    }
    const ExitStatus status = process.wait();
    process.stop();  // reaps the leader and anything it left in its group
    if (!status.success()) {
      const std::string excerpt = process.output().excerpt(20);
      throw ProcessExitedWithError("job '" + name_ + "' " + status.describe() + ": `" +
                                       command_.display() + "`" +
                                       (excerpt.empty() ? " (no output)" : "\n" + excerpt),
                                   status, name_, excerpt);
    }
  }

 private:
  std::string name_;
  Command command_;
  fs::path log_file_;
  std::chrono::milliseconds stop_timeout_;
  std::shared_ptr<Runtime> runtime_;
};

fs::path log_in(const fs::path& dir, const std::string& name) {
  return dir.empty() ? fs::path() : dir / (name + ".log");
}

}  // namespace

Stack Stack::load(const fs::path& file, StackOptions options) {
  return from_spec(parse_stack_file(file), std::move(options));
}

Stack Stack::from_spec(StackSpec parsed, StackOptions options) {
  SchedulerOptions scheduler_options;
  scheduler_options.label = parsed.file.empty() ? "stack" : parsed.file.filename().string();
  auto impl = std::make_unique<Impl>(std::move(scheduler_options));

  for (const auto& name : parsed.port_names()) {
    auto reservation = PortReservation::reserve(name);
    impl->ports.emplace(name, reservation.port());
    impl->reservations.push_back(std::move(reservation));
  }
  StackSpec spec = substitute_ports(parsed, impl->ports);
  const fs::path dir = spec.dir.empty() ? fs::current_path() : spec.dir;
  if (!options.log_dir.empty()) fs::create_directories(options.log_dir);

  if (options.bus == nullptr) {
    impl->own_bus = std::make_unique<HookBus>();
    impl->bus = impl->own_bus.get();
  } else {
    impl->bus = options.bus;
  }
  if (spec.plugins.present && spec.plugins.document) {
    // The built-in artifact plugins are known by name to every stack file.
    register_artifact_plugins();
    impl->bus->configure_plugins_text(*spec.plugins.document, spec.file.string());
  }

  std::map<std::string, Job, std::less<>> jobs_by_name;
  std::vector<Job> jobs;
  for (auto& service : spec.services) {
    if (!service.cwd) service.cwd = dir;
    if (!service.log_file && !options.log_dir.empty()) {
      service.log_file = log_in(options.log_dir, service.name);
    }
    ExecutorOptions executor_options = to_executor_options(service);
    executor_options.runtime = options.runtime;
    Command command = to_command(service);
    Executor executor = service.ready ? Executor(std::move(command), to_check(*service.ready),
                                                 std::move(executor_options))
                                      : Executor(std::move(command), std::move(executor_options));
    JobOptions job_options;
    job_options.label = service.name;
    job_options.critical = service.critical;
    Job job = impl->scheduler.add_service(std::move(executor), std::move(job_options));
    jobs_by_name.emplace(service.name, job);
    jobs.push_back(job);
    impl->services.emplace(service.name, job);
    impl->service_order.push_back(service.name);
  }
  for (const auto& spec_job : spec.jobs) {
    JobOptions job_options;
    job_options.label = spec_job.name;
    job_options.timeout = spec_job.timeout;
    JobSpec job_spec = spec_job;
    if (!job_spec.cwd) job_spec.cwd = dir;
    Job job = impl->scheduler.add(
        JobRunner(spec_job.name, to_command(job_spec), log_in(options.log_dir, spec_job.name),
                  spec.defaults.stop_timeout, options.runtime),
        std::move(job_options));
    jobs_by_name.emplace(spec_job.name, job);
    jobs.push_back(job);
  }
  auto link = [&](Job job, const std::string& what, const std::vector<std::string>& requirements) {
    for (const auto& name : requirements) {
      auto found = jobs_by_name.find(name);
      if (found == jobs_by_name.end()) {
        throw Error(what + " requires '" + name +
                    "', which the stack declares neither as a service nor as a job");
      }
      job.require(found->second);
    }
  };
  for (std::size_t i = 0; i < spec.services.size(); ++i) {
    link(jobs[i], "service '" + spec.services[i].name + "'", spec.services[i].requirements);
  }
  for (std::size_t i = 0; i < spec.jobs.size(); ++i) {
    link(jobs[spec.services.size() + i], "job '" + spec.jobs[i].name + "'",
         spec.jobs[i].requirements);
  }
  impl->scheduler.validate();

  impl->options = std::move(options);
  impl->spec = std::move(spec);
  for (const auto& name : impl->service_order) {
    impl->connections.push_back(impl->bus->connect(*impl->services.at(name).service()));
  }
  impl->connections.push_back(impl->bus->connect(impl->scheduler));
  return Stack(std::move(impl));
}

Stack::Stack(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stack::Stack(Stack&&) noexcept = default;
Stack::~Stack() = default;

Stack::Impl& Stack::impl() const {
  if (!impl_) throw Error("this roadie::Stack was moved from");
  return *impl_;
}

const StackSpec& Stack::spec() const {
  return impl().spec;
}

RunReport Stack::up(std::stop_token cancel) {
  Impl& s = impl();
  if (s.brought_up) {
    throw Error("stack '" + s.name() +
                "' was already brought up once; load the stack again to bring it up anew");
  }
  s.brought_up = true;
  RunReport report = s.scheduler.run(std::move(cancel));
  if (!report.ok()) s.down();
  return report;
}

std::vector<StopOutcome> Stack::down() {
  return impl().down();
}

Scheduler& Stack::scheduler() {
  return impl().scheduler;
}

HookBus& Stack::bus() {
  return *impl().bus;
}

StackService Stack::service(std::string_view name) {
  Impl& s = impl();
  auto found = s.services.find(name);
  if (found == s.services.end()) {
    const bool is_job = s.spec.find_job(name) != nullptr;
    throw Error("stack '" + s.name() + "' has no service '" + std::string(name) + "'" +
                (is_job ? " ('" + std::string(name) + "' is a job)" : "") +
                "; its services: " + s.known_services());
  }
  Executor& executor = *found->second.service();
  std::shared_ptr<Output> output;
  try {
    output = executor.output_handle();
  } catch (const Error&) {
    output = std::make_shared<Output>();  // not started yet: nothing written
  }
  const ServiceSpec& spec = *s.spec.find_service(name);
  std::map<std::string, Port> ports;
  for (const auto& port : spec.ports) ports.emplace(port, s.ports.at(port));
  Output& out = *output;
  return StackService{spec.name,
                      std::move(ports),
                      executor.pid(),
                      executor,
                      out,
                      spec.log_file.value_or(fs::path()),
                      std::move(output)};
}

std::vector<std::string> Stack::service_names() const {
  return impl().service_order;
}

std::map<std::string, Port> Stack::ports() const {
  return impl().ports;
}

std::map<std::string, std::string> Stack::environment() const {
  std::map<std::string, std::string> env;
  for (const auto& [name, port] : impl().ports) {
    env.emplace(PortReservation::env_name(name), std::to_string(port.value()));
  }
  return env;
}

}  // namespace roadie
