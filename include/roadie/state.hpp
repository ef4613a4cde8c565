// The state directory of a detached stack (`roadie up --detach`): what
// `status`, `logs` and `down` read, and what the supervisor writes.
//
// STATE/state.json (mode 0600, written atomically: a temporary file, fsync,
// rename) records the supervisor's and every service's pid with its start
// time (/proc/PID/stat field 22), so a recorded pid that the kernel has
// given to another process since is recognised and never signalled; the
// ports; the log paths; the stack file and its hash; the supervisor's
// loopback status port and the random token its endpoint requires.
// STATE/lock is held (flock) by the running supervisor for its whole life.
//
// Public so that whatever attaches to a running stack (the GoogleTest
// session environment under ROADIE_STATE, a user's own harness) reads the
// same file the supervisor writes.
//
// Thread-safety: the functions are reentrant; StateFile is a plain value.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace roadie::state {

/// /proc/PID/stat field 22 (clock ticks after boot); none when no such process.
std::optional<std::uint64_t> process_start_time(pid_t pid);

/// Whether `pid` is alive (not a zombie) and started at `start_time`.
enum class Ownership { ours, not_ours, gone };
Ownership ownership(pid_t pid, std::uint64_t start_time);
const char* to_string(Ownership ownership);

/// FNV-1a 64 of the file's bytes, as 16 hex digits ("" when unreadable).
std::string file_hash(const std::filesystem::path& file);

/// 32 random hex digits from /dev/urandom.
std::string random_token();

struct ServiceState {
  std::string name;
  pid_t pid = -1;
  std::uint64_t start_time = 0;
  std::int64_t started_at = 0;  ///< seconds since the epoch
  std::map<std::string, int> ports;
  std::string log;
  std::int64_t stop_timeout_ms = 10'000;
  int stop_signal = 15;
};

struct StateFile {
  std::string stack_file;
  std::string stack_hash;
  pid_t supervisor_pid = -1;
  std::uint64_t supervisor_start_time = 0;
  std::int64_t started_at = 0;
  int http_port = 0;
  std::string token;
  std::vector<ServiceState> services;

  static std::filesystem::path path_in(const std::filesystem::path& state_dir);
  /// None when there is no state file; throws roadie::Error when it is
  /// unreadable or malformed.
  static std::optional<StateFile> read(const std::filesystem::path& state_dir);
  /// Atomically, mode 0600; throws roadie::Error naming the file on failure.
  void write(const std::filesystem::path& state_dir) const;
  /// JSON text (one object).
  std::string to_json() const;
  /// What `status --json` and GET /status give: the services' states and uptimes.
  std::string status_json(const std::filesystem::path& state_dir) const;
  /// The same when no stack runs in `state_dir` (no services).
  static std::string nothing_running_json(const std::filesystem::path& state_dir);
};

}  // namespace roadie::state
