// Private to roadie::gtest: the watched services behind Service, ServiceSet
// and StackEnvironment, the registry of the scopes that are up, and the
// guard listener that turns deaths and resets into test results.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "roadie/gtest.hpp"
#include "roadie/subscription.hpp"

namespace roadie::gtest::detail {

/// One service of a scope. Identity fields are set before the scope is up and
/// never change while it is; the death is written by the event-loop thread
/// (or the main thread, for an attached service) under `mutex`.
struct Watched {
  std::string name;
  Scope scope = Scope::test;
  /// Names the scope in messages: "session", a suite, "Suite.Test".
  std::string label;
  std::map<std::string, Port> ports;
  /// Owned: the executor (owned by the Set or by the session's Stack).
  Executor* executor = nullptr;
  /// Attached: pid and /proc start time as recorded in the state file.
  pid_t attached_pid = -1;
  std::uint64_t attached_start_time = 0;
  std::filesystem::path log_file;
  ResetFn reset;
  /// A reset from the stack file (ports substituted): a command, or a
  /// request.
  std::vector<std::string> reset_argv;
  std::optional<ServiceSpec::ResetRequest> reset_request;
  bool has_reset() const { return reset || !reset_argv.empty() || reset_request.has_value(); }

  /// Whether the Set owns the executor (started and stopped by it).
  bool owned = false;
  Subscription watching;
  /// The executor's connection to the listener's bus (owned services).
  Subscription bus_link;
  /// Attached: where the running test's window starts in the log file.
  std::uint64_t window_start = 0;

  /// Set when its scope goes down: a handle kept past it refuses (its
  /// executor may be gone).
  std::atomic<bool> gone{false};

  mutable std::mutex mutex;
  std::optional<std::string> death;  ///< "exited with code 1 (during A.B)"
  bool death_reported = false;       ///< recorded on a test already

  /// Records a death once (the first one wins); returns whether it was new.
  bool record_death(std::string text);
  std::optional<std::string> death_text() const;
  /// The death, once: marks it reported (nothing when none, or reported).
  std::optional<std::string> take_unreported_death();
  bool alive() const;
  std::string last_lines(std::size_t n) const;
  /// The whole message for a test result.
  std::string describe_death(const std::string& death) const;
};

/// A scope's services. Registered with the guard while up.
class Set {
 public:
  Set(Scope scope, std::string label) : scope_(scope), label_(std::move(label)) {}
  ~Set();

  Scope scope() const { return scope_; }
  const std::string& label() const { return label_; }

  Port reserve(std::string name);
  /// An owned executor joining the set (before up).
  void add_owned(std::unique_ptr<Executor> executor, ServiceOptions options);
  /// A service whose executor lives elsewhere (the session's Stack).
  void add_external(Executor& executor, ServiceOptions options, std::filesystem::path log_file,
                    const ServiceSpec* spec);
  /// A service run by another process.
  void add_attached(std::string name, std::map<std::string, Port> ports, pid_t pid,
                    std::uint64_t start_time, std::filesystem::path log_file,
                    const ServiceSpec* spec, ResetFn reset);

  /// Starts the owned executors that are not running (in parallel), then
  /// watches every service, exports the ports and registers with the guard.
  void up();
  /// Unregisters, reports unreported deaths as problems, stops owned
  /// executors in reverse order (external ones are their owner's to stop),
  /// unexports the ports.
  std::vector<std::string> down();
  bool is_up() const { return up_; }

  Service service(std::string_view name) const;
  std::vector<std::string> names() const;
  const std::vector<std::shared_ptr<Watched>>& services() const { return services_; }
  std::shared_ptr<Watched> find(std::string_view name) const;

  /// Ports of every service, by port name.
  std::map<std::string, Port> ports() const;

  /// Attached sets: a lock file (in the state directory) taken around each
  /// test when a service has a reset, so that processes sharing the stack
  /// never reset it under each other's running test.
  void set_test_lock(std::filesystem::path file) { test_lock_ = std::move(file); }
  /// Around each test (main thread, from the guard): the lock, and where the
  /// attached services' log windows start; then the windows written into
  /// the test's artifact directory (when there is one) and the lock let go.
  void begin_test();
  void end_test(const std::optional<std::filesystem::path>& artifact_dir);

 private:
  std::shared_ptr<Watched> make_watched(std::string name, ServiceOptions options);
  void watch(Watched& watched);
  void export_ports();
  void unexport_ports();

  Scope scope_;
  std::string label_;
  std::vector<PortReservation> reservations_;
  std::vector<std::unique_ptr<Executor>> owned_;
  std::vector<std::shared_ptr<Watched>> services_;
  /// Exported variables with what they held before (restored at down()).
  std::vector<std::pair<std::string, std::optional<std::string>>> exported_;
  bool up_ = false;
  std::filesystem::path test_lock_;
  int test_lock_fd_ = -1;
};

/// The scopes that are up, innermost last; the guard listener reads them.
/// Register/unregister on the main thread; find() from any thread.
void register_set(Set* set);
void unregister_set(Set* set);
/// The label of the running test ("Suite.Name"), or "" between tests.
std::string current_test();
/// Makes a Service handle (Service's constructor is private).
Service make_service(std::shared_ptr<Watched> watched);
/// Runs a service's reset (callable, else command); throws roadie::Error with
/// the output when it fails.
void run_reset(const std::shared_ptr<Watched>& watched);
/// The artifact root of the listener install() appended, if any.
std::optional<std::filesystem::path> installed_artifacts_root();
/// The bus of the listener install() appended, if any.
HookBus* installed_bus();
void set_installed(HookBus* bus, std::filesystem::path root);

}  // namespace roadie::gtest::detail
