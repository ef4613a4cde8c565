// Schedulers in parallel, each bringing up and tearing down real services, many
// times over: every run must succeed and every stop must see the service it
// stopped. Labelled `stress` (ctest -L stress; -LE stress leaves it out).
// ROADIE_STRESS_CYCLES sets the cycles per thread (default 200).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/executor.hpp"
#include "roadie/scheduler.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Job;
using roadie::JobState;
using roadie::Scheduler;
using roadie::testing::child;

namespace {

class SchedulerStressTest : public roadie::testing::NoLeaks {};

int cycles_per_thread() {
  const char* value = std::getenv("ROADIE_STRESS_CYCLES");
  if (value == nullptr || *value == '\0') return 200;
  const int cycles = std::atoi(value);
  return cycles > 0 ? cycles : 200;
}

roadie::OutputExecutor banner_service(const std::string& name) {
  roadie::ExecutorOptions options;
  options.name = name;
  return roadie::OutputExecutor(roadie::Command{child("child_banner"), "--text", name + " ready"},
                                name + " ready", options);
}

// What went wrong, kept for the failure message (the first few of each thread).
class Failures {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    ++count_;
    if (kept_.size() < 20) kept_.push_back(std::move(what));
  }
  int count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  std::string summary() {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const auto& f : kept_) text += "\n  " + f;
    return text;
  }

 private:
  std::mutex mutex_;
  int count_ = 0;
  std::vector<std::string> kept_;
};

// One bring-up and teardown: db, then cache requiring it, then a job that
// requires both and checks they are running; shutdown stops cache, then db,
// each by the stop signal.
void cycle(int thread, int round, Failures& failures) {
  const std::string where = "thread " + std::to_string(thread) + " cycle " + std::to_string(round);
  try {
    Scheduler s(
        {.label = "stress",
         .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(roadie::scaled(30s))});
    Job db = s.add_service(banner_service("db"), {.label = "db"});
    Job cache = s.add_service(banner_service("cache"), {.label = "cache"});
    cache.require(db);
    Job check = s.add([&] { return db.service()->running() && cache.service()->running(); },
                      {.label = "check"});
    check.require(db).require(cache);
    auto report = s.run();
    if (!report) {
      failures.add(where + ": run failed: " + report.why() + "\n" +
                   s.debrief(roadie::Glyphs::ascii));
    } else if (!check.result<bool>()) {
      failures.add(where + ": a ready service was not running");
    }
    auto outcomes = s.shutdown();
    if (report && outcomes.size() != 2) {
      failures.add(where + ": " + std::to_string(outcomes.size()) + " services stopped, not 2");
    }
    for (const auto& o : outcomes) {
      const std::string status = o.status ? o.status->describe() : "no status";
      if (!o.error.empty() || status != "killed by signal 15 (SIGTERM)") {
        failures.add(where + ": stopping " + o.label + ": " + status +
                     (o.error.empty() ? "" : " (" + o.error + ")"));
      }
    }
    for (const Job& job : {db, cache}) {
      if (report && job.state() != JobState::stopped) {
        failures.add(where + ": " + job.label() + " reads " +
                     std::string(roadie::to_string(job.state())) + " after shutdown");
      }
    }
  } catch (const std::exception& e) {
    failures.add(where + ": " + e.what());
  }
}

}  // namespace

TEST_F(SchedulerStressTest, ParallelSchedulersBringUpAndTearDownRealServices) {
  constexpr int kThreads = 8;
  const int cycles = cycles_per_thread();
  Failures failures;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&failures, cycles, t] {
        for (int round = 0; round < cycles; ++round) cycle(t, round, failures);
      });
    }
  }
  EXPECT_EQ(failures.count(), 0) << failures.count() << " failures in " << kThreads << " x "
                                 << cycles << " cycles, the first:" << failures.summary();
}
