// The stack file (`roadie.yaml`): parsed and checked into a fully typed model,
// and roadie::Stack, the loaded stack that brings it up and tears it down.
//
//     auto spec = roadie::parse_stack_file("roadie.yaml");   // ConfigError if wrong
//     auto ready = roadie::substitute_ports(spec, reserved); // ${ports.NAME} filled in
//     roadie::ReadinessCheck check = roadie::to_check(*ready.services[0].ready);
//
//     auto stack = roadie::Stack::load("roadie.yaml");       // ports reserved, nothing started
//     if (auto report = stack.up(); !report) FAIL() << report.why();
//     roadie::Port redis = stack.service("redis").ports.at("redis");
//     stack.down();                                          // or let the destructor do it
//
// Thread-safety: the functions are reentrant (no shared state; the process
// environment is read, never written); the specs are plain values. For Stack,
// see the class.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "roadie/command.hpp"
#include "roadie/executor.hpp"
#include "roadie/output.hpp"
#include "roadie/ready.hpp"
#include "roadie/scheduler.hpp"

namespace roadie {

/// Where something was written in the stack file (1-based; 0 when unknown).
struct SourceLocation {
  int line = 0;
  int column = 0;
};

/// A `ready:` condition, a tree (all / any hold their children).
///
/// Strings of a spec fresh from the parser are templates: `${env.*}` and
/// `${stack.dir}` are already replaced, `${ports.NAME}` are kept, and every
/// literal `$` is written `$$` (`templated` is true). substitute_ports() fills
/// in the ports and turns `$$` back into `$`. Paths are templates too.
struct ReadySpec {
  enum class Kind { banner, tcp, http, pidfile, unix_socket, exec, all, any };
  Kind kind = Kind::banner;
  /// banner: an RE2 pattern (checked at load); `stream` when `{pattern, stream}`
  /// names one (`stdout` or `stderr`), else either stream.
  std::string pattern;
  std::optional<Stream> stream;
  /// tcp: `HOST:PORT`; the port is digits (1..65535) or a `${ports.NAME}`.
  std::string host;
  std::string port;
  /// http: url (http:// or https://), method, status (an RE2 pattern), headers
  /// and body; the other HttpCheck fields keep their defaults.
  HttpCheck http;
  /// pidfile, unix_socket: absolute (a relative path in the file is resolved
  /// against the stack file's directory).
  std::filesystem::path path;
  /// exec: the probe's argv (never empty).
  std::vector<std::string> argv;
  /// all, any: at least one.
  std::vector<ReadySpec> children;
  /// Strings are still templates (see above).
  bool templated = false;
  SourceLocation where;
};

/// Settings every service (and, for `timeout`, every job) inherits.
struct StackDefaults {
  /// A service: spawn to ready; a job: its whole run.
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds stop_timeout{10'000};
  int stop_signal = SIGTERM;
};

/// A long-running service (`services: NAME: {...}`).
struct ServiceSpec {
  std::string name;
  /// argv: never empty, the program never empty.
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  /// Absolute; none means the caller's working directory.
  std::optional<std::filesystem::path> cwd;
  /// Port names to reserve, in file order (unique across the stack).
  std::vector<std::string> ports;
  /// None: ready once spawned.
  std::optional<ReadySpec> ready;
  /// `requires:` names of services (ready) and jobs (done) needed first;
  /// checked to exist, without cycle or repeat.
  std::vector<std::string> requirements;
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds stop_timeout{10'000};
  int stop_signal = SIGTERM;
  bool critical = true;
  /// Absolute; none means no log file.
  std::optional<std::filesystem::path> log_file;
  /// Runs before each test while the service is shared (roadie::gtest);
  /// empty means none. `reset: [PROGRAM, ARGS...]`.
  std::vector<std::string> reset;
  /// `reset: {tcp: HOST:PORT, send: TEXT, expect: PATTERN}`: a request on a
  /// fresh connection instead of a command (no process, so a redis FLUSHALL
  /// costs a round trip, not a fork and exec of redis-cli). At most one of
  /// `reset` and `reset_request` is set.
  struct ResetRequest {
    /// Host and port as in a tcp ready check (the port digits or a ${ports.NAME}).
    std::string host;
    std::string port;
    /// Written as it is once connected (YAML escapes: "FLUSHALL\r\n").
    std::string send;
    /// An RE2 pattern the reply must contain (searched in what was read,
    /// bytes up to the first match) before `timeout`.
    std::string expect;
    std::chrono::milliseconds timeout{5'000};
  };
  std::optional<ResetRequest> reset_request;
  /// Strings are still templates (see ReadySpec).
  bool templated = false;
  SourceLocation where;
};

/// A one-shot command that must exit 0 (`jobs: NAME: {...}`).
struct JobSpec {
  std::string name;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::optional<std::filesystem::path> cwd;
  std::vector<std::string> requirements;
  std::chrono::milliseconds timeout{30'000};
  /// Strings are still templates (see ReadySpec).
  bool templated = false;
  SourceLocation where;
};

/// The `plugins:` section, unread: the hook bus reads it (and reports its
/// errors with the stack file's positions).
struct PluginsSpec {
  /// Whether the file has a `plugins:` map.
  bool present = false;
  /// Where its value starts.
  SourceLocation where;
  /// The plugin idents (the map's keys), in file order.
  std::vector<std::string> idents;
  /// The whole stack file's text: a YAML reader that takes `plugins` from it
  /// gets every position right.
  std::shared_ptr<const std::string> document;
  /// Private to the library: the parsed subtree (see src/stack/plugins_node.hpp).
  std::shared_ptr<const void> node;
};

enum class Isolation { none, network };

/// A checked stack file.
struct StackSpec {
  /// The file as named to the parser (for messages).
  std::filesystem::path file;
  /// Its directory, absolute: `${stack.dir}`, and the base of relative paths.
  std::filesystem::path dir;
  int version = 1;
  StackDefaults defaults;
  /// In file order.
  std::vector<ServiceSpec> services;
  std::vector<JobSpec> jobs;
  PluginsSpec plugins;
  Isolation isolate = Isolation::none;
  /// Strings are still templates (see ReadySpec).
  bool templated = false;

  /// Every declared port name, in file order.
  std::vector<std::string> port_names() const;
  /// nullptr when there is no such service / job.
  const ServiceSpec* find_service(std::string_view name) const;
  const JobSpec* find_job(std::string_view name) const;
};

/// Reads and checks a stack file. Throws ConfigError (file as given, line and
/// column from 1, the dotted key such as "services.api.ready.http.status",
/// what was expected and what was found) for the first error in file order:
/// YAML syntax, unknown keys (with "did you mean"), types, values, durations,
/// signals, patterns, substitutions, names that are not declared anywhere in
/// the file, duplicates; a dependency cycle is reported last. A file that
/// cannot be read is a ConfigError at line 0. `${env.VAR}` reads the process
/// environment now.
///
/// Substitution in every string value (not in keys, names, durations):
/// `${ports.NAME}` (NAME in some service's `ports:`; filled in by
/// substitute_ports()), `${env.VAR}` (an unset VAR is an error),
/// `${env.VAR:-default}` (the default when VAR is unset or empty, as in sh;
/// the default is literal text up to the first `}`), `${stack.dir}`; `$${` is
/// a literal `${`, and a `$` not followed by `{` is itself.
StackSpec parse_stack_file(const std::filesystem::path& file);

/// The same from text. `file` names it in errors and gives `${stack.dir}` (its
/// directory made absolute against the current directory; empty means the
/// current directory, and errors then say "<memory>").
StackSpec parse_stack_text(std::string_view yaml, const std::filesystem::path& file);

/// Fills in `${ports.NAME}` with the reserved ports and turns `$$` into `$`.
/// Every port the stack declares must be in `ports` (else ConfigError at the
/// service that uses it). Returns a spec with `templated` false everywhere;
/// a spec already substituted is returned as it is.
StackSpec substitute_ports(const StackSpec& spec, const std::map<std::string, Port>& ports);

/// The library's readiness check for a substituted spec. Throws roadie::Error
/// when `spec.templated` (ports not filled in yet).
ReadinessCheck to_check(const ReadySpec& spec);

/// The command (argv, env over the inherited environment, cwd) of a
/// substituted service or job; throws roadie::Error when still templated.
Command to_command(const ServiceSpec& service);
Command to_command(const JobSpec& job);

/// One reset request of a substituted service (`reset: {tcp, send, expect}`):
/// connects, sends, and reads until the reply matches `expect`. Throws
/// roadie::Error naming the service, what went wrong and what was received.
void run_reset_request(const ServiceSpec::ResetRequest& request, std::string_view service);

/// An executor's options for a service: name, timeout, stop_timeout,
/// stop_signal, log_file (env and cwd are on its Command).
ExecutorOptions to_executor_options(const ServiceSpec& service);

class HookBus;
class Runtime;

/// How Stack::load() and Stack::from_spec() attach a stack to its
/// surroundings.
struct StackOptions {
  /// Service logs go to <log_dir>/<service>.log (tee, appended), and each
  /// job's output to <log_dir>/<job>.log; the directory is created at load. A
  /// service's own `log_file:` wins over it. Empty: no files (but `log_file:`).
  std::filesystem::path log_dir;
  /// The bus the stack's plugins (the file's `plugins:` section) are added to
  /// and its services/jobs are connected to; null: the stack makes its own.
  /// A bus given here must outlive the Stack.
  HookBus* bus = nullptr;
  /// The runtime that spawns the services and jobs; null: Runtime::global().
  std::shared_ptr<Runtime> runtime;
};

/// One service of a Stack, as a test or the `roadie` command reaches it. A
/// snapshot taken by Stack::service(): `pid` is Executor::pid() then (-1
/// before the service started); `executor` and `output` are live.
struct StackService {
  std::string name;
  /// This service's ports (its `ports:`): names -> port.
  std::map<std::string, Port> ports;
  pid_t pid = -1;
  /// Valid as long as the Stack is (and is not moved from).
  Executor& executor;
  /// The output of the service's current run (of its last run once stopped;
  /// empty before it started). Kept alive by `output_handle`, so it stays
  /// valid even after the Stack is gone.
  Output& output;
  /// Where its output is teed; empty when nowhere.
  std::filesystem::path log_file;
  /// Owns `output`.
  std::shared_ptr<Output> output_handle;
};

/// A loaded stack: a Scheduler graph with ports, logs and plugins attached.
///
///  - load(): services become Scheduler::add_service jobs (label: the
///    service's name; `critical`, `timeout`, `stop_timeout`, `stop_signal`,
///    `env`, `cwd`, `log_file` reach the executor; `cwd` defaults to the stack
///    file's directory); jobs become callables that run their command to
///    completion and require exit 0 (their `timeout` is the job's own deadline
///    in the scheduler, a job asked to stop gets SIGTERM, the defaults'
///    `stop_timeout`, SIGKILL); `requires:` become Job::require. Every service
///    executor and the scheduler are connected to the bus (service_* and
///    job_* events).
///  - The ports stay reserved (PortReservation) until the Stack is destroyed,
///    also after down().
///  - Plugins: the `plugins:` section creates its plugins on the bus at load
///    (HookBus::configure_plugins_text; the built-in artifact plugins are
///    known by name); a wrong plugin or option is a ConfigError located in the
///    stack file, and then nothing is created.
///  - A stack is brought up once: a second up() throws roadie::Error (load
///    the file again for a fresh stack).
///
/// Move-only; the destructor tears down (as down()), never throws, and then
/// releases the ports.
///
/// Thread-safety: load()/from_spec() may run on any number of threads at once
/// (ports never collide, also across processes). One Stack: up(), down(),
/// moving and destroying run on one thread at a time, never concurrently with
/// each other (up() blocks until the bring-up is over; to abort it from
/// another thread, request a stop on its `cancel` token). spec(),
/// service_names(), ports(), environment() and service() may be called from
/// any thread at any time, during up() and down() too (from an observer, a
/// listener or a hook); scheduler() and bus() return objects that document
/// their own thread-safety (add observers before up()).
class Stack {
 public:
  /// Parses `file` (ConfigError), reserves every declared port
  /// (PortReservation, machine-wide; roadie::Error when none is free),
  /// substitutes them, builds the Scheduler and connects it to the bus. Nothing
  /// is started.
  static Stack load(const std::filesystem::path& file, StackOptions options = {});
  /// The same from a spec (parsed, or made in code; templated or not). A
  /// requirement that names nothing in the spec is a roadie::Error.
  static Stack from_spec(StackSpec spec, StackOptions options = {});

  Stack(Stack&&) noexcept;
  Stack& operator=(Stack&&) = delete;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  /// Tears down (as down()); failures are logged (logger "roadie"), never thrown.
  ~Stack();

  /// The spec as it runs: ports substituted, every service's `cwd` set (the
  /// stack file's directory unless given) and `log_file` set when log_dir
  /// gives one.
  const StackSpec& spec() const;

  /// Brings everything up in parallel, in dependency order (Scheduler::run),
  /// and returns the report: ok(), or why() and failures() (a failed job's
  /// lines carry its exit status and last output lines; a service's its
  /// start error). On failure what started is torn down before it returns. A
  /// stop requested on `cancel` cancels the bring-up (report not ok, torn
  /// down). Throws roadie::Error when called a second time.
  RunReport up(std::stop_token cancel = {});

  /// Tears down in reverse dependency order (each service: its stop signal,
  /// `stop_timeout`, SIGKILL) and returns what happened, one outcome per
  /// service stopped by this call. Idempotent (a second call, or one before
  /// up(), returns nothing); never throws for a service's exit status (it is
  /// in the outcome).
  std::vector<StopOutcome> down();

  /// The graph (job labels are the service and job names): add observers
  /// before up(); list(), to_dot(), debrief() at any time.
  Scheduler& scheduler();
  /// The bus (StackOptions::bus, or the stack's own).
  HookBus& bus();

  /// The service called `name`. Throws roadie::Error naming the known
  /// services when there is none (and saying so when `name` is a job).
  StackService service(std::string_view name);
  /// The services' names, in file order.
  std::vector<std::string> service_names() const;
  /// Every reserved port by name.
  std::map<std::string, Port> ports() const;
  /// ROADIE_PORT_<NAME>=port for every port (PortReservation::env_name), for
  /// commands run against the stack.
  std::map<std::string, std::string> environment() const;

 private:
  struct Impl;
  explicit Stack(std::unique_ptr<Impl> impl);
  Impl& impl() const;  // throws on a moved-from stack
  std::unique_ptr<Impl> impl_;
};

}  // namespace roadie
