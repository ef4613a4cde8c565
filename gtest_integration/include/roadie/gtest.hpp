// GoogleTest integration:
//  - BusListener / install(): GoogleTest's events as hook bus events, with the
//    artifact plugins (per-test directories, service log windows, manifest,
//    XML properties, timeline);
//  - services at three scopes: the session (StackEnvironment: a roadie.yaml or
//    a stack made in code, brought up once per process, or attached to a
//    running one through ROADIE_STATE), the suite (SuiteServices) and the test
//    (TestServices), each watched: a service that dies fails the test it died
//    in, with its exit status and last lines, and every later test that needs
//    it fails at its start with the reason;
//  - resets that clean a shared service before each test;
//  - service(NAME) from anywhere in a test.
//
//     // A whole stack for the session, plain gtest_main otherwise:
//     //   link roadie::gtest_main, run with --roadie_stack=roadie.yaml
//     TEST(Cache, Stores) {
//       roadie::Port port = roadie::gtest::service("redis").port();
//       ...
//     }
//
//     // One redis per test:
//     class CacheTest : public roadie::gtest::TestServices<> {
//      protected:
//       roadie::Port port = reserve("redis");
//       roadie::TcpExecutor& redis = add(
//           roadie::TcpExecutor({"redis-server", "--port", std::to_string(port.value())},
//                               "127.0.0.1", port),
//           {.name = "redis", .ports = {{"redis", port}}});   // service("redis").port()
//     };
//
// Thread-safety: GoogleTest runs fixtures, environments and listeners on the
// main thread, and so must the calls that change a scope (up/down, add,
// reserve, started()/stopped()); service() and a Service's accessors may be
// called from any thread. Deaths are noticed on roadie's event-loop thread and
// recorded on the test by the main thread (GoogleTest's results are not safe
// to write from another thread): at the end of the test they happened in, or
// at once by any Service accessor the test calls afterwards (it throws).
#pragma once

#include <gtest/gtest.h>

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "roadie/artifacts.hpp"
#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/hooks.hpp"
#include "roadie/ports.hpp"
#include "roadie/stack.hpp"

namespace roadie::gtest {

/// Fires, on the bus it was given:
/// - OnTestProgramStart: session_start {session: the binary's file name};
/// - OnTestSuiteStart: suite_start {suite_name};
/// - OnTestStart: start_test {suite_name, test_name (GoogleTest's full names:
///   "Prefix/Suite", "Name/0" for parameterized tests), test_location "file:line"};
/// - OnTestEnd: finish_test {suite_name, test_name, test_location, test_result
///   "passed"/"failed"/"skipped", test_duration float seconds, failure_text:
///   every failed part as "file:line: message", joined with newlines};
/// - OnTestSuiteEnd: suite_finish {suite_name, suite_result, suite_duration};
/// - OnTestProgramEnd: session_finish {session, session_result, session_duration}.
///
/// start_test and finish_test fire while the test is still GoogleTest's current
/// test, so hooks may call ::testing::Test::RecordProperty (it lands on the test
/// in the XML report). A bus failure (an exception out of fire()) never leaves
/// the listener: it is printed to stderr as "[  ROADIE  ] ..." and counted
/// (failures()); for a test event it is also recorded as the test's property
/// "roadie_hook_failure".
///
/// The bus must outlive the listener's events (the whole RUN_ALL_TESTS()).
/// Thread-safety: GoogleTest calls listeners on the main thread; the bus is
/// thread-safe.
class BusListener : public ::testing::EmptyTestEventListener {
 public:
  explicit BusListener(HookBus& bus);

  void OnTestProgramStart(const ::testing::UnitTest& unit_test) override;
  void OnTestSuiteStart(const ::testing::TestSuite& suite) override;
  void OnTestStart(const ::testing::TestInfo& info) override;
  void OnTestEnd(const ::testing::TestInfo& info) override;
  void OnTestSuiteEnd(const ::testing::TestSuite& suite) override;
  void OnTestProgramEnd(const ::testing::UnitTest& unit_test) override;

  HookBus& bus() const noexcept { return *bus_; }
  /// The artifact directory of the running test (artifact_path as start_test
  /// left it), or nothing outside a test or without the artifacts layer.
  const std::optional<std::filesystem::path>& artifact_dir() const noexcept { return artifact_dir_; }
  /// How many events failed on the bus so far.
  int failures() const noexcept { return failures_; }

 private:
  Values fire(std::string_view event, Values locals, bool in_test);
  HookBus* bus_;
  std::string session_;
  std::optional<std::filesystem::path> artifact_dir_;
  int failures_ = 0;
};

/// The binary's file name (of /proc/self/exe), the session name.
std::string session_name();

/// "passed", "failed" or "skipped" for a finished test's result.
std::string_view result_of(const ::testing::TestResult& result);
/// Every failed part of the result as "file:line: message", joined with '\n'
/// ("" when none failed).
std::string failure_text(const ::testing::TestResult& result);

/// install_artifacts(bus, options) with options.record_property set to
/// ::testing::Test::RecordProperty when empty, then appends a BusListener to
/// GoogleTest's listeners (which own it). Call after InitGoogleTest and before
/// RUN_ALL_TESTS; the bus must outlive RUN_ALL_TESTS. Throws like
/// install_artifacts.
BusListener& install(HookBus& bus, ArtifactOptions options = {});

/// The artifact directory of the running test, from the last listener
/// install() appended; nothing when none or outside a test.
std::optional<std::filesystem::path> current_artifact_dir();

// --- Services at three scopes -------------------------------------------------

/// Who holds a service: the test process for all its tests, one suite, one
/// test.
enum class Scope { session, suite, test };
const char* to_string(Scope scope);

class Service;

namespace detail {
struct Watched;
class Set;
Service make_service(std::shared_ptr<Watched> watched);
}  // namespace detail

/// Cleans a shared service before each test; throws (anything) to fail it.
using ResetFn = std::function<void(const Service&)>;

/// A service as a test reaches it: a handle (cheap to copy) that stays valid
/// while its scope is up. An attached service (run by another process, found
/// through ROADIE_STATE) has a name, ports, a pid and a log file but no
/// executor.
class Service {
 public:
  const std::string& name() const;
  Scope scope() const;
  bool attached() const;
  /// Its ports by name.
  const std::map<std::string, Port>& ports() const;
  /// Its only port; roadie::Error when it has none or several.
  Port port() const;
  /// The port called `name`; roadie::Error naming the ones it has.
  Port port(std::string_view name) const;
  /// Its pid (-1 when an owned service is not running).
  pid_t pid() const;
  /// Its executor; roadie::Error when attached.
  Executor& executor() const;
  /// The output of its current run; roadie::Error when attached (read
  /// log_file()).
  Output& output() const;
  /// Where its output is teed (empty when nowhere).
  const std::filesystem::path& log_file() const;
  /// Its last `n` lines ("  [stdout] ..." lines; from the log file when
  /// attached).
  std::string last_lines(std::size_t n = 20) const;
  /// Running (owned), or alive with its recorded start time (attached).
  bool alive() const;
  /// Whether it died by itself while its scope was up, and how.
  std::optional<std::string> death() const;
  /// Executor::stopped() / started() on its executor; roadie::Error when
  /// attached (another process owns it). A service stopped through these is
  /// not a death.
  [[nodiscard]] StoppedScope stopped() const;
  [[nodiscard]] StartedScope started() const;
  /// Runs its reset now (nothing when it has none); throws roadie::Error with
  /// the reset's output when it fails.
  void reset() const;

 private:
  friend Service detail::make_service(std::shared_ptr<detail::Watched> watched);
  explicit Service(std::shared_ptr<detail::Watched> watched) : watched_(std::move(watched)) {}
  // Throws roadie::Error with the death when the service died.
  const detail::Watched& live() const;
  std::shared_ptr<detail::Watched> watched_;
};

/// How a service joins a ServiceSet.
struct ServiceOptions {
  /// Its name (service(NAME)); empty: the executor's name.
  std::string name;
  /// Its ports by name (exported as ROADIE_PORT_<NAME> while the set is up).
  std::map<std::string, Port> ports;
  /// Runs before each test while the service is shared (session and suite
  /// scope; a test-scope service is fresh for each test).
  ResetFn reset;
};

/// Executors started together (in parallel), watched while up, and stopped in
/// reverse order of adding. The engine behind SuiteServices and TestServices;
/// usable on its own. Thread-safety: see the file comment.
class ServiceSet {
 public:
  explicit ServiceSet(Scope scope = Scope::test, std::string label = {});
  ServiceSet(ServiceSet&&) noexcept;
  ServiceSet& operator=(ServiceSet&&) noexcept;
  ~ServiceSet();  ///< down()

  /// Reserves a free loopback port (PortReservation, machine-wide) held while
  /// the set lives.
  Port reserve(std::string name);
  /// Adds an executor (moved in) and returns it where it now lives; roadie::Error
  /// when the name is taken or the set is up.
  template <class E>
    requires std::is_base_of_v<Executor, std::decay_t<E>>
  std::decay_t<E>& add(E&& executor, ServiceOptions options = {}) {
    auto owned = std::make_unique<std::decay_t<E>>(std::forward<E>(executor));
    auto& ref = *owned;
    add_executor(std::unique_ptr<Executor>(std::move(owned)), std::move(options));
    return ref;
  }

  /// Starts every service at once and waits until all are ready; then watches
  /// them. On a failure the others are stopped and roadie::Error says which
  /// failed, why and its last lines. No effect when up.
  void up();
  /// Stops the services in reverse order; the exit statuses that were not
  /// expected are returned as text (empty: all clean). No effect when down.
  std::vector<std::string> down();
  bool is_up() const;

  /// roadie::Error naming the set's services when there is no such one.
  Service service(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  void add_executor(std::unique_ptr<Executor> executor, ServiceOptions options);
  detail::Set& set() const;  // roadie::Error when moved from
  std::unique_ptr<detail::Set> set_;
};

/// What the session environment is made of.
struct SessionOptions {
  /// A stack file. Empty: `make` gives the stack.
  std::filesystem::path stack_file;
  /// A stack made in code (e.g. Stack::from_spec); called in SetUp (never at
  /// construction, so listing tests starts nothing) with `stack` below.
  std::function<Stack(StackOptions)> make;
  /// Passed to Stack::load / `make`. Empty log_dir: the services' logs go to
  /// <artifacts root>/_stack/<binary>-<pid>/ (teed line by line, so they are
  /// on disk whatever ends the binary). A null bus: the listener's bus (see
  /// install()), if any.
  StackOptions stack;
  /// Attach to the stack named by ROADIE_STATE when it is set (see
  /// StackEnvironment).
  bool attach = true;
  /// C++ resets by service name; they replace the file's `reset:`.
  std::map<std::string, ResetFn> resets;
};

/// The session scope: a ::testing::Environment that brings a stack up in
/// SetUp (before the first test) and down in TearDown (after the last). It
/// starts nothing when the binary only lists tests (GoogleTest runs no SetUp
/// then).
///
/// With `attach` and ROADIE_STATE set to the state directory of a running
/// `roadie up --detach`, it attaches instead: every recorded pid must be alive
/// with its recorded start time (else the run fails, naming the service), the
/// stack file must still have the recorded hash (else the run fails: resets
/// and ports would come from a different file), nothing is started and
/// nothing is stopped at the end. Each attached service's log lines during a
/// test are copied from its log file into the test's artifact directory. When
/// a service has a reset, the tests of every process attached to the stack
/// run one at a time (STATE/tests.lock, held from the reset to the test's
/// end): a reset must never wipe the data of another process's running test.
///
/// A failed bring-up or attach is a fatal failure of the environment, with the
/// service, the reason and its last lines: GoogleTest then runs no test (it
/// reports them skipped, never passed) and the binary exits 1.
///
/// While up: ROADIE_PORT_<NAME> is set in the process environment for every
/// port (setenv, on the main thread in SetUp); services are reset before each
/// test; a service that dies fails the test it died in and every later test.
class StackEnvironment : public ::testing::Environment {
 public:
  explicit StackEnvironment(SessionOptions options);
  explicit StackEnvironment(std::filesystem::path stack_file);
  ~StackEnvironment() override;

  void SetUp() override;
  void TearDown() override;

  bool is_up() const;
  bool attached() const;
  /// roadie::Error naming the services when there is no such one or the
  /// stack is not up.
  Service service(std::string_view name) const;
  std::vector<std::string> service_names() const;
  std::map<std::string, Port> ports() const;
  /// The running stack; nullptr when attached or not up.
  Stack* stack();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Creates a StackEnvironment and hands it to GoogleTest
/// (::testing::AddGlobalTestEnvironment owns it); call before RUN_ALL_TESTS.
StackEnvironment& add_stack(SessionOptions options);
StackEnvironment& add_stack(std::filesystem::path stack_file);

/// The service called `name` from the scope nearest the running test: its
/// test-scope services, its suite's, then the session's. roadie::Error naming
/// every service in reach when none is called so, or with the death when it
/// died.
Service service(std::string_view name);

/// The suite scope, as a fixture base: `Suite::services(ServiceSet&)` (a
/// static member of the fixture) declares the services; they start in
/// SetUpTestSuite (before the suite's first test) and stop in
/// TearDownTestSuite (after its last). Each fixture class has its own set.
/// A start failure fails every test of the suite with the reason.
///
///     class CacheSuite : public roadie::gtest::SuiteServices<CacheSuite> {
///      public:
///       static void services(roadie::gtest::ServiceSet& set) {
///         roadie::Port port = set.reserve("redis");
///         set.add(roadie::TcpExecutor({"redis-server", "--port",
///                                      std::to_string(port.value())},
///                                     "127.0.0.1", port),
///                 {.name = "redis", .ports = {{"redis", port}}});
///       }
///     };
///     TEST_F(CacheSuite, Works) { auto redis = service("redis"); ... }
///
/// `Base` is the fixture's own base (::testing::TestWithParam<T>, ...). A
/// fixture that defines SetUpTestSuite/TearDownTestSuite itself calls these,
/// and one that overrides SetUp calls this SetUp first and checks
/// HasFatalFailure() after it.
template <class Suite, class Base = ::testing::Test>
class SuiteServices : public Base {
 public:
  static void SetUpTestSuite() {
    auto& state = set();
    state.error.clear();
    try {
      state.set = ServiceSet(Scope::suite, suite_label());
      Suite::services(state.set);
      state.set.up();
    } catch (const std::exception& e) {
      state.error = e.what();
      state.set.down();
    }
  }
  static void TearDownTestSuite() {
    auto& state = set();
    for (const std::string& problem : state.set.down()) ADD_FAILURE() << problem;
    state.set = ServiceSet(Scope::suite);
  }

 protected:
  void SetUp() override {
    Base::SetUp();
    if (!set().error.empty()) GTEST_FAIL() << "the suite's services did not start: " << set().error;
  }
  static Service service(std::string_view name) { return set().set.service(name); }
  static ServiceSet& services_of_suite() { return set().set; }

 private:
  struct State {
    ServiceSet set{Scope::suite};
    std::string error;
  };
  static State& set() {
    static State state;
    return state;
  }
  static std::string suite_label() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_suite();
    return info != nullptr ? info->name() : "suite";
  }
};

/// The test scope, as a fixture base: services declared as members with
/// reserve() and add() start (in parallel) in SetUp, before the test body,
/// and stop in TearDown, after it; a death during the test fails it. A
/// fixture that overrides SetUp/TearDown calls these first/last, and after
/// SetUp returns checks HasFatalFailure() (a start that failed is a fatal
/// failure there, and GTEST_FAIL only returns from the base's SetUp).
template <class Base = ::testing::Test>
class TestServices : public Base {
 protected:
  void SetUp() override {
    Base::SetUp();
    try {
      set_.up();
    } catch (const std::exception& e) {
      GTEST_FAIL() << e.what();
    }
  }
  void TearDown() override {
    for (const std::string& problem : set_.down()) ADD_FAILURE() << problem;
    Base::TearDown();
  }
  Port reserve(std::string name) { return set_.reserve(std::move(name)); }
  template <class E>
  std::decay_t<E>& add(E&& executor, ServiceOptions options = {}) {
    return set_.add(std::forward<E>(executor), std::move(options));
  }
  Service service(std::string_view name) const { return set_.service(name); }
  ServiceSet& services_of_test() { return set_; }

 private:
  ServiceSet set_{Scope::test, test_label()};
  static std::string test_label() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : "test";
  }
};

/// What roadie::gtest_main does after InitGoogleTest: reads --roadie_stack=FILE
/// (or ROADIE_STACK) and --roadie_artifacts=DIR (or ROADIE_ARTIFACTS_DIR) out
/// of argv (removing them), installs the listener and the artifact plugins
/// when either is given, and adds the session StackEnvironment when a stack
/// is. With neither it does nothing (plain gtest_main). Returns 0, or prints
/// the problem (an unknown --roadie_* flag, a missing value) and returns 2.
/// `bus` must outlive RUN_ALL_TESTS.
int init_from_command_line(int& argc, char** argv, HookBus& bus);

}  // namespace roadie::gtest
