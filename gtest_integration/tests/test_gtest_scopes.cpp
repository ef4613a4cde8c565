// The service scopes of roadie::gtest as a black box: runs scopes_sample
// (linked with roadie::gtest_main) with a stack, a filter and a scratch
// directory per scenario, and checks what its services and tests left there,
// its output and its exit code.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "roadie/executor.hpp"
#include "roadie/state.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kStacks = ROADIE_GTEST_STACKS;

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct SampleRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string all() const { return out + "\n" + err; }
};

std::map<std::string, std::string> child_env(const fs::path& dir) {
  return {{"SAMPLE_DIR", dir.string()},
          {"CHILD_LISTEN", roadie::testing::child("child_listen")},
          {"CHILD_TRIGGER", roadie::testing::child("child_trigger")},
          {"ROADIE_ARTIFACTS_DIR", (dir / "artifacts").string()}};
}

roadie::Executor sample(std::vector<std::string> args, std::map<std::string, std::string> env,
                        const char* binary = ROADIE_SCOPES_SAMPLE) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  roadie::ExecutorOptions options;
  options.env = std::move(env);
  options.expected_exit_codes = {1, 2};  // and 0, always
  return roadie::Executor(roadie::Command(argv), options);
}

SampleRun run_sample(std::vector<std::string> args, std::map<std::string, std::string> env,
                     const char* binary = ROADIE_SCOPES_SAMPLE) {
  roadie::Executor process = sample(std::move(args), std::move(env), binary);
  process.start();
  auto status = process.wait_for_exit(60s);
  SampleRun run;
  if (!status) {
    process.kill();
    ADD_FAILURE() << "the sample did not end in 60 s";
    return run;
  }
  run.exit_code = status->code();
  run.out = process.output().text(roadie::Stream::out);
  run.err = process.output().text(roadie::Stream::err);
  return run;
}

std::string stack_flag(const std::string& name) {
  return "--roadie_stack=" + (kStacks / name).string();
}

class GtestScopes : public roadie::testing::NoLeaks {
 protected:
  roadie::testing::TempDir dir;
};

// --- Session ------------------------------------------------------------------

TEST_F(GtestScopes, ListingTestsStartsNothing) {
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_list_tests"}, child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_THAT(run.out, HasSubstr("ReachesTheServiceAndItsPort"));
  EXPECT_FALSE(fs::exists(dir.path() / "web.starts")) << "a service started while listing";
}

TEST_F(GtestScopes, TheSessionStackComesUpOncePerProcessAndIsResetBeforeEachTest) {
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Session.Reaches*"},
                             child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  PASSED  ] 2 tests"));
  EXPECT_EQ(lines_of(dir.path() / "web.starts").size(), 1u) << "one bring-up per process";
  const auto pids = lines_of(dir.path() / "session.pids");
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_EQ(pids[0], pids[1]) << "both tests reach the same service";
  EXPECT_EQ(lines_of(dir.path() / "web.resets").size(), 2u) << "a reset before each test";
  EXPECT_FALSE(roadie::testing::exists(std::stoi(pids[0]))) << "the session's service outlived it";
}

TEST_F(GtestScopes, StoppedOnASessionServiceStopsItAndStartsItAgainWithoutADeath) {
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Session.Stopped*"},
                             child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();  // the port refused inside, accepted after
  EXPECT_THAT(run.all(), Not(HasSubstr("killed by signal"))) << "a stop taken for a death";
  EXPECT_EQ(lines_of(dir.path() / "web.starts").size(), 2u) << "the bring-up and the restart";
}

TEST_F(GtestScopes, AStackMadeInCodeWithACppResetServesTheSession) {
  SampleRun run = run_sample({}, child_env(dir.path()), ROADIE_CODE_SAMPLE);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  const auto pids = lines_of(dir.path() / "code.pids");
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_EQ(pids[0], pids[1]);
  const auto resets = lines_of(dir.path() / "code.resets");
  ASSERT_EQ(resets.size(), 2u) << "the C++ reset runs before each test";
  EXPECT_THAT(resets[0], ::testing::StartsWith("reset web "));
  EXPECT_FALSE(roadie::testing::exists(std::stoi(pids[0])));
  // Listing starts nothing here either.
  run = run_sample({"--gtest_list_tests"}, child_env(dir.path()), ROADIE_CODE_SAMPLE);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_EQ(lines_of(dir.path() / "code.resets").size(), 2u);
}

TEST_F(GtestScopes, ServiceNamesEveryServiceInReachWhenTheNameIsUnknown) {
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Unknown.*"},
                       child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_THAT(slurp(dir.path() / "unknown.txt"),
              HasSubstr("no service 'nosuch' is up for this test; in reach: 'web', 'talker'"));
}

TEST_F(GtestScopes, EachTestsLogWindowHoldsExactlyItsLines) {
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Window.*"},
                       child_env(dir.path()));
  ASSERT_EQ(run.exit_code, 0) << run.all();
  const std::string first = slurp(dir.path() / "artifacts" / "Window" / "First" / "talker.log");
  const std::string second = slurp(dir.path() / "artifacts" / "Window" / "Second" / "talker.log");
  EXPECT_THAT(first, HasSubstr("trigger 1 line 1"));
  EXPECT_THAT(first, HasSubstr("trigger 1 done"));
  EXPECT_THAT(first, Not(HasSubstr("trigger 2")));
  EXPECT_THAT(first, Not(HasSubstr("ready"))) << "a line from before the test";
  EXPECT_THAT(second, HasSubstr("trigger 2 done"));
  EXPECT_THAT(second, Not(HasSubstr("trigger 1")));
}

TEST_F(GtestScopes, AFailedBringUpFailsTheRunLoudlyAndNoTestPasses) {
  SampleRun run = run_sample({stack_flag("broken.yaml"), "--gtest_filter=Session.*"},
                       child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(), HasSubstr("db"));
  EXPECT_THAT(run.all(), HasSubstr("exited with code 3"));
  EXPECT_THAT(run.all(), HasSubstr("cannot open /nonexistent/data")) << "its last lines";
  EXPECT_THAT(run.out, HasSubstr("[  PASSED  ] 0 tests"));
  EXPECT_FALSE(fs::exists(dir.path() / "session.pids")) << "a test body ran";
}

TEST_F(GtestScopes, AServiceThatDiesFailsItsTestAndTheTestsAfterItWithTheReason) {
  auto env = child_env(dir.path());
  env["SAMPLE_KILL"] = "1";
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Dying.*"}, env);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] Dying.KillsTheService"));
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] Dying.NeedsTheServiceLater"));
  EXPECT_THAT(run.all(), HasSubstr("service 'web' (session scope, session) killed by signal 9 "
                                   "(SIGKILL) during Dying.KillsTheService"));
  EXPECT_THAT(run.all(), HasSubstr("listening")) << "its last lines";
  EXPECT_THAT(run.all(), HasSubstr("this test needs it, so it did not run"));
  EXPECT_FALSE(fs::exists(dir.path() / "after-death.txt")) << "the test after the death ran";
}

TEST_F(GtestScopes, AKilledBinaryLeavesNoServiceAndKeepsTheLogLines) {
  auto env = child_env(dir.path());
  env["SAMPLE_HANG"] = "1";
  roadie::Executor process = sample({stack_flag("session.yaml"), "--gtest_filter=Hang.*"}, env);
  process.start();
  ASSERT_TRUE(roadie::testing::wait_for_file(dir.path() / "hang.ready", 30s))
      << process.output().excerpt();
  const auto pids = lines_of(dir.path() / "hang.pids");
  ASSERT_EQ(pids.size(), 1u);
  std::istringstream fields(pids[0]);
  pid_t web = 0;
  pid_t talker = 0;
  fields >> web >> talker;
  ASSERT_TRUE(roadie::testing::exists(web));
  const pid_t binary = process.pid();
  ASSERT_EQ(::kill(binary, SIGKILL), 0);
  (void)process.wait_for_exit(10s);
  const auto start = std::chrono::steady_clock::now();
  while ((roadie::testing::exists(web) || roadie::testing::exists(talker)) &&
         std::chrono::steady_clock::now() - start < 5s) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_FALSE(roadie::testing::exists(web)) << "a service outlived the killed binary";
  EXPECT_FALSE(roadie::testing::exists(talker)) << "a service outlived the killed binary";
  // Its lines were on disk before the kill, in the session's log directory.
  const fs::path logs = dir.path() / "artifacts" / "_stack" /
                        ("scopes_sample-" + std::to_string(binary)) / "talker.log";
  EXPECT_THAT(slurp(logs), HasSubstr("trigger 1 done")) << logs;
  // Killed by us: the executor's destructor only reaps it.
}

// --- Attach (ROADIE_STATE) -------------------------------------------------------

// `roadie ARGS...` to its end, by a plain fork/exec (a detached supervisor
// must outlive it); its exit code.
int roadie_cli(std::vector<std::string> args, const std::map<std::string, std::string>& env,
               const fs::path& scratch, std::string* output) {
  args.insert(args.begin(), ROADIE_CLI);
  const roadie::testing::PlainRun run = roadie::testing::run_plain(args, env, scratch);
  *output = run.out + run.err;
  return run.code;
}

TEST_F(GtestScopes, AttachingToADetachedStackStartsNothingAndStillResets) {
  const auto env = child_env(dir.path());
  const std::string state = (dir.path() / "state").string();
  const std::string file = (kStacks / "session.yaml").string();
  std::string output;
  ASSERT_EQ(roadie_cli({"up", "--detach", "-f", file, "--state", state}, env, dir.path(), &output), 0) << output;
  auto attached = env;
  attached["ROADIE_STATE"] = state;
  SampleRun run = run_sample({"--roadie_stack=" + file, "--gtest_filter=Session.Reaches*"}, attached);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_EQ(lines_of(dir.path() / "web.starts").size(), 1u) << "the test process started its own";
  EXPECT_EQ(lines_of(dir.path() / "web.resets").size(), 2u) << "a reset before each test";
  const auto pids = lines_of(dir.path() / "session.pids");
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_TRUE(roadie::testing::exists(std::stoi(pids[0]))) << "the test process stopped the stack";
  // A second process attaches to the same warm stack.
  run = run_sample({"--roadie_stack=" + file, "--gtest_filter=Session.Reaches*"}, attached);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_EQ(lines_of(dir.path() / "web.starts").size(), 1u);
  // The attached services' lines during a test land in its directory too.
  run = run_sample({"--roadie_stack=" + file, "--gtest_filter=Window.*"}, attached);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  const std::string first = slurp(dir.path() / "artifacts" / "Window" / "First" / "talker.log");
  EXPECT_THAT(first, HasSubstr("trigger 1 done"));
  EXPECT_THAT(first, Not(HasSubstr("trigger 2")));
  EXPECT_THAT(slurp(dir.path() / "artifacts" / "Window" / "Second" / "talker.log"),
              HasSubstr("trigger 2 done"));
  // Two processes at once: with a reset declared, their tests take turns.
  roadie::Executor one = sample({"--roadie_stack=" + file, "--gtest_filter=Shared.*", "--gtest_repeat=10"}, attached);
  roadie::Executor two = sample({"--roadie_stack=" + file, "--gtest_filter=Shared.*", "--gtest_repeat=10"}, attached);
  one.start();
  two.start();
  EXPECT_TRUE(one.wait_for_exit(60s).value_or(roadie::ExitStatus::exited(99)).success());
  EXPECT_TRUE(two.wait_for_exit(60s).value_or(roadie::ExitStatus::exited(99)).success());
  const auto shared = lines_of(dir.path() / "shared.txt");
  ASSERT_EQ(shared.size(), 40u);
  for (std::size_t i = 0; i + 1 < shared.size(); i += 2) {
    ASSERT_EQ("out" + shared[i].substr(2), shared[i + 1]) << "two tests overlapped at line " << i;
  }
  EXPECT_EQ(roadie_cli({"down", "--state", state}, env, dir.path(), &output), 0) << output;
  roadie::testing::reap_adopted();
  EXPECT_FALSE(roadie::testing::exists(std::stoi(pids[0])));
}

TEST_F(GtestScopes, AttachingToAStackThatIsNotWholeFailsLoudly) {
  const auto env = child_env(dir.path());
  const std::string state = (dir.path() / "state").string();
  const std::string file = (kStacks / "session.yaml").string();
  std::string output;
  auto attached = env;
  attached["ROADIE_STATE"] = state;
  // Nothing runs there.
  SampleRun run = run_sample({"--roadie_stack=" + file, "--gtest_filter=Session.Reaches*"}, attached);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(), HasSubstr("no stack runs there"));
  EXPECT_THAT(run.out, HasSubstr("[  PASSED  ] 0 tests"));
  // A service of the running stack is gone.
  ASSERT_EQ(roadie_cli({"up", "--detach", "-f", file, "--state", state}, env, dir.path(), &output), 0) << output;
  run = run_sample({"--roadie_stack=" + file, "--gtest_filter=Session.ReachesTheSame*"}, attached);
  ASSERT_EQ(run.exit_code, 0) << run.all();
  const pid_t web = std::stoi(lines_of(dir.path() / "session.pids").at(0));
  const auto started = roadie::state::process_start_time(web);
  ASSERT_TRUE(started.has_value());
  ASSERT_EQ(::kill(web, SIGKILL), 0);
  // The supervisor keeps its dead child a zombie until `down` (so that its pid
  // cannot be reused meanwhile): gone is "not alive with its start time".
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (roadie::state::ownership(web, *started) == roadie::state::Ownership::ours &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  run = run_sample({"--roadie_stack=" + file, "--gtest_filter=Session.Reaches*"}, attached);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(), HasSubstr("service 'web' (pid " + std::to_string(web) + ") is gone"));
  EXPECT_THAT(run.out, HasSubstr("[  PASSED  ] 0 tests"));
  EXPECT_EQ(lines_of(dir.path() / "session.pids").size(), 1u) << "a test ran against a broken stack";
  EXPECT_EQ(roadie_cli({"down", "--state", state}, env, dir.path(), &output), 0) << output;
  roadie::testing::reap_adopted();
}

// --- Suite and test scope -------------------------------------------------------

TEST_F(GtestScopes, EachSuiteGetsItsOwnServicesForAllItsTests) {
  SampleRun run = run_sample({"--gtest_filter=SuiteA.*:SuiteB.*"}, child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  std::map<std::string, std::set<std::string>> pids;
  for (const std::string& line : lines_of(dir.path() / "suite.pids")) {
    pids[line.substr(0, 1)].insert(line.substr(2));
  }
  ASSERT_EQ(pids["A"].size(), 1u) << "suite A's tests saw different services";
  ASSERT_EQ(pids["B"].size(), 1u) << "suite B's tests saw different services";
  EXPECT_NE(*pids["A"].begin(), *pids["B"].begin()) << "suite B shared suite A's service";
  EXPECT_FALSE(roadie::testing::exists(std::stoi(*pids["A"].begin())));
  EXPECT_FALSE(roadie::testing::exists(std::stoi(*pids["B"].begin())));
}

TEST_F(GtestScopes, ASuiteServiceThatDiesFailsTheRestOfTheSuite) {
  auto env = child_env(dir.path());
  env["SAMPLE_KILL"] = "1";
  SampleRun run = run_sample({"--gtest_filter=SuiteDying.*"}, env);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] SuiteDying.Kills"));
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] SuiteDying.NeedsIt"));
  EXPECT_THAT(run.all(), HasSubstr("service 'fragile' (suite scope, SuiteDying) killed by signal 9"));
  EXPECT_FALSE(fs::exists(dir.path() / "suite-after-death.txt"));
}

TEST_F(GtestScopes, ASuiteWhoseServiceCannotStartFailsEachTestWithTheReason) {
  SampleRun run = run_sample({"--gtest_filter=SuiteBroken.*"}, child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] SuiteBroken.One"));
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] SuiteBroken.Two"));
  EXPECT_THAT(run.all(), HasSubstr("/nonexistent/roadie-sample-binary"));
  EXPECT_THAT(run.all(), HasSubstr("service 'missing' (suite scope, SuiteBroken) did not start"));
  EXPECT_FALSE(fs::exists(dir.path() / "broken-ran.txt"));
}

TEST_F(GtestScopes, EachTestGetsAFreshServiceStoppedAfterIt) {
  SampleRun run = run_sample({"--gtest_filter=PerTest.*"}, child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  const auto pids = lines_of(dir.path() / "test.pids");
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_NE(pids[0], pids[1]);
  for (const auto& pid : pids) EXPECT_FALSE(roadie::testing::exists(std::stoi(pid)));
  // A test-scope service joins the bus: its lines are in the test's window.
  EXPECT_THAT(slurp(dir.path() / "artifacts" / "PerTest" / "One" / "own.log"), HasSubstr("listening"));
}

TEST_F(GtestScopes, ATestServiceThatDiesFailsItsTest) {
  auto env = child_env(dir.path());
  env["SAMPLE_KILL"] = "1";
  SampleRun run = run_sample({"--gtest_filter=PerTest.DiesWithSampleKill"}, env);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(),
              HasSubstr("service 'own' (test scope, PerTest.DiesWithSampleKill) killed by signal 9 "
                        "(SIGKILL) during PerTest.DiesWithSampleKill"));
}

TEST_F(GtestScopes, ServiceAccessorsAreSafeFromThreadsWhileTheServiceDies) {
  auto env = child_env(dir.path());
  env["SAMPLE_KILL"] = "1";
  // Ten rounds (under TSan a race in the death path fails the sample).
  for (int round = 0; round < 10; ++round) {
    SampleRun run = run_sample({"--gtest_filter=PerTest.AccessorsFromThreadsWhileItDies"}, env);
    EXPECT_EQ(run.exit_code, 1) << run.all();
    EXPECT_THAT(run.all(), HasSubstr("service 'own' (test scope, "
                                     "PerTest.AccessorsFromThreadsWhileItDies) killed by signal 9"));
    EXPECT_THAT(run.all(), Not(HasSubstr("ThreadSanitizer")));
    if (HasFailure()) break;
  }
  EXPECT_EQ(lines_of(dir.path() / "reads.txt").size(), 10u);
}

TEST_F(GtestScopes, AHandleKeptPastItsScopeRefuses) {
  SampleRun run = run_sample({"--gtest_filter=PerTest.KeepsAHandle:PerTestAfter.*"},
                             child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_THAT(slurp(dir.path() / "kept.txt"),
              HasSubstr("service 'own' (test scope, PerTest.KeepsAHandle) is not up any more"));
}

TEST_F(GtestScopes, AnInnerScopesPortOfTheSameNameGivesTheSessionsBack) {
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=ShadowPort*"},
                             child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  PASSED  ] 2 tests"));
}

TEST_F(GtestScopes, AFailedStartCancelsTheOthers) {
  const auto start = std::chrono::steady_clock::now();
  SampleRun run = run_sample({"--gtest_filter=OneFails.*"}, child_env(dir.path()));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(), HasSubstr("service 'broken' (test scope, OneFails.NeverRuns) did not start"));
  EXPECT_THAT(run.all(), Not(HasSubstr("service 'slow'"))) << "a cancelled start reported";
  EXPECT_FALSE(fs::exists(dir.path() / "onefails-ran.txt"));
  // Not a speed check: the slow one becomes ready only after 30 s.
  EXPECT_LT(took, 25s) << "the slow start was waited for";
}

TEST_F(GtestScopes, ADeathMetThroughAnAccessorThatTheTestCatchesStillFailsIt) {
  auto env = child_env(dir.path());
  env["SAMPLE_KILL"] = "1";
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Dying2.*"}, env);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] Dying2.AccessorAfterTheDeath"));
}

TEST_F(GtestScopes, UnderFailFastTheTestsAfterADeathAreSkippedNotFailed) {
  auto env = child_env(dir.path());
  env["SAMPLE_KILL"] = "1";
  SampleRun run = run_sample({stack_flag("session.yaml"), "--gtest_filter=Dying.*",
                              "--gtest_fail_fast"}, env);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  FAILED  ] Dying.KillsTheService"));
  EXPECT_THAT(run.out, HasSubstr("[  SKIPPED ] Dying.NeedsTheServiceLater"));
  EXPECT_THAT(run.out, Not(HasSubstr("[  FAILED  ] Dying.NeedsTheServiceLater")));
}

TEST_F(GtestScopes, StartedStartsForTheScopeOnly) {
  SampleRun run = run_sample({"--gtest_filter=Scopes.*"}, child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  const auto pids = lines_of(dir.path() / "adhoc.pids");
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_FALSE(roadie::testing::exists(std::stoi(pids[0])));
}

// --- gtest_main ---------------------------------------------------------------

TEST_F(GtestScopes, WithoutRoadieFlagsItIsPlainGtestMain) {
  auto env = child_env(dir.path());
  env.erase("ROADIE_ARTIFACTS_DIR");
  SampleRun run = run_sample({"--gtest_filter=Scopes.*"}, env);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_FALSE(fs::exists(dir.path() / "artifacts"));
}

TEST_F(GtestScopes, AnUnknownRoadieFlagIsAnError) {
  SampleRun run = run_sample({"--roadie_stak=x.yaml"}, child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown flag --roadie_stak"));
  EXPECT_THAT(run.err, HasSubstr("--roadie_stack=FILE"));
}

TEST_F(GtestScopes, AFailingResetFailsTheTestWithItsOutput) {
  SampleRun run = run_sample({stack_flag("bad_reset.yaml"), "--gtest_filter=Session.ReachesTheSameServiceInTheNextTest"},
                       child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(), HasSubstr("the reset of service 'web'"));
  EXPECT_THAT(run.all(), HasSubstr("exited with code 7"));
  EXPECT_THAT(run.all(), HasSubstr("flush refused: READONLY"));
  EXPECT_FALSE(fs::exists(dir.path() / "session.pids"));
}

TEST_F(GtestScopes, ARequestResetEmptiesARealRedisBeforeEachTest) {
  SampleRun run = run_sample({stack_flag("redis_reset.yaml"), "--gtest_filter=Redis.*"},
                             child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_THAT(run.out, HasSubstr("[  PASSED  ] 2 tests"));
}

TEST_F(GtestScopes, AFailingRequestResetFailsTheTestWithWhatWasReceived) {
  SampleRun run = run_sample({stack_flag("bad_request_reset.yaml"),
                              "--gtest_filter=Session.ReachesTheSameServiceInTheNextTest"},
                             child_env(dir.path()));
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_THAT(run.all(), HasSubstr("the reset of service 'web' (tcp 127.0.0.1:"));
  EXPECT_THAT(run.all(), HasSubstr("the connection closed before a reply matching ^\\+OK; received \"\""));
  EXPECT_FALSE(fs::exists(dir.path() / "session.pids"));
}

}  // namespace
