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

#include "bench_support.hpp"

namespace {

using roadie::bench::median;

double bench_ms(std::vector<std::string> args, bool quiet = false) {
  return roadie::bench::must_run_ms("bench_cli", std::move(args), quiet);
}

using Clock = std::chrono::steady_clock;

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

  bench_ms(run, true);  // warm the page cache
  std::vector<double> floor, roadie, loading;
  for (int i = 0; i < rounds; ++i) {
    floor.push_back(bench_ms({"true"}));
    roadie.push_back(bench_ms(run, true));
    loading.push_back(bench_ms(help, true));
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
