// Per-test cost of the artifacts layer.
//   floor     a bare mkdir of the test's directory plus one small file write:
//             the least any per-test artifact can cost.
//   empty     start_test + finish_test on a bus with no plugin.
//   builtin   start_test + finish_test with every built-in plugin
//             (service_logs, manifest, junit, timeline) and one running
//             service that prints a line per test.
// Prints the median per test and the cost over the floor.
//
// Usage: bench_artifacts [--quick]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "roadie/artifacts.hpp"
#include "roadie/executor.hpp"
#include "roadie/hooks.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

fs::path scratch(const char* name) {
  fs::path dir = fs::temp_directory_path() / ("roadie-bench-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<double> floor_run(int tests) {
  fs::path root = scratch("floor");
  ::mkdir((root / "Suite").c_str(), 0755);
  std::vector<double> per_test;
  for (int i = 0; i < tests; ++i) {
    auto t0 = Clock::now();
    fs::path dir = root / "Suite" / ("t" + std::to_string(i));
    if (::mkdir(dir.c_str(), 0755) != 0) std::abort();
    int fd = ::open((dir / "service.log").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, "line\n", 5) != 5) std::abort();
    ::close(fd);
    per_test.push_back(micros(Clock::now() - t0));
  }
  fs::remove_all(root);
  return per_test;
}

roadie::Values locals(int i) {
  return {{"suite_name", "Suite"}, {"test_name", "t" + std::to_string(i)}};
}

roadie::Values finish(int i) {
  roadie::Values values = locals(i);
  values["test_result"] = "passed";
  values["test_duration"] = 0.001;
  values["failure_text"] = "";
  return values;
}

std::vector<double> empty_run(int tests) {
  roadie::HookBus bus;
  std::vector<double> per_test;
  for (int i = 0; i < tests; ++i) {
    auto t0 = Clock::now();
    bus.fire("start_test", locals(i));
    bus.fire("finish_test", finish(i));
    per_test.push_back(micros(Clock::now() - t0));
  }
  return per_test;
}

std::vector<double> builtin_run(int tests) {
  fs::path root = scratch("builtin");
  std::vector<double> per_test;
  {
    roadie::HookBus bus;
    roadie::ArtifactOptions options{.root = root};
    options.print_attachment = [](const std::string&) {};
    roadie::install_artifacts(bus, options);
    roadie::ExecutorOptions service_options;
    service_options.name = "service";
    // A service that is up and has printed: `yes` would flood; a shell that
    // prints once and sleeps keeps the output steady.
    roadie::OutputExecutor service({"/bin/sh", "-c", "echo ready; exec sleep 1000"}, "^ready$",
                                   service_options);
    auto link = bus.connect(service);
    service.start();
    for (int i = 0; i < tests; ++i) {
      auto t0 = Clock::now();
      bus.fire("start_test", locals(i));
      bus.fire("finish_test", finish(i));
      per_test.push_back(micros(Clock::now() - t0));
    }
    service.stop();
  }
  fs::remove_all(root);
  return per_test;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int tests = quick ? 300 : 3000;
  try {
    std::vector<double> f = floor_run(tests);
    std::vector<double> e = empty_run(tests);
    std::vector<double> b = builtin_run(tests);
    const double floor = median(f), empty = median(e), builtin = median(b);
    std::printf("artifacts per test (%d tests, median)\n", tests);
    std::printf("  floor (mkdir + one file write)         %8.2f us\n", floor);
    std::printf("  empty bus (start_test + finish_test)   %8.2f us\n", empty);
    std::printf("  all built-in plugins + 1 service       %8.2f us   %.2f us over the floor (%.1fx)\n",
                builtin, builtin - floor, builtin / floor);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_artifacts failed: %s\n", error.what());
    return 1;
  }
}
