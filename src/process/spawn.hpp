// Starting a child: the only place that includes Boost.Process.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "roadie/command.hpp"

namespace roadie::detail {

struct SpawnedChild {
  pid_t pid = -1;
  int stdout_fd = -1;  ///< read end, O_CLOEXEC | O_NONBLOCK; the caller owns it
  int stderr_fd = -1;  ///< read end, O_CLOEXEC | O_NONBLOCK; the caller owns it
};

/// Forks and execs `command` with exactly `environment` ("NAME=value"), in a
/// new process group, stdin from /dev/null, stdout and stderr to fresh pipes,
/// every other descriptor closed at exec, default signal dispositions, and
/// SIGKILL as parent-death signal (bound to the calling thread: call it from
/// the long-lived event-loop thread). Returns once exec succeeded; throws
/// SpawnError naming the command and the system reason otherwise, with the
/// failed child reaped.
SpawnedChild spawn_child(const Command& command, const std::vector<std::string>& environment);

}  // namespace roadie::detail
