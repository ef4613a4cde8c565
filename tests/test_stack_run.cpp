// roadie::Stack with real processes: the stack files in tests/stacks/run/
// brought up, reached, torn down; a failing job; ports across concurrent
// stacks; a stack destroyed while up; Debian's redis-server with a seed job.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "roadie/error.hpp"
#include "roadie/hooks.hpp"
#include "roadie/ports.hpp"
#include "roadie/process.hpp"
#include "roadie/stack.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using roadie::testing::child;
using roadie::testing::exists;
using ::testing::HasSubstr;

const fs::path kStacks = fs::path(__FILE__).parent_path() / "stacks" / "run";

// The stack files name the child programs through ${env.ROADIE_TEST_CHILD_*};
// set once, before any test spawns anything (setenv is not thread-safe).
class ChildPaths : public ::testing::Environment {
 public:
  void SetUp() override {
    for (const char* name : {"banner", "listen", "http", "pidfile", "exit", "env", "idle"}) {
      std::string variable = "ROADIE_TEST_CHILD_" + std::string(name);
      std::transform(variable.begin(), variable.end(), variable.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      ::setenv(variable.c_str(), child("child_" + std::string(name)).c_str(), 1);
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kChildPaths =
    ::testing::AddGlobalTestEnvironment(new ChildPaths);

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> texts(const roadie::Output& output) {
  std::vector<std::string> lines;
  for (const auto& line : output.lines()) lines.push_back(line.text);
  return lines;
}

// Records the services' lifecycle as "EVENT NAME", in the order it happens.
class Recorder : public roadie::ExecutorListener {
 public:
  void on_starting(const roadie::Executor& e) override { add("starting " + e.name()); }
  void on_ready(const roadie::Executor& e, std::chrono::nanoseconds) override {
    add("ready " + e.name());
  }
  void on_stopped(const roadie::Executor& e, const roadie::ExitStatus&) override {
    add("stopped " + e.name());
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  void add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
};

using StackRun = roadie::testing::NoLeaks;

TEST_F(StackRun, ThreeServicesComeUpInDependencyOrderAndStopInReverse) {
  auto stack = roadie::Stack::load(kStacks / "three.yaml");
  EXPECT_EQ(stack.service_names(), (std::vector<std::string>{"worker", "api", "db"}));

  // Ports: reserved at load, one per name, distinct, and in the commands.
  const auto ports = stack.ports();
  ASSERT_EQ(ports.size(), 2u);
  const roadie::Port db = ports.at("db");
  const roadie::Port api = ports.at("api-http");
  EXPECT_NE(db.value(), api.value());
  EXPECT_EQ(stack.service("db").executor.command().argv().at(1),
            "tcp:" + std::to_string(db.value()));
  EXPECT_EQ(stack.service("api").executor.command().argv().at(1), std::to_string(api.value()));
  EXPECT_EQ(stack.service("db").ports, (std::map<std::string, roadie::Port>{{"db", db}}));
  EXPECT_TRUE(stack.service("worker").ports.empty());
  EXPECT_EQ(stack.service("worker").pid, -1);  // nothing started at load

  auto recorder = std::make_shared<Recorder>();
  std::vector<roadie::Subscription> listening;
  for (const auto& name : stack.service_names()) {
    listening.push_back(stack.service(name).executor.add_listener(recorder));
  }
  // The stack's services and scheduler are on its bus.
  std::mutex mutex;
  std::vector<std::string> bus_events;
  auto record = [&](const std::string& key) {
    return [&, key](roadie::EventContext& e) {
      std::lock_guard lock(mutex);
      bus_events.push_back(e.event() + " " + e.string(key));
    };
  };
  auto ready_hook = stack.bus().add_post("service_ready", record("service_name"));
  auto job_hook = stack.bus().add_post("job_done", record("job_label"));

  const roadie::RunReport report = stack.up();
  ASSERT_TRUE(report.ok()) << report.why() << "\n" << stack.scheduler().debrief();

  // Each service reachable: a running pid, its output.
  for (const auto& name : stack.service_names()) {
    const roadie::StackService service = stack.service(name);
    EXPECT_EQ(service.name, name);
    EXPECT_GT(service.pid, 0) << name;
    EXPECT_TRUE(exists(service.pid)) << name;
    EXPECT_TRUE(service.executor.running()) << name;
  }
  const auto worker = stack.service("worker");
  EXPECT_THAT(texts(worker.output),
              ::testing::Contains("worker up db=" + std::to_string(db.value()) +
                                  " api=" + std::to_string(api.value())));
  EXPECT_THAT(texts(stack.service("db").output), ::testing::Contains("listening"));

  const pid_t pids[] = {worker.pid, stack.service("api").pid, stack.service("db").pid};
  const auto outcomes = stack.down();
  std::vector<std::string> stopped;
  for (const auto& outcome : outcomes) {
    stopped.push_back(outcome.label);
    EXPECT_TRUE(outcome.error.empty()) << outcome.label << ": " << outcome.error;
  }
  EXPECT_EQ(stopped, (std::vector<std::string>{"worker", "api", "db"}));
  EXPECT_EQ(recorder->events(),
            (std::vector<std::string>{"starting db", "ready db", "starting api", "ready api",
                                      "starting worker", "ready worker", "stopped worker",
                                      "stopped api", "stopped db"}));
  for (pid_t pid : pids) EXPECT_FALSE(exists(pid)) << pid;
  EXPECT_TRUE(stack.down().empty());  // idempotent

  stack.bus().drain();
  std::lock_guard lock(mutex);
  EXPECT_THAT(bus_events, ::testing::IsSupersetOf({"service_ready db", "service_ready api",
                                                   "service_ready worker", "job_done db",
                                                   "job_done api", "job_done worker"}));
}

TEST_F(StackRun, AFailingJobFailsTheBringUpWithItsOutputAndTearsDownWhatStarted) {
  auto stack = roadie::Stack::load(kStacks / "failing_job.yaml");
  pid_t store_pid = -1;
  struct PidOf : roadie::ExecutorListener {
    pid_t* pid;
    explicit PidOf(pid_t* p) : pid(p) {}
    void on_ready(const roadie::Executor& e, std::chrono::nanoseconds) override { *pid = e.pid(); }
  };
  auto store_listener =
      stack.service("store").executor.add_listener(std::make_shared<PidOf>(&store_pid));

  const roadie::RunReport report = stack.up();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.why(), HasSubstr("'seed'"));
  EXPECT_THAT(report.why(), HasSubstr("exited with code 3"));
  EXPECT_THAT(report.why(), HasSubstr("[stdout] exiting"));  // the job's last lines
  std::string failures;
  for (const auto& line : report.failures()) failures += line + "\n";
  EXPECT_THAT(failures, HasSubstr("seed: failed"));
  EXPECT_THAT(failures, HasSubstr("app: skipped"));

  // What started was torn down before up() returned.
  ASSERT_GT(store_pid, 0);
  EXPECT_FALSE(exists(store_pid));
  EXPECT_FALSE(stack.service("store").executor.running());
  EXPECT_EQ(stack.service("app").pid, -1);  // never started
  EXPECT_TRUE(stack.down().empty());
  EXPECT_THAT(roadie::testing::error_of([&] { stack.up(); }), HasSubstr("already brought up"));
}

TEST_F(StackRun, AnUnknownServiceNameListsTheKnownOnes) {
  auto stack = roadie::Stack::load(kStacks / "failing_job.yaml");
  const std::string error = roadie::testing::error_of([&] { stack.service("stor"); });
  EXPECT_THAT(error, HasSubstr("no service 'stor'"));
  EXPECT_THAT(error, HasSubstr("'store', 'app'"));
  EXPECT_THAT(roadie::testing::error_of([&] { stack.service("seed"); }), HasSubstr("is a job"));
}

TEST_F(StackRun, EnvironmentHasAPortVariablePerPort) {
  auto stack = roadie::Stack::load(kStacks / "three.yaml");
  const auto ports = stack.ports();
  EXPECT_EQ(stack.environment(),
            (std::map<std::string, std::string>{
                {"ROADIE_PORT_API_HTTP", std::to_string(ports.at("api-http").value())},
                {"ROADIE_PORT_DB", std::to_string(ports.at("db").value())}}));
}

TEST_F(StackRun, RedisComesUpSeededAndACommandReachesItThroughTheEnvironment) {
  auto stack = roadie::Stack::load(kStacks / "redis.yaml");
  const auto report = stack.up();
  ASSERT_TRUE(report.ok()) << report.why();
  auto command = roadie::Command::shell("redis-cli -p \"$ROADIE_PORT_REDIS\" GET greeting");
  for (const auto& [name, value] : stack.environment()) command.set_env(name, value);
  auto cli = roadie::Process::spawn(command);
  const auto status = cli.wait_for(20s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success()) << cli.output().excerpt();
  EXPECT_THAT(texts(cli.output()), ::testing::Contains("hello"));
  cli.stop();
  const auto outcomes = stack.down();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].label, "redis");
  EXPECT_TRUE(outcomes[0].error.empty()) << outcomes[0].error;
}

TEST_F(StackRun, ServiceSettingsReachTheExecutors) {
  roadie::testing::TempDir dir;
  fs::copy_file(kStacks / "settings.yaml", dir.path() / "roadie.yaml");
  const fs::path logs = dir.path() / "logs";
  auto stack = roadie::Stack::load(dir.path() / "roadie.yaml", {.log_dir = logs});

  const auto envy = stack.service("envy");
  EXPECT_EQ(envy.executor.options().stop_signal, SIGINT);
  EXPECT_EQ(envy.executor.options().stop_timeout, 3s);
  EXPECT_EQ(envy.executor.options().timeout, 7s);
  EXPECT_EQ(stack.service("pid").executor.options().timeout, 5s);
  EXPECT_EQ(stack.service("pid").executor.options().stop_timeout, 4s);  // the default
  EXPECT_FALSE(stack.scheduler().find("envy")->critical());
  EXPECT_TRUE(stack.scheduler().find("pid")->critical());
  EXPECT_EQ(envy.log_file, logs / "envy.log");
  EXPECT_EQ(stack.service("logged").log_file, dir.path() / "own.log");  // its own wins

  const auto report = stack.up();
  ASSERT_TRUE(report.ok()) << report.why();
  // cwd: the stack file's directory (the pid file is written relative to it).
  EXPECT_TRUE(fs::exists(dir.path() / "svc.pid"));
  const std::string port = std::to_string(stack.ports().at("envy").value());
  EXPECT_THAT(
      texts(stack.service("envy").output),
      ::testing::ElementsAre("cwd=" + dir.path().string(), "GREETING=hello on " + port, "done"));
  stack.down();
  EXPECT_THAT(read_file(logs / "envy.log"), HasSubstr("GREETING=hello on " + port));
  EXPECT_THAT(read_file(dir.path() / "own.log"), HasSubstr("to its own file"));
  EXPECT_FALSE(fs::exists(logs / "logged.log"));
}

TEST_F(StackRun, StacksLoadedAtOnceFromOneFileNeverShareAPortAndAllComeUp) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 3;
  // 32 ports live at once out of 40 candidates: stacks that did not hold
  // their reservations would meet. (Set before any thread starts: nothing
  // spawns now, so nothing reads the environment meanwhile.)
  ::setenv("ROADIE_PORTS_RANGE", "23100-23139", 1);
  struct Unset {
    ~Unset() { ::unsetenv("ROADIE_PORTS_RANGE"); }
  } unset;
  std::mutex mutex;
  std::multiset<int> live;  // ports of the stacks alive now, over every thread
  std::vector<std::string> problems;
  std::atomic<int> up_count{0};
  auto problem = [&](std::string what) {
    std::lock_guard lock(mutex);
    problems.push_back(std::move(what));
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        try {
          auto first = roadie::Stack::load(kStacks / "pair.yaml");
          auto second = roadie::Stack::load(kStacks / "pair.yaml");
          std::vector<int> mine;
          for (auto* stack : {&first, &second}) {
            for (const auto& [name, port] : stack->ports()) mine.push_back(port.value());
          }
          {
            std::lock_guard lock(mutex);
            for (int port : mine) {
              if (live.count(port) != 0)
                problems.push_back("port " + std::to_string(port) + " twice");
              live.insert(port);
            }
          }
          for (auto* stack : {&first, &second}) {
            const auto report = stack->up();
            if (report.ok()) {
              ++up_count;
            } else {
              problem("not up: " + report.why());
            }
          }
          first.down();
          second.down();
          std::lock_guard lock(mutex);
          for (int port : mine) live.erase(live.find(port));
        } catch (const std::exception& e) {
          problem(e.what());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(problems, ::testing::IsEmpty());
  EXPECT_EQ(up_count.load(), kThreads * kRounds * 2);
}

// Requests a stop on `source` after `bound` unless destroyed first.
class Guard {
 public:
  Guard(std::stop_source& source, std::chrono::milliseconds bound)
      : thread_([&source, bound](std::stop_token token) {
          std::mutex mutex;
          std::condition_variable_any never;
          std::unique_lock lock(mutex);
          if (!never.wait_for(lock, token, bound, [] { return false; }) &&
              !token.stop_requested()) {
            source.request_stop();
          }
        }) {}

 private:
  std::jthread thread_;
};

TEST_F(StackRun, ACancelledBringUpStopsWhatIsStartingAndRunning) {
  auto stack = roadie::Stack::load(kStacks / "cancel.yaml");
  std::latch both_started(2);
  struct Starts : roadie::SchedulerObserver {
    std::latch* latch;
    explicit Starts(std::latch* l) : latch(l) {}
    void on_job_start(const roadie::JobView&) override { latch->count_down(); }
  };
  auto observing = stack.scheduler().add_observer(std::make_shared<Starts>(&both_started));
  std::stop_source cancel;
  std::jthread canceller([&] {
    both_started.wait();
    cancel.request_stop();
  });
  const auto began = std::chrono::steady_clock::now();
  const auto report = stack.up(cancel.get_token());
  const auto took = std::chrono::steady_clock::now() - began;
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.why(), HasSubstr("cancelled"));
  std::string failures;
  for (const auto& line : report.failures()) failures += line + "\n";
  EXPECT_THAT(failures, HasSubstr("never: cancelled"));
  EXPECT_THAT(failures, HasSubstr("endless: cancelled"));
  EXPECT_LT(took, 10s);  // not the 15 s timeouts
  EXPECT_FALSE(stack.service("never").executor.running());
  // (NoLeaks checks that the job's process is gone too.)
}

TEST_F(StackRun, AJobPastItsTimeoutIsStoppedAndFailsTheBringUp) {
  auto stack = roadie::Stack::load(kStacks / "job_timeout.yaml");
  std::stop_source cancel;
  const Guard guard(cancel, 10s);  // a job without its timeout would run for ever
  const auto report = stack.up(cancel.get_token());
  ASSERT_FALSE(report.ok());
  ASSERT_EQ(report.failures().size(), 1u);
  EXPECT_THAT(report.failures()[0], HasSubstr("stuck: timed out"));
  EXPECT_THAT(report.failures()[0], HasSubstr("ran past its timeout"));
}

TEST_F(StackRun, DestroyingAStackThatIsUpLeavesNothingRunning) {
  std::vector<pid_t> pids;
  {
    auto stack = roadie::Stack::load(kStacks / "three.yaml");
    ASSERT_TRUE(stack.up().ok());
    for (const auto& name : stack.service_names()) pids.push_back(stack.service(name).pid);
    for (pid_t pid : pids) ASSERT_TRUE(exists(pid));
  }  // no down()
  for (pid_t pid : pids) EXPECT_FALSE(exists(pid)) << pid;
  // (NoLeaks then checks that no child, zombie or marked process remains.)
}

}  // namespace

namespace {

// A stack file written at run time (its plugins section names a root in a
// temporary directory).
fs::path write_stack(const fs::path& dir, const std::string& text) {
  fs::path file = dir / "roadie.yaml";
  std::ofstream(file) << text;
  return file;
}

class StackPlugins : public roadie::testing::NoLeaks {};

TEST_F(StackPlugins, ThePluginsSectionCreatesPluginsOnTheStacksBus) {
  roadie::testing::TempDir dir;
  const fs::path root = dir.path() / "artifacts";
  fs::path file = write_stack(dir.path(),
                              "version: 1\n"
                              "services:\n"
                              "  talker:\n"
                              "    command: [\"${env.ROADIE_TEST_CHILD_BANNER}\", --text, \"up and running\"]\n"
                              "    ready: {banner: \"up and running\"}\n"
                              "plugins:\n"
                              "  logs: {plugin: service_logs, root: \"" + root.string() + "\"}\n");
  roadie::Stack stack = roadie::Stack::load(file);
  EXPECT_EQ(stack.bus().plugin_idents(), std::vector<std::string>{"logs"});
  ASSERT_TRUE(stack.up().ok());
  stack.bus().fire("start_test", {{"suite_name", "S"}, {"test_name", "T"}});
  stack.bus().fire("finish_test", {{"suite_name", "S"}, {"test_name", "T"}, {"test_result", "passed"}});
  stack.down();
  EXPECT_TRUE(fs::exists(root / "S" / "T" / "talker.log"));
}

TEST_F(StackPlugins, AMistypedPluginOptionIsAnErrorAtItsPlaceInTheStackFile) {
  roadie::testing::TempDir dir;
  fs::path file = write_stack(dir.path(),
                              "version: 1\n"
                              "services:\n"
                              "  talker:\n"
                              "    command: [\"${env.ROADIE_TEST_CHILD_BANNER}\", \"hi\"]\n"
                              "plugins:\n"
                              "  logs:\n"
                              "    plugin: service_logs\n"
                              "    lines_before_failure: many\n");
  try {
    roadie::Stack::load(file);
    FAIL() << "no error";
  } catch (const roadie::ConfigError& e) {
    EXPECT_EQ(e.file(), file.string());
    EXPECT_EQ(e.line(), 8);
    EXPECT_EQ(e.column(), 27);
    EXPECT_EQ(e.key(), "plugins.logs.lines_before_failure");
  }
}

}  // namespace
