// The process layer against real child programs (tests/resources). Every test
// derives from NoLeaks: it fails if a process, zombie or descriptor remains.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "process/linux.hpp"
#include "roadie/clock.hpp"
#include "roadie/error.hpp"
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
using roadie::testing::read_pid;
using ::testing::HasSubstr;

extern char** environ;

namespace {

class ProcessTest : public roadie::testing::NoLeaks {};

// SIGCHLD's disposition for the length of a scope, restored on every path.
class SigchldDisposition {
 public:
  explicit SigchldDisposition(void (*handler)(int)) {
    struct sigaction action {};
    action.sa_handler = handler;
    ::sigemptyset(&action.sa_mask);
    ::sigaction(SIGCHLD, &action, &previous_);
  }
  ~SigchldDisposition() { ::sigaction(SIGCHLD, &previous_, nullptr); }
  SigchldDisposition(const SigchldDisposition&) = delete;
  SigchldDisposition& operator=(const SigchldDisposition&) = delete;

 private:
  struct sigaction previous_ {};
};

// What is wrong with the output of a child_token run, or "" when it holds
// exactly its own COUNT lines and its stderr line, in order.
std::string check_token_output(const roadie::Output& output, const std::string& token,
                               std::size_t count) {
  auto lines = output.lines(Stream::out);
  if (lines.size() != count) {
    return token + ": " + std::to_string(lines.size()) + " lines on stdout, expected " +
           std::to_string(count) +
           (lines.empty() ? std::string() : "; the last is '" + lines.back().text + "'");
  }
  for (std::size_t i = 0; i < count; ++i) {
    const std::string expected = token + " " + std::to_string(i);
    if (lines[i].text != expected) {
      return token + ": stdout line " + std::to_string(i) + " is '" + lines[i].text +
             "', expected '" + expected + "'";
    }
  }
  auto errors = output.lines(Stream::err);
  if (errors.size() != 1 || errors[0].text != token + " err") {
    return token + ": stderr is '" + output.text(Stream::err) + "', expected '" + token + " err'";
  }
  return {};
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

TEST_F(ProcessTest, StopSignalsEveryMemberOfTheGroupNotOnlyTheLeader) {
  // The leader ignores SIGTERM; a member of its group prints the signal it
  // gets. Signalled through the group, the member gets SIGTERM at once; were
  // only the leader signalled, the member would be found after the grace and
  // get SIGKILL, which it cannot report.
  auto p = Process::spawn(Command{child("child_group")});
  auto ready = p.output().wait_for("^member (\\d+) ready$", roadie::scaled(10s));
  ASSERT_TRUE(ready) << p.output().excerpt(20);
  const pid_t member = std::stoi(ready->text.substr(std::string("member ").size()));
  ASSERT_TRUE(roadie::testing::exists(member));
  auto status = p.stop({.signal = SIGTERM, .grace = 500ms});
  EXPECT_EQ(status.signal(), SIGKILL);  // the leader ignored SIGTERM
  EXPECT_THAT(p.output().text(Stream::out),
              HasSubstr("member got signal " + std::to_string(SIGTERM) + "\nmember ended"))
      << "the group member did not get the stop signal during the grace";
  EXPECT_FALSE(roadie::testing::exists(member));
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
  // Counted, not failed from inside: an exception thrown by a callback is
  // only logged.
  std::atomic<int> calls{0};
  std::promise<int> code;
  auto future = code.get_future();
  auto subscription = p.on_exit([&](const ExitStatus& s) {
    if (calls.fetch_add(1) == 0) code.set_value(s.code());
  });
  ASSERT_EQ(future.wait_for(roadie::scaled(10s)), std::future_status::ready);
  EXPECT_EQ(future.get(), 7);
  std::atomic<int> late_calls{0};
  int late = 0;
  auto late_subscription = p.on_exit([&](const ExitStatus& s) {  // already exited: called at once
    ++late_calls;
    late = s.code();
  });
  EXPECT_EQ(late, 7);
  // Every other path that learns of the exit (wait, stop's reap and publish)
  // must not call them again.
  EXPECT_EQ(p.wait().code(), 7);
  EXPECT_EQ(p.stop().code(), 7);
  EXPECT_EQ(p.stop().code(), 7);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(late_calls.load(), 1);
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

TEST_F(ProcessTest, EachChildsOutputIsCompleteAndItsOwnUnderConcurrentSpawns) {
  // Threads spawn children that write a known amount (a distinct token per
  // child) and exit at once, so exits, reads and new pidfds and pipes
  // interleave on the loop thread. When wait() returns, each child's output
  // must hold all it wrote and nothing another child wrote.
  constexpr int kThreads = 8;
  constexpr int kRounds = 50;
  std::mutex mutex;
  std::vector<std::string> problems;
  std::atomic<int> problem_count{0};
  auto report = [&](std::string problem) {
    std::lock_guard lock(mutex);
    problems.push_back(std::move(problem));
    ++problem_count;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Ten problems are enough to tell (and keep a hanging library's failure short).
      for (int round = 0; round < kRounds && problem_count < 10; ++round) {
        const std::string token = "t" + std::to_string(t) + "r" + std::to_string(round);
        // Mostly small writes (the exit races the only read), and every
        // third one more than a pipe's 64 KiB.
        const std::size_t count = round % 3 == 0 ? 8000 : 1 + static_cast<std::size_t>(round);
        auto p = Process::spawn(Command{child("child_token"), token, std::to_string(count)});
        auto status = p.wait_for(roadie::scaled(30s));
        if (!status) {
          report(token + ": wait() did not return within 30 s");
        } else if (status->code() != 0) {
          report(token + ": " + status->describe() + " (pid " + std::to_string(p.pid()) +
                 "), expected exit code 0");
        } else if (auto problem = check_token_output(p.output(), token, count); !problem.empty()) {
          report(problem);
        }
        p.kill();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(problems, ::testing::IsEmpty()) << "(stops at 10 problems)";
}

namespace {

// One run of child_token whose exit is reaped by someone else (the kernel,
// another thread): spawned, published with all its output, and stopped
// without hanging. `reaped` waits (bounded) until the other party reaped the
// pid, so that stop() too meets a pid that is no longer ours. Returns what
// went wrong, or "".
std::string run_reaped_elsewhere(const std::string& token,
                                 const std::function<bool(pid_t)>& reaped) {
  std::optional<Process> p;
  try {
    p.emplace(Process::spawn(Command{child("child_token"), token, "100"}));
  } catch (const std::exception& e) {
    return token + ": spawn failed: " + e.what();
  }
  auto status = p->wait_for(roadie::scaled(10s));
  if (!status) return token + ": the exit was never published (wait() would hang)";
  std::string problem;
  if (p->running()) problem += token + ": running() after the exit was published; ";
  if (status->code() != 0 && status->code() != -1) {
    problem += token + ": " + status->describe() + "; ";
  }
  if (auto output = check_token_output(p->output(), token, 100); !output.empty()) {
    problem += output + "; ";
  }
  if (!reaped(p->pid())) problem += token + ": never reaped by the other party; ";
  const auto start = std::chrono::steady_clock::now();
  try {
    if (p->stop() != *status) problem += token + ": stop() changed the status; ";
  } catch (const std::exception& e) {
    problem += token + ": stop() threw: " + e.what() + "; ";
  }
  if (std::chrono::steady_clock::now() - start > roadie::scaled(5s)) {
    problem += token + ": stop() took more than 5 s; ";
  }
  return problem;
}

}  // namespace

TEST_F(ProcessTest, ExitIsPublishedWhenSigchldIsIgnored) {
  // The kernel reaps our children at once: no status can be had, but the exit
  // must still be published, with all the output, and stop() must not hang.
  SigchldDisposition ignored(SIG_IGN);
  {
    // Killed while running.
    auto p = Process::spawn(Command{child("child_idle")});
    ASSERT_EQ(::kill(p.pid(), SIGKILL), 0);
    auto status = p.wait_for(roadie::scaled(10s));
    ASSERT_TRUE(status) << "the exit was never published (wait() would hang)";
    EXPECT_FALSE(p.running());
    EXPECT_THAT(status->code(), ::testing::AnyOf(-SIGKILL, -1)) << status->describe();
    EXPECT_EQ(p.stop(), *status);
  }
  // Exiting by itself at once (the kernel may reap it before roadie looks).
  std::vector<std::string> problems;
  // Three problems are enough to tell (and keep a hanging library's failure short).
  for (int round = 0; round < 20 && problems.size() < 3; ++round) {
    auto problem = run_reaped_elsewhere("r" + std::to_string(round), [](pid_t pid) {
      return !roadie::testing::exists(pid);  // no zombie: the kernel reaped it
    });
    if (!problem.empty()) problems.push_back(problem);
  }
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

TEST_F(ProcessTest, ExitIsPublishedWhenAnotherThreadReapsEveryChild) {
  // A thread of the test binary blocks in waitpid(-1) and reaps whatever
  // exits, racing roadie for every child.
  struct Reaper {
    std::mutex mutex;
    std::condition_variable cv;
    std::set<pid_t> reaped;
    std::atomic<bool> done{false};
    std::thread thread{[this] {
      while (!done) {
        const pid_t pid = ::waitpid(-1, nullptr, 0);
        if (pid > 0) {
          std::lock_guard lock(mutex);
          reaped.insert(pid);
          cv.notify_all();
        } else if (errno == ECHILD) {
          std::this_thread::sleep_for(1ms);
        }
      }
    }};
    bool wait_reaped(pid_t pid) {
      std::unique_lock lock(mutex);
      return cv.wait_for(lock, roadie::scaled(10s), [&] { return reaped.count(pid) > 0; });
    }
    ~Reaper() {
      // Wakes the blocked waitpid with a child that exits at once (quietly).
      done = true;
      std::string path = child("child_exit");
      char* argv[] = {path.data(), nullptr};
      posix_spawn_file_actions_t actions;
      ::posix_spawn_file_actions_init(&actions);
      ::posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
      pid_t waker = 0;
      ::posix_spawn(&waker, path.c_str(), &actions, nullptr, argv, environ);
      ::posix_spawn_file_actions_destroy(&actions);
      thread.join();
    }
  } reaper;
  std::vector<std::string> problems;
  // Three problems are enough to tell (and keep a hanging library's failure short).
  for (int round = 0; round < 20 && problems.size() < 3; ++round) {
    auto problem = run_reaped_elsewhere("r" + std::to_string(round),
                                        [&](pid_t pid) { return reaper.wait_reaped(pid); });
    if (!problem.empty()) problems.push_back(problem);
  }
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

TEST_F(ProcessTest, LastProcessDroppedFromItsOwnExitCallback) {
  // The runtime dies on its own event-loop thread: nothing may be used after free.
  const auto fds_before = roadie::testing::open_fds();
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
  const auto deadline = std::chrono::steady_clock::now() + roadie::scaled(10s);
  while (!dropped && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(dropped.load());
  holder->subscription.reset();
  // The loop thread finishes and closes its descriptors by itself (its epoll,
  // eventfd, the watchdog's socket, the process's pidfd and pipes).
  auto new_fds = [&] {
    std::set<int> added;
    for (int fd : roadie::testing::open_fds()) {
      if (!fds_before.count(fd)) added.insert(fd);
    }
    return added;
  };
  while (!new_fds().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_THAT(new_fds(), ::testing::IsEmpty())
      << "the dropped runtime's descriptors were not closed";
}

// --- the watchdog --------------------------------------------------------------------------------

// Disabled: run only by the watchdog tests below, in a child process that is
// then killed with SIGKILL. Starts a daemon (its environment hidden or not,
// per ROADIE_TEST_HIDE_ENV) and waits to be killed. With
// ROADIE_TEST_PARENT_STAYS the daemon's first process stays alive (nothing
// supervised exits, so nothing is adopted), and this binary stops being a
// subreaper first: the daemon is re-parented past it, never its child, so
// nothing but the watchdog's marker scan can find it.
TEST(Watchdog, DISABLED_StartsADaemonAndWaits) {
  const char* pidfile = std::getenv("ROADIE_TEST_PIDFILE");
  ASSERT_NE(pidfile, nullptr);
  const bool parent_stays = std::getenv("ROADIE_TEST_PARENT_STAYS") != nullptr;
  std::vector<std::string> argv{child("child_daemon"), pidfile};
  if (std::getenv("ROADIE_TEST_HIDE_ENV") != nullptr) argv.emplace_back("--hide-env");
  if (parent_stays) {
    argv.emplace_back("--stay");
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
  }
  auto p = Process::spawn(Command(argv));
  if (!parent_stays) p.wait();  // the first process exits once its daemon is forked
  ASSERT_TRUE(roadie::testing::wait_for_file(pidfile, roadie::scaled(10s)));
  if (parent_stays) {
    ASSERT_TRUE(p.output().wait_for("^daemonized$", roadie::scaled(10s)));
    ASSERT_TRUE(p.running());
  }
  std::printf("daemon started\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(1h);
}

namespace {

// Runs the helper above in a child of this binary with `env`, kills it with
// SIGKILL once its daemon runs, and checks that its watchdog ended the daemon.
void expect_watchdog_ends_the_daemon(const std::map<std::string, std::string>& env) {
  roadie::testing::TempDir dir;
  auto pidfile = dir.path() / "daemon.pid";
  char self[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self, sizeof self - 1), 0);
  Command command{self, "--gtest_filter=Watchdog.DISABLED_StartsADaemonAndWaits",
                  "--gtest_also_run_disabled_tests"};
  command.set_env("ROADIE_TEST_PIDFILE", pidfile.string());
  for (const auto& [name, value] : env) command.set_env(name, value);
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

}  // namespace

class WatchdogTest : public ProcessTest, public ::testing::WithParamInterface<bool> {};

TEST_P(WatchdogTest, EndsADaemonWhenTheTestBinaryIsKilled) {
  const bool hide_env = GetParam();  // then only the adoption can name it
  std::map<std::string, std::string> env;
  if (hide_env) env["ROADIE_TEST_HIDE_ENV"] = "1";
  expect_watchdog_ends_the_daemon(env);
}

INSTANTIATE_TEST_SUITE_P(Environment, WatchdogTest, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "Hidden" : "Visible"; });

TEST_F(ProcessTest, WatchdogMarkerScanEndsAMarkedDaemonThatWasNeverAdopted) {
  // The daemon's parent (the service) stays alive, so no exit adopts the
  // daemon, and it is not the killed binary's child: only its marker names it.
  expect_watchdog_ends_the_daemon({{"ROADIE_TEST_PARENT_STAYS", "1"}});
}

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
