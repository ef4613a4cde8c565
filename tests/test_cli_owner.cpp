// Never an orphan, whoever owns the stack: `roadie run` killed in every way
// leaves no service of its stack (a daemonizing one included) and frees its
// reserved ports; many `roadie run`s of one stack at once never share a port.
// Black box: the built `roadie` is spawned, signalled and watched from here.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "roadie/executor.hpp"
#include "roadie/ports.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using roadie::testing::child;
using roadie::testing::exists;
using Clock = std::chrono::steady_clock;

const fs::path kStacks = fs::path(__FILE__).parent_path() / "stacks" / "owner";

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

using roadie::testing::marked_by;

// The pids in "HH:MM:SS.mmm NAME ready in X s (pid N)" progress lines.
std::map<std::string, pid_t> ready_pids(const roadie::Output& output) {
  std::map<std::string, pid_t> pids;
  static const std::regex ready(R"(^\d\d:\d\d:\d\d\.\d{3} (\S+) ready in \S+ s \(pid (\d+)\)$)");
  for (const auto& line : output.lines(roadie::Stream::err)) {
    std::smatch match;
    if (std::regex_match(line.text, match, ready)) pids[match[1]] = std::stoi(match[2]);
  }
  return pids;
}

// `roadie run -f STACK -- /bin/sh -c SCRIPT`, spawned through an Executor.
roadie::Executor roadie_run(const std::string& stack, const std::string& script,
                            const fs::path& dir, const std::string& port_range = {}) {
  roadie::Command command{ROADIE_CLI, "run", "-f", stack, "--state", (dir / "state").string(),
                          "--", "/bin/sh", "-c", script};
  command.set_env("CHILD_DAEMON", child("child_daemon"))
      .set_env("CHILD_LISTEN", child("child_listen"))
      .set_env("OWNER_DIR", dir.string())
      .unset_env("NO_COLOR");
  if (!port_range.empty()) command.set_env("ROADIE_PORTS_RANGE", port_range);
  roadie::ExecutorOptions options;
  options.name = "roadie";
  options.stop_timeout = 20s;
  return roadie::Executor(std::move(command), options);
}

// Waits (bounded) until `done` holds; returns how long it took, or nothing.
template <class F>
std::optional<Clock::duration> eventually(F done, std::chrono::seconds bound) {
  const auto start = Clock::now();
  while (Clock::now() - start < bound) {
    if (done()) return Clock::now() - start;
    std::this_thread::sleep_for(5ms);
  }
  return std::nullopt;
}

class OwnerDeath : public roadie::testing::NoLeaks, public ::testing::WithParamInterface<int> {};

TEST_P(OwnerDeath, LeavesNoServiceAndNoHeldPort) {
  const int signal = GetParam();
  roadie::testing::TempDir dir;
  // CMD records the stack's port and its own pid, then waits to be ended.
  roadie::Executor run = roadie_run(
      (kStacks / "owner.yaml").string(),
      // cmd.pid appears by rename, whole: `echo > file` creates the file before
      // it writes, and a reader polling for the file read it empty (seen in CI).
      "echo $ROADIE_PORT_WEB > \"$OWNER_DIR/port\"; echo $$ > \"$OWNER_DIR/cmd.tmp\"; "
      "mv \"$OWNER_DIR/cmd.tmp\" \"$OWNER_DIR/cmd.pid\"; exec sleep 600",
      dir.path());
  run.start();
  ASSERT_TRUE(roadie::testing::wait_for_file(dir.path() / "cmd.pid", 60s)) << run.output().excerpt();
  ASSERT_TRUE(eventually([&] { return !read_file(dir.path() / "port").empty(); }, 10s));
  const pid_t owner = run.pid();
  const pid_t cmd = std::stoi(read_file(dir.path() / "cmd.pid"));
  const pid_t daemon = roadie::testing::read_pid(dir.path() / "daemon.pid");
  const roadie::Port port(std::stoi(read_file(dir.path() / "port")));
  // roadie printed both ready lines before it started CMD, but this process
  // reads roadie's stderr on its own loop: CMD's pid file can be seen first
  // (seen in CI), so wait (bounded) until the lines have been read.
  std::map<std::string, pid_t> pids;
  ASSERT_TRUE(eventually([&] { return (pids = ready_pids(run.output())).size() == 2; }, 10s))
      << run.output().excerpt();
  ASSERT_GT(daemon, 0);
  std::vector<pid_t> services = {pids["daemon"], pids["web"], daemon};
  for (pid_t pid : services) ASSERT_TRUE(exists(pid)) << pid;
  ASSERT_FALSE(marked_by(owner).empty());

  ASSERT_EQ(::kill(owner, signal), 0);
  const auto gone = eventually(
      [&] {
        for (pid_t pid : services) {
          if (exists(pid)) return false;
        }
        return marked_by(owner).empty();
      },
      20s);
  EXPECT_TRUE(gone) << "services of a roadie run killed by " << roadie::signal_name(signal)
                    << " outlived it";
  if (gone) {
    std::printf("[ measured ] %s: every service gone %.0f ms after the signal\n",
                roadie::signal_name(signal).c_str(),
                std::chrono::duration<double, std::milli>(*gone).count());
  }
  // Its reservation died with it: the port can be reserved again.
  EXPECT_TRUE(eventually(
      [&] {
        try {
          roadie::PortReservation::reserve_exact(port, "again");
          return true;
        } catch (const roadie::Error&) {
          return false;
        }
      },
      20s))
      << "port " << port.value() << " still held after roadie died by " << roadie::signal_name(signal);
  // CMD goes with its owner too.
  EXPECT_TRUE(eventually([&] { return !exists(cmd); }, 20s))
      << "the command outlived a roadie run killed by " << roadie::signal_name(signal);
  try {
    run.stop();
  } catch (const roadie::ProcessFinishedWithError&) {  // killed: what the test did
  }
}

INSTANTIATE_TEST_SUITE_P(EveryWay, OwnerDeath,
                         ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGKILL, SIGSEGV, SIGABRT),
                         [](const auto& test) { return roadie::signal_name(test.param).substr(3); });

class ManyRuns : public roadie::testing::NoLeaks {};

TEST_F(ManyRuns, EightRunsOfOneStackAtOnceNeverShareAPort) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  const int rounds = 5;  // a sanitized roadie starts several times slower
#else
  const int rounds = 20;
#endif
  for (int round = 0; round < rounds; ++round) {
    roadie::testing::TempDir dir;
    std::vector<roadie::Executor> runs;
    for (int i = 0; i < 8; ++i) {
      fs::path mine = dir.path() / std::to_string(i);
      fs::create_directories(mine);
      // Each CMD holds its stack up until all eight hold theirs (bounded:
      // 30 s), so that they certainly overlap: a fixed pause did not under
      // ASan, where a slow start let one run end before another reserved,
      // and the port it gave back was rightly handed out again. Twelve
      // candidate ports for eight stacks: without the machine-wide lock,
      // reservations made at the same moment would meet.
      runs.push_back(roadie_run(
          (kStacks / "shared.yaml").string(),
          "echo $ROADIE_PORT_WEB > \"$OWNER_DIR/port.tmp\"; mv \"$OWNER_DIR/port.tmp\" "
          "\"$OWNER_DIR/port\"; n=0; while [ $(ls \"$OWNER_DIR\"/../*/port | wc -l) -lt 8 ] "
          "&& [ $n -lt 3000 ]; do sleep 0.01; n=$((n+1)); done",
          mine, "24600-24611"));
    }
    for (auto& run : runs) run.start();
    std::set<std::string> ports;
    for (int i = 0; i < 8; ++i) {
      auto status = runs[i].wait_for_exit(120s);
      ASSERT_TRUE(status) << "round " << round << " run " << i << " did not end";
      EXPECT_TRUE(status->success()) << "round " << round << ": " << runs[i].output().excerpt();
      std::string port = read_file(dir.path() / std::to_string(i) / "port");
      EXPECT_FALSE(port.empty());
      EXPECT_TRUE(ports.insert(port).second) << "round " << round << ": port " << port << " twice";
    }
    for (auto& run : runs) run.stop();
  }
}

}  // namespace
