// Regressions of the core-hardening issue: each test names a defect seen on
// the process layer or the executors, and fails when it comes back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

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
using ::testing::HasSubstr;

extern char** environ;

namespace {

class HardeningTest : public roadie::testing::NoLeaks {};

// Spawns `sleep 30` as the leader of its own process group, hoping for pid
// `wanted` (as root, through /proc/sys/kernel/ns_last_pid). Returns its pid
// (which may differ) or -1.
pid_t spawn_stranger_at(pid_t wanted) {
  {
    std::ofstream last("/proc/sys/kernel/ns_last_pid");
    if (last) last << (wanted - 1);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  char sleep_path[] = "/bin/sleep";
  char thirty[] = "30";
  char* argv[] = {sleep_path, thirty, nullptr};
  pid_t pid = -1;
  if (::posix_spawn(&pid, sleep_path, nullptr, &attr, argv, environ) != 0) pid = -1;
  posix_spawnattr_destroy(&attr);
  return pid;
}

bool alive(pid_t pid) {
  return ::kill(pid, 0) == 0;
}

}  // namespace

// Item 3: once somebody else reaped the leader, its pid and group id may be a
// stranger's: signal() and stop() must not reach it.
TEST_F(HardeningTest, ALeaderReapedBySomeoneElseIsNeverSignalledAgain) {
  if (::access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) {
    GTEST_SKIP() << "needs root to steer pid reuse through ns_last_pid";
  }
  for (int attempt = 0; attempt < 20; ++attempt) {
    Process p = Process::spawn(Command{child("child_idle")});
    const pid_t pid = p.pid();
    // The test binary reaps roadie's child behind its back.
    ::kill(pid, SIGKILL);
    int raw = 0;
    ASSERT_EQ(::waitpid(pid, &raw, 0), pid);
    ASSERT_TRUE(p.wait_for(roadie::scaled(10s))) << "the exit was never published";
    const pid_t stranger = spawn_stranger_at(pid);
    if (stranger != pid) {  // somebody else took the pid first: try again
      if (stranger > 0) {
        ::kill(stranger, SIGKILL);
        ::waitpid(stranger, nullptr, 0);
      }
      p.stop();
      continue;
    }
    p.signal(SIGTERM);
    p.stop();
    const bool survived = alive(stranger);
    ::kill(stranger, SIGKILL);
    ::waitpid(stranger, nullptr, 0);
    EXPECT_TRUE(survived) << "a stranger that reused the pid " << pid << " was signalled";
    return;
  }
  GTEST_SKIP() << "the pid was never reused in 20 attempts";
}

// Item 11: a death nobody asked for is not a clean stop.
TEST_F(HardeningTest, AServiceKilledByAStrangerBeforeStopIsReported) {
  for (int sig : {SIGKILL, SIGTERM}) {
    roadie::OutputExecutor service(Command{child("child_banner")}, "ready", {.name = "victim"});
    service.start();
    ::kill(service.pid(), sig);
    ASSERT_TRUE(service.wait_for_exit(roadie::scaled(10s)));
    try {
      service.stop();
      ADD_FAILURE() << "stop() accepted a death by " << roadie::signal_name(sig)
                    << " that it never sent";
    } catch (const roadie::ProcessFinishedWithError& e) {
      EXPECT_THAT(e.what(), HasSubstr("before stop() was called"));
      EXPECT_THAT(e.what(), HasSubstr(roadie::signal_name(sig)));
      EXPECT_EQ(e.exit_code(), -sig);
    }
  }
}

TEST_F(HardeningTest, TheKillSignalOfStopsOwnEscalationIsAccepted) {
  roadie::OutputExecutor service(Command{child("child_ignore_term")}, "ignoring",
                                 {.stop_timeout = 50ms});
  service.start();
  EXPECT_NO_THROW(service.stop());
  EXPECT_EQ(service.exit_status()->signal(), SIGKILL);
}

// Item 13: once the check passed, the service is ready, whatever happens after.
TEST_F(HardeningTest, AOneShotCommandReadyThenExitingZeroIsReady) {
  int failures = 0;
  std::string last;
  for (int i = 0; i < 30; ++i) {
    roadie::OutputExecutor job(Command{"/bin/sh", "-c", "echo done"}, "done");
    try {
      job.start();
      job.stop();
    } catch (const roadie::Error& e) {
      ++failures;
      last = e.what();
    }
  }
  EXPECT_EQ(failures, 0) << last;
}

TEST_F(HardeningTest, AnExitAfterReadinessIsReportedOnceAsExited) {
  struct Listener : roadie::ExecutorListener {
    std::atomic<int> exited{0};
    void on_exited(const roadie::Executor&, const ExitStatus&) override { ++exited; }
  };
  auto listener = std::make_shared<Listener>();
  roadie::OutputExecutor job(Command{"/bin/sh", "-c", "echo done"}, "done");
  auto listening = job.add_listener(listener);
  job.start();
  ASSERT_TRUE(job.wait_for_exit(roadie::scaled(10s)));
  job.stop();
  EXPECT_EQ(listener->exited.load(), 1);
}

// Item 9: stop() from another thread during start() is never lost.
TEST_F(HardeningTest, StopFromAnotherThreadDuringStartIsNeverLost) {
  std::mt19937 random(42);
  for (int round = 0; round < 30; ++round) {
    roadie::OutputExecutor service(Command{child("child_banner"), "--delay-ms", "30"}, "ready",
                                   {.timeout = 60s});
    const auto delay = std::chrono::microseconds(random() % 40'000);
    std::thread stopper([&] {
      std::this_thread::sleep_for(delay);
      service.stop();
    });
    pid_t pid = -1;
    try {
      service.start();
    } catch (const roadie::Cancelled& e) {
      EXPECT_THAT(e.what(), HasSubstr("by stop() on another thread"));
    }
    pid = service.pid();
    stopper.join();
    // Whoever won, the service is not left running.
    if (service.running()) service.stop();  // a start after the stop: fine
    EXPECT_FALSE(service.running()) << "round " << round;
    if (pid > 0) {
      EXPECT_FALSE(alive(pid) && ::getpgid(pid) == pid) << "round " << round;
    }
  }
}

TEST_F(HardeningTest, KillFromAnotherThreadCancelsAStartThatWouldNeverBeReady) {
  // It ignores SIGTERM and has a long grace: kill() must not wait for it.
  roadie::OutputExecutor service(Command{child("child_ignore_term")}, "never",
                                 {.timeout = 600s, .stop_timeout = 600s});
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    service.kill();
  });
  const auto t0 = std::chrono::steady_clock::now();
  try {
    service.start();
    ADD_FAILURE() << "start() was not cancelled";
  } catch (const roadie::Cancelled& e) {
    EXPECT_THAT(e.what(), HasSubstr("by kill() on another thread"));
  }
  killer.join();
  EXPECT_EQ(service.exit_status()->signal(), SIGKILL);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, roadie::scaled(10s));
  EXPECT_FALSE(service.running());
}

// Item 8: a huge duration means no practical limit, never "at once".
TEST_F(HardeningTest, HugeDurationsMeanNoLimit) {
  roadie::OutputExecutor service(Command{child("child_banner"), "--delay-ms", "100"}, "ready",
                                 {.timeout = std::chrono::milliseconds::max(),
                                  .stop_timeout = std::chrono::milliseconds::max()});
  EXPECT_NO_THROW(service.start());
  EXPECT_NO_THROW(service.stop());

  Process p = Process::spawn(Command{"/bin/sh", "-c", "sleep 0.1"});
  auto status = p.wait_for(std::chrono::nanoseconds::max());
  ASSERT_TRUE(status) << "wait_for(max) returned before the exit";
  EXPECT_EQ(status->code(), 0);
  Process q = Process::spawn(Command{"/bin/sh", "-c", "sleep 0.1"});
  ASSERT_TRUE(q.wait_for(std::chrono::hours::max()));
  EXPECT_TRUE(roadie::deadline_after(std::chrono::hours::max()) ==
              std::chrono::steady_clock::time_point::max());
  EXPECT_EQ(roadie::scaled(std::chrono::milliseconds::max()), std::chrono::nanoseconds::max());
}

// Item 10: a moved-from executor is a clear error, not a crash.
TEST_F(HardeningTest, AMovedFromExecutorIsAClearError) {
  roadie::Executor a(Command{child("child_idle")});
  roadie::Executor b(std::move(a));
  EXPECT_FALSE(a.running());  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_EQ(a.pid(), -1);
  EXPECT_FALSE(a.exit_status());
  try {
    a.start();
    ADD_FAILURE() << "no exception";
  } catch (const roadie::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("moved from"));
  }
}

namespace {

pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  pid_t ppid = 0;
  std::sscanf(text.c_str() + close + 1, " %c %d", &state, &ppid);
  return ppid;
}

// Starts child_daemon with its first process staying (nothing supervised
// exits) and its daemon hiding its environment (no marker): the daemon is
// re-parented to us with nothing to name it but its arrival. Returns the
// daemon's pid once it is our child.
pid_t start_hidden_daemon(Process& service, const std::filesystem::path& pidfile) {
  service = Process::spawn(
      Command{child("child_daemon"), pidfile.string(), "--stay", "--hide-env"}, {.name = "a"});
  if (!roadie::testing::wait_for_file(pidfile, roadie::scaled(10s))) return -1;
  const pid_t daemon = roadie::testing::read_pid(pidfile);
  const auto deadline = std::chrono::steady_clock::now() + roadie::scaled(10s);
  while (parent_of(daemon) != ::getpid() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  return parent_of(daemon) == ::getpid() ? daemon : -1;
}

// Runs the disabled helper test `name` of this binary in a child process, waits
// for its line `ready`, SIGKILLs it, and expects the daemon whose pid it wrote
// to ROADIE_TEST_PIDFILE to be ended by the helper's watchdog.
void expect_daemon_dies_with_killed_helper(const std::string& name, const std::string& ready,
                                           const std::function<void(pid_t)>& check = {}) {
  roadie::testing::TempDir dir;
  auto pidfile = dir.path() / "daemon.pid";
  char self[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self, sizeof self - 1), 0);
  Command command{self, "--gtest_filter=" + name, "--gtest_also_run_disabled_tests"};
  command.set_env("ROADIE_TEST_PIDFILE", pidfile.string());
  Process helper = Process::spawn(command);
  ASSERT_TRUE(helper.output().wait_for(ready, roadie::scaled(30s))) << helper.output().excerpt(40);
  const pid_t daemon = roadie::testing::read_pid(pidfile);
  ASSERT_GT(daemon, 0);
  if (check) check(daemon);
  ::kill(helper.pid(), SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + roadie::scaled(10s);
  while (roadie::testing::exists(daemon) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  const bool outlived = roadie::testing::exists(daemon);
  if (outlived) ::kill(daemon, SIGKILL);  // ours to clean up: a failed test leaves nothing
  EXPECT_FALSE(outlived) << "the daemon outlived the killed test binary";
  helper.kill();
}

}  // namespace

// Item 4: an orphan goes to the service it came from, never to whichever
// service exits or stops next. B started before the daemon (so both could
// have started it): B's stop leaves it; A, the last of them, ends it.
TEST_F(HardeningTest, OneServicesStopNeverEndsAnotherServicesDaemon) {
  roadie::testing::TempDir dir;
  Process b = Process::spawn(Command{child("child_idle")}, {.name = "b"});
  Process a;
  const pid_t daemon = start_hidden_daemon(a, dir.path() / "daemon.pid");
  ASSERT_GT(daemon, 0);
  b.stop();
  EXPECT_TRUE(alive(daemon)) << "B's stop killed A's daemon";
  a.stop();
  EXPECT_FALSE(roadie::testing::exists(daemon)) << "A's stop left its daemon";
}

// The same when B started after the daemon: the daemon is A's alone.
TEST_F(HardeningTest, ADaemonBornBeforeAnotherServiceIsNeverThatServicesToStop) {
  roadie::testing::TempDir dir;
  Process a;
  const pid_t daemon = start_hidden_daemon(a, dir.path() / "daemon.pid");
  ASSERT_GT(daemon, 0);
  std::this_thread::sleep_for(30ms);  // start times count in 10 ms clock ticks
  Process b = Process::spawn(Command{"/bin/sh", "-c", "exit 0"}, {.name = "b"});
  b.wait();  // an exit: the old code gave every new orphan to it
  b.stop();
  EXPECT_TRUE(alive(daemon)) << "B's exit took A's daemon";
  a.stop();
  EXPECT_FALSE(roadie::testing::exists(daemon)) << "A's stop left its daemon";
}

// Item 12: only descendants of the services are ours. A setsid child the test
// binary forked itself before the service started is left alone.
TEST_F(HardeningTest, TheTestBinarysOwnSetsidChildIsNeverTakenByAService) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  char sleep_path[] = "/bin/sleep";
  char thirty[] = "30";
  char* argv[] = {sleep_path, thirty, nullptr};
  pid_t own = -1;
  ASSERT_EQ(::posix_spawn(&own, sleep_path, nullptr, &attr, argv, environ), 0);
  posix_spawnattr_destroy(&attr);
  std::this_thread::sleep_for(30ms);  // start times count in 10 ms clock ticks
  {
    Process service = Process::spawn(Command{"/bin/sh", "-c", "exit 0"});
    service.wait();  // its exit made the old code adopt every new child
    service.stop();
  }
  const bool survived = alive(own) && parent_of(own) == ::getpid();
  ::kill(own, SIGKILL);
  ::waitpid(own, nullptr, 0);
  EXPECT_TRUE(survived) << "a service's stop took the test binary's own child";
}

// Disabled: run only by the test below, in a child process that is then
// killed with SIGKILL. Starts a service whose hidden daemon is re-parented to
// this binary without any exit of ours, and waits to be killed.
TEST(HardeningHelper, DISABLED_GuardsAnArrivingDaemonAndWaits) {
  const char* pidfile = std::getenv("ROADIE_TEST_PIDFILE");
  ASSERT_NE(pidfile, nullptr);
  Process service;
  const pid_t daemon = start_hidden_daemon(service, pidfile);
  ASSERT_GT(daemon, 0);
  // Arrivals are looked for every 50 ms while a service runs.
  std::this_thread::sleep_for(roadie::scaled(300ms));
  std::printf("daemon %d guarded\n", daemon);
  std::fflush(stdout);
  std::this_thread::sleep_for(1h);
}

// Item 5: a daemon re-parented to the runtime is guarded as it arrives, so the
// watchdog ends it when the test binary is SIGKILLed (it carries no marker).
TEST_F(HardeningTest, ADaemonThatArrivedWithoutAnExitDiesWithAKilledTestBinary) {
  expect_daemon_dies_with_killed_helper("HardeningHelper.DISABLED_GuardsAnArrivingDaemonAndWaits",
                                        "^daemon [0-9]+ guarded$");
}

// Item 7: with no free descriptors, stop() still ends everything (from the
// runtime's reserve), or fails loudly; never a silent success.
TEST_F(HardeningTest, StopWithNoFreeDescriptorsEndsEverythingOrSaysSo) {
#ifdef __SANITIZE_ADDRESS__
  // UBSan's vptr check probes memory through a pipe(): with no descriptor
  // left it reports every virtual call as on an "invalid vptr" (seen here).
  GTEST_SKIP() << "the sanitizer itself needs free descriptors";
#endif
  roadie::testing::TempDir dir;
  auto pidfile = dir.path() / "daemon.pid";
  Process p = Process::spawn(Command{child("child_daemon"), pidfile.string(), "--stay"});
  ASSERT_TRUE(roadie::testing::wait_for_file(pidfile, roadie::scaled(10s)));
  const pid_t daemon = roadie::testing::read_pid(pidfile);
  ASSERT_GT(daemon, 0);

  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = std::min<rlim_t>(old.rlim_cur, 512);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int fd; (fd = ::dup(0)) >= 0;) fillers.push_back(fd);
  ASSERT_EQ(errno, EMFILE);

  bool stopped = false;
  std::string error;
  try {
    p.stop();
    stopped = true;
  } catch (const std::exception& e) {
    error = e.what();
  }
  for (int fd : fillers) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  expect_new_descriptors_on("/dev/null");  // the runtime's reserve, refilled

  if (stopped) {
    EXPECT_FALSE(roadie::testing::exists(daemon)) << "stop() succeeded and left the daemon";
  } else {
    EXPECT_THAT(error, HasSubstr("cannot be stopped completely"));
    if (roadie::testing::exists(daemon)) ::kill(daemon, SIGKILL);
  }
  EXPECT_TRUE(stopped) << "the reserve should have been enough: " << error;
}

// Disabled: run only by the test below, in a child process that is then
// killed with SIGKILL. Starts a daemon whose marker stands behind 300 KiB of
// other variables (`env -i` puts it last), with this binary no longer a
// subreaper: only the watchdog's marker scan can find it.
TEST(HardeningHelper, DISABLED_StartsAMarkedDaemonBehindAHugeEnvironment) {
  const char* pidfile = std::getenv("ROADIE_TEST_PIDFILE");
  ASSERT_NE(pidfile, nullptr);
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
  Command command{"/bin/sh", "-c",
                  "exec env -i B1=\"$B1\" B2=\"$B2\" B3=\"$B3\" "
                  "ROADIE_SUPERVISOR=\"$ROADIE_SUPERVISOR\" \"$0\" \"$1\" --stay",
                  child("child_daemon"), pidfile};
  for (const char* name : {"B1", "B2", "B3"}) command.set_env(name, std::string(100 * 1024, 'x'));
  Process service = Process::spawn(command);
  ASSERT_TRUE(roadie::testing::wait_for_file(pidfile, roadie::scaled(10s)));
  ASSERT_TRUE(service.output().wait_for("^daemonized$", roadie::scaled(10s)));
  std::printf("daemon started\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(1h);
}

// Item 6: the watchdog finds a marker wherever it stands in the environment.
TEST_F(HardeningTest, TheWatchdogFindsAMarkerBehindAHugeEnvironment) {
  expect_daemon_dies_with_killed_helper(
      "HardeningHelper.DISABLED_StartsAMarkedDaemonBehindAHugeEnvironment", "^daemon started$",
      [](pid_t daemon) {
        std::ifstream environ_file("/proc/" + std::to_string(daemon) + "/environ");
        std::string env((std::istreambuf_iterator<char>(environ_file)),
                        std::istreambuf_iterator<char>());
        EXPECT_GT(env.find("ROADIE_SUPERVISOR="), 256u * 1024) << "the marker is not behind 256 KiB";
      });
}

// A leader reaped by the kernel (SIGCHLD ignored) while stop() ends it: the
// exit is published by whoever learns it, and nobody waits for ever.
TEST_F(HardeningTest, ALeaderReapedElsewhereDuringStopIsStillPublished) {
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGCHLD, &ignore, &old), 0);
  std::string problem;
  for (int i = 0; i < 30 && problem.empty(); ++i) {
    Process p = Process::spawn(Command{child("child_idle")});
    try {
      p.stop();
    } catch (const roadie::Error& e) {
      problem = std::string("stop() threw: ") + e.what();
    }
    if (!p.wait_for(roadie::scaled(5s))) problem = "the exit was never published";
  }
  ::sigaction(SIGCHLD, &old, nullptr);
  EXPECT_EQ(problem, "");
}
