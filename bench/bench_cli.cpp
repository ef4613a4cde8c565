// `roadie run -f EMPTY -- true` on an empty stack (no service, no job)
// against the floor of a bare fork + exec + wait of `true`, measured in the
// same run, alternating. Everything roadie adds (its own exec and dynamic
// loading, parsing the file, the state directory and its lock, the signal
// thread, spawning CMD, waiting) is the overhead printed. DESIGN target:
// at most 5 ms over the floor.
//
// Usage: bench_cli [--quick]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// fork, exec (PATH lookup), wait; stdout and stderr to /dev/null when `quiet`.
double fork_exec_wait_ms(std::vector<std::string> args, bool quiet = false) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
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
  const int rounds = quick ? 20 : 100;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("roadie-bench-cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto stack = dir / "roadie.yaml";
  std::ofstream(stack) << "version: 1\n";
  const std::string state = (dir / "state").string();
  const std::vector<std::string> run = {ROADIE_CLI, "run",   "-f", stack.string(),
                                        "--state",  state,   "--", "true"};

  const std::vector<std::string> help = {ROADIE_CLI, "--help"};

  fork_exec_wait_ms(run, true);  // warm the page cache
  std::vector<double> floor, roadie, loading;
  for (int i = 0; i < rounds; ++i) {
    floor.push_back(fork_exec_wait_ms({"true"}));
    roadie.push_back(fork_exec_wait_ms(run, true));
    loading.push_back(fork_exec_wait_ms(help, true));
  }
  std::filesystem::remove_all(dir);
  const double f = median(floor), r = median(roadie), l = median(loading);
  std::printf("roadie run -- true on an empty stack (%d rounds, median)\n", rounds);
  std::printf("  floor (bare fork + exec + wait of true)  %7.2f ms\n", f);
  std::printf("  roadie run -f EMPTY -- true              %7.2f ms   %.2fx, %.2f ms over the floor "
              "(target <= 5 ms)\n",
              r, r / f, r - f);
  // Where it goes: roadie --help does nothing but load roadie (its shared
  // libraries: cpp-httplib with OpenSSL, brotli and zlib, yaml-cpp, RE2,
  // spdlog, fmt, Boost.Filesystem) and parse argv.
  std::printf("  of which loading roadie (roadie --help)  %7.2f ms   %.2f ms over the floor\n", l,
              l - f);
}
