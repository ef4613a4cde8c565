// The process layer against real child programs (tests/resources). Every test
// derives from NoLeaks: it fails if a process, zombie or descriptor remains.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <thread>

#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "process/linux.hpp"
#include "roadie/process.hpp"
#include "roadie/runtime.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Command;
using roadie::ExitStatus;
using roadie::Process;
using roadie::ProcessOptions;
using roadie::Stream;
using roadie::testing::child;
using ::testing::HasSubstr;

extern char** environ;

namespace {

class ProcessTest : public roadie::testing::NoLeaks {};

pid_t read_pid(const std::filesystem::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

}  // namespace

TEST_F(ProcessTest, MissingProgramIsASpawnErrorNamingIt) {
  try {
    Process::spawn(Command{"roadie-no-such-program", "--flag"});
    FAIL() << "no exception";
  } catch (const roadie::SpawnError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot start `roadie-no-such-program --flag`"));
    EXPECT_THAT(e.what(), HasSubstr("program 'roadie-no-such-program' not found in PATH"));
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(e.command(), "roadie-no-such-program --flag");
  }
}

TEST_F(ProcessTest, MissingPathIsASpawnErrorFromExec) {
  try {
    Process::spawn(Command{"/nonexistent/bin/tool"});
    FAIL() << "no exception";
  } catch (const roadie::SpawnError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("cannot execute '/nonexistent/bin/tool': No such file or directory"));
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  }
}

TEST_F(ProcessTest, NonExecutableFileIsASpawnErrorWithPermissionDenied) {
  roadie::testing::TempDir dir;
  auto script = dir.path() / "not-executable.sh";
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  ::chmod(script.c_str(), 0644);
  try {
    Process::spawn(Command{script.string()});
    FAIL() << "no exception";
  } catch (const roadie::SpawnError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Permission denied"));
    EXPECT_EQ(e.code(), std::errc::permission_denied);
  }
}

TEST_F(ProcessTest, BadWorkingDirectoryIsASpawnError) {
  Command command{child("child_env")};
  command.set_cwd("/nonexistent/dir");
  try {
    Process::spawn(command);
    FAIL() << "no exception";
  } catch (const roadie::SpawnError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("working directory '/nonexistent/dir': No such file or directory"));
    EXPECT_EQ(e.code(), std::error_code(ENOENT, std::system_category()));
  }
}

TEST_F(ProcessTest, ExitCodeIsReported) {
  auto p = Process::spawn(Command{child("child_exit"), "3"});
  EXPECT_EQ(p.wait(), ExitStatus::exited(3));
  EXPECT_FALSE(p.running());
  EXPECT_EQ(p.output().text(Stream::out), "exiting");
  EXPECT_EQ(p.stop().code(), 3);  // stop() after exit reaps and returns the status
}

TEST_F(ProcessTest, DeathBySignalReadsAsMinusN) {
  auto p = Process::spawn(Command{child("child_exit"), "--signal", "9"});
  auto status = p.wait();
  EXPECT_EQ(status.code(), -9);
  EXPECT_EQ(status.describe(), "killed by signal 9 (SIGKILL)");
}

TEST_F(ProcessTest, ShellCommandWhenAsked) {
  auto p = Process::spawn(Command::shell("echo from-shell; exit 4"));
  EXPECT_EQ(p.wait().code(), 4);
  EXPECT_EQ(p.output().text(Stream::out), "from-shell");
}

TEST_F(ProcessTest, StopSendsTheStopSignalToTheGroup) {
  // The shell's child `sleep` is in the same group and must go too.
  auto p = Process::spawn(Command::shell("sleep 1000 & echo started; wait"));
  ASSERT_TRUE(p.output().wait_for("started", roadie::scaled(10s)));
  auto members = p.descendants();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(p.stop().describe(), "killed by signal 15 (SIGTERM)");
  EXPECT_FALSE(roadie::testing::exists(members[0]));
}

TEST_F(ProcessTest, StopUsesTheConfiguredSignal) {
  auto p = Process::spawn(Command{child("child_banner")});
  ASSERT_TRUE(p.output().wait_for("ready", roadie::scaled(10s)));
  EXPECT_EQ(p.stop({.signal = SIGINT}).signal(), SIGINT);
}

TEST_F(ProcessTest, StopEscalatesToKillAfterTheGrace) {
  auto p = Process::spawn(Command{child("child_ignore_term")});
  ASSERT_TRUE(p.output().wait_for("ignoring", roadie::scaled(10s)));
  auto start = std::chrono::steady_clock::now();
  auto status = p.stop({.signal = SIGTERM, .grace = 300ms});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.signal(), SIGKILL);
  EXPECT_GE(took, 300ms);                       // the grace was respected
  EXPECT_LT(took, 300ms + roadie::scaled(2s));  // and then killed, not left waiting
  EXPECT_FALSE(roadie::testing::exists(p.pid()));
}

TEST_F(ProcessTest, KillIsImmediate) {
  auto p = Process::spawn(Command{child("child_ignore_term")});
  EXPECT_EQ(p.kill().signal(), SIGKILL);
}

TEST_F(ProcessTest, StopIsIdempotent) {
  auto p = Process::spawn(Command{child("child_idle")});
  auto first = p.stop();
  EXPECT_EQ(p.stop(), first);
  EXPECT_EQ(p.exit_status(), first);
}

TEST_F(ProcessTest, DaemonThatLeftTheGroupIsStopped) {
  roadie::testing::TempDir dir;
  auto pidfile = dir.path() / "daemon.pid";
  auto p = Process::spawn(Command{child("child_daemon"), pidfile.string()});
  ASSERT_TRUE(roadie::testing::wait_for_file(pidfile, roadie::scaled(10s)));
  pid_t daemon = read_pid(pidfile);
  ASSERT_GT(daemon, 0);
  EXPECT_EQ(p.wait().code(), 0);  // the first process is done, the daemon lives on
  EXPECT_TRUE(roadie::testing::exists(daemon));
  EXPECT_THAT(p.descendants(), ::testing::Contains(daemon));
  p.stop();
  EXPECT_FALSE(roadie::testing::exists(daemon));
}

TEST_F(ProcessTest, DaemonWhoseParentStaysIsStoppedToo) {
  roadie::testing::TempDir dir;
  auto pidfile = dir.path() / "daemon.pid";
  auto p =
      Process::spawn(Command{child("child_daemon"), pidfile.string(), "--stay", "--keep-stdio"});
  ASSERT_TRUE(roadie::testing::wait_for_file(pidfile, roadie::scaled(10s)));
  pid_t daemon = read_pid(pidfile);
  ASSERT_TRUE(p.output().wait_for("daemon \\d+ running", roadie::scaled(10s)));
  EXPECT_TRUE(p.running());
  p.stop();
  EXPECT_FALSE(roadie::testing::exists(daemon));
  EXPECT_TRUE(p.output().closed(Stream::out));
}

TEST_F(ProcessTest, MarkerMatchesExactlyAndSparesOtherRuns) {
  auto p = Process::spawn(Command{child("child_idle")});
  // A bystander whose marker merely starts with ours (another run's service).
  std::string lookalike = std::string(roadie::Runtime::marker_variable) + "=" + p.marker() + "0";
  std::string path = child("child_idle");
  char* argv[] = {path.data(), nullptr};
  char* envp[] = {lookalike.data(), nullptr};
  pid_t bystander = 0;
  ASSERT_EQ(::posix_spawn(&bystander, path.c_str(), nullptr, nullptr, argv, envp), 0);
  EXPECT_THAT(p.descendants(), ::testing::Not(::testing::Contains(bystander)));
  p.stop();
  EXPECT_TRUE(roadie::testing::exists(bystander));
  ::kill(bystander, SIGKILL);
  ::waitpid(bystander, nullptr, 0);
}

TEST_F(ProcessTest, FloodIsDrainedWithoutBlocking) {
  ProcessOptions options;
  options.output.max_lines = 1000;
  auto p = Process::spawn(Command{child("child_flood"), "256"}, options);
  auto status = p.wait_for(roadie::scaled(120s));
  ASSERT_TRUE(status) << "the flooding child blocked";
  EXPECT_EQ(status->code(), 0);
  EXPECT_EQ(p.output().bytes(Stream::out), 256ull * 1024 * 1024 + 11);
  auto lines = p.output().lines();
  EXPECT_LE(lines.size(), 1000u);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().text, "flood done");  // all of it, before wait() returned
  EXPECT_GT(p.output().dropped_lines(Stream::out), 2'000'000u);
}

TEST_F(ProcessTest, FloodOnBothStreamsWhileNobodyWaits) {
  auto p = Process::spawn(Command::shell(child("child_flood") + " 32 & " + child("child_flood") +
                                         " 32 --stderr; wait"));
  ASSERT_TRUE(p.wait_for(roadie::scaled(120s)));
  p.stop();
  EXPECT_EQ(p.output().bytes(Stream::out), 32ull * 1024 * 1024 + 11);
  EXPECT_EQ(p.output().bytes(Stream::err), 32ull * 1024 * 1024 + 11);
}

TEST_F(ProcessTest, PartialLineIsJoinedWhenItsNewlineArrives) {
  auto p = Process::spawn(Command{child("child_partial"), "200"});
  p.wait();
  p.stop();
  auto lines = p.output().lines(Stream::out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "hello world");
  EXPECT_EQ(lines[1].text, "no newline at the end");
}

TEST_F(ProcessTest, EnvironmentIsMergedOverTheParents) {
  Command command{child("child_env"), "ROADIE_TEST_VAR", "PATH", "HOME"};
  command.set_env("ROADIE_TEST_VAR", "merged").unset_env("HOME");
  auto p = Process::spawn(command);
  p.wait();
  auto text = p.output().text(Stream::out);
  EXPECT_THAT(text, HasSubstr("ROADIE_TEST_VAR=merged"));
  EXPECT_THAT(text, HasSubstr(std::string("PATH=") + std::getenv("PATH")));
  EXPECT_THAT(text, HasSubstr("HOME unset"));
}

TEST_F(ProcessTest, EnvironmentCanBeReplaced) {
  Command command{child("child_env"), "ONLY", "PATH"};
  command.clear_env().set_env("ONLY", "this");
  auto p = Process::spawn(command);
  p.wait();
  EXPECT_THAT(p.output().text(Stream::out), HasSubstr("ONLY=this\nPATH unset"));
}

TEST_F(ProcessTest, WorkingDirectoryIsSet) {
  roadie::testing::TempDir dir;
  Command command{child("child_env")};
  command.set_cwd(dir.path());
  auto p = Process::spawn(command);
  p.wait();
  EXPECT_EQ(p.output().text(Stream::out), "cwd=" + dir.path().string());
}

TEST_F(ProcessTest, ChildGetsNoDescriptorsButStdio) {
  auto p = Process::spawn(Command::shell("ls /proc/self/fd | wc -l"));
  p.wait();
  // 0, 1, 2 and the one ls opens to read the directory.
  EXPECT_EQ(p.output().text(Stream::out), "4");
}

TEST_F(ProcessTest, DestructorStopsTheProcess) {
  pid_t pid = 0;
  {
    auto p = Process::spawn(Command{child("child_banner")});
    pid = p.pid();
    ASSERT_TRUE(roadie::testing::exists(pid));
  }
  EXPECT_FALSE(roadie::testing::exists(pid));
}

TEST_F(ProcessTest, MovedHandleOwnsTheProcess) {
  auto a = Process::spawn(Command{child("child_idle")});
  pid_t pid = a.pid();
  Process b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.pid(), pid);
  b = Process::spawn(Command{child("child_idle")});  // the first one is stopped
  EXPECT_FALSE(roadie::testing::exists(pid));
}

TEST_F(ProcessTest, WaitForLineWithADeadline) {
  auto p =
      Process::spawn(Command{child("child_banner"), "--delay-ms", "100", "--text", "ready on 9"});
  auto line = p.output().wait_for("ready on (\\d+)", roadie::scaled(10s));
  ASSERT_TRUE(line);
  EXPECT_EQ(line->text, "ready on 9");
  EXPECT_FALSE(p.output().wait_for("never printed", 50ms));
}

TEST_F(ProcessTest, BannerOnStderr) {
  auto p = Process::spawn(Command{child("child_banner"), "--stderr", "--text", "on stderr"});
  auto line = p.output().wait_for("on stderr", roadie::scaled(10s), Stream::err);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->stream, Stream::err);
}

TEST_F(ProcessTest, ExitCallbackFiresOnce) {
  auto p = Process::spawn(Command{child("child_exit"), "7"});
  std::promise<int> code;
  auto subscription = p.on_exit([&](const ExitStatus& s) { code.set_value(s.code()); });
  auto future = code.get_future();
  ASSERT_EQ(future.wait_for(roadie::scaled(10s)), std::future_status::ready);
  EXPECT_EQ(future.get(), 7);
  int late = 0;
  p.on_exit([&](const ExitStatus& s) { late = s.code(); });  // already exited: called at once
  EXPECT_EQ(late, 7);
}

TEST_F(ProcessTest, LogFileReceivesTheOutput) {
  roadie::testing::TempDir dir;
  ProcessOptions options;
  options.output.log_file = dir.path() / "child.log";
  auto p = Process::spawn(Command::shell("echo out; echo err >&2"), options);
  p.wait();
  p.stop();
  std::ifstream log(options.output.log_file);
  std::string content((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(content, HasSubstr("out\n"));
  EXPECT_THAT(content, HasSubstr("err\n"));
}

TEST_F(ProcessTest, IgnoredSignalsInTheParentAreResetForTheChild) {
  auto previous = std::signal(SIGTERM, SIG_IGN);
  auto p = Process::spawn(Command{child("child_idle")});
  std::signal(SIGTERM, previous);
  EXPECT_EQ(p.stop({.signal = SIGTERM, .grace = 10s}).signal(), SIGTERM);
}

TEST_F(ProcessTest, ManyProcessesAtOnce) {
  std::vector<Process> processes;
  for (int i = 0; i < 32; ++i) processes.push_back(Process::spawn(Command{child("child_idle")}));
  std::vector<std::thread> stoppers;
  for (auto& p : processes) stoppers.emplace_back([&p] { p.stop(); });
  for (auto& t : stoppers) t.join();
  for (auto& p : processes) EXPECT_EQ(p.exit_status()->signal(), SIGTERM);
}

TEST_F(ProcessTest, EveryLineArrivesInOrderBeforeWaitReturns) {
  // A fast writer that exits at once: the exit event races the last reads.
  ProcessOptions options;
  options.output.max_lines = 300'000;
  for (int round = 0; round < 10; ++round) {
    auto p = Process::spawn(Command{"seq", "1", "200000"}, options);
    p.wait();
    auto lines = p.output().lines(Stream::out);
    ASSERT_EQ(lines.size(), 200'000u) << "round " << round;
    for (std::size_t i = 0; i < lines.size(); i += 997) {
      ASSERT_EQ(lines[i].text, std::to_string(i + 1)) << "round " << round;
    }
    EXPECT_EQ(lines.back().text, "200000");
  }
}

TEST_F(ProcessTest, LastProcessDroppedFromItsOwnExitCallback) {
  // The runtime dies on its own event-loop thread: nothing may be used after free.
  auto fds_before = roadie::testing::open_fds().size();
  struct Holder {
    std::optional<Process> process;
    roadie::Subscription subscription;
  };
  auto holder = std::make_shared<Holder>();
  std::atomic<bool> dropped{false};
  {
    auto runtime = std::make_unique<roadie::Runtime>();
    holder->process.emplace(Process::spawn(Command{child("child_exit"), "0"}, {}, *runtime));
  }  // the runtime object is gone; the process keeps its event loop alive
  holder->subscription = holder->process->on_exit([holder, &dropped](const ExitStatus&) {
    holder->process.reset();
    dropped = true;
  });
  for (int i = 0; i < 5000 && !dropped; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(dropped.load());
  holder->subscription.reset();
  // The loop thread finishes and closes its descriptors by itself.
  for (int i = 0; i < 5000 && roadie::testing::open_fds().size() > fds_before; ++i) {
    std::this_thread::sleep_for(1ms);
  }
}

// --- the watchdog --------------------------------------------------------------------------------

// Disabled: run only by the watchdog tests below, in a child process that is
// then killed with SIGKILL. Starts a daemon (its environment hidden or not,
// per ROADIE_TEST_HIDE_ENV) and waits to be killed.
TEST(Watchdog, DISABLED_StartsADaemonAndWaits) {
  const char* pidfile = std::getenv("ROADIE_TEST_PIDFILE");
  ASSERT_NE(pidfile, nullptr);
  std::vector<std::string> argv{child("child_daemon"), pidfile};
  if (std::getenv("ROADIE_TEST_HIDE_ENV") != nullptr) argv.emplace_back("--hide-env");
  auto p = Process::spawn(Command(argv));
  p.wait();  // the first process exits once its daemon is forked
  ASSERT_TRUE(roadie::testing::wait_for_file(pidfile, roadie::scaled(10s)));
  std::printf("daemon started\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(1h);
}

class WatchdogTest : public ProcessTest, public ::testing::WithParamInterface<bool> {};

TEST_P(WatchdogTest, EndsADaemonWhenTheTestBinaryIsKilled) {
  const bool hide_env = GetParam();  // then only the adoption can name it
  roadie::testing::TempDir dir;
  auto pidfile = dir.path() / "daemon.pid";
  char self[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self, sizeof self - 1), 0);
  Command command{self, "--gtest_filter=Watchdog.DISABLED_StartsADaemonAndWaits",
                  "--gtest_also_run_disabled_tests"};
  command.set_env("ROADIE_TEST_PIDFILE", pidfile.string());
  if (hide_env) command.set_env("ROADIE_TEST_HIDE_ENV", "1");
  auto p = Process::spawn(command);
  ASSERT_TRUE(p.output().wait_for("^daemon started$", roadie::scaled(20s)))
      << p.output().excerpt(40);
  const pid_t daemon = read_pid(pidfile);
  ASSERT_GT(daemon, 0);
  ASSERT_TRUE(roadie::testing::exists(daemon));

  ::kill(p.pid(), SIGKILL);  // no destructor, no stop(): only the watchdog is left to act
  const auto deadline = std::chrono::steady_clock::now() + roadie::scaled(10s);
  while (roadie::testing::exists(daemon) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_FALSE(roadie::testing::exists(daemon)) << "the daemon outlived the killed test binary";
  EXPECT_TRUE(
      p.output().wait_for(std::string("^roadie watchdog: process " + std::to_string(p.pid()) +
                                     " ended without stopping its services; killed"),
                          roadie::scaled(5s)))
      << p.output().excerpt(40);
  p.kill();  // reaps the helper and its exited watchdog
}

INSTANTIATE_TEST_SUITE_P(Environment, WatchdogTest, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "Hidden" : "Visible"; });

TEST_F(ProcessTest, ARuntimeLeavesAnotherRuntimesProcessesAndWatchdogAlone) {
  roadie::Runtime other;
  ASSERT_GT(other.watchdog_pid(), 0);
  auto service = Process::spawn(Command{child("child_idle")});  // the global runtime's
  // Exits at once: the other runtime then looks for orphans among our
  // children, where the global runtime's watchdog and service also are.
  auto brief = Process::spawn(Command{child("child_exit"), "0"}, {}, other);
  brief.wait();
  brief.stop();
  EXPECT_TRUE(service.running());
  EXPECT_NE(roadie::detail::process_state(other.watchdog_pid()), 'Z');
  EXPECT_NE(roadie::detail::process_state(roadie::Runtime::global().watchdog_pid()), 0);
  EXPECT_NE(roadie::detail::process_state(roadie::Runtime::global().watchdog_pid()), 'Z');
  EXPECT_EQ(service.stop().signal(), SIGTERM);
}
