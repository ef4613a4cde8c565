// roadie::gtest's costs, each against its floor measured in the same run:
//
//  1. Per test: a GoogleTest binary with 10,000 trivial tests run bare, then
//     with the listener, every built-in artifact plugin (per-test directory,
//     service log window, manifest, XML property, timeline) and one running
//     service. Overhead per test = (with - bare) / tests. Target: <= 50 us.
//  2. Attach: StackEnvironment::SetUp() with ROADIE_STATE naming the sample
//     stack run by `roadie up --detach` (read the state file, check every
//     pid and the stack file's hash, parse the stack file for resets)
//     against a fresh bring-up of the same stack. Target: attach <= 1 ms.
//  3. Reset: Service::reset() of the sample stack's redis (its `reset:` is a
//     request, FLUSHALL on a fresh connection) against a bare connect, send,
//     receive of the same (the floor), and beside it the command form's own
//     floor, a bare fork + exec + wait of `redis-cli -p PORT FLUSHALL`.
//     Target: <= 2 ms.
//
// Usage: bench_gtest [--quick]   (quick: 2,000 tests, fewer rounds)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "roadie/gtest.hpp"

namespace {

using roadie::bench::median;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// fork + exec + wait, output to /dev/null; the exit code.
int run_quiet(const std::vector<std::string>& args) {
  return roadie::bench::fork_exec_wait(args, true).code;
}

// FLUSHALL on a fresh loopback connection, read to the end of the reply.
bool bare_flushall(roadie::Port port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port.value());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
            ::write(fd, "FLUSHALL\r\n", 10) == 10;
  std::string reply;
  char buffer[64];
  while (ok && reply.find("\r\n") == std::string::npos) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) ok = false;
    else reply.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return ok && reply.rfind("+OK", 0) == 0;
}

void must(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bench_gtest: %s\n", what);
    std::exit(1);
  }
}

// One run of the test binary with roadie, artifacts under `root`; checks
// that every test got its directory.
double run_with_roadie(const fs::path& root, int tests) {
  ::setenv("BENCH_MODE", "roadie", 1);
  ::setenv("BENCH_ROOT", root.c_str(), 1);
  const auto start = Clock::now();
  must(run_quiet({ROADIE_BENCH_GTEST_TESTS}) == 0, "the run with roadie failed");
  const double ms = ms_since(start);
  std::size_t dirs = 0;
  for (const auto& entry : fs::directory_iterator(root / "Many_Trivial")) dirs += entry.is_directory();
  must(dirs == static_cast<std::size_t>(tests), "a test's artifact directory is missing");
  fs::remove_all(root);
  ::unsetenv("BENCH_MODE");
  return ms;
}

void per_test_overhead(bool quick, const fs::path& scratch) {
  const int tests = quick ? 2'000 : 10'000;
  const int rounds = quick ? 2 : 3;
  ::setenv("BENCH_TESTS", std::to_string(tests).c_str(), 1);
  ::setenv("BENCH_STACK", ROADIE_BENCH_GTEST_STACK, 1);
  // The artifacts cost a directory and a file per test: on a disk filesystem
  // that is inode allocation, on tmpfs memory. Both are measured.
  const bool shm = fs::is_directory("/dev/shm");
  std::vector<double> bare;
  std::vector<double> disk;
  std::vector<double> memory;
  for (int round = 0; round < rounds; ++round) {
    ::unsetenv("BENCH_MODE");
    const auto start = Clock::now();
    must(run_quiet({ROADIE_BENCH_GTEST_TESTS}) == 0, "the bare run failed");
    bare.push_back(ms_since(start));
    disk.push_back(run_with_roadie(scratch / ("artifacts-" + std::to_string(round)), tests));
    if (shm) {
      memory.push_back(run_with_roadie(
          fs::path("/dev/shm") / (scratch.filename().string() + "-" + std::to_string(round)), tests));
    }
  }
  const double b = median(bare);
  std::printf("per test (%d trivial tests, median of %d runs)\n", tests, rounds);
  std::printf("  bare GoogleTest (floor):                     %8.1f ms  %6.2f us/test\n", b,
              b * 1000 / tests);
  auto report = [&](const char* where, double w) {
    std::printf("  + listener, all plugins, one service, %s\n      %8.1f ms  %6.2f us/test: overhead "
                "%.1f us/test (target <= 50 us)\n",
                where, w, w * 1000 / tests, (w - b) * 1000 / tests);
  };
  report("artifacts in /tmp:    ", median(disk));
  if (shm) report("artifacts in /dev/shm:", median(memory));
}

void attach_and_reset(bool quick, const fs::path& scratch) {
  const int rounds = quick ? 3 : 10;
  ::setenv("ROADIE_SAMPLES_BIN", ROADIE_SAMPLES_BIN, 1);
  ::setenv("ROADIE_ARTIFACTS_DIR", (scratch / "attach-artifacts").c_str(), 1);
  ::unsetenv("ROADIE_STATE");
  // A fresh bring-up of the sample stack, each round.
  std::vector<double> bring_up;
  for (int round = 0; round < rounds; ++round) {
    roadie::gtest::StackEnvironment environment{fs::path(ROADIE_SAMPLE_STACK)};
    const auto start = Clock::now();
    environment.SetUp();
    bring_up.push_back(ms_since(start));
    must(environment.is_up(), "the sample stack did not come up");
    environment.TearDown();
  }
  // Attach to one that `roadie up --detach` runs.
  const fs::path state = scratch / "state";
  must(run_quiet({ROADIE_CLI, "up", "--detach", "-f", ROADIE_SAMPLE_STACK, "--state",
                  state.string()}) == 0,
       "roadie up --detach failed");
  ::setenv("ROADIE_STATE", state.c_str(), 1);
  std::vector<double> attach;
  std::vector<double> reset;
  std::vector<double> floor;
  std::vector<double> command;
  std::string redis_port;
  for (int round = 0; round < rounds * 10; ++round) {
    roadie::gtest::StackEnvironment environment{fs::path(ROADIE_SAMPLE_STACK)};
    auto start = Clock::now();
    environment.SetUp();
    attach.push_back(ms_since(start));
    must(environment.is_up() && environment.attached(), "attaching failed");
    roadie::gtest::Service redis = environment.service("redis");
    redis_port = std::to_string(redis.port().value());
    start = Clock::now();
    redis.reset();
    reset.push_back(ms_since(start));
    start = Clock::now();
    must(bare_flushall(redis.port()), "a bare FLUSHALL failed");
    floor.push_back(ms_since(start));
    start = Clock::now();
    must(run_quiet({"redis-cli", "-p", redis_port, "FLUSHALL"}) == 0, "redis-cli failed");
    command.push_back(ms_since(start));
    environment.TearDown();
  }
  ::unsetenv("ROADIE_STATE");
  must(run_quiet({ROADIE_CLI, "down", "--state", state.string()}) == 0, "roadie down failed");
  std::printf("session stack (samples/roadie.yaml: redis, app, nginx, seed job)\n");
  std::printf("  fresh bring-up (median of %d):               %8.2f ms\n", rounds,
              median(bring_up));
  std::printf("  attach through ROADIE_STATE (median of %d):  %8.3f ms (target <= 1 ms), %.0fx "
              "faster than a bring-up\n",
              rounds * 10, median(attach), median(bring_up) / median(attach));
  std::printf("redis reset (median of %d)\n", rounds * 10);
  std::printf("  bare connect/send/receive of FLUSHALL (floor): %8.3f ms\n", median(floor));
  std::printf("  Service::reset() (the request form):           %8.3f ms (target <= 2 ms), %.2fx "
              "the floor\n",
              median(reset), median(reset) / median(floor));
  std::printf("  bare fork/exec/wait of redis-cli FLUSHALL:     %8.3f ms (the command form's "
              "floor)\n",
              median(command));
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  char pattern[] = "/tmp/roadie-bench-gtest.XXXXXX";
  const char* made = ::mkdtemp(pattern);
  must(made != nullptr, "cannot make a scratch directory");
  const fs::path scratch = made;
  per_test_overhead(quick, scratch);
  attach_and_reset(quick, scratch);
  fs::remove_all(scratch);
  return 0;
}
