// Shared by roadie's tests: where the child programs are, and a fixture that
// fails a test which leaves a process, a zombie or a descriptor behind.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "roadie/error.hpp"
#include "roadie/ports.hpp"

namespace roadie::testing {

/// Absolute path of a child program from tests/resources.
std::string child(const std::string& name);

/// A fresh directory under the build tree, removed at the end of the test.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A loopback TCP port reserved machine-wide (roadie::PortReservation) until
/// the returned object goes: free now, and handed to no other test process
/// (parallel ctest) or thread meanwhile. Keep it for as long as the port is used.
PortReservation free_port();

/// CLOCK_MONOTONIC in nanoseconds (what the child programs print).
long long monotonic_ns();

/// The pid written in a pid file, 0 if unreadable.
pid_t read_pid(const std::filesystem::path& file);

/// The message of the roadie::Error that `make` throws ("" when none; another
/// exception type fails the test).
template <class F>
std::string error_of(F make) {
  try {
    make();
  } catch (const roadie::Error& e) {
    return e.what();
  }
  return "";
}

/// True while `pid` exists (zombies count as existing).
bool exists(pid_t pid);

/// Waits (bounded) until a file exists; returns false on timeout.
bool wait_for_file(const std::filesystem::path& file, std::chrono::nanoseconds timeout);

/// Base fixture: after each test, no child of this process (live or zombie),
/// no process carrying this runtime's marker, and no new descriptor remains.
/// Anything found fails the test and is then killed by pid and reaped, so one
/// leak does not cascade into the next test.
class NoLeaks : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  /// Takes descriptors opened since SetUp() on `target` (as /proc/self/fd
  /// names it) as expected: the runtime's descriptor reserve, refilled at new
  /// numbers after a test that exhausted descriptors.
  void expect_new_descriptors_on(const std::string& target);

 private:
  std::set<int> fds_before_;
};

/// Every process whose ROADIE_SUPERVISOR is `value` (a runtime's marker) or
/// starts with `value` + "/" (one of its processes).
std::vector<pid_t> processes_with_marker(std::string_view value);

/// Descriptors open in this process.
std::set<int> open_fds();

/// What run_plain() saw.
struct PlainRun {
  int code = -1;  ///< the exit code, or -N when killed by signal N
  std::string out;
  std::string err;
};

/// Runs argv with a plain fork/exec and waits for it: not through roadie, so
/// what it leaves running on purpose (a detached supervisor, re-parented to
/// this subreaper) is not stopped with it. Its environment is ours without
/// the variables named in `unset` and with `env` set over it; stdout and
/// stderr go through files in `scratch`.
PlainRun run_plain(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env,
                   const std::filesystem::path& scratch,
                   const std::vector<std::string>& unset = {});

/// Processes whose environment carries a marker of the runtime of process
/// `owner` (markers are "<pid>.<random>"): what that process's runtime started.
std::vector<pid_t> marked_by(pid_t owner);

/// Waits (bounded) until no child of this process but the runtime's watchdog
/// is left running, reaping the zombies among them: what was adopted from a
/// detached supervisor once it ends.
void reap_adopted(std::chrono::seconds timeout = std::chrono::seconds(20));

}  // namespace roadie::testing
