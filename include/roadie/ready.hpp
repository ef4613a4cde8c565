// Readiness checks: when is a started service really ready? Each check is
// cheap to copy and composable (all_of, any_of). Checks react to events where
// one exists (an output line, a file appearing) and otherwise probe with a
// back-off that starts at 1 ms; every attempt is bounded in time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "roadie/command.hpp"
#include "roadie/output.hpp"

namespace roadie {

class Process;

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
  /// "http://127.0.0.1:8080/health" (https too).
  std::string url;
  std::string method = "HEAD";
  /// A regular expression the whole status code must match.
  std::string status = "2..";
  std::map<std::string, std::string> headers;
  std::string body;
  std::string content_type = "text/plain";
  /// Bound of one attempt (connect + request + response); an attempt never
  /// outlives the start deadline either.
  std::chrono::milliseconds attempt_timeout{1000};
};

namespace ready {

/// Ready as soon as the process was spawned (exec succeeded).
ReadinessCheck spawned();
/// A line matching `pattern` (ECMAScript regex, searched) on stdout or stderr
/// (either when not given). Reacts to the line itself, no polling.
ReadinessCheck banner(std::string pattern, std::optional<Stream> stream = {});
/// host:port accepts a TCP connection.
ReadinessCheck tcp(std::string host, std::uint16_t port);
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
