// Executors against real child programs: mirakuru's scenarios re-done, and
// each of mirakuru's defects as a test of its own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <regex>
#include <thread>

#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Command;
using roadie::Executor;
using roadie::ExecutorOptions;
using roadie::HttpCheck;
using roadie::HttpExecutor;
using roadie::OutputExecutor;
using roadie::PidExecutor;
using roadie::Stream;
using roadie::TcpExecutor;
using roadie::UnixSocketExecutor;
using roadie::testing::child;
using roadie::testing::free_port;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

namespace {

class ExecutorTest : public roadie::testing::NoLeaks {};

ExecutorOptions with_timeout(std::chrono::milliseconds timeout) {
  ExecutorOptions options;
  options.timeout = timeout;
  return options;
}

// How long after the child's own CLOCK_MONOTONIC stamp of its readiness event
// (the number in the line matching `stamped`) start() returned at
// `returned_ns`; -1 if the stamp never arrived.
long long readiness_lag_ns(const Executor& e, const std::string& stamped, long long returned_ns) {
  auto line = e.output().wait_for(stamped, roadie::scaled(10s));
  if (!line) return -1;
  std::smatch m;
  if (!std::regex_search(line->text, m, std::regex(stamped))) return -1;
  return returned_ns - std::stoll(m[1]);
}

// A readiness event is seen soon after it happens, not only eventually. The
// child waits before its event, long enough for the probe's back-off to
// reach its cap; the bound is generous (100 ms, time-scaled) next to the
// cap (2 ms), and far below the 500 ms that a slow back-off would take.
constexpr auto kEventDelay = std::chrono::milliseconds(600);

// Starts `e` and expects start() to return soon after the child's own stamp
// (a line matching `stamped`, its group 1 the CLOCK_MONOTONIC nanoseconds).
void expect_ready_soon(Executor& e, const std::string& stamped) {
  e.start();
  const long long returned_ns = roadie::testing::monotonic_ns();
  const long long lag = readiness_lag_ns(e, stamped, returned_ns);
  ASSERT_GE(lag, 0) << "no stamp /" << stamped
                    << "/ in the output, or start() returned before it:\n"
                    << e.output().excerpt(20);
  EXPECT_LT(lag, roadie::scaled(100ms).count())
      << "start() returned " << double(lag) / 1e6 << " ms after the child's event";
}

template <class F>
std::chrono::steady_clock::duration timed(F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::steady_clock::now() - t0;
}

// Records lifecycle events as text, for comparison with an expected list.
class Recorder : public roadie::ExecutorListener {
 public:
  void on_starting(const Executor& e) override { add("starting " + e.name()); }
  void on_ready(const Executor& e, std::chrono::nanoseconds) override { add("ready " + e.name()); }
  void on_line(const Executor& e, const roadie::Line& line) override {
    add("line " + e.name() + ": " + line.text);
  }
  void on_exited(const Executor& e, const roadie::ExitStatus& s) override {
    add("exited " + e.name() + ": " + s.describe());
  }
  void on_stopped(const Executor& e, const roadie::ExitStatus& s) override {
    add("stopped " + e.name() + ": " + s.describe());
  }
  std::vector<std::string> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  void add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::mutex mutex_;
  std::vector<std::string> events_;
};

}  // namespace

// --- basics -------------------------------------------------------------------

TEST_F(ExecutorTest, StartStopRunningWithArgv) {
  Executor e(Command{child("child_idle")});
  EXPECT_FALSE(e.running());
  EXPECT_EQ(e.pid(), -1);
  e.start();
  EXPECT_TRUE(e.running());
  EXPECT_GT(e.pid(), 0);
  e.stop();
  EXPECT_FALSE(e.running());
  EXPECT_EQ(e.exit_status()->signal(), SIGTERM);
}

TEST_F(ExecutorTest, StartStopRunningWithShell) {
  OutputExecutor e(Command::shell("echo shell-ready; exec " + child("child_idle")), "shell-ready");
  e.start();
  EXPECT_TRUE(e.running());
  e.stop();
  EXPECT_FALSE(e.running());
}

TEST_F(ExecutorTest, StartIsChainableAndIdempotent) {
  Executor e(Command{child("child_idle")});
  EXPECT_EQ(&e.start(), &e);  // chainable
  const pid_t first = e.pid();
  ASSERT_GT(first, 0);
  // Again, and chained: the same process, not a second one.
  EXPECT_EQ(e.start().start().pid(), first);
  EXPECT_TRUE(e.running());
  EXPECT_TRUE(roadie::testing::exists(first));
}

TEST_F(ExecutorTest, StopBeforeStartIsANoOp) {
  Executor e(Command{child("child_idle")});
  EXPECT_NO_THROW(e.stop());
  EXPECT_NO_THROW(e.kill());
  EXPECT_FALSE(e.running());
}

TEST_F(ExecutorTest, StartAfterStopWorks) {
  OutputExecutor e(Command{child("child_banner")}, "ready");
  pid_t first = e.start().pid();
  e.stop();
  pid_t second = e.start().pid();
  EXPECT_NE(first, second);
  EXPECT_TRUE(e.running());
}

TEST_F(ExecutorTest, DestroyingARunningExecutorStopsIt) {
  pid_t pid;
  {
    Executor e(Command{child("child_idle")});
    pid = e.start().pid();
  }
  EXPECT_FALSE(roadie::testing::exists(pid));
}

TEST_F(ExecutorTest, CustomStopSignalAndExpectedExitCode) {
  ExecutorOptions options;
  options.stop_signal = SIGINT;
  options.expected_exit_codes = {3};
  OutputExecutor e(Command::shell("trap 'exit 3' INT; echo ready; while true; do sleep 1; done"),
                   "ready", options);
  e.start();
  EXPECT_NO_THROW(e.stop());
  EXPECT_EQ(e.exit_status()->code(), 3);
}

TEST_F(ExecutorTest, UnexpectedExitCodeAtStopIsAnError) {
  ExecutorOptions options;
  options.name = "trapper";
  OutputExecutor e(
      Command::shell("trap 'echo bye; exit 3' TERM; echo ready; while true; do sleep 1; done"),
      "ready", options);
  e.start();
  try {
    e.stop();
    FAIL() << "no exception";
  } catch (const roadie::ProcessFinishedWithError& error) {
    EXPECT_EQ(error.exit_code(), 3);
    EXPECT_THAT(error.what(), HasSubstr("service 'trapper' (`/bin/sh -c"));
    EXPECT_THAT(error.what(), HasSubstr("exited with code 3; expected exit codes: 0, or SIGTERM."));
    EXPECT_THAT(error.what(), HasSubstr("Last output:\n  [stdout] ready\n"));
    EXPECT_THAT(error.what(), HasSubstr("\n  [stdout] bye\n"));
  }
  EXPECT_FALSE(e.running());
}

TEST_F(ExecutorTest, MissingProgramIsASpawnErrorNamingTheService) {
  ExecutorOptions options;
  options.name = "ghost";
  Executor e(Command{"roadie-no-such-binary"}, options);
  try {
    e.start();
    FAIL() << "no exception";
  } catch (const roadie::SpawnError& error) {
    EXPECT_THAT(error.what(), HasSubstr("service 'ghost': cannot start `roadie-no-such-binary`"));
  }
}

TEST_F(ExecutorTest, EnvCwdAndLogFileFromOptions) {
  roadie::testing::TempDir dir;
  ExecutorOptions options;
  options.env = {{"ROADIE_GREETING", "hi"}};
  options.cwd = dir.path();
  options.log_file = dir.path() / "service.log";
  OutputExecutor e(Command::shell(child("child_env") + " ROADIE_GREETING; echo done; exec " +
                                  child("child_idle")),
                   "done", options);
  e.start();
  EXPECT_THAT(e.output().text(Stream::out), HasSubstr("cwd=" + dir.path().string()));
  EXPECT_THAT(e.output().text(Stream::out), HasSubstr("ROADIE_GREETING=hi"));
  e.stop();
  std::ifstream log(dir.path() / "service.log");
  std::string content((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(content, HasSubstr("ROADIE_GREETING=hi\ndone\n"));
}

// --- mirakuru's defects -----------------------------------------------------------

TEST_F(ExecutorTest, ExitBeforeTheBannerFailsAtOnce) {
  OutputExecutor e(Command{child("child_exit"), "3"}, "never printed", with_timeout(60s));
  auto took = timed([&] {
    try {
      e.start();
      FAIL() << "no exception";
    } catch (const roadie::ProcessExitedWithError& error) {
      EXPECT_EQ(error.exit_code(), 3);
      EXPECT_THAT(error.what(),
                  MatchesRegex("service 'child_exit' \\(`.*/child_exit 3`\\) exited with code 3 "
                               "after [0-9.]+ s, before it "
                               "was ready \\(waiting for banner /never printed/\\)\\. Last "
                               "output:\n  \\[stdout\\] exiting\n"));
    }
  });
  EXPECT_LT(took, roadie::scaled(5s));  // at once, not after the 60 s start timeout
  EXPECT_FALSE(e.running());
}

TEST_F(ExecutorTest, ExitWithCodeZeroBeforeReadyFailsAndSaysSo) {
  TcpExecutor e(Command{child("child_exit"), "0"}, "127.0.0.1", free_port().port(),
                with_timeout(60s));
  auto took = timed([&] {
    try {
      e.start();
      FAIL() << "no exception";
    } catch (const roadie::ProcessExitedWithError& error) {
      EXPECT_EQ(error.exit_code(), 0);
      EXPECT_THAT(error.what(), HasSubstr("exited with code 0 after"));
      EXPECT_THAT(error.what(), HasSubstr("It exited with code 0 before it was ready"));
    }
  });
  EXPECT_LT(took, roadie::scaled(5s));  // at once, not after the 60 s start timeout
}

TEST_F(ExecutorTest, KilledBySignalBeforeReadyReadsAsMinusN) {
  OutputExecutor e(Command{child("child_exit"), "--signal", "9"}, "never", with_timeout(60s));
  try {
    e.start();
    FAIL() << "no exception";
  } catch (const roadie::ProcessExitedWithError& error) {
    EXPECT_EQ(error.exit_code(), -9);
    EXPECT_THAT(error.what(), HasSubstr("killed by signal 9 (SIGKILL) after"));
  }
}

TEST_F(ExecutorTest, HttpServerThatNeverAnswersDoesNotHangStart) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  HttpCheck request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  request.attempt_timeout = 200ms;
  ExecutorOptions options = with_timeout(1500ms);
  options.name = "mute";
  HttpExecutor e(Command{child("child_http"), std::to_string(port), "--hang"}, request, options);
  auto took = timed([&] {
    try {
      e.start();
      FAIL() << "no exception";
    } catch (const roadie::TimeoutExpired& error) {
      EXPECT_THAT(error.what(), HasSubstr("service 'mute'"));
      EXPECT_THAT(error.what(), HasSubstr("was not ready within"));
      EXPECT_THAT(error.what(), HasSubstr("waiting for http HEAD " + request.url + " -> /2../"));
      EXPECT_THAT(error.what(), HasSubstr("no answer within"));
      EXPECT_THAT(error.what(), HasSubstr("It was stopped: killed by signal 15 (SIGTERM). Last output:\n  [stdout] hanging\n"));
    }
  });
  EXPECT_LT(took, roadie::scaled(1500ms) + 1s);  // each attempt bounded, the deadline kept
}

TEST_F(ExecutorTest, BannerWhoseNewlineArrivesLaterIsFound) {
  OutputExecutor e(Command{child("child_partial"), "300"}, "hello world", with_timeout(30s));
  // child_partial exits right after the line, so it may have exited by the
  // time start() looks: either ready, or "right after it was ready".
  try {
    e.start();
  } catch (const roadie::ProcessExitedWithError& error) {
    EXPECT_THAT(error.what(), HasSubstr("right after it was ready"));
  }
  EXPECT_EQ(e.output().lines(Stream::out).at(0).text, "hello world");
}

TEST_F(ExecutorTest, FiveMegabytesBeforeTheBannerAreNoObstacle) {
  OutputExecutor e(Command{child("child_chatty"), "5"}, "the banner: ready", with_timeout(60s));
  e.start();
  long long ready_at = roadie::testing::monotonic_ns();
  auto line = e.output().wait_for("wrote 5 MB from (\\d+) to (\\d+)", 0s);
  ASSERT_TRUE(line);
  std::smatch m;
  std::regex_search(line->text, m, std::regex("from (\\d+) to (\\d+)"));
  long long start = std::stoll(m[1]), end = std::stoll(m[2]);
  double writing = double(end - start), to_ready = double(ready_at - start);
  // Within 20% of the child's own writing time; the absolute slack absorbs a
  // loaded machine's scheduling (the benchmark measures the real ratio).
  EXPECT_LE(to_ready, 1.2 * writing + double(roadie::scaled(25ms).count()))
      << "writing " << writing / 1e6 << " ms, ready after " << to_ready / 1e6 << " ms";
}

TEST_F(ExecutorTest, ServiceIgnoringTheStopSignalIsKilledAfterStopTimeout) {
  ExecutorOptions options = with_timeout(60s);
  options.stop_timeout = 300ms;
  OutputExecutor e(Command{child("child_ignore_term")}, "ignoring", options);
  e.start();
  auto took = timed([&] { e.stop(); });  // killed by the kill signal: expected, no throw
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, roadie::scaled(5s));  // the stop timeout, not the 60 s start timeout
  EXPECT_EQ(e.exit_status()->signal(), SIGKILL);
}

TEST_F(ExecutorTest, TheKillSignalIsTheOneSentAfterTheGrace) {
  ExecutorOptions options;
  options.stop_timeout = 200ms;
  options.kill_signal = SIGUSR1;  // ends the child too: its default action
  options.expected_exit_codes = {-SIGUSR1};
  OutputExecutor e(Command{child("child_ignore_term")}, "ignoring", options);
  e.start();
  auto took = timed([&] { e.stop(); });
  EXPECT_GE(took, 200ms);
  EXPECT_EQ(e.exit_status()->signal(), SIGUSR1);
}

TEST_F(ExecutorTest, KillEndsARunningServiceWithoutTheGrace) {
  ExecutorOptions options;
  options.stop_timeout = 60s;
  OutputExecutor e(Command{child("child_ignore_term")}, "ignoring", options);
  e.start();
  auto took = timed([&] { e.kill(); });
  EXPECT_LT(took, roadie::scaled(5s));  // not the 60 s grace
  EXPECT_FALSE(e.running());
  EXPECT_EQ(e.exit_status()->signal(), SIGKILL);
}

TEST_F(ExecutorTest, CancellingAStartStopsTheServiceWithItsEscalation) {
  ExecutorOptions options = with_timeout(60s);
  options.stop_timeout = 200ms;
  auto recorder = std::make_shared<Recorder>();
  // Ignores SIGTERM, never prints the banner: the escalation must reach SIGKILL.
  OutputExecutor e(Command{child("child_ignore_term")}, "never printed", options);
  auto listening = e.add_listener(recorder);
  std::stop_source cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    cancel.request_stop();
  });
  auto took = timed([&] {
    try {
      e.start(cancel.get_token());
      FAIL() << "no exception";
    } catch (const roadie::Cancelled& error) {
      EXPECT_THAT(error.what(),
                  MatchesRegex("service 'child_ignore_term' \\(`.*/child_ignore_term`\\): start "
                               "cancelled after [0-9.]+ s while waiting for banner /never "
                               "printed/; stopped, killed by signal 9 \\(SIGKILL\\)"));
    }
  });
  canceller.join();
  EXPECT_GE(took, 300ms);  // 100 ms, then the 200 ms grace before the kill signal
  EXPECT_LT(took, roadie::scaled(10s));
  EXPECT_FALSE(e.running());
  auto events = recorder->events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "stopped child_ignore_term: killed by signal 9 (SIGKILL)");
}

TEST_F(ExecutorTest, ReplaceEnvStartsFromAnEmptyEnvironment) {
  ExecutorOptions options;
  options.replace_env = true;
  options.env = {{"ONLY_THIS", "1"}};
  OutputExecutor e(Command{child("child_env"), "--stay", "ONLY_THIS", "HOME", "PATH"}, "^done$",
                   options);
  e.start();
  auto text = e.output().text(Stream::out);
  EXPECT_THAT(text, HasSubstr("ONLY_THIS=1\n"));
  EXPECT_THAT(text, HasSubstr("HOME unset\n"));
  EXPECT_THAT(text, HasSubstr("PATH unset\n"));
}

TEST_F(ExecutorTest, OutputBoundsKeepTheLastLines) {
  ExecutorOptions options;
  options.max_output_lines = 5;
  options.max_output_bytes = 1024 * 1024;
  OutputExecutor e(Command{child("child_chatty"), "1"}, "banner", options);
  e.start();
  auto lines = e.output().lines(Stream::out);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_THAT(lines.back().text, HasSubstr("banner"));

  ExecutorOptions by_bytes;
  by_bytes.max_output_bytes = 1000;  // ~10 filler lines of 100 bytes
  OutputExecutor f(Command{child("child_chatty"), "1"}, "banner", by_bytes);
  f.start();
  std::size_t bytes = 0;
  for (const auto& line : f.output().lines(Stream::out)) bytes += line.text.size();
  EXPECT_LE(bytes, 1000u);
  EXPECT_GE(f.output().lines(Stream::out).size(), 2u);
}

TEST_F(ExecutorTest, StoppedOnAServiceThatIsNotRunningIsAClearError) {
  Executor e(Command{child("child_idle")}, ExecutorOptions{.name = "idle"});
  try {
    auto scope = e.stopped();
    FAIL() << "no exception";
  } catch (const roadie::Error& error) {
    EXPECT_THAT(error.what(), HasSubstr("service 'idle' (`"));
    EXPECT_THAT(error.what(), HasSubstr("stopped() needs a running service; start() it first"));
  }
}

// --- readiness scenarios -------------------------------------------------------------

TEST_F(ExecutorTest, TcpServerListeningAfterTwoSecondsIsDetected) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor e(Command{child("child_listen"), "tcp:" + std::to_string(port), "--delay-ms", "2000"},
                "127.0.0.1", port, with_timeout(60s));
  e.start();
  EXPECT_GE(e.time_to_ready(), 2s);
  EXPECT_TRUE(e.output().wait_for("listening", roadie::scaled(10s)));
}

TEST_F(ExecutorTest, TcpTimeoutMessageNamesEverything) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  ExecutorOptions options = with_timeout(300ms);
  options.name = "late";
  TcpExecutor e(Command{child("child_banner"), "--text", "not listening"}, "127.0.0.1", port,
                options);
  try {
    e.start();
    FAIL() << "no exception";
  } catch (const roadie::TimeoutExpired& error) {
    EXPECT_THAT(error.what(),
                MatchesRegex("service 'late' \\(`.*/child_banner --text 'not listening'`\\) \\(pid "
                             "[0-9]+\\) was not ready "
                             "within [0-9.]+ s( \\(ROADIE_TIME_SCALE=[0-9.]+\\))?: waiting for tcp "
                             "127\\.0\\.0\\.1:" +
                             std::to_string(port) +
                             "; last attempt: Connection refused\\. It was stopped: killed by signal 15 "
                             "\\(SIGTERM\\)\\. Last output:\n"
                             "  \\[stdout\\] not listening\n"));
  }
  EXPECT_FALSE(e.running());
}

TEST_F(ExecutorTest, SecondExecutorOnTheSamePortIsAlreadyRunning) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  Command command{child("child_listen"), "tcp:" + std::to_string(port)};
  TcpExecutor first(command, "127.0.0.1", port);
  first.start();
  TcpExecutor second(command, "127.0.0.1", port);
  try {
    second.start();
    FAIL() << "no exception";
  } catch (const roadie::AlreadyRunning& error) {
    EXPECT_THAT(
        error.what(),
        MatchesRegex("service 'child_listen' \\(`.*/child_listen tcp:" + std::to_string(port) +
                     "`\\) not started: tcp 127\\.0\\.0\\.1:" + std::to_string(port) +
                     " is already served by another process"));
  }
  EXPECT_EQ(second.pid(), -1);  // nothing was started
}

TEST_F(ExecutorTest, SecondExecutorOnTheSameHttpEndpointIsAlreadyRunning) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/health";
  Command command{child("child_http"), std::to_string(port)};
  HttpExecutor first(command, url);
  first.start();
  HttpExecutor second(command, url);
  try {
    second.start();
    FAIL() << "no exception";
  } catch (const roadie::AlreadyRunning& error) {
    EXPECT_THAT(error.what(),
                HasSubstr("not started: http http://127.0.0.1:" + std::to_string(port) +
                          " is already served by another process"));
  }
  EXPECT_EQ(second.pid(), -1);
}

TEST_F(ExecutorTest, SecondExecutorOnTheSameUnixSocketIsAlreadyRunning) {
  roadie::testing::TempDir dir;
  auto socket = dir.path() / "service.sock";
  Command command{child("child_listen"), "unix:" + socket.string()};
  UnixSocketExecutor first(command, socket);
  first.start();
  UnixSocketExecutor second(command, socket);
  try {
    second.start();
    FAIL() << "no exception";
  } catch (const roadie::AlreadyRunning& error) {
    EXPECT_THAT(error.what(), HasSubstr("not started: unix socket " + socket.string() +
                                        " is already served by another process"));
  }
  EXPECT_EQ(second.pid(), -1);
}

TEST_F(ExecutorTest, HttpStatusMustMatchTheDefault2xx) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/status";
  HttpExecutor e(Command{child("child_http"), std::to_string(port), "--status", "404"}, url,
                 with_timeout(500ms));
  try {
    e.start();
    FAIL() << "no exception";
  } catch (const roadie::TimeoutExpired& error) {
    EXPECT_THAT(error.what(), HasSubstr("last attempt: status 404 does not match /2../"));
  }
}

TEST_F(ExecutorTest, Http404AcceptedWhenAsked) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  HttpCheck request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/missing";
  request.status = "404";
  HttpExecutor e(
      Command{child("child_http"), std::to_string(port), "--status", "404", "--delay-ms", "200"},
      request);
  e.start();
  EXPECT_TRUE(e.running());
}

TEST_F(ExecutorTest, HttpMethodsHeadersAndBody) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  Command command{child("child_http"), std::to_string(port), "--require-header", "X-Token:abc"};
  for (std::string method : {"HEAD", "GET", "POST"}) {
    HttpCheck request;
    request.url = "http://127.0.0.1:" + std::to_string(port) + "/health";
    request.method = method;
    request.headers = {{"X-Token", "abc"}};
    if (method == "POST") request.body = "ping";
    HttpExecutor e(command, request);
    e.start();
    EXPECT_TRUE(e.running()) << method;
    e.stop();
  }
}

TEST_F(ExecutorTest, HttpWithoutTheRequiredHeaderIsNotReady) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  HttpExecutor e(
      Command{child("child_http"), std::to_string(port), "--require-header", "X-Token:abc"},
      "http://127.0.0.1:" + std::to_string(port) + "/", with_timeout(400ms));
  EXPECT_THROW(e.start(), roadie::TimeoutExpired);
}

TEST_F(ExecutorTest, BadUrlIsAClearError) {
  try {
    HttpExecutor e(Command{child("child_idle")}, "localhost:80/health");
    FAIL() << "no exception";
  } catch (const roadie::Error& error) {
    EXPECT_STREQ(error.what(),
                 "not an http(s) URL: 'localhost:80/health' (expected http://HOST[:PORT][/PATH])");
  }
}

TEST_F(ExecutorTest, BannerOnStderr) {
  OutputExecutor e(Command{child("child_banner"), "--stderr", "--text", "up on stderr"},
                   "up on \\w+", {}, Stream::err);
  e.start();
  EXPECT_EQ(e.output().lines(Stream::err).at(0).text, "up on stderr");
}

TEST_F(ExecutorTest, BannerOnTheOtherStreamDoesNotCount) {
  OutputExecutor e(Command{child("child_banner"), "--text", "ready"}, "ready", with_timeout(300ms),
                   Stream::err);
  EXPECT_THROW(e.start(), roadie::TimeoutExpired);
}

TEST_F(ExecutorTest, PidFileAppearingAfterADelay) {
  roadie::testing::TempDir dir;
  auto file = dir.path() / "service.pid";
  PidExecutor e(Command{child("child_pidfile"), file.string(), "--delay-ms", "300"}, file);
  e.start();
  EXPECT_GE(e.time_to_ready(), 300ms);
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST_F(ExecutorTest, ExistingPidFileIsAlreadyRunning) {
  roadie::testing::TempDir dir;
  auto file = dir.path() / "stale.pid";
  std::ofstream(file) << "1\n";
  PidExecutor e(Command{child("child_pidfile"), file.string()}, file);
  try {
    e.start();
    FAIL() << "no exception";
  } catch (const roadie::AlreadyRunning& error) {
    EXPECT_THAT(error.what(), HasSubstr("pid file " + file.string() + " already exists"));
  }
}

TEST_F(ExecutorTest, UnixSocketBoundButNotListeningIsNotReady) {
  roadie::testing::TempDir dir;
  auto socket = dir.path() / "service.sock";
  UnixSocketExecutor e(
      Command{child("child_listen"), "unix:" + socket.string(), "--listen-after-ms", "400"},
      socket);
  e.start();
  // Ready only once listening (400 ms after binding), not when merely bound.
  EXPECT_GE(e.time_to_ready(), 400ms);
  EXPECT_THAT(e.output().text(Stream::out), HasSubstr("bound"));
}

TEST_F(ExecutorTest, ExecProbeDecidesReadiness) {
  roadie::testing::TempDir dir;
  auto file = dir.path() / "ready.pid";
  Executor e(Command{child("child_pidfile"), file.string(), "--delay-ms", "200"},
             roadie::ready::exec(Command{"/bin/sh", "-c", "test -e " + file.string()}));
  e.start();
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST_F(ExecutorTest, AllOfWaitsForEveryCheckAnyOfForOne) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  Command command{child("child_listen"), "tcp:" + std::to_string(port), "--listen-after-ms", "300"};
  Executor all(command, roadie::ready::all_of({roadie::ready::banner("bound"),
                                               roadie::ready::tcp("127.0.0.1", port)}));
  all.start();
  EXPECT_GE(all.time_to_ready(), 300ms);  // the banner alone was not enough
  all.stop();

  Executor any(command, roadie::ready::any_of({roadie::ready::banner("bound"),
                                               roadie::ready::tcp("127.0.0.1", port)}));
  any.start();
  EXPECT_LT(any.time_to_ready(), 300ms);
  EXPECT_EQ(any.check().describe(),
            "any of (banner /bound/, tcp 127.0.0.1:" + std::to_string(port) + ")");
}

TEST_F(ExecutorTest, DaemonizingServiceIsFullyStopped) {
  roadie::testing::TempDir dir;
  auto file = dir.path() / "daemon.pid";
  PidExecutor e(Command{child("child_daemon"), file.string(), "--stay"}, file);
  e.start();
  pid_t daemon = 0;
  std::ifstream(file) >> daemon;
  ASSERT_GT(daemon, 0);
  e.stop();
  EXPECT_FALSE(roadie::testing::exists(daemon));
}

TEST_F(ExecutorTest, ProbeThatThrowsLeavesNothingRunning) {
  Executor e(Command{child("child_idle")}, roadie::ready::exec(Command{"roadie-no-such-probe"}));
  EXPECT_THROW(e.start(), roadie::SpawnError);
  EXPECT_FALSE(e.running());
}

// --- readiness is seen soon after the event --------------------------------------------

TEST_F(ExecutorTest, TcpReadinessIsSeenSoonAfterTheListen) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor e(Command{child("child_listen"), "tcp:" + std::to_string(port), "--delay-ms",
                        std::to_string(kEventDelay.count()), "--stamp"},
                "127.0.0.1", port, with_timeout(30s));
  expect_ready_soon(e, "listening at (\\d+)");
}

TEST_F(ExecutorTest, UnixSocketReadinessIsSeenSoonAfterTheListen) {
  roadie::testing::TempDir dir;
  auto socket = dir.path() / "service.sock";
  UnixSocketExecutor e(Command{child("child_listen"), "unix:" + socket.string(), "--delay-ms",
                               std::to_string(kEventDelay.count()), "--stamp"},
                       socket, with_timeout(30s));
  expect_ready_soon(e, "listening at (\\d+)");
}

TEST_F(ExecutorTest, HttpReadinessIsSeenSoonAfterTheServerListens) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  HttpExecutor e(Command{child("child_http"), std::to_string(port), "--delay-ms",
                         std::to_string(kEventDelay.count()), "--stamp"},
                 "http://127.0.0.1:" + std::to_string(port) + "/health", with_timeout(30s));
  expect_ready_soon(e, "serving at (\\d+)");
}

TEST_F(ExecutorTest, BannerIsSeenSoonAfterItIsWritten) {
  OutputExecutor e(Command{child("child_banner"), "--delay-ms", std::to_string(kEventDelay.count()),
                           "--text", "up", "--stamp"},
                   "^up at", with_timeout(30s));
  expect_ready_soon(e, "up at (\\d+)");
}

TEST_F(ExecutorTest, PidFileIsSeenSoonAfterItIsWritten) {
  // The inotify path: the directory exists, so the probe waits on its events.
  roadie::testing::TempDir dir;
  auto file = dir.path() / "service.pid";
  PidExecutor e(Command{child("child_pidfile"), file.string(), "--delay-ms",
                        std::to_string(kEventDelay.count()), "--stamp"},
                file, with_timeout(30s));
  expect_ready_soon(e, "written at (\\d+)");
}

// --- stopped() scope and events ----------------------------------------------------------

TEST_F(ExecutorTest, StoppedScopeStopsAndRestartsWithReadiness) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor e(Command{child("child_listen"), "tcp:" + std::to_string(port), "--delay-ms", "100"},
                "127.0.0.1", port);
  pid_t first = e.start().pid();
  {
    auto scope = e.stopped();
    EXPECT_FALSE(e.running());
    EXPECT_FALSE(roadie::testing::exists(first));
  }
  EXPECT_TRUE(e.running());
  EXPECT_NE(e.pid(), first);
  EXPECT_GE(e.time_to_ready(), 100ms);  // readiness was checked again
}

TEST_F(ExecutorTest, StoppedScopeRestartReportsFailures) {
  roadie::testing::TempDir dir;
  auto marker = dir.path() / "fail-next";
  // Fails to start again once the marker file exists.
  OutputExecutor e(Command::shell("test -e " + marker.string() + " && exit 5; echo up; exec " +
                                  child("child_idle")),
                   "up");
  e.start();
  auto scope = e.stopped();
  std::ofstream(marker) << "x";
  EXPECT_THROW(scope.restart(), roadie::ProcessExitedWithError);
}

TEST_F(ExecutorTest, StartedScopeStartsWithReadinessAndStopsAtItsEnd) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor e(Command{child("child_listen"), "tcp:" + std::to_string(port), "--delay-ms", "100"},
                "127.0.0.1", port);
  pid_t pid = -1;
  {
    auto scope = e.started();
    EXPECT_TRUE(e.running());
    EXPECT_GE(e.time_to_ready(), 100ms);  // it returned once ready
    pid = e.pid();
    EXPECT_TRUE(roadie::testing::exists(pid));
  }
  EXPECT_FALSE(e.running());
  EXPECT_FALSE(roadie::testing::exists(pid));
  // A second scope starts it again.
  {
    auto scope = e.started();
    EXPECT_TRUE(e.running());
    EXPECT_NE(e.pid(), pid);
    scope.stop();  // early, and the end of the scope does nothing more
    EXPECT_FALSE(e.running());
  }
  EXPECT_FALSE(e.running());
}

TEST_F(ExecutorTest, StartedScopeRefusesARunningServiceAndReportsStartFailures) {
  OutputExecutor e(Command{child("child_banner"), "--text", "up"}, "up");
  e.start();
  try {
    auto scope = e.started();
    ADD_FAILURE() << "started() on a running service must throw";
  } catch (const roadie::Error& error) {
    EXPECT_THAT(error.what(), HasSubstr("started() needs a service that is not running"));
  }
  EXPECT_TRUE(e.running());  // untouched
  e.stop();
  OutputExecutor missing(Command{"/nonexistent/roadie-no-such-binary"}, "up");
  EXPECT_THROW((void)missing.started(), roadie::SpawnError);
  EXPECT_FALSE(missing.running());
}

TEST_F(ExecutorTest, LifecycleEventsInOrder) {
  auto recorder = std::make_shared<Recorder>();
  ExecutorOptions options;
  options.name = "svc";
  OutputExecutor e(Command{child("child_banner"), "--text", "up"}, "up", options);
  auto listening = e.add_listener(recorder);
  e.start();
  e.stop();
  EXPECT_EQ(recorder->events(),
            (std::vector<std::string>{"starting svc", "line svc: up", "ready svc",
                                      "stopped svc: killed by signal 15 (SIGTERM)"}));
}

TEST_F(ExecutorTest, ExitedEventWhenTheServiceDiesByItself) {
  auto recorder = std::make_shared<Recorder>();
  ExecutorOptions options;
  options.name = "crasher";
  Executor e(Command{child("child_banner"), "--text", "up"}, options);
  auto listening = e.add_listener(recorder);
  e.start();
  ASSERT_TRUE(e.output().wait_for("up", roadie::scaled(10s)));
  ASSERT_EQ(::kill(e.pid(), SIGKILL), 0);  // not through stop() or kill()
  auto died = e.wait_for_exit(roadie::scaled(10s));
  ASSERT_TRUE(died) << "the death was not seen";
  EXPECT_EQ(died->describe(), "killed by signal 9 (SIGKILL)");
  EXPECT_FALSE(e.running());
  // roadie never sent that SIGKILL: stop() reports the death, it is no clean stop.
  try {
    e.stop();
    FAIL() << "stop() accepted a death by a SIGKILL it never sent";
  } catch (const roadie::ProcessFinishedWithError& error) {
    EXPECT_EQ(error.exit_code(), -9);
  }
  auto events = recorder->events();
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[events.size() - 2], "exited crasher: killed by signal 9 (SIGKILL)");
  EXPECT_EQ(events.back(), "stopped crasher: killed by signal 9 (SIGKILL)");
}

TEST_F(ExecutorTest, MovedExecutorKeepsItsService) {
  Executor a(Command{child("child_idle")});
  pid_t pid = a.start().pid();
  Executor b = std::move(a);
  EXPECT_EQ(b.pid(), pid);
  EXPECT_TRUE(b.running());
}

// --- time scale ----------------------------------------------------------------------------

// Disabled: run only by TimeScaleStretchesDeadlines, in a child with the variable set.
TEST(TimeScale, DISABLED_ReadsTheEnvironment) {
  EXPECT_EQ(roadie::time_scale(), 2.5);
  EXPECT_EQ(roadie::scaled(100ms), 250ms);
  // A 1 s start deadline stretched to 2.5 s: a banner after 1.5 s is in time
  // (with a second to spare for a sanitizer's start-up of the child).
  OutputExecutor e(Command{child("child_banner"), "--delay-ms", "1500"}, "ready",
                   with_timeout(1000ms));
  e.start();
  EXPECT_TRUE(e.running());
  e.stop();
}

TEST_F(ExecutorTest, TimeScaleStretchesDeadlines) {
  // Run this very binary with ROADIE_TIME_SCALE=2.5 on the test above.
  char path[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", path, sizeof path - 1), 0);
  Command command{path, "--gtest_filter=TimeScale.DISABLED_ReadsTheEnvironment",
                  "--gtest_also_run_disabled_tests"};
  command.set_env("ROADIE_TIME_SCALE", "2.5");
  auto p = roadie::Process::spawn(command);
  EXPECT_EQ(p.wait().code(), 0) << p.output().excerpt(40);
  EXPECT_THAT(p.output().text(Stream::out), HasSubstr("[  PASSED  ] 1 test"));
}

// --- listeners: subscription, late listeners, failed starts --------------------------------

namespace {

// Records on_starting / on_ready / on_start_failed / on_line, by exception type.
class StartRecorder : public roadie::ExecutorListener {
 public:
  void on_starting(const Executor&) override { add("starting"); }
  void on_ready(const Executor&, std::chrono::nanoseconds) override { add("ready"); }
  void on_start_failed(const Executor&, const std::exception_ptr& error) override {
    try {
      std::rethrow_exception(error);
    } catch (const roadie::SpawnError&) {
      add("failed SpawnError");
    } catch (const roadie::ProcessExitedWithError&) {
      add("failed ProcessExitedWithError");
    } catch (const roadie::TimeoutExpired&) {
      add("failed TimeoutExpired");
    } catch (const roadie::AlreadyRunning&) {
      add("failed AlreadyRunning");
    } catch (const roadie::Cancelled&) {
      add("failed Cancelled");
    } catch (...) {
      add("failed other");
    }
  }
  void on_line(const Executor&, const roadie::Line& line) override { add("line " + line.text); }
  std::vector<std::string> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  void add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::mutex mutex_;
  std::vector<std::string> events_;
};

using Strings = std::vector<std::string>;

// The events after start() threw `Expected`.
template <class Expected>
Strings failed_start_events(Executor& e, std::stop_token cancel = {}) {
  auto recorder = std::make_shared<StartRecorder>();
  auto listening = e.add_listener(recorder);
  EXPECT_THROW(e.start(cancel), Expected);
  EXPECT_FALSE(e.running());
  Strings events;
  for (auto& event : recorder->events()) {
    if (event.rfind("line ", 0) != 0) events.push_back(event);
  }
  return events;
}

}  // namespace

TEST_F(ExecutorTest, AListenerAddedAfterStartGetsThatRunsLinesFromThenOn) {
  roadie::testing::TempDir dir;
  const auto go = dir.path() / "go";
  OutputExecutor e(Command::shell("echo up; while [ ! -e " + go.string() +
                                  " ]; do sleep 0.01; done; echo later; exec " +
                                  child("child_idle")),
                   "up");
  e.start();
  auto recorder = std::make_shared<StartRecorder>();
  auto listening = e.add_listener(recorder);
  std::ofstream(go) << "x";
  ASSERT_TRUE(e.output().wait_for("later", roadie::scaled(10s)));
  e.stop();
  EXPECT_EQ(recorder->events(), Strings{"line later"});
}

TEST_F(ExecutorTest, ResettingTheListenerSubscriptionRemovesIt) {
  auto kept = std::make_shared<StartRecorder>();
  auto dropped = std::make_shared<StartRecorder>();
  OutputExecutor e(Command{child("child_banner"), "--text", "up"}, "up");
  auto keep = e.add_listener(kept);
  auto drop = e.add_listener(dropped);
  drop.reset();
  e.start();
  e.stop();
  EXPECT_EQ(kept->events(), (Strings{"starting", "line up", "ready"}));
  EXPECT_TRUE(dropped->events().empty());
  EXPECT_THROW((void)e.add_listener(nullptr), roadie::Error);
}

TEST_F(ExecutorTest, ListenersAreCalledByPriorityThenInOrder) {
  std::vector<std::string> order;
  struct Named : roadie::ExecutorListener {
    Named(std::vector<std::string>& o, std::string n) : out(o), name(std::move(n)) {}
    void on_starting(const Executor&) override { out.push_back(name); }
    std::vector<std::string>& out;
    std::string name;
  };
  Executor e(Command{child("child_idle")});
  auto a = e.add_listener(std::make_shared<Named>(order, "a"));
  auto b = e.add_listener(std::make_shared<Named>(order, "b-first"), -1);
  auto c = e.add_listener(std::make_shared<Named>(order, "c"));
  e.start();
  e.stop();
  EXPECT_EQ(order, (Strings{"b-first", "a", "c"}));
}

TEST_F(ExecutorTest, EveryFailedStartClosesItsOnStarting) {
  {
    Executor e(Command{"/nonexistent/roadie-test-binary"});
    EXPECT_EQ(failed_start_events<roadie::SpawnError>(e),
              (Strings{"starting", "failed SpawnError"}));
  }
  {
    Executor e(Command{child("child_exit"), "3"}, roadie::ready::banner("never"));
    EXPECT_EQ(failed_start_events<roadie::ProcessExitedWithError>(e),
              (Strings{"starting", "failed ProcessExitedWithError"}));
  }
  {
    OutputExecutor e(Command{child("child_idle")}, "never", with_timeout(200ms));
    EXPECT_EQ(failed_start_events<roadie::TimeoutExpired>(e),
              (Strings{"starting", "failed TimeoutExpired"}));
  }
  {
    roadie::testing::TempDir dir;
    std::ofstream(dir.path() / "pid") << "1";
    PidExecutor e(Command{child("child_idle")}, dir.path() / "pid");
    EXPECT_EQ(failed_start_events<roadie::AlreadyRunning>(e),
              (Strings{"starting", "failed AlreadyRunning"}));
  }
  {
    OutputExecutor e(Command{child("child_idle")}, "never", with_timeout(60s));
    std::stop_source cancel;
    std::thread canceller([&] {
      std::this_thread::sleep_for(100ms);
      cancel.request_stop();
    });
    auto events = failed_start_events<roadie::Cancelled>(e, cancel.get_token());
    canceller.join();
    EXPECT_EQ(events, (Strings{"starting", "failed Cancelled"}));
  }
}

TEST_F(ExecutorTest, ATimedOutStartGetsTheStopEscalation) {
  ExecutorOptions options = with_timeout(200ms);
  options.stop_timeout = 200ms;
  // Ignores SIGTERM: the escalation must reach the kill signal after the grace.
  OutputExecutor e(Command{child("child_ignore_term")}, "never printed", options);
  auto took = timed([&] {
    try {
      e.start();
      FAIL() << "no exception";
    } catch (const roadie::TimeoutExpired& error) {
      EXPECT_THAT(error.what(), HasSubstr("It was stopped: killed by signal 9 (SIGKILL)."));
    }
  });
  EXPECT_GE(took, 400ms);  // the deadline, then the grace before the kill signal
  EXPECT_FALSE(e.running());
}

// --- errors carry their fields ----------------------------------------------------------------

TEST_F(ExecutorTest, ProcessExitedWithErrorCarriesStatusServiceAndExcerpt) {
  ExecutorOptions options;
  options.name = "quitter";
  Executor e(Command{child("child_exit"), "3"}, roadie::ready::banner("never"), options);
  try {
    e.start();
    FAIL() << "no exception";
  } catch (const roadie::ProcessError& error) {
    EXPECT_NE(dynamic_cast<const roadie::ProcessExitedWithError*>(&error), nullptr);
    EXPECT_TRUE(error.status().is_exited());
    EXPECT_EQ(error.status().code(), 3);
    EXPECT_EQ(error.exit_code(), 3);
    EXPECT_EQ(error.service(), "quitter");
    EXPECT_THAT(error.excerpt(), HasSubstr("  [stdout] exiting\n"));
  }
}

TEST_F(ExecutorTest, ProcessFinishedWithErrorCarriesStatusServiceAndExcerpt) {
  ExecutorOptions options;
  options.name = "grumpy";
  OutputExecutor e(Command::shell("trap 'echo last words; exit 7' TERM; echo up; "
                                  "while :; do sleep 0.01; done"),
                   "up", options);
  e.start();
  try {
    e.stop();
    FAIL() << "no exception";
  } catch (const roadie::ProcessError& error) {
    EXPECT_NE(dynamic_cast<const roadie::ProcessFinishedWithError*>(&error), nullptr);
    EXPECT_EQ(error.status().code(), 7);
    EXPECT_EQ(error.service(), "grumpy");
    EXPECT_THAT(error.excerpt(), HasSubstr("  [stdout] last words\n"));
  }
}

// --- runtime and output handle ----------------------------------------------------------------

TEST_F(ExecutorTest, AnExecutorRunsOnTheRuntimeItIsGiven) {
  auto runtime = std::make_shared<roadie::Runtime>();
  ExecutorOptions options;
  options.runtime = runtime;
  OutputExecutor e(Command{child("child_env"), "--stay", "ROADIE_SUPERVISOR"}, "done", options);
  e.start();
  auto line = e.output().wait_for("^ROADIE_SUPERVISOR=", roadie::scaled(10s));
  ASSERT_TRUE(line);
  EXPECT_EQ(line->text.rfind("ROADIE_SUPERVISOR=" + runtime->marker() + "/", 0), 0u)
      << line->text << " (the runtime's marker: " << runtime->marker() << ")";
  EXPECT_NE(runtime->marker(), roadie::Runtime::global().marker());
  e.stop();
}

TEST_F(ExecutorTest, AnOutputHandleOutlivesARestartAndTheExecutor) {
  std::shared_ptr<roadie::Output> first;
  {
    OutputExecutor e(Command::shell("echo run-$$; exec " + child("child_idle")), "run-");
    e.start();
    first = e.output_handle();
    const auto text = first->lines().at(0).text;
    e.stop();
    e.start();
    EXPECT_NE(&e.output(), first.get());
    EXPECT_EQ(first->lines().at(0).text, text);
    e.stop();
  }
  EXPECT_THAT(first->lines().at(0).text, HasSubstr("run-"));
}
