// Readiness checks: when is a started service really ready? Each check is
// cheap to copy and composable (all_of, any_of). Checks react to events where
// one exists (an output line, a file appearing) and otherwise probe with a
// back-off that starts at 1 ms; every attempt is bounded in time.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "roadie/command.hpp"
#include "roadie/output.hpp"

namespace roadie {

class Process;

/// A TCP port number, 1 to 65535. Made from any integer, implicitly (so
/// `ready::tcp("127.0.0.1", 6379)` reads as before); a value outside that range
/// throws roadie::Error naming it. Unlike std::uint16_t it never wraps: 70000
/// is an error, not port 4464, and -1 is not 65535. Port 0 ("any free port")
/// is an error too: a service cannot be waited for on a port nobody knows.
class Port {
 public:
  template <std::integral T>
  Port(T value)  // NOLINT(google-explicit-constructor): a port is a number
      : value_(std::cmp_less(value, 1) || std::cmp_greater(value, 65535)
                   ? reject(std::to_string(value))
                   : static_cast<std::uint16_t>(value)) {}

  Port(bool) = delete;  // a flag is not a port

  std::uint16_t value() const noexcept { return value_; }
  friend bool operator==(Port, Port) = default;

 private:
  [[noreturn]] static std::uint16_t reject(const std::string& value);
  std::uint16_t value_;
};

namespace ready {

/// What a probe may use while its service starts.
class ProbeContext {
 public:
  virtual ~ProbeContext() = default;
  /// The service's process (its output, its pid).
  virtual Process& process() = 0;
  /// Wakes the waiting start(): call it, from any thread, when an attempt may
  /// now succeed (a line arrived, ...).
  virtual void wake() = 0;
};

/// One armed check, for one start. Attempts are made from the starting thread.
class Probe {
 public:
  virtual ~Probe() = default;
  /// One attempt; true when ready. Must return by `deadline`.
  virtual bool attempt(std::chrono::steady_clock::time_point deadline) = 0;
  /// Descriptors that become readable when an attempt may succeed (inotify).
  virtual std::vector<int> wake_fds() const { return {}; }
  /// The longest pause between attempts when nothing wakes the waiter: the cap
  /// of the back-off (which starts at 1 ms and doubles).
  virtual std::chrono::microseconds max_interval() const { return std::chrono::milliseconds(2); }
  /// What the last failed attempt saw ("connection refused"), for messages.
  virtual std::string last_failure() const { return {}; }
  /// When an attempt succeeds only after the process exited, whether the
  /// event it found happened while the process still ran (a banner printed
  /// just before a one-shot command exits). By default it is taken as after
  /// the exit: the service was never ready while it ran.
  virtual bool seen_before_exit() const { return false; }
};

/// A readiness condition. Implement it to add a kind of check.
class Check {
 public:
  virtual ~Check() = default;
  /// "tcp 127.0.0.1:6379", "banner /Ready/ on stdout".
  virtual std::string describe() const = 0;
  /// Called before the service is spawned: throws AlreadyRunning when the
  /// endpoint is already served by another process.
  virtual void ensure_free() const {}
  /// Prepares one start. Called right after the spawn.
  virtual std::unique_ptr<Probe> arm(ProbeContext& context) const = 0;
};

}  // namespace ready

/// A shared, immutable readiness check (copying is cheap).
///
/// Thread-safety: immutable; copies may be used from any threads at once.
/// (A ready::Check is shared the same way: its const members must be safe to
/// call concurrently. A Probe belongs to one start, on the starting thread.)
class ReadinessCheck {
 public:
  explicit ReadinessCheck(std::shared_ptr<const ready::Check> check);
  std::string describe() const { return check_->describe(); }
  const ready::Check& check() const noexcept { return *check_; }

 private:
  std::shared_ptr<const ready::Check> check_;
};

/// An HTTP readiness request.
struct HttpCheck {
  /// "http://127.0.0.1:8080/health" (https too). A port outside 1..65535 is a
  /// roadie::Error when the check is made.
  std::string url;
  std::string method = "HEAD";
  /// An RE2 regular expression the whole status code (three digits, "204")
  /// must match. An invalid one is a roadie::Error naming it when the check is
  /// made.
  std::string status = "2..";
  std::map<std::string, std::string> headers;
  std::string body;
  std::string content_type = "text/plain";
  /// Bound of one attempt (connect + request + response); an attempt never
  /// outlives the start deadline either. A huge value means no practical
  /// bound (about 24 days, what poll() can wait).
  std::chrono::milliseconds attempt_timeout{1000};
};

namespace ready {

/// Ready as soon as the process was spawned (exec succeeded).
ReadinessCheck spawned();
/// A line matching `pattern` on stdout or stderr (either when not given).
/// Reacts to the line itself, no polling. The pattern is an RE2 regular
/// expression searched in each line, and sees what `Output::wait_for` sees: one
/// line without its newline, at most `OutputOptions::max_line_bytes` long (see
/// there). A pattern without any of `\^$.|?*+()[]{}` is plain text. Matching
/// is linear in the line: no pattern and no output can crash the process.
/// Throws roadie::Error naming the pattern when it is not valid (here, not at
/// start()).
ReadinessCheck banner(std::string pattern, std::optional<Stream> stream = {});
/// host:port accepts a TCP connection. A port outside 1..65535 throws
/// roadie::Error where the Port is made.
ReadinessCheck tcp(std::string host, Port port);
/// An HTTP request gets a status matching the check's regex.
ReadinessCheck http(HttpCheck request);
ReadinessCheck http(std::string url);
/// The file exists (inotify on its directory, no polling when the directory exists).
ReadinessCheck pid_file(std::filesystem::path path);
/// A unix stream socket at `path` accepts a connection (bound but not
/// listening is not ready).
ReadinessCheck unix_socket(std::filesystem::path path);
/// A probe command exits with code 0 (e.g. `redis-cli -p 7001 ping`). Each run
/// is bounded by `attempt_timeout`.
ReadinessCheck exec(Command probe,
                    std::chrono::milliseconds attempt_timeout = std::chrono::seconds(5));
/// Every check is (or was once) satisfied.
ReadinessCheck all_of(std::vector<ReadinessCheck> checks);
/// One of the checks is satisfied.
ReadinessCheck any_of(std::vector<ReadinessCheck> checks);

}  // namespace ready
}  // namespace roadie
