// `roadie up --detach` + `roadie down` of the sample stack (samples/roadie.yaml:
// redis, the sample app, nginx, the seed job) against the floor of a shell
// script that starts the same three servers, polls their ports every 1 ms
// and kills them (bench_cli_stack_floor.sh), measured in the same run,
// alternating. DESIGN target: roadie at most 15 ms over the floor.
//
// Usage: bench_cli_stack [--quick]   (prints "skipped" without redis-server,
// redis-cli or nginx)
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_support.hpp"

#include "roadie/ports.hpp"

namespace {

using roadie::bench::median;

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// fork, exec (PATH lookup), wait; stdout and stderr to /dev/null. Exits the
// benchmark when the command fails.
double run_ms(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  return roadie::bench::must_run_ms("bench_cli_stack", std::move(args), true, env);
}

bool on_path(const std::string& program) {
  const std::string path = std::string(std::getenv("PATH") ? std::getenv("PATH") : "") + ":/usr/sbin";
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    if (::access((path.substr(start, end - start) + "/" + program).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int rounds = quick ? 3 : 15;
  for (const char* program : {"redis-server", "redis-cli", "nginx"}) {
    if (!on_path(program)) {
      std::printf("bench_cli_stack: skipped (no %s)\n", program);
      return 0;
    }
  }
  const fs::path dir = fs::temp_directory_path() /
                       ("roadie-bench-cli-stack-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string state = (dir / "state").string();
  const std::string app = std::string(ROADIE_SAMPLES_BIN) + "/roadie_sample_app";
  const std::vector<std::string> env = {"ROADIE_SAMPLES_BIN=" ROADIE_SAMPLES_BIN};

  std::vector<double> floor, roadie, ups, downs;
  for (int i = 0; i <= rounds; ++i) {  // round 0 warms the page cache
    double f = 0;
    {
      roadie::PortReservation redis = roadie::PortReservation::reserve("redis");
      roadie::PortReservation app_port = roadie::PortReservation::reserve("app");
      roadie::PortReservation web = roadie::PortReservation::reserve("web");
      f = run_ms({"bash", ROADIE_BENCH_FLOOR, std::to_string(redis.port().value()),
                  std::to_string(app_port.port().value()), std::to_string(web.port().value()),
                  app});
    }
    const double up =
        run_ms({ROADIE_CLI, "up", "--detach", "-f", ROADIE_SAMPLE_STACK, "--state", state}, env);
    const double down = run_ms({ROADIE_CLI, "down", "--state", state});
    if (i == 0) continue;
    floor.push_back(f);
    roadie.push_back(up + down);
    ups.push_back(up);
    downs.push_back(down);
  }
  fs::remove_all(dir);
  const double f = median(floor), r = median(roadie);
  std::printf("the sample stack (redis, app, nginx, seed) up and down (%d rounds, median)\n",
              rounds);
  std::printf("  floor (a shell script: start, poll ports every 1 ms, kill)  %8.2f ms\n", f);
  std::printf("  roadie up --detach + roadie down                            %8.2f ms   "
              "%+.2f ms over the floor (target <= 15 ms)\n",
              r, r - f);
  std::printf("    of which roadie up --detach %.2f ms, roadie down %.2f ms\n", median(ups),
              median(downs));
}
