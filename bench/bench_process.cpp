// Process-layer benchmark. Every roadie figure is printed next to the raw
// floor measured in the same run, on the same machine, with the same children:
//
//   spawn+stop   Process::spawn + stop() of an idle child, against a bare
//                fork/exec (exec confirmed through a close-on-exec pipe) +
//                kill + waitpid, the floor the target is set against; and,
//                for scale, against posix_spawn + kill + waitpid (glibc's
//                clone(CLONE_VM|CLONE_VFORK): no page tables copied, as
//                roadie's own vfork launch).
//   exit notice  time from a child's last instruction (it prints its clock
//                just before _exit) to roadie's exit callback and to wait()
//                returning, against a blocking waitpid().
//   drain        throughput of roadie draining a flooding child, against
//                the same child piped into `cat > /dev/null`.
//
// Usage: bench_process [--quick]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "roadie/process.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string child(const char* name) {
  return std::string(ROADIE_BENCH_CHILDREN_DIR) + "/" + name;
}

struct Stats {
  double median;
  double p95;
};

Stats stats(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    return values[static_cast<std::size_t>(q * double(values.size() - 1))];
  };
  return {at(0.5), at(0.95)};
}

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

long long monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

// fork + exec, with exec success confirmed by EOF on a close-on-exec pipe.
pid_t bare_spawn(const std::string& path, char* const* argv, int out_fd = -1) {
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    if (out_fd >= 0) ::dup2(out_fd, 1);
    ::execv(path.c_str(), argv);
    _exit(127);
  }
  ::close(sync[1]);
  char byte;
  while (::read(sync[0], &byte, 1) < 0 && errno == EINTR) {
  }
  ::close(sync[0]);
  return pid;
}

void bench_spawn_stop(int rounds) {
  std::string idle = child("child_idle");
  char* argv[] = {idle.data(), nullptr};
  std::vector<double> bare, vfork, ours;
  // In blocks of ten, so that noise hits all three alike, but a fork's
  // aftermath (every page it shared is write-protected until the parent's
  // next write faults it back) is not charged to the measurement after it.
  constexpr int kBlock = 10;
  for (int i = 0; i < rounds; i += kBlock) {
    for (int j = 0; j < kBlock; ++j) {
      auto t0 = Clock::now();
      pid_t pid = bare_spawn(idle, argv);
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
      bare.push_back(micros(Clock::now() - t0));
    }
    for (int j = 0; j < kBlock; ++j) {
      auto t0 = Clock::now();
      pid_t pid = 0;
      if (::posix_spawn(&pid, idle.c_str(), nullptr, nullptr, argv, environ) != 0) std::abort();
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
      vfork.push_back(micros(Clock::now() - t0));
    }
    for (int j = 0; j < kBlock; ++j) {
      auto t0 = Clock::now();
      auto p = roadie::Process::spawn(roadie::Command{idle});
      p.stop();
      ours.push_back(micros(Clock::now() - t0));
    }
  }
  auto b = stats(bare), v = stats(vfork), o = stats(ours);
  std::printf("spawn+stop    bare fork/exec/kill/waitpid  median %8.1f us  p95 %8.1f us\n",
              b.median, b.p95);
  std::printf("              bare posix_spawn/kill/wait   median %8.1f us  p95 %8.1f us\n",
              v.median, v.p95);
  std::printf(
      "              roadie spawn()+stop()        median %8.1f us  p95 %8.1f us  ratio %.2fx "
      "(target <= 1.5x); %.2fx posix_spawn\n",
      o.median, o.p95, o.median / b.median, o.median / v.median);
}

void bench_exit_notice(int rounds) {
  std::string stamp = child("child_stamp_exit");
  char* argv[] = {stamp.data(), nullptr};
  std::vector<double> bare, callback, waited;
  for (int i = 0; i < rounds; ++i) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) std::abort();
    pid_t pid = bare_spawn(stamp, argv, out[1]);
    ::close(out[1]);
    ::waitpid(pid, nullptr, 0);
    long long noticed = monotonic_ns();
    char text[64] = {};
    auto n = ::read(out[0], text, sizeof text - 1);
    ::close(out[0]);
    if (n > 0) bare.push_back(double(noticed - std::atoll(text)) / 1000.0);

    auto p = roadie::Process::spawn(roadie::Command{stamp});
    std::promise<long long> seen;
    auto sub = p.on_exit([&](const roadie::ExitStatus&) { seen.set_value(monotonic_ns()); });
    p.wait();
    long long returned = monotonic_ns();
    long long at_callback = seen.get_future().get();
    long long exited = std::atoll(p.output().text(roadie::Stream::out).c_str());
    callback.push_back(double(at_callback - exited) / 1000.0);
    waited.push_back(double(returned - exited) / 1000.0);
    sub.reset();
    p.stop();
  }
  auto b = stats(bare), c = stats(callback), w = stats(waited);
  std::printf("exit notice   bare blocking waitpid()      median %8.1f us  p95 %8.1f us\n",
              b.median, b.p95);
  std::printf(
      "              roadie exit callback         median %8.1f us  p95 %8.1f us  (target <= 1000 "
      "us)\n",
      c.median, c.p95);
  std::printf("              roadie wait() returned       median %8.1f us  p95 %8.1f us\n",
              w.median, w.p95);
  std::printf("              roadie over the floor        median %8.1f us\n", c.median - b.median);
}

void bench_drain(int megabytes, int rounds) {
  std::string flood = child("child_flood");
  std::string mb = std::to_string(megabytes);
  char* flood_argv[] = {flood.data(), mb.data(), nullptr};
  std::string cat = "/bin/cat";
  char* cat_argv[] = {cat.data(), nullptr};
  std::vector<double> bare, ours;
  const double bytes = double(megabytes) * 1024 * 1024;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) std::abort();
    int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t cat_pid = ::fork();
    if (cat_pid == 0) {
      ::dup2(pipe_fds[0], 0);
      ::dup2(devnull, 1);
      ::execv(cat.c_str(), cat_argv);
      _exit(127);
    }
    pid_t flood_pid = bare_spawn(flood, flood_argv, pipe_fds[1]);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ::close(devnull);
    ::waitpid(flood_pid, nullptr, 0);
    ::waitpid(cat_pid, nullptr, 0);
    bare.push_back(bytes / std::chrono::duration<double>(Clock::now() - t0).count() / 1e6);

    t0 = Clock::now();
    roadie::ProcessOptions options;
    options.output.max_lines = 10'000;
    auto p = roadie::Process::spawn(roadie::Command{flood, mb}, options);
    p.wait();
    ours.push_back(bytes / std::chrono::duration<double>(Clock::now() - t0).count() / 1e6);
    p.stop();
  }
  auto b = stats(bare), o = stats(ours);
  std::printf("drain         child | cat > /dev/null          median %8.0f MB/s\n", b.median);
  std::printf(
      "              roadie (lines + ring buffer) median %8.0f MB/s  ratio %.2f (target >= 0.50)\n",
      o.median, o.median / b.median);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::printf("roadie process benchmark (%s run); floors measured in this run\n",
              quick ? "quick" : "full");
  roadie::Runtime::global();  // start the event loop outside the timings
  bench_spawn_stop(quick ? 100 : 500);
  bench_exit_notice(quick ? 100 : 500);
  bench_drain(quick ? 128 : 512, quick ? 3 : 5);
  return 0;
}
