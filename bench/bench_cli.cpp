// `roadie run -- true` against the floor of a bare posix_spawn + wait of
// `true`, measured in the same run. The stack holds one no-op job (`true`):
// a stack file must declare a service or a job, so the floor is two bare
// spawns (the job's and the command's). Everything roadie adds on top (its own
// exec, loading the file, its runtime and watchdog, the job, the command,
// teardown) is the overhead printed.
//
// Usage: bench_cli [--quick]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double spawn_and_wait_ms(std::vector<std::string> args, bool quiet = false) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const auto start = Clock::now();
  pid_t pid = 0;
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  // roadie's progress lines would drown the figures.
  if (quiet) ::posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  if (::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) std::abort();
  ::posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench_cli: %s failed (status %d)\n", args[0].c_str(), status);
    std::exit(1);
  }
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int rounds = quick ? 10 : 40;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("roadie-bench-cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto stack = dir / "roadie.yaml";
  std::ofstream(stack) << "version: 1\njobs:\n  noop: {command: [\"true\"]}\n";
  const std::string state = (dir / "state").string();

  std::vector<double> floor, run;
  for (int i = 0; i < rounds; ++i) {
    floor.push_back(spawn_and_wait_ms({"true"}) + spawn_and_wait_ms({"true"}));
    run.push_back(spawn_and_wait_ms(
        {ROADIE_CLI, "run", "-f", stack.string(), "--state", state, "--", "true"}, true));
  }
  std::filesystem::remove_all(dir);
  const double f = median(floor), r = median(run);
  std::printf("roadie run -- true, one no-op job (%d rounds, median)\n", rounds);
  std::printf("  floor (two bare posix_spawn + wait of true)  %7.2f ms\n", f);
  std::printf("  roadie run -f STACK -- true                  %7.2f ms   %.2f ms over the floor\n",
              r, r - f);
}
