// Services at three scopes: the watched services, ServiceSet, the registry of
// the scopes that are up, and the guard listener (deaths and resets become
// test results on the main thread).
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "roadie/process.hpp"
#include "roadie/state.hpp"
#include "services_impl.hpp"

namespace roadie::gtest {
namespace detail {
namespace {

// --- The registry and the guard --------------------------------------------

struct Registry {
  std::mutex mutex;
  std::vector<Set*> sets;  // innermost last
  std::string current_test;
  HookBus* bus = nullptr;
  std::optional<std::filesystem::path> root;
};

Registry& registry() {
  static Registry* instance = new Registry;  // outlives every static fixture state
  return *instance;
}

std::vector<Set*> sets_now() {
  std::lock_guard lock(registry().mutex);
  return registry().sets;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "'" : ", '") + name + "'";
  return text.empty() ? "none" : text;
}

// Attached services have no executor to tell of their death: they are
// checked at each test's start and end (a /proc read each).
void check_attached(Watched& watched) {
  if (watched.executor != nullptr) return;
  if (state::ownership(watched.attached_pid, watched.attached_start_time) ==
      state::Ownership::ours) {
    return;
  }
  watched.record_death("is gone (pid " + std::to_string(watched.attached_pid) +
                       ", run by another process: its exit status is not known here)");
}

/// Turns deaths and resets into results of the running test. Appended to
/// GoogleTest's listeners once, when the first scope comes up.
class Guard : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    {
      std::lock_guard lock(registry().mutex);
      registry().current_test = std::string(info.test_suite_name()) + "." + info.name();
    }
    // GoogleTest also "starts" the tests it only skips (a failed
    // SetUpTestSuite, --gtest_fail_fast after a failure): no reset, no lock,
    // no failure for those.
    if (only_skipped()) {
      skipping_ = true;
      return;
    }
    skipping_ = false;
    // The lock (attached stacks with resets) and the log windows' starts,
    // for every shared set, before anything below can end this early.
    for (Set* set : sets_now()) {
      if (set->scope() != Scope::test) set->begin_test();
    }
    for (Set* set : sets_now()) {
      if (set->scope() == Scope::test) continue;  // comes up in the fixture, after this
      for (const auto& watched : set->services()) {
        check_attached(*watched);
        if (auto death = watched->death_text()) {
          // The first report of a death (one between tests) carries its
          // last lines; the later ones only name it.
          const std::string what =
              watched->take_unreported_death()
                  ? watched->describe_death(*death)
                  : "service '" + watched->name + "' (" + to_string(watched->scope) + " scope, " +
                        watched->label + ") " + *death;
          fail_now(what + "; this test needs it, so it did not run");
          return;
        }
      }
    }
    // Shared services are cleaned before each test.
    for (Set* set : sets_now()) {
      if (set->scope() == Scope::test) continue;
      for (const auto& watched : set->services()) {
        if (!watched->has_reset()) continue;
        try {
          run_reset(watched);
        } catch (const std::exception& e) {
          fail_now(e.what());
          return;
        } catch (...) {
          fail_now("the reset of service '" + watched->name + "' threw an exception that is not a std::exception");
          return;
        }
      }
    }
  }

  void OnTestEnd(const ::testing::TestInfo&) override {
    // Runs before GoogleTest prints the result (end events run in reverse
    // order of the listeners), while the test is still the current one, and
    // before the bus listener's finish_test lists the test's files.
    if (skipping_) {
      std::lock_guard lock(registry().mutex);
      registry().current_test.clear();
      return;
    }
    const std::optional<std::filesystem::path> artifact_dir = current_artifact_dir();
    for (Set* set : sets_now()) {
      if (set->scope() != Scope::test) set->end_test(artifact_dir);
    }
    for (Set* set : sets_now()) {
      for (const auto& watched : set->services()) {
        check_attached(*watched);
        if (auto death = watched->take_unreported_death()) {
          ADD_FAILURE() << watched->describe_death(*death);
        }
      }
    }
    std::lock_guard lock(registry().mutex);
    registry().current_test.clear();
  }

 private:
  // A fatal failure in OnTestStart: GoogleTest then never runs the test's
  // SetUp nor its body, and reports the test failed with this message.
  static void fail_now(const std::string& message) { GTEST_FAIL() << message; }

  // Whether GoogleTest announces a test it is about to skip without running
  // (TestInfo::Skip): its suite's SetUpTestSuite failed, or --gtest_fail_fast
  // is on and a test failed already.
  static bool only_skipped() {
    const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
    const ::testing::TestSuite* suite = unit.current_test_suite();
    if (suite != nullptr && suite->ad_hoc_test_result().Failed()) return true;
    return GTEST_FLAG_GET(fail_fast) && unit.failed_test_count() > 0;
  }

  bool skipping_ = false;
};

void ensure_guard() {
  static std::once_flag once;
  std::call_once(once, [] { ::testing::UnitTest::GetInstance()->listeners().Append(new Guard); });
}

// Tells the death of an owned service the moment it happens (event-loop
// thread): recorded for the main thread, printed at once.
class DeathWatch : public ExecutorListener {
 public:
  explicit DeathWatch(std::weak_ptr<Watched> watched) : watched_(std::move(watched)) {}
  void on_exited(const Executor& executor, const ExitStatus& status) override {
    auto watched = watched_.lock();
    if (!watched) return;
    const std::string test = current_test();
    std::string text = status.describe() + (test.empty() ? " between tests" : " during " + test);
    if (!watched->record_death(text)) return;
    std::string lines;
    try {
      lines = executor.output().excerpt(10);
    } catch (const std::exception&) {
    }
    std::fprintf(stderr, "[  ROADIE  ] service '%s' (%s scope) %s; last lines:\n%s\n",
                 watched->name.c_str(), to_string(watched->scope), text.c_str(), lines.c_str());
    std::fflush(stderr);
  }

 private:
  std::weak_ptr<Watched> watched_;
};

std::string tail_of_file(const std::filesystem::path& file, std::size_t n) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (lines.size() > n) lines.erase(lines.begin());
  }
  std::string text;
  for (const auto& kept : lines) text += "  " + kept + "\n";
  if (!text.empty()) text.pop_back();
  return text;
}

}  // namespace

void register_set(Set* set) {
  ensure_guard();
  // A guard added during a test (a test-scope set, first of all) missed that
  // test's start: name it here (main thread), or a death in it would read
  // "between tests".
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::lock_guard lock(registry().mutex);
  if (info != nullptr && registry().current_test.empty()) {
    registry().current_test = std::string(info->test_suite_name()) + "." + info->name();
  }
  registry().sets.push_back(set);
}

void unregister_set(Set* set) {
  std::lock_guard lock(registry().mutex);
  auto& sets = registry().sets;
  sets.erase(std::remove(sets.begin(), sets.end(), set), sets.end());
}

std::string current_test() {
  std::lock_guard lock(registry().mutex);
  return registry().current_test;
}

Service make_service(std::shared_ptr<Watched> watched) { return Service(std::move(watched)); }

std::optional<std::filesystem::path> installed_artifacts_root() {
  std::lock_guard lock(registry().mutex);
  return registry().root;
}

HookBus* installed_bus() {
  std::lock_guard lock(registry().mutex);
  return registry().bus;
}

void set_installed(HookBus* bus, std::filesystem::path root) {
  std::lock_guard lock(registry().mutex);
  registry().bus = bus;
  registry().root = std::move(root);
}

void run_reset(const std::shared_ptr<Watched>& shared) {
  const Watched& watched = *shared;
  if (watched.reset) {
    try {
      watched.reset(make_service(shared));
    } catch (const std::exception& e) {
      throw Error("the reset of service '" + watched.name + "' failed: " + e.what());
    } catch (...) {
      throw Error("the reset of service '" + watched.name +
                  "' failed: it threw an exception that is not a std::exception");
    }
    return;
  }
  if (watched.reset_request) {
    run_reset_request(*watched.reset_request, watched.name);
    return;
  }
  if (watched.reset_argv.empty()) return;
  Command command(watched.reset_argv);
  ProcessOptions options;
  options.name = "reset " + watched.name;
  Process process = [&] {
    try {
      return Process::spawn(command, options);
    } catch (const std::exception& e) {
      throw Error("the reset of service '" + watched.name + "' could not start: " + e.what());
    }
  }();
  const ExitStatus status = process.wait();
  if (!status.success()) {
    throw Error("the reset of service '" + watched.name + "' (`" + command.display() + "`) " +
                status.describe() + ":\n" + process.output().excerpt(20));
  }
}

// --- Watched ----------------------------------------------------------------

bool Watched::record_death(std::string text) {
  std::lock_guard lock(mutex);
  if (death) return false;
  death = std::move(text);
  return true;
}

std::optional<std::string> Watched::take_unreported_death() {
  std::lock_guard lock(mutex);
  if (!death || death_reported) return std::nullopt;
  death_reported = true;
  return death;
}

std::optional<std::string> Watched::death_text() const {
  std::lock_guard lock(mutex);
  return death;
}

bool Watched::alive() const {
  if (gone.load() || death_text()) return false;
  if (executor != nullptr) return executor->running();
  return state::ownership(attached_pid, attached_start_time) == state::Ownership::ours;
}

std::string Watched::last_lines(std::size_t n) const {
  if (executor != nullptr && !gone.load()) {
    try {
      return executor->output().excerpt(n);
    } catch (const std::exception&) {
      return "";
    }
  }
  return tail_of_file(log_file, n);
}

std::string Watched::describe_death(const std::string& text) const {
  std::string message = "service '" + name + "' (" + to_string(scope) + " scope, " + label +
                        ") " + text;
  const std::string lines = last_lines(20);
  message += lines.empty() ? std::string("; it printed nothing") : "; last lines:\n" + lines;
  return message;
}

// --- Set --------------------------------------------------------------------

Set::~Set() {
  try {
    down();
  } catch (...) {
  }
}

Port Set::reserve(std::string name) {
  reservations_.push_back(PortReservation::reserve(std::move(name)));
  return reservations_.back().port();
}

std::shared_ptr<Watched> Set::make_watched(std::string name, ServiceOptions options) {
  if (up_) throw Error("a service cannot join a scope that is up ('" + name + "')");
  if (name.empty()) throw Error("a service needs a name");
  if (find(name)) throw Error("two services are called '" + name + "' in " + label_);
  auto watched = std::make_shared<Watched>();
  watched->name = std::move(name);
  watched->scope = scope_;
  watched->label = label_;
  watched->ports = std::move(options.ports);
  watched->reset = std::move(options.reset);
  services_.push_back(watched);
  return watched;
}

void Set::add_owned(std::unique_ptr<Executor> executor, ServiceOptions options) {
  std::string name = options.name.empty() ? executor->name() : options.name;
  auto watched = make_watched(std::move(name), std::move(options));
  watched->executor = executor.get();
  watched->owned = true;
  watched->log_file = executor->options().log_file;
  owned_.push_back(std::move(executor));
}

namespace {
// The stack file's reset of a service, unless a C++ reset replaces it.
void take_reset(Watched& watched, const ServiceSpec* spec) {
  if (spec == nullptr || watched.reset) return;
  watched.reset_argv = spec->reset;
  watched.reset_request = spec->reset_request;
}
}  // namespace

void Set::add_external(Executor& executor, ServiceOptions options, std::filesystem::path log_file,
                       const ServiceSpec* spec) {
  std::string name = options.name.empty() ? executor.name() : options.name;
  auto watched = make_watched(std::move(name), std::move(options));
  watched->executor = &executor;
  watched->log_file = std::move(log_file);
  take_reset(*watched, spec);
}

void Set::add_attached(std::string name, std::map<std::string, Port> ports, pid_t pid,
                       std::uint64_t start_time, std::filesystem::path log_file,
                       const ServiceSpec* spec, ResetFn reset) {
  auto watched = make_watched(std::move(name), {.ports = std::move(ports), .reset = std::move(reset)});
  watched->attached_pid = pid;
  watched->attached_start_time = start_time;
  watched->log_file = std::move(log_file);
  take_reset(*watched, spec);
}

void Set::watch(Watched& watched) {
  if (watched.executor == nullptr) return;
  std::weak_ptr<Watched> weak;
  for (const auto& service : services_) {
    if (service.get() == &watched) weak = service;
  }
  watched.watching = watched.executor->add_listener(std::make_shared<DeathWatch>(weak));
}

void Set::up() {
  if (up_) return;
  // Owned services join the listener's bus before they start, so that a
  // test's log window has their lines from the first (service_logs takes a
  // service that becomes ready during a test from its first line).
  if (HookBus* bus = installed_bus()) {
    for (const auto& watched : services_) {
      if (watched->executor != nullptr && watched->owned) {
        watched->bus_link = bus->connect(*watched->executor);
      }
    }
  }
  // Owned executors start at once, each on its own thread (a start blocks
  // until ready); the first failure stops the others.
  std::vector<Watched*> starting;
  for (const auto& watched : services_) {
    if (watched->owned && !watched->executor->running()) starting.push_back(watched.get());
  }
  // The first failure cancels the starts still under way (start() with a
  // stop token: the process gets its stop escalation, Cancelled is thrown).
  std::vector<std::exception_ptr> errors(starting.size());
  std::stop_source cancel;
  auto start_one = [&](std::size_t i) {
    try {
      starting[i]->executor->start(cancel.get_token());
    } catch (...) {
      errors[i] = std::current_exception();
      cancel.request_stop();
    }
  };
  if (starting.size() == 1) {
    start_one(0);
  } else if (!starting.empty()) {
    std::vector<std::jthread> threads;
    threads.reserve(starting.size());
    for (std::size_t i = 0; i < starting.size(); ++i) threads.emplace_back(start_one, i);
  }
  std::string failure;
  for (std::size_t i = 0; i < starting.size(); ++i) {
    if (!errors[i]) continue;
    try {
      std::rethrow_exception(errors[i]);
    } catch (const Cancelled&) {  // stopped because another one failed
    } catch (const std::exception& e) {
      if (!failure.empty()) failure += "\n";
      failure += "service '" + starting[i]->name + "' (" + to_string(scope_) + " scope, " +
                 label_ + ") did not start: " + e.what();
    } catch (...) {
      if (!failure.empty()) failure += "\n";
      failure += "service '" + starting[i]->name + "' did not start: an unknown exception";
    }
  }
  if (!failure.empty()) {
    // Only what this call started: a service already running stays up.
    for (auto it = starting.rbegin(); it != starting.rend(); ++it) {
      try {
        (*it)->executor->stop();
      } catch (const std::exception&) {
      }
    }
    for (const auto& watched : services_) watched->bus_link.reset();
    throw Error(failure);
  }
  for (const auto& watched : services_) watch(*watched);
  export_ports();
  register_set(this);
  up_ = true;
}

std::vector<std::string> Set::down() {
  if (!up_) {
    for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) {
      try {
        (*it)->stop();
      } catch (const std::exception&) {
      }
    }
    return {};
  }
  up_ = false;
  unregister_set(this);
  end_test(std::nullopt);
  // Handles that outlive the scope refuse from now on (the executors go).
  for (const auto& watched : services_) watched->gone.store(true);
  std::vector<std::string> problems;
  for (const auto& watched : services_) {
    check_attached(*watched);
    if (auto death = watched->take_unreported_death()) {
      problems.push_back(watched->describe_death(*death));
    }
  }
  for (const auto& watched : services_) watched->watching.reset();
  for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) {
    Executor& executor = **it;
    bool dead = false;
    for (const auto& watched : services_) {
      if (watched->executor == &executor && watched->death_text()) dead = true;
    }
    try {
      executor.stop();
    } catch (const std::exception& e) {
      if (!dead) problems.push_back(e.what());  // a death was reported already
    }
  }
  for (const auto& watched : services_) watched->bus_link.reset();
  unexport_ports();
  return problems;
}

void Set::export_ports() {
  for (const auto& [name, port] : ports()) {
    const std::string variable = PortReservation::env_name(name);
    const char* before = std::getenv(variable.c_str());
    exported_.emplace_back(variable, before != nullptr ? std::optional<std::string>(before)
                                                       : std::nullopt);
    ::setenv(variable.c_str(), std::to_string(port.value()).c_str(), 1);
  }
}

void Set::unexport_ports() {
  // In reverse, each back to what it was: an inner scope's port of the same
  // name as the session's gives the session's back when it ends.
  for (auto it = exported_.rbegin(); it != exported_.rend(); ++it) {
    if (it->second) {
      ::setenv(it->first.c_str(), it->second->c_str(), 1);
    } else {
      ::unsetenv(it->first.c_str());
    }
  }
  exported_.clear();
}

void Set::begin_test() {
  bool resets = false;
  for (const auto& watched : services_) resets = resets || watched->has_reset();
  // The lock first: lines another process's test writes while this one
  // waits for it belong to that test, not to this window.
  if (!test_lock_.empty() && resets && test_lock_fd_ < 0) {
    test_lock_fd_ = ::open(test_lock_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (test_lock_fd_ >= 0) {  // else the state directory went away: seen at the test's end
      while (::flock(test_lock_fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  for (const auto& watched : services_) {
    if (watched->executor == nullptr && !watched->log_file.empty()) {
      struct stat info {};
      watched->window_start =
          ::stat(watched->log_file.c_str(), &info) == 0 ? static_cast<std::uint64_t>(info.st_size) : 0;
    }
  }
}

void Set::end_test(const std::optional<std::filesystem::path>& artifact_dir) {
  if (artifact_dir) {
    for (const auto& watched : services_) {
      if (watched->executor != nullptr || watched->log_file.empty()) continue;
      std::ifstream in(watched->log_file, std::ios::binary);
      if (!in) continue;
      in.seekg(static_cast<std::streamoff>(watched->window_start));
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::filesystem::path file =
          *artifact_dir / (sanitize_path_component(watched->name, 100) + ".log");
      const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0) continue;
      std::size_t written = 0;
      while (written < text.size()) {
        const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        written += static_cast<std::size_t>(n);
      }
      ::close(fd);
    }
  }
  if (test_lock_fd_ >= 0) {
    ::close(test_lock_fd_);  // lets the lock go
    test_lock_fd_ = -1;
  }
}

std::map<std::string, Port> Set::ports() const {
  std::map<std::string, Port> all;
  for (const auto& watched : services_) all.insert(watched->ports.begin(), watched->ports.end());
  return all;
}

std::shared_ptr<Watched> Set::find(std::string_view name) const {
  for (const auto& watched : services_) {
    if (watched->name == name) return watched;
  }
  return nullptr;
}

Service Set::service(std::string_view name) const {
  if (auto watched = find(name)) return make_service(watched);
  throw Error("no service '" + std::string(name) + "' in " + label_ + " (" + to_string(scope_) +
              " scope); it has " + join_names(names()));
}

std::vector<std::string> Set::names() const {
  std::vector<std::string> names;
  for (const auto& watched : services_) names.push_back(watched->name);
  return names;
}

}  // namespace detail

const char* to_string(Scope scope) {
  switch (scope) {
    case Scope::session: return "session";
    case Scope::suite: return "suite";
    case Scope::test: return "test";
  }
  return "?";
}

// --- Service ----------------------------------------------------------------

const detail::Watched& Service::live() const {
  if (watched_->gone.load()) {
    throw Error("service '" + watched_->name + "' (" + to_string(watched_->scope) + " scope, " +
                watched_->label + ") is not up any more: its scope ended");
  }
  if (auto death = watched_->death_text()) {
    // Still reported on the test at its end: the test may catch this.
    throw Error(watched_->describe_death(*death));
  }
  return *watched_;
}

const std::string& Service::name() const { return watched_->name; }
Scope Service::scope() const { return watched_->scope; }
bool Service::attached() const { return watched_->executor == nullptr; }
const std::map<std::string, Port>& Service::ports() const { return live().ports; }

Port Service::port() const {
  const auto& ports = live().ports;
  if (ports.size() == 1) return ports.begin()->second;
  std::vector<std::string> names;
  for (const auto& [name, port] : ports) names.push_back(name);
  throw Error("service '" + name() + "' has " +
              (ports.empty() ? std::string("no port") : "several ports (" + detail::join_names(names) + ")") +
              "; name the one you want: port(NAME)");
}

Port Service::port(std::string_view port_name) const {
  const auto& ports = live().ports;
  if (auto it = ports.find(std::string(port_name)); it != ports.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [name, port] : ports) names.push_back(name);
  throw Error("service '" + name() + "' has no port '" + std::string(port_name) + "'; it has " +
              detail::join_names(names));
}

pid_t Service::pid() const {
  const auto& watched = live();
  return watched.executor != nullptr ? watched.executor->pid() : watched.attached_pid;
}

Executor& Service::executor() const {
  const auto& watched = live();
  if (watched.executor == nullptr) {
    throw Error("service '" + name() + "' is attached (run by another process, ROADIE_STATE): it has no executor here");
  }
  return *watched.executor;
}

Output& Service::output() const {
  if (attached()) {
    throw Error("service '" + name() + "' is attached (run by another process, ROADIE_STATE): read its log file, " +
                watched_->log_file.string());
  }
  return watched_->executor->output();
}

const std::filesystem::path& Service::log_file() const { return watched_->log_file; }
std::string Service::last_lines(std::size_t n) const { return watched_->last_lines(n); }
bool Service::alive() const { return watched_->alive(); }
std::optional<std::string> Service::death() const { return watched_->death_text(); }
StoppedScope Service::stopped() const { return executor().stopped(); }
StartedScope Service::started() const {
  if (attached()) executor();  // throws the attached message
  return watched_->executor->started();
}
void Service::reset() const {
  (void)live();
  detail::run_reset(watched_);
}

// --- ServiceSet -------------------------------------------------------------

ServiceSet::ServiceSet(Scope scope, std::string label)
    : set_(std::make_unique<detail::Set>(scope, label.empty() ? to_string(scope) : std::move(label))) {}
ServiceSet::ServiceSet(ServiceSet&&) noexcept = default;
ServiceSet& ServiceSet::operator=(ServiceSet&& other) noexcept {
  if (this != &other) {
    if (set_) set_->down();
    set_ = std::move(other.set_);
  }
  return *this;
}
ServiceSet::~ServiceSet() = default;

detail::Set& ServiceSet::set() const {
  if (!set_) throw Error("this ServiceSet was moved from");
  return *set_;
}
Port ServiceSet::reserve(std::string name) { return set().reserve(std::move(name)); }
void ServiceSet::add_executor(std::unique_ptr<Executor> executor, ServiceOptions options) {
  set().add_owned(std::move(executor), std::move(options));
}
void ServiceSet::up() { set().up(); }
std::vector<std::string> ServiceSet::down() { return set_ ? set_->down() : std::vector<std::string>{}; }
bool ServiceSet::is_up() const { return set_ && set_->is_up(); }
Service ServiceSet::service(std::string_view name) const { return set().service(name); }
std::vector<std::string> ServiceSet::names() const { return set().names(); }

Service service(std::string_view name) {
  std::vector<std::string> known;
  std::shared_ptr<detail::Watched> found;
  {
    // Under the registry's lock: a set is unregistered (under it) before it
    // is destroyed, so none goes away while it is searched from any thread.
    std::lock_guard lock(detail::registry().mutex);
    const auto& sets = detail::registry().sets;
    for (auto it = sets.rbegin(); it != sets.rend() && !found; ++it) {
      found = (*it)->find(name);
      if (!found) {
        for (const std::string& other : (*it)->names()) known.push_back(other);
      }
    }
  }
  if (found) {
    Service service = detail::make_service(found);
    (void)service.ports();  // throws with the death when it died
    return service;
  }
  throw Error("no service '" + std::string(name) + "' is up for this test; in reach: " +
              detail::join_names(known));
}

}  // namespace roadie::gtest
