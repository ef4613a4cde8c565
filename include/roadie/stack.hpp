// The stack file (`roadie.yaml`): parsed and checked into a fully typed model.
// Nothing here starts anything; roadie::Stack builds the scheduler from it.
//
//     auto spec = roadie::parse_stack_file("roadie.yaml");   // ConfigError if wrong
//     auto ready = roadie::substitute_ports(spec, reserved); // ${ports.NAME} filled in
//     roadie::ReadinessCheck check = roadie::to_check(*ready.services[0].ready);
//
// Thread-safety: the functions are reentrant (no shared state; the process
// environment is read, never written); the specs are plain values.
#pragma once

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "roadie/command.hpp"
#include "roadie/executor.hpp"
#include "roadie/output.hpp"
#include "roadie/ready.hpp"

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
  /// Runs before each test while the service is shared; empty means none.
  std::vector<std::string> reset;
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

/// An executor's options for a service: name, timeout, stop_timeout,
/// stop_signal, log_file (env and cwd are on its Command).
ExecutorOptions to_executor_options(const ServiceSpec& service);

}  // namespace roadie
