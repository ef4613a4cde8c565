// The roadie command's verbs: each takes its parsed options, prints what the
// user asked for, and returns the process's exit code (exit_codes.hpp).
// Usage errors never reach these functions: main.cpp reports them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace roadie::cli {

struct CheckOptions {
  std::filesystem::path file;
};
int check(const CheckOptions& options);

struct GraphOptions {
  std::filesystem::path file;
  std::string format;  ///< "dot" or "text"
};
int graph(const GraphOptions& options);

/// What `run` and `up` share.
struct StackRunOptions {
  std::filesystem::path file;
  /// --state; none means `.roadie/` beside the stack file.
  std::optional<std::filesystem::path> state;
  /// `up --detach`: leave a supervisor behind (detach.cpp).
  bool detach = false;
};

struct RunOptions : StackRunOptions {
  std::vector<std::string> command;
  /// --isolate: a private network namespace for the stack and CMD.
  bool isolate = false;
};
int run(const RunOptions& options);

int up(const StackRunOptions& options);
int up_detached(const StackRunOptions& options);

/// What the process `up --detach` forks does (also the hidden verb
/// `__supervise`, which runs it by hand: -f, --state, --notify-fd, --lock-fd).
struct SuperviseOptions {
  std::filesystem::path file;
  std::filesystem::path state;
  int notify_fd = -1;  ///< one byte: '0' up, else '0' + the exit code
  int lock_fd = -1;    ///< STATE/lock, flocked
};
int supervise(const SuperviseOptions& options);

/// The verbs that reach a detached stack: --state, none means ./.roadie.
struct DownOptions {
  std::optional<std::filesystem::path> state;
  bool quiet = false;  ///< up --detach cleaning a stale state file
};
int down(const DownOptions& options);

struct StatusOptions {
  std::optional<std::filesystem::path> state;
  bool json = false;
};
int status(const StatusOptions& options);

struct LogsOptions {
  std::optional<std::filesystem::path> state;
  bool follow = false;
  std::string service;
};
int logs(const LogsOptions& options);

}  // namespace roadie::cli
