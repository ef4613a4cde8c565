// Scheduler observers: the events of a run in order, nested schedulers' jobs,
// observers that call back into the scheduler, remove themselves or throw, and
// many schedulers observed at once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/executor.hpp"
#include "roadie/scheduler.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Job;
using roadie::JobContext;
using roadie::JobKind;
using roadie::JobState;
using roadie::JobView;
using roadie::RunReport;
using roadie::Scheduler;
using roadie::SchedulerObserver;
using roadie::testing::child;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

class ObserverTest : public roadie::testing::NoLeaks {};

std::string describe(const JobView& job) {
  std::string text = std::string(roadie::to_string(job.state));
  if (!job.reason.empty()) text += " (" + job.reason + ")";
  return text;
}

// Records every event as a line, and every view.
class Recorder : public SchedulerObserver {
 public:
  void on_run_start(std::string_view scheduler, const std::vector<JobView>& jobs) override {
    std::lock_guard lock(mutex_);
    lines_.push_back("run start " + std::string(scheduler) + " (" + std::to_string(jobs.size()) +
                     " jobs)");
    initial_ = jobs;
  }
  void on_job_start(const JobView& job) override {
    std::lock_guard lock(mutex_);
    lines_.push_back("start " + job.path);
    starts_[job.path] = job;
  }
  void on_job_done(const JobView& job) override {
    std::lock_guard lock(mutex_);
    lines_.push_back("done " + job.path + ": " + describe(job));
    dones_[job.path] = job;
  }
  void on_run_end(const RunReport& report) override {
    std::lock_guard lock(mutex_);
    lines_.push_back("run end " + report.label() + ": " + (report ? "ok" : "failed"));
  }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  JobView done(const std::string& path) const {
    std::lock_guard lock(mutex_);
    return dones_.at(path);
  }
  JobView started(const std::string& path) const {
    std::lock_guard lock(mutex_);
    return starts_.at(path);
  }
  std::vector<JobView> initial() const {
    std::lock_guard lock(mutex_);
    return initial_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  std::map<std::string, JobView> starts_, dones_;
  std::vector<JobView> initial_;
};

roadie::OutputExecutor banner_service(const std::string& name) {
  roadie::ExecutorOptions options;
  options.name = name;
  return roadie::OutputExecutor(roadie::Command{child("child_banner"), "--text", name + " ready"},
                                name + " ready", options);
}

// Runs `s` on a thread of its own; a run that does not end in time is a
// deadlock: the test fails and the binary exits (the stuck thread cannot be joined).
RunReport run_or_die(Scheduler& s) {
  auto run = std::async(std::launch::async, [&] { return s.run(); });
  if (run.wait_for(roadie::scaled(30s)) == std::future_status::timeout) {
    ADD_FAILURE() << "the run did not end: deadlock";
    std::fflush(nullptr);
    std::_Exit(1);
  }
  return run.get();
}

}  // namespace

TEST_F(ObserverTest, EventsArriveInOrderWithStatesDurationsAndReasons) {
  Scheduler s({.label = "stack"});
  Job db = s.add_service(banner_service("db"), {.label = "db"});
  Job migrate = s.add(
      [](JobContext& ctx) {
        ctx.sleep_for(20ms);
        return 7;
      },
      {.label = "migrate"});
  Job broken = s.add([]() -> int { throw std::runtime_error("boom"); },
                     {.label = "broken", .critical = false});
  Job report_job = s.add([] {}, {.label = "report", .critical = false});
  migrate.require(db);
  broken.require(migrate);
  report_job.require(broken);
  auto recorder = std::make_shared<Recorder>();
  auto subscription = s.add_observer(recorder);

  auto report = s.run();
  ASSERT_TRUE(report) << report.why();
  EXPECT_THAT(recorder->lines(),
              ElementsAre("run start stack (4 jobs)",                                   //
                          "start db", "done db: ready",                                 //
                          "start migrate", "done migrate: done",                        //
                          "start broken", "done broken: failed (boom)",                 //
                          "done report: skipped (requires 'broken' which failed: boom)",  //
                          "run end stack: ok"));

  // The run start shows the graph before anything ran.
  auto initial = recorder->initial();
  ASSERT_EQ(initial.size(), 4u);
  EXPECT_EQ(initial[0].kind, JobKind::service);
  EXPECT_EQ(initial[1].state, JobState::idle);
  ASSERT_EQ(initial[1].requirements.size(), 1u);
  EXPECT_EQ(initial[1].requirements[0].label, "db");
  EXPECT_EQ(initial[1].requirements[0].id, 1u);

  const JobView started = recorder->started("migrate");
  EXPECT_EQ(started.state, JobState::running);
  EXPECT_TRUE(started.start_time.has_value());
  EXPECT_FALSE(started.end_time.has_value());

  const JobView dbv = recorder->done("db");
  EXPECT_EQ(dbv.kind, JobKind::service);
  EXPECT_GT(dbv.duration, 0ns);
  ASSERT_TRUE(dbv.ready_time.has_value());
  EXPECT_EQ(dbv.ready_time, dbv.end_time);
  EXPECT_EQ(dbv.readiness, "banner /db ready/");

  const JobView m = recorder->done("migrate");
  EXPECT_EQ(m.id, 2u);
  EXPECT_EQ(m.number, "2");
  EXPECT_EQ(m.kind, JobKind::callable);
  EXPECT_TRUE(m.critical);
  EXPECT_GE(m.duration, 20ms);
  EXPECT_EQ(m.result, "7");
  EXPECT_EQ(m.duration, *m.end_time - *m.start_time);
  EXPECT_GE(*m.start_time, *dbv.end_time);

  const JobView b = recorder->done("broken");
  EXPECT_EQ(b.state, JobState::failed);
  EXPECT_FALSE(b.critical);
  EXPECT_GT(b.duration, 0ns);
  EXPECT_EQ(b.reason, "boom");
  EXPECT_EQ(b.error, "boom");

  const JobView r = recorder->done("report");
  EXPECT_EQ(r.state, JobState::skipped);
  EXPECT_FALSE(r.start_time.has_value());
  EXPECT_EQ(r.duration, 0ns);
  EXPECT_TRUE(r.end_time.has_value());
  EXPECT_TRUE(r.error.empty());
}

TEST_F(ObserverTest, ACriticalFailureReportsCancelledJobsBeforeTheRunEnd) {
  Scheduler s({.label = "abort"});
  Job slow = s.add([](JobContext& ctx) { ctx.sleep_for(roadie::scaled(30s)); },
                   {.label = "slow", .critical = false});
  s.add(
      [](JobContext& ctx) {
        ctx.sleep_for(20ms);
        throw std::runtime_error("db is down");
      },
      {.label = "fail"});
  Job never = s.add([] {}, {.label = "never"});
  never.require(slow);
  auto recorder = std::make_shared<Recorder>();
  auto subscription = s.add_observer(recorder);
  auto report = s.run();
  EXPECT_FALSE(report);
  auto lines = recorder->lines();
  ASSERT_EQ(lines.size(), 7u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines.front(), "run start abort (3 jobs)");
  EXPECT_EQ(lines.back(), "run end abort: failed");
  EXPECT_THAT(lines, ::testing::Contains("done fail: failed (db is down)"));
  EXPECT_THAT(lines, ::testing::Contains(
                         "done slow: cancelled (cancelled: critical job 'fail' failed: db is down)"));
  EXPECT_THAT(lines,
              ::testing::Contains(
                  "done never: cancelled (not started: critical job 'fail' failed: db is down)"));
  auto at = [&](const std::string& line) { return std::find(lines.begin(), lines.end(), line); };
  EXPECT_LT(at("start slow"), at(
                                  "done slow: cancelled (cancelled: critical job 'fail' failed: "
                                  "db is down)"));
  EXPECT_LT(at("start fail"), at("done fail: failed (db is down)"));
}

TEST_F(ObserverTest, NestedSchedulersReportTheirJobsToOuterObserversWithTheirPath) {
  Scheduler deep({.label = "deep"});
  deep.add([] { return 1; }, {.label = "job"});
  Scheduler inner({.label = "inner"});
  Job step1 = inner.add([] {}, {.label = "step-1"});
  Job nested_deep = inner.add_scheduler(std::move(deep));
  nested_deep.require(step1);
  auto inner_recorder = std::make_shared<Recorder>();
  auto inner_subscription = inner.add_observer(inner_recorder);

  Scheduler outer({.label = "outer"});
  Job prep = outer.add([] {}, {.label = "prep"});
  Job nested = outer.add_scheduler(std::move(inner));
  nested.require(prep);
  auto recorder = std::make_shared<Recorder>();
  auto subscription = outer.add_observer(recorder);

  ASSERT_TRUE(outer.run());
  EXPECT_THAT(recorder->lines(),
              ElementsAre("run start outer (5 jobs)",  // nested jobs are in the initial views
                          "start prep", "done prep: done",                    //
                          "start inner",                                      //
                          "start inner/step-1", "done inner/step-1: done",    //
                          "start inner/deep",                                 //
                          "start inner/deep/job", "done inner/deep/job: done",  //
                          "done inner/deep: done",                            //
                          "done inner: done",                                 //
                          "run end outer: ok"));
  const JobView job = recorder->done("inner/deep/job");
  EXPECT_EQ(job.number, "2.2.1");
  EXPECT_EQ(job.depth, 2u);
  EXPECT_EQ(job.label, "job");
  EXPECT_EQ(job.result, "1");
  EXPECT_EQ(recorder->done("inner").kind, JobKind::scheduler);

  // The inner scheduler's own observer names the jobs from there, and sees its run.
  EXPECT_THAT(inner_recorder->lines(),
              ElementsAre("run start inner (3 jobs)",                             //
                          "start step-1", "done step-1: done",                    //
                          "start deep", "start deep/job", "done deep/job: done",  //
                          "done deep: done", "run end inner: ok"));
  EXPECT_EQ(inner_recorder->done("deep/job").number, "2.1");

  // The same paths in views().
  std::vector<std::string> paths;
  for (const auto& v : outer.views()) paths.push_back(v.number + " " + v.path);
  EXPECT_THAT(paths, ElementsAre("1 prep", "2 inner", "2.1 inner/step-1", "2.2 inner/deep",
                                 "2.2.1 inner/deep/job"));
}

namespace {
// Asks the scheduler about itself from every callback.
class Inquisitive : public SchedulerObserver {
 public:
  explicit Inquisitive(const Scheduler& s) : s_(s) {}
  void on_job_start(const JobView& job) override { ask(job, "start"); }
  void on_job_done(const JobView& job) override { ask(job, "done"); }
  void on_run_end(const RunReport&) override { ask_all("end"); }

  std::vector<std::string> listings;
  std::vector<std::string> whys;
  int asked = 0;

 private:
  void ask(const JobView& job, const std::string& when) {
    ask_all(when + " " + job.label);
    if (when == "done") {
      // The job's line in the listing already shows its final state.
      const std::string list = s_.list(roadie::Glyphs::ascii);
      if (list.find(std::string(roadie::to_string(job.state))) == std::string::npos) {
        listings.push_back("missing state of " + job.label + " in:\n" + list);
      }
    }
  }
  void ask_all(const std::string& when) {
    ++asked;
    whys.push_back(when + ": " + s_.why());
    (void)s_.to_dot();
    (void)s_.debrief(roadie::Glyphs::ascii);
    (void)s_.critical_path();
    (void)s_.to_chrome_trace();
    (void)s_.views();
    for (const Job& j : s_.jobs()) (void)j.state();
  }
  const Scheduler& s_;
};
}  // namespace

TEST_F(ObserverTest, AnObserverMayAskTheSchedulerAboutItselfFromItsCallbacks) {
  Scheduler s({.label = "self"});
  Job a = s.add([] {}, {.label = "a"});
  Job b = s.add([] { throw std::runtime_error("bad"); }, {.label = "b", .critical = false});
  Job c = s.add([] {}, {.label = "c"});
  b.require(a);
  c.require(a);
  Scheduler inner({.label = "inner"});
  inner.add([] {}, {.label = "x"});
  s.add_scheduler(std::move(inner)).require(c);
  auto observer = std::make_shared<Inquisitive>(s);
  auto subscription = s.add_observer(observer);
  auto report = run_or_die(s);
  EXPECT_TRUE(report) << report.why();
  // a, b, c, inner, inner/x: a start and a done each, and the run end.
  EXPECT_EQ(observer->asked, 11);
  EXPECT_THAT(observer->listings, ::testing::IsEmpty());
  EXPECT_EQ(observer->whys.back(), "end: ");
}

namespace {
// Blocks in its first on_job_start until told to go on, and counts its calls.
class Slow : public SchedulerObserver {
 public:
  void on_job_start(const JobView&) override {
    const int n = ++calls;
    if (n == 1) {
      in_call = true;
      std::this_thread::sleep_for(200ms);
      first_call_returned = true;
    }
  }
  void on_job_done(const JobView&) override { ++calls; }
  void on_run_end(const RunReport&) override { ++calls; }
  std::atomic<int> calls{0};
  std::atomic<bool> in_call{false};
  std::atomic<bool> first_call_returned{false};
};

class RemovesItself : public SchedulerObserver {
 public:
  void on_job_done(const JobView&) override {
    ++calls;
    subscription.reset();  // from its own callback: must not wait for itself
  }
  roadie::Subscription subscription;
  std::atomic<int> calls{0};
};
}  // namespace

TEST_F(ObserverTest, ResettingTheSubscriptionMidRunWaitsForTheCallAndStopsTheEvents) {
  Scheduler s({.label = "unsubscribe"});
  Job a = s.add([] {}, {.label = "a"});
  Job b = s.add([](JobContext& ctx) { ctx.sleep_for(100ms); }, {.label = "b"});
  Job c = s.add([] {}, {.label = "c"});
  b.require(a);
  c.require(b);
  auto slow = std::make_shared<Slow>();
  auto subscription = s.add_observer(slow);
  auto self_remover = std::make_shared<RemovesItself>();
  self_remover->subscription = s.add_observer(self_remover);

  std::atomic<bool> reset_done{false};
  bool waited = false;
  int calls_at_reset = 0;
  std::thread resetter([&] {
    while (!slow->in_call.load()) std::this_thread::sleep_for(1ms);
    subscription.reset();
    waited = slow->first_call_returned.load();
    calls_at_reset = slow->calls.load();
    reset_done = true;
  });
  auto report = run_or_die(s);
  resetter.join();
  EXPECT_TRUE(report) << report.why();
  EXPECT_TRUE(reset_done.load());
  EXPECT_TRUE(waited) << "reset() returned while the observer was still in its callback";
  EXPECT_EQ(calls_at_reset, 1);
  EXPECT_EQ(slow->calls.load(), 1) << "events reached an observer after its subscription ended";
  EXPECT_EQ(self_remover->calls.load(), 1) << "an observer that removed itself was called again";
}

TEST_F(ObserverTest, ASubscriptionMayOutliveItsScheduler) {
  roadie::Subscription subscription;
  {
    Scheduler s;
    s.add([] {});
    subscription = s.add_observer(std::make_shared<Recorder>());
    ASSERT_TRUE(s.run());
  }
  subscription.reset();  // the scheduler is gone: nothing to remove, nothing dangles
  EXPECT_FALSE(subscription);
}

namespace {
class Thrower : public SchedulerObserver {
 public:
  void on_run_start(std::string_view, const std::vector<JobView>&) override {
    throw std::runtime_error("observer bug at run start");
  }
  void on_job_start(const JobView&) override { throw 42; }
  void on_job_done(const JobView&) override { throw std::runtime_error("observer bug"); }
  void on_run_end(const RunReport&) override { throw std::logic_error("observer bug at end"); }
};
}  // namespace

TEST_F(ObserverTest, AThrowingObserverNeitherBreaksTheRunNorSilencesTheOthers) {
  Scheduler s({.label = "robust"});
  Job db = s.add_service(banner_service("db"), {.label = "db"});
  Job a = s.add([] { return std::string("fine"); }, {.label = "a"});
  a.require(db);
  auto first = s.add_observer(std::make_shared<Thrower>());
  auto recorder = std::make_shared<Recorder>();
  auto second = s.add_observer(recorder);
  auto last = s.add_observer(std::make_shared<Thrower>());
  auto report = s.run();
  EXPECT_TRUE(report) << report.why();
  EXPECT_EQ(a.state(), JobState::done);
  EXPECT_EQ(a.result<std::string>(), "fine");
  EXPECT_THAT(recorder->lines(),
              ElementsAre("run start robust (2 jobs)", "start db", "done db: ready", "start a",
                          "done a: done", "run end robust: ok"));
  EXPECT_EQ(recorder->done("a").result, "\"fine\"");
}

TEST_F(ObserverTest, AddObserverRefusesNull) {
  Scheduler s({.label = "s"});
  EXPECT_THAT(roadie::testing::error_of([&] { s.add_observer(nullptr); }),
              HasSubstr("null observer"));
  EXPECT_THROW(s.add_observer(nullptr), roadie::SchedulerError);
}

// --- many schedulers observed at once --------------------------------------------------------

namespace {

int cycles() {
  const char* value = std::getenv("ROADIE_STRESS_CYCLES");
  const int n = value != nullptr ? std::atoi(value) : 0;
  return n > 0 ? n : 30;
}

// Checks the ordering guarantees as the events come: run start first, a job's
// start before its done, each once, run end last with every job done; and
// that it is never called by two threads at once.
class Checker : public SchedulerObserver {
 public:
  explicit Checker(const Scheduler& s) : s_(s) {}
  void on_run_start(std::string_view, const std::vector<JobView>& jobs) override {
    enter();
    if (started_run_ || ended_) problem("run start not first");
    started_run_ = true;
    expected_ = jobs.size();
    leave();
  }
  void on_job_start(const JobView& job) override {
    enter();
    if (!started_run_ || ended_) problem("job start outside the run: " + job.path);
    if (!started_.insert(job.path).second) problem("started twice: " + job.path);
    if (done_.count(job.path)) problem("start after done: " + job.path);
    if (job.state != JobState::running) problem("start not running: " + job.path);
    leave();
  }
  void on_job_done(const JobView& job) override {
    enter();
    if (!started_run_ || ended_) problem("job done outside the run: " + job.path);
    if (!done_.insert(job.path).second) problem("done twice: " + job.path);
    if (job.start_time && !started_.count(job.path)) problem("done before start: " + job.path);
    if (job.start_time && job.duration <= 0ns) problem("no duration: " + job.path);
    if (job.path == "check") (void)s_.list(roadie::Glyphs::ascii);  // the lock is not held
    leave();
  }
  void on_run_end(const RunReport&) override {
    enter();
    if (ended_) problem("run end twice");
    ended_ = true;
    if (done_.size() != expected_) {
      problem("run end after " + std::to_string(done_.size()) + " of " +
              std::to_string(expected_) + " jobs");
    }
    leave();
  }
  std::vector<std::string> problems;
  bool ended() const { return ended_; }

 private:
  void enter() {
    if (inside_.exchange(true)) problem("called by two threads at once");
  }
  void leave() { inside_ = false; }
  void problem(std::string what) { problems.push_back(std::move(what)); }
  const Scheduler& s_;
  std::atomic<bool> inside_{false};
  bool started_run_ = false;
  bool ended_ = false;
  std::size_t expected_ = 0;
  std::set<std::string> started_, done_;
};

void observed_cycle(int thread, int round, std::mutex& mutex, std::vector<std::string>& failures) {
  const std::string where = "thread " + std::to_string(thread) + " cycle " + std::to_string(round);
  Scheduler s({.label = "observed"});
  Job root = s.add([] {}, {.label = "root"});
  std::vector<Job> fan;
  for (int i = 0; i < 6; ++i) {
    Job j = s.add([](JobContext& ctx) { ctx.sleep_for(1ms); }, {.label = "fan-" + std::to_string(i)});
    j.require(root);
    fan.push_back(j);
  }
  Job bad = s.add([] { throw std::runtime_error("bad"); }, {.label = "bad", .critical = false});
  bad.require(root);
  Job skipped = s.add([] {}, {.label = "skipped", .critical = false});
  skipped.require(bad);
  Scheduler inner({.label = "inner"});
  Job i1 = inner.add([] {}, {.label = "i1"});
  inner.add([] {}, {.label = "i2"}).require(i1);
  Job nested = s.add_scheduler(std::move(inner));
  Job check = s.add([] {}, {.label = "check"});
  for (const Job& j : fan) check.require(j);
  check.require(nested);
  if (round % 10 == 0) check.require(s.add_service(banner_service("svc"), {.label = "svc"}));
  auto checker = std::make_shared<Checker>(s);
  auto subscription = s.add_observer(checker);
  auto report = s.run();
  std::lock_guard lock(mutex);
  if (!report) failures.push_back(where + ": " + report.why());
  if (!checker->ended()) failures.push_back(where + ": no run end before run() returned");
  for (const auto& p : checker->problems) failures.push_back(where + ": " + p);
}

}  // namespace

TEST_F(ObserverTest, ManyObservedSchedulersInParallelKeepTheirOrder) {
  constexpr int kThreads = 8;
  const int n = cycles();
  std::mutex mutex;
  std::vector<std::string> failures;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < n; ++round) observed_cycle(t, round, mutex, failures);
      });
    }
  }
  EXPECT_THAT(failures, ::testing::IsEmpty());
}
