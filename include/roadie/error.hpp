// roadie's exceptions. Every public call that fails throws one of these; the
// message is written for a person reading a failed test: it names the service,
// the command, what was pending and for how long, the exit status, and the last
// lines of output, each prefixed.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

#include "roadie/exit_status.hpp"

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

/// A process ended in a way its caller did not accept. Carries what upper
/// layers need as fields, so nobody has to parse the message: the exit status,
/// the service's name and the last lines of its output (each prefixed with
/// "  [stdout] " or "  [stderr] ", as in the message).
class ProcessError : public Error {
 public:
  ProcessError(std::string message, ExitStatus status, std::string service, std::string excerpt)
      : Error(std::move(message)),
        status_(status),
        service_(std::move(service)),
        excerpt_(std::move(excerpt)) {}

  const ExitStatus& status() const noexcept { return status_; }
  /// The exit code, or -N when the process was killed by signal N.
  int exit_code() const noexcept { return status_.code(); }
  /// The executor's name (ExecutorOptions::name), or the program's file name.
  const std::string& service() const noexcept { return service_; }
  /// The last lines of output, prefixed; empty when there were none.
  const std::string& excerpt() const noexcept { return excerpt_; }

 private:
  ExitStatus status_;
  std::string service_;
  std::string excerpt_;
};

/// The process exited while it was being started (before it became ready).
class ProcessExitedWithError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

/// Stopping the process saw an exit status that is not among the expected ones.
class ProcessFinishedWithError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

/// A scheduler's run failed (RunReport::throw_if_failed), or its graph is
/// invalid (Scheduler::run, Scheduler::validate).
class SchedulerError : public Error {
 public:
  using Error::Error;
};

/// A configuration file (a stack file, a `plugins:` section) is wrong. The
/// message starts with "FILE:LINE:COLUMN: " and names the key; the parts are
/// fields too. `line` and `column` count from 1; 0 when unknown (a document
/// built in memory has no file: `file` is then "<memory>").
class ConfigError : public Error {
 public:
  ConfigError(std::string file, int line, int column, std::string key, const std::string& what)
      : Error(locate(file, line, column) + (key.empty() ? "" : key + ": ") + what),
        file_(std::move(file)),
        line_(line),
        column_(column),
        key_(std::move(key)) {}

  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }
  int column() const noexcept { return column_; }
  /// The key at fault, as a dotted path ("plugins.logs.lines_before").
  const std::string& key() const noexcept { return key_; }

 private:
  static std::string locate(const std::string& file, int line, int column) {
    std::string where = file.empty() ? std::string("<memory>") : file;
    if (line > 0) where += ":" + std::to_string(line);
    if (column > 0) where += ":" + std::to_string(column);
    return where + ": ";
  }
  std::string file_;
  int line_;
  int column_;
  std::string key_;
};

}  // namespace roadie
