// What the benchmarks share: a bare fork + exec + wait (their floor, and how
// they run the programs they measure) and the median.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace roadie::bench {

struct Ran {
  int code = -1;  ///< the exit code, or 128 + N when killed by signal N
  double ms = 0;  ///< fork to reaped
};

/// fork, exec (PATH lookup), wait. `env` ("NAME=VALUE") is put over the
/// child's environment; its stdout and stderr go to /dev/null when `quiet`.
inline Ran fork_exec_wait(std::vector<std::string> args, bool quiet,
                          const std::vector<std::string>& env = {}) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& entry : env) ::putenv(const_cast<char*>(entry.c_str()));
    if (quiet) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  Ran ran;
  ran.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ran.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return ran;
}

/// fork_exec_wait()'s milliseconds; a command that fails ends the benchmark
/// (`bench` names it in the message).
inline double must_run_ms(const char* bench, std::vector<std::string> args, bool quiet,
                          const std::vector<std::string>& env = {}) {
  const Ran ran = fork_exec_wait(args, quiet, env);
  if (ran.code != 0) {
    std::fprintf(stderr, "%s: %s %s failed (exit %d)\n", bench, args[0].c_str(),
                 args.size() > 1 ? args[1].c_str() : "", ran.code);
    std::exit(1);
  }
  return ran.ms;
}

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace roadie::bench
