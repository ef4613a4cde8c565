// Concurrency stress of the process layer and the executors: many threads
// spawning, starting and stopping at once. Labelled `stress` (ctest -L stress);
// ROADIE_STRESS_CYCLES sets the cycles per thread (default 200).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Command;
using roadie::ExitStatus;
using roadie::Process;
using roadie::testing::child;

namespace {

constexpr int kThreads = 8;

int cycles() {
  const char* value = std::getenv("ROADIE_STRESS_CYCLES");
  int n = value ? std::atoi(value) : 0;
  return n > 0 ? n : 200;
}

// Runs `body(thread, cycle)` on kThreads threads at once; collects failures
// (text) instead of asserting off the test thread.
template <class F>
std::vector<std::string> hammer(F body) {
  std::mutex mutex;
  std::vector<std::string> failures;
  std::atomic<int> waiting{kThreads};
  std::vector<std::thread> threads;
  const int n = cycles();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      waiting.fetch_sub(1);
      while (waiting.load() > 0) std::this_thread::yield();  // start together
      for (int c = 0; c < n; ++c) {
        std::string failure;
        try {
          failure = body(t, c);
        } catch (const std::exception& e) {
          failure = e.what();
        }
        if (!failure.empty()) {
          std::lock_guard lock(mutex);
          failures.push_back("thread " + std::to_string(t) + " cycle " + std::to_string(c) + ": " +
                             failure);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return failures;
}

std::string first_few(const std::vector<std::string>& failures) {
  std::string text;
  for (std::size_t i = 0; i < failures.size() && i < 5; ++i) text += failures[i] + "\n";
  return text;
}

class StressTest : public roadie::testing::NoLeaks {};

}  // namespace

// A process is never reported exited while it runs, and stop() always sees
// the stop signal it sent (never a phantom "exited with code -1").
TEST_F(StressTest, SpawnAndStopFromManyThreadsHasNoPhantomExits) {
  auto failures = hammer([](int, int) -> std::string {
    Process p = Process::spawn(Command{child("child_idle")});
    if (!p.running()) return "reported exited right after spawn: " + p.exit_status()->describe();
    std::this_thread::sleep_for(200us);
    if (!p.running()) return "reported exited 200 us after spawn: " + p.exit_status()->describe();
    ExitStatus status = p.stop();
    if (!status.is_signaled() || status.signal() != SIGTERM) {
      return "stop() returned " + status.describe();
    }
    return {};
  });
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first:\n" << first_few(failures);
}

// Each process's output holds exactly what it wrote, complete when wait()
// returns: pipe data is never routed to another process, whatever the
// descriptor numbers the kernel hands out again.
TEST_F(StressTest, OutputIsNeverMisroutedBetweenConcurrentProcesses) {
  auto failures = hammer([](int t, int c) -> std::string {
    const std::string token = "t" + std::to_string(t) + "c" + std::to_string(c);
    Process p = Process::spawn(Command{"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo " + token +
                                                            "; done; echo " + token + " >&2"});
    ExitStatus status = p.wait();
    if (status.code() != 0) return "exited " + status.describe();
    auto out = p.output().lines(roadie::Stream::out);
    auto err = p.output().lines(roadie::Stream::err);
    if (out.size() != 5 || err.size() != 1) {
      return "got " + std::to_string(out.size()) + "+" + std::to_string(err.size()) + " lines";
    }
    for (const auto& line : out) {
      if (line.text != token) return "stdout line '" + line.text + "' is not " + token;
    }
    if (err[0].text != token) return "stderr line '" + err[0].text + "' is not " + token;
    p.stop();
    return {};
  });
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first:\n" << first_few(failures);
}

TEST_F(StressTest, ExecutorStartAndStopFromManyThreads) {
  auto failures = hammer([](int t, int) -> std::string {
    roadie::OutputExecutor service(Command{child("child_banner"), "--text", "up"}, "up",
                                   {.name = "svc" + std::to_string(t)});
    service.start();
    if (!service.running()) return "not running after start()";
    service.stop();  // throws ProcessFinishedWithError on a phantom exit
    auto status = service.exit_status();
    if (!status || !status->is_signaled()) return "stopped with " + status->describe();
    return {};
  });
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first:\n" << first_few(failures);
}
