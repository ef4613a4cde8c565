// roadie's exceptions. Every public call that fails throws one of these; the
// message is written for a person reading a failed test: it names the service,
// the command, what was pending and for how long, the exit status, and the last
// lines of output, each prefixed.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace roadie {

/// Base of every roadie exception.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The process could not be started: the binary is missing or not executable,
/// the working directory does not exist, or the system refused the fork. Thrown
/// by the spawning call itself, never later as a timeout.
class SpawnError : public Error {
 public:
  SpawnError(std::string message, std::string command, std::error_code code)
      : Error(std::move(message)), command_(std::move(command)), code_(code) {}

  /// The command line that failed, shell-quoted.
  const std::string& command() const noexcept { return command_; }
  /// The system's reason (ENOENT, EACCES, ...).
  std::error_code code() const noexcept { return code_; }

 private:
  std::string command_;
  std::error_code code_;
};

/// A deadline passed before the awaited state was reached.
class TimeoutExpired : public Error {
 public:
  using Error::Error;
};

/// The work was cancelled (a stop was requested) before it finished.
class Cancelled : public Error {
 public:
  using Error::Error;
};

/// The endpoint a service is meant to serve (a port, a unix socket, a pid file)
/// is already served by another process before the service is started.
class AlreadyRunning : public Error {
 public:
  using Error::Error;
};

/// The process exited while it was being started (before it became ready).
class ProcessExitedWithError : public Error {
 public:
  ProcessExitedWithError(std::string message, int exit_code)
      : Error(std::move(message)), exit_code_(exit_code) {}
  /// The exit code, or -N when the process was killed by signal N.
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};

/// Stopping the process saw an exit status that is not among the expected ones.
class ProcessFinishedWithError : public Error {
 public:
  ProcessFinishedWithError(std::string message, int exit_code)
      : Error(std::move(message)), exit_code_(exit_code) {}
  /// The exit code, or -N when the process was killed by signal N.
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};

}  // namespace roadie
