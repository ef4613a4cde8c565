// Scheduler benchmark.
//   overhead   per no-op job for a 10,000-job chain and a 10,000-job fan-out,
//              next to the floor: the same callables called in a plain loop.
//   bring-up   30 child services in a layered DAG, each ready after a known
//              delay; the run's bring-up time against the critical path
//              computed from those delays. Next to it, the floor that no
//              scheduler can beat on this machine: a bare posix_spawn of the
//              same child until its banner is read, alone and six at once
//              (a layer), measured in the same run.
//
// Usage: bench_scheduler [--quick]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "roadie/scheduler.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string banner_child() {
  return std::string(ROADIE_BENCH_DIR) + "/bench_service";
}

// Bare floor: posix_spawn `count` children at once (delay 0) and read each
// one's banner; milliseconds until the last banner arrived.
double start_floor_ms(int count) {
  std::string path = banner_child();
  char* argv[] = {path.data(), nullptr};
  std::vector<pid_t> pids;
  std::vector<int> reads;
  auto t0 = Clock::now();
  for (int i = 0; i < count; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    pid_t pid = 0;
    if (::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, environ) != 0) std::abort();
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    pids.push_back(pid);
    reads.push_back(fds[0]);
  }
  for (int fd : reads) {
    char text[16];
    if (::read(fd, text, sizeof text) <= 0) std::abort();
  }
  double ms = micros(Clock::now() - t0) / 1000.0;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    ::kill(pids[i], SIGKILL);
    ::waitpid(pids[i], nullptr, 0);
    ::close(reads[i]);
  }
  return ms;
}

void overhead(int jobs, int rounds) {
  std::vector<double> floor, chain, fan;
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::function<int()>> calls;
    for (int i = 0; i < jobs; ++i) calls.emplace_back([i] { return i; });
    auto t0 = Clock::now();
    volatile int sink = 0;
    for (auto& c : calls) sink = sink + c();
    floor.push_back(micros(Clock::now() - t0) / jobs);

    {
      roadie::Scheduler s;
      roadie::Job previous = s.add([] { return 0; });
      for (int i = 1; i < jobs; ++i) {
        roadie::Job next = s.add([i] { return i; });
        next.require(previous);
        previous = next;
      }
      t0 = Clock::now();
      if (!s.run()) std::abort();
      chain.push_back(micros(Clock::now() - t0) / jobs);
    }
    {
      roadie::Scheduler s;
      roadie::Job root = s.add([] { return 0; });
      for (int i = 1; i < jobs; ++i) s.add([i] { return i; }).require(root);
      t0 = Clock::now();
      if (!s.run()) std::abort();
      fan.push_back(micros(Clock::now() - t0) / jobs);
    }
  }
  std::printf("overhead   floor (plain loop)      %7.3f us/job\n", median(floor));
  std::printf("           %d-job chain         %7.3f us/job (target <= 5, asynciojobs 22-48)\n",
              jobs, median(chain));
  std::printf("           %d-job fan-out       %7.3f us/job (target <= 5)\n", jobs, median(fan));
}

struct Once {
  double ms;
  int critical_ms;
  std::string path;
};
Once bring_up_once(int layers, int width);

void bring_up(int layers, int width, int rounds) {
  std::vector<double> alone, layer;
  for (int r = 0; r < 20; ++r) {
    alone.push_back(start_floor_ms(1));
    layer.push_back(start_floor_ms(width));
  }
  std::vector<double> measured;
  std::string path;
  int critical_ms = 0;
  for (int r = 0; r < rounds; ++r) {
    auto [ms, critical, line] = bring_up_once(layers, width);
    if (ms < 0) return;
    measured.push_back(ms);
    critical_ms = critical;
    path = line;
  }
  const double measured_ms = median(measured);
  const double allowed = critical_ms * 1.05 + 10;
  std::printf(
      "bring-up   %d services, %d layers: median %.1f ms of %d runs; critical path from the "
      "delays %d ms; over by %.1f ms (%+.1f%%) (target: within %.1f ms)\n",
      layers * width, layers, measured_ms, rounds, critical_ms, measured_ms - critical_ms,
      100.0 * (measured_ms - critical_ms) / critical_ms, allowed);
  std::printf(
      "           start-up floor (bare posix_spawn until the banner, this run): one service "
      "%.2f ms, %d at once %.2f ms\n",
      median(alone), width, median(layer));
  std::printf("           %s\n", path.c_str());
}

Once bring_up_once(int layers, int width) {
  // Delay of service i in layer l, in ms: 40..140, varied but deterministic.
  auto delay = [](int l, int i) { return 40 + 25 * ((i * 7 + l * 3) % 5); };
  roadie::Scheduler s({.label = "layered"});
  std::vector<std::vector<roadie::Job>> jobs(static_cast<std::size_t>(layers));
  std::vector<std::vector<int>> finish(static_cast<std::size_t>(layers),
                                       std::vector<int>(static_cast<std::size_t>(width)));
  for (int l = 0; l < layers; ++l) {
    for (int i = 0; i < width; ++i) {
      roadie::ExecutorOptions options;
      options.name = "s" + std::to_string(l) + "." + std::to_string(i);
      roadie::Job job = s.add_service(roadie::OutputExecutor(
          roadie::Command{banner_child(), "--delay-ms", std::to_string(delay(l, i))}, "ready",
          options));
      int start = 0;
      if (l > 0) {
        // Each service requires two of the previous layer.
        for (int k : {i, (i + 1) % width}) {
          job.require(jobs[static_cast<std::size_t>(l - 1)][static_cast<std::size_t>(k)]);
          start =
              std::max(start, finish[static_cast<std::size_t>(l - 1)][static_cast<std::size_t>(k)]);
        }
      }
      finish[static_cast<std::size_t>(l)][static_cast<std::size_t>(i)] = start + delay(l, i);
      jobs[static_cast<std::size_t>(l)].push_back(job);
    }
  }
  int critical_ms = 0;
  for (const auto& layer : finish)
    critical_ms = std::max(critical_ms, *std::max_element(layer.begin(), layer.end()));
  auto report = s.run();
  if (!report) {
    std::printf("bring-up failed: %s\n", report.why().c_str());
    return {-1, critical_ms, ""};
  }
  const double ms = std::chrono::duration<double, std::milli>(report.elapsed()).count();
  std::string path = s.critical_path();
  auto t0 = Clock::now();
  s.shutdown();
  char teardown[64];
  std::snprintf(teardown, sizeof teardown, "; teardown in reverse order %.1f ms",
                micros(Clock::now() - t0) / 1000.0);
  path += teardown;
  return {ms, critical_ms, path};
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::printf("roadie scheduler benchmark (%s run)\n", quick ? "quick" : "full");
  overhead(10'000, quick ? 3 : 9);
  bring_up(5, 6, quick ? 3 : 7);
  return 0;
}
