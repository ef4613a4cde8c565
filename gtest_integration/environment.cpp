// The session scope: a stack brought up once per test process, or attached
// to through ROADIE_STATE.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "roadie/state.hpp"
#include "services_impl.hpp"

namespace roadie::gtest {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

struct StackEnvironment::Impl {
  SessionOptions options;
  std::optional<Stack> stack;
  std::unique_ptr<detail::Set> set;
  bool attached = false;

  void bring_up();
  void attach(const fs::path& state_dir);
  void check_resets(const std::vector<std::string>& names) const;
};

void StackEnvironment::Impl::check_resets(const std::vector<std::string>& names) const {
  for (const auto& [name, reset] : options.resets) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string known;
      for (const auto& other : names) known += (known.empty() ? "'" : ", '") + other + "'";
      throw Error("a reset is given for service '" + name + "', which the stack does not have (it has " +
                  (known.empty() ? std::string("none") : known) + ")");
    }
  }
}

void StackEnvironment::Impl::bring_up() {
  StackOptions stack_options = options.stack;
  if (stack_options.bus == nullptr) stack_options.bus = detail::installed_bus();
  if (stack_options.log_dir.empty()) {
    const fs::path root = detail::installed_artifacts_root().value_or(default_artifacts_root());
    stack_options.log_dir =
        root / "_stack" / (session_name() + "-" + std::to_string(::getpid()));
  }
  if (options.make) {
    stack.emplace(options.make(stack_options));
  } else {
    if (options.stack_file.empty()) {
      throw Error("the session has no stack: give SessionOptions a stack_file or a make function");
    }
    stack.emplace(Stack::load(options.stack_file, stack_options));
  }
  const std::vector<std::string> names = stack->service_names();
  check_resets(names);
  RunReport report = stack->up();
  if (!report) {
    std::string message = "the session's stack did not come up: " + report.why();
    for (const std::string& failure : report.failures()) message += "\n" + failure;
    stack.reset();  // torn down already; releases the ports
    throw Error(message);
  }
  set = std::make_unique<detail::Set>(Scope::session, "session");
  for (const std::string& name : names) {
    StackService service = stack->service(name);
    const ServiceSpec* spec = stack->spec().find_service(name);
    ServiceOptions service_options{.name = name, .ports = service.ports, .reset = {}};
    if (auto it = options.resets.find(name); it != options.resets.end()) {
      service_options.reset = it->second;
    }
    set->add_external(service.executor, std::move(service_options), service.log_file, spec);
  }
  set->up();
}

void StackEnvironment::Impl::attach(const fs::path& state_dir) {
  const std::string where = "ROADIE_STATE=" + state_dir.string();
  std::optional<state::StateFile> recorded = state::StateFile::read(state_dir);
  if (!recorded) {
    throw Error(where + ": no stack runs there (no state file); start one with `roadie up --detach "
                        "--state " + state_dir.string() + "`, or unset ROADIE_STATE");
  }
  if (state::ownership(recorded->supervisor_pid, recorded->supervisor_start_time) !=
      state::Ownership::ours) {
    throw Error(where + ": its supervisor (pid " + std::to_string(recorded->supervisor_pid) +
                ") is gone; the stack is not running: `roadie down --state " + state_dir.string() +
                "` cleans up, `roadie up --detach` starts it again");
  }
  for (const state::ServiceState& service : recorded->services) {
    const state::Ownership owner = state::ownership(service.pid, service.start_time);
    if (owner != state::Ownership::ours) {
      throw Error(where + ": service '" + service.name + "' (pid " + std::to_string(service.pid) +
                  ") is " + state::to_string(owner) +
                  "; the stack is not whole: restart it with `roadie down` and `roadie up --detach`");
    }
  }
  // Resets and plugins come from the stack file: it must be the one that runs.
  const fs::path file = recorded->stack_file;
  if (state::file_hash(file) != recorded->stack_hash) {
    throw Error(where + ": the stack file " + file.string() +
                " changed since the stack was brought up (its hash differs); bring it up again");
  }
  StackSpec spec = parse_stack_file(file);
  std::map<std::string, Port> all_ports;
  for (const state::ServiceState& service : recorded->services) {
    for (const auto& [name, port] : service.ports) all_ports.emplace(name, Port(port));
  }
  for (const std::string& name : spec.port_names()) {
    if (!all_ports.contains(name)) {
      throw Error(where + ": the state file has no port '" + name + "' that the stack file declares");
    }
  }
  spec = substitute_ports(spec, all_ports);
  std::vector<std::string> names;
  for (const state::ServiceState& service : recorded->services) names.push_back(service.name);
  check_resets(names);
  // The plugins last, once nothing can fail any more: a refused attach must
  // not leave them on the bus.
  HookBus* bus = options.stack.bus != nullptr ? options.stack.bus : detail::installed_bus();
  if (bus != nullptr && spec.plugins.present) bus->configure_plugins_text(read_text(file), file.string());
  set = std::make_unique<detail::Set>(Scope::session, "session, attached to " + state_dir.string());
  set->set_test_lock(state_dir / "tests.lock");
  for (const state::ServiceState& service : recorded->services) {
    std::map<std::string, Port> ports;
    for (const auto& [name, port] : service.ports) ports.emplace(name, Port(port));
    const ServiceSpec* service_spec = spec.find_service(service.name);
    ResetFn reset;
    if (auto it = options.resets.find(service.name); it != options.resets.end()) reset = it->second;
    set->add_attached(service.name, std::move(ports), service.pid, service.start_time, service.log,
                      service_spec, std::move(reset));
  }
  set->up();
  attached = true;
}

StackEnvironment::StackEnvironment(SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

StackEnvironment::StackEnvironment(std::filesystem::path stack_file)
    : StackEnvironment(SessionOptions{.stack_file = std::move(stack_file)}) {}

StackEnvironment::~StackEnvironment() = default;

void StackEnvironment::SetUp() {
  try {
    const char* state_dir = std::getenv("ROADIE_STATE");
    if (impl_->options.attach && state_dir != nullptr && *state_dir != '\0') {
      impl_->attach(state_dir);
    } else {
      impl_->bring_up();
    }
  } catch (const std::exception& e) {
    impl_->set.reset();
    impl_->stack.reset();
    // Fatal: GoogleTest runs no test after a fatal failure in an
    // environment's SetUp (they are reported skipped) and exits 1.
    GTEST_FAIL() << "roadie: " << e.what();
  }
}

void StackEnvironment::TearDown() {
  std::set<std::string> dead;  // reported on a test (or just below) already
  if (impl_->set) {
    for (const auto& watched : impl_->set->services()) {
      if (watched->death_text()) dead.insert(watched->name);
    }
    for (const std::string& problem : impl_->set->down()) ADD_FAILURE() << problem;
    impl_->set.reset();
  }
  if (impl_->stack) {
    for (const StopOutcome& outcome : impl_->stack->down()) {
      if (!outcome.error.empty() && !dead.contains(outcome.label)) {
        ADD_FAILURE() << "stopping '" << outcome.label << "': " << outcome.error;
      }
    }
    impl_->stack.reset();
  }
  impl_->attached = false;
}

bool StackEnvironment::is_up() const { return impl_->set && impl_->set->is_up(); }
bool StackEnvironment::attached() const { return impl_->attached; }

Service StackEnvironment::service(std::string_view name) const {
  if (!is_up()) throw Error("the session's stack is not up; no service '" + std::string(name) + "'");
  return impl_->set->service(name);
}

std::vector<std::string> StackEnvironment::service_names() const {
  return impl_->set ? impl_->set->names() : std::vector<std::string>{};
}

std::map<std::string, Port> StackEnvironment::ports() const {
  return impl_->set ? impl_->set->ports() : std::map<std::string, Port>{};
}

Stack* StackEnvironment::stack() { return impl_->stack ? &*impl_->stack : nullptr; }

StackEnvironment& add_stack(SessionOptions options) {
  auto* environment = new StackEnvironment(std::move(options));
  ::testing::AddGlobalTestEnvironment(environment);  // GoogleTest owns it
  return *environment;
}

StackEnvironment& add_stack(std::filesystem::path stack_file) {
  return add_stack(SessionOptions{.stack_file = std::move(stack_file)});
}

}  // namespace roadie::gtest
