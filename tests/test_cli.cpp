// The `roadie` command as a black box: run the built executable, check its
// exit code, stdout and stderr (DESIGN.md, "The roadie command"). Services are
// the child programs of tests/resources, named to the stack files in
// tests/stacks/cli/ through ${env.CHILD_*}.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "roadie/command.hpp"
#include "roadie/executor.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using roadie::testing::child;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kStacks = fs::path(__FILE__).parent_path() / "stacks" / "cli";
constexpr const char* kPointer = "Run 'roadie --help' (or 'roadie VERB --help') for usage.";

struct Result {
  int code = -1000;  // exit code, or -N for death by signal N
  std::string out;
  std::string err;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// One `roadie` process, spawned through roadie::Executor: its output is
// captured, and its stop() also finds what roadie itself forked (its
// runtime's watchdog carries our marker), so nothing outlives the test.
class Roadie {
 public:
  explicit Roadie(std::vector<std::string> args) : executor_(make(std::move(args))) {
    try {
      executor_.start();  // ready once spawned
    } catch (const roadie::ProcessExitedWithError& e) {
      early_exit_ = e.status();  // a usage error can end it before start() returns
    }
  }
  pid_t pid() const { return executor_.pid(); }
  const roadie::Output& output() const { return executor_.output(); }

  // Waits (bounded) for roadie to exit, then cleans up.
  Result finish(std::chrono::seconds timeout = 60s) {
    Result result;
    auto status = early_exit_ ? early_exit_ : executor_.wait_for_exit(timeout);
    EXPECT_TRUE(status.has_value()) << "roadie did not exit within " << timeout.count() << " s";
    if (status) result.code = status->code();
    try {
      executor_.stop();
    } catch (const roadie::ProcessFinishedWithError&) {  // the status is what we check
    }
    // Whole lines, each ending in a newline, as roadie wrote them.
    for (const auto& line : executor_.output().lines()) {
      (line.stream == roadie::Stream::out ? result.out : result.err) += line.text + "\n";
    }
    return result;
  }

 private:
  static roadie::Executor make(std::vector<std::string> args) {
    args.insert(args.begin(), ROADIE_CLI);
    roadie::Command command(std::move(args));
    command.set_env("CHILD_LISTEN", child("child_listen"))
        .set_env("CHILD_BANNER", child("child_banner"))
        .set_env("CHILD_EXIT", child("child_exit"))
        .set_env("CHILD_IDLE", child("child_idle"))
        .unset_env("NO_COLOR");
    roadie::ExecutorOptions options;
    options.name = "roadie";
    options.stop_timeout = 20s;
    return roadie::Executor(std::move(command), options);
  }
  roadie::Executor executor_;
  std::optional<roadie::ExitStatus> early_exit_;
};

Result roadie_cli(std::vector<std::string> args) {
  return Roadie(std::move(args)).finish();
}

std::string stack(const char* name) {
  return (kStacks / name).string();
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The pids in "HH:MM:SS.mmm NAME ready in X s (pid N)" progress lines.
std::map<std::string, pid_t> ready_pids(const std::string& err) {
  std::map<std::string, pid_t> pids;
  static const std::regex ready(
      R"(^\d\d:\d\d:\d\d\.\d{3} (\S+) ready in \d+\.\d\d s \(pid (\d+)\)$)");
  for (const auto& line : lines_of(err)) {
    std::smatch match;
    if (std::regex_match(line, match, ready)) pids[match[1]] = std::stoi(match[2]);
  }
  return pids;
}

class CliTest : public roadie::testing::NoLeaks {};

// --- the skeleton: help and usage errors ------------------------------------

TEST_F(CliTest, HelpOfEveryVerbHasADescriptionAndAnExample) {
  struct Help {
    std::string verb;
    std::string description;
    std::string example;  // found in this verb's help only
  };
  const std::vector<Help> helps = {
      {"", "starts the external services", "roadie run -- ctest -j8"},
      {"check", "Validate a stack file", "roadie check -f tests/roadie.yaml"},
      {"graph", "dependency graph", "roadie graph --format text"},
      {"run", "run CMD with the", "roadie run -f stack.yaml -- sh -c"},
      {"up", "in the foreground", "roadie up -f tests/roadie.yaml"},
  };
  for (const auto& help : helps) {
    SCOPED_TRACE("roadie " + help.verb + " --help");
    std::vector<std::string> args;
    if (!help.verb.empty()) args.push_back(help.verb);
    args.push_back("--help");
    const Result result = roadie_cli(args);
    EXPECT_EQ(result.code, 0);
    EXPECT_THAT(result.out, HasSubstr(help.description));
    EXPECT_THAT(result.out, HasSubstr("Example"));
    EXPECT_THAT(result.out, HasSubstr(help.example));
    EXPECT_EQ(result.err, "");
  }
}

TEST_F(CliTest, UsageErrorsExitTwoWithOneLineAndAPointerToHelp) {
  struct Case {
    std::vector<std::string> args;
    std::string line;
  };
  const std::vector<Case> cases = {
      {{}, "roadie: no verb given (verbs: check, graph, run, up)"},
      {{"frobnicate"}, "roadie: unknown verb 'frobnicate' (verbs: check, graph, run, up)"},
      {{"--bogus"}, "roadie: unknown option '--bogus'"},
      {{"check", "--bogus"}, "roadie check: unknown option '--bogus'"},
      {{"check", "extra"}, "roadie check: unexpected argument 'extra'"},
      {{"graph", "--format"}, "roadie graph: --format: 1 required TEXT:{dot,text} missing"},
      {{"graph", "--format", "svg"}, "roadie graph: --format: svg not in {dot,text}"},
      {{"check", "-f"}, "roadie check: --file: 1 required TEXT missing"},
      {{"run"}, "roadie run: command is required"},
  };
  for (const auto& c : cases) {
    std::string display = "roadie";
    for (const auto& arg : c.args) display += " " + arg;
    SCOPED_TRACE(display);
    const Result result = roadie_cli(c.args);
    EXPECT_EQ(result.code, 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(lines_of(result.err), (std::vector<std::string>{c.line, kPointer}));
  }
}

// --- check -----------------------------------------------------------------

TEST_F(CliTest, CheckSummarisesAValidFile) {
  const Result result = roadie_cli({"check", "-f", stack("good.yaml")});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out, stack("good.yaml") + ": 3 services, 1 job, 2 ports\n");
  EXPECT_EQ(result.err, "");
}

TEST_F(CliTest, CheckReportsTheLocatedErrorOfAnInvalidFile) {
  const Result result = roadie_cli({"check", "-f", stack("bad.yaml")});
  EXPECT_EQ(result.code, 2);
  EXPECT_EQ(result.out, "");
  EXPECT_THAT(result.err, ::testing::StartsWith(stack("bad.yaml") +
                                                ":6:5: services.db.comand: unknown key 'comand'; "
                                                "did you mean 'command'?"));
  EXPECT_EQ(lines_of(result.err).size(), 1U) << result.err;
}

TEST_F(CliTest, CheckNamesAMissingFile) {
  roadie::testing::TempDir dir;
  const std::string missing = (dir.path() / "nowhere.yaml").string();
  const Result result = roadie_cli({"check", "-f", missing});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr(missing));
  EXPECT_THAT(result.err, HasSubstr("cannot read the stack file"));
}

// --- graph -----------------------------------------------------------------

TEST_F(CliTest, GraphPrintsTheDagAsDot) {
  const Result result = roadie_cli({"graph", "-f", stack("good.yaml")});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, ::testing::StartsWith("digraph "));
  for (const char* name : {"db", "cache", "api", "seed"}) {
    EXPECT_THAT(result.out, HasSubstr(std::string("label=\"") + name + "\\n"));
  }
  // api (j3) requires db (j1) and seed (j4); seed requires cache (j2).
  EXPECT_THAT(result.out, HasSubstr("j1 -> j3"));
  EXPECT_THAT(result.out, HasSubstr("j4 -> j3"));
  EXPECT_THAT(result.out, HasSubstr("j2 -> j4"));
}

TEST_F(CliTest, GraphPrintsTheDagAsText) {
  const Result result = roadie_cli({"graph", "-f", stack("good.yaml"), "--format", "text"});
  EXPECT_EQ(result.code, 0) << result.err;
  const auto lines = lines_of(result.out);
  ASSERT_EQ(lines.size(), 4U) << result.out;
  EXPECT_THAT(lines[0], ::testing::MatchesRegex("db +service +ready when tcp 127.0.0.1:[0-9]+"));
  EXPECT_THAT(lines[2],
              ::testing::MatchesRegex("api +service +requires db, seed +ready when .*api up.*"));
  EXPECT_THAT(lines[3], ::testing::MatchesRegex("seed +job +requires cache"));
}

TEST_F(CliTest, GraphOfAnInvalidFileExitsTwoWithTheLocatedError) {
  const Result result = roadie_cli({"graph", "-f", stack("bad.yaml")});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("bad.yaml:6:5: services.db.comand"));
}

// --- run -------------------------------------------------------------------

TEST_F(CliTest, RunGivesTheCommandThePortsAndTheStateDirectory) {
  roadie::testing::TempDir dir;
  const Result result = roadie_cli(
      {"run", "-f", stack("good.yaml"), "--state", (dir.path() / "state").string(), "--", "/bin/sh",
       "-c", "echo db=$ROADIE_PORT_DB cache=$ROADIE_PORT_CACHE state=$ROADIE_STATE"});
  EXPECT_EQ(result.code, 0) << result.err;
  std::smatch match;
  ASSERT_TRUE(
      std::regex_match(result.out, match, std::regex(R"(db=(\d+) cache=(\d+) state=(.*)\n)")))
      << result.out;
  EXPECT_GT(std::stoi(match[1]), 0);
  EXPECT_GT(std::stoi(match[2]), 0);
  EXPECT_NE(match[1], match[2]);
  EXPECT_EQ(match[3], (dir.path() / "state").string());
}

TEST_F(CliTest, RunShowsTimestampedProgressWithPidsWhenNotATerminal) {
  roadie::testing::TempDir dir;
  const Result result = roadie_cli(
      {"run", "-f", stack("good.yaml"), "--state", dir.path().string(), "--", "/bin/true"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.err, ::testing::ContainsRegex(
                              "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} api waiting for db, seed"));
  EXPECT_THAT(result.err,
              ::testing::ContainsRegex(
                  "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} seed done in [0-9]+\\.[0-9]{2} s"));
  const auto pids = ready_pids(result.err);
  EXPECT_EQ(pids.size(), 3U) << result.err;
  EXPECT_THAT(result.err, Not(HasSubstr("\x1b[")));  // no colour off a terminal
}

TEST_F(CliTest, RunExitsWithTheCommandsExitCode) {
  roadie::testing::TempDir dir;
  const std::vector<std::pair<std::string, int>> cases = {
      {"exit 0", 0}, {"exit 7", 7}, {"kill -TERM $$", 128 + SIGTERM}};
  for (const auto& [script, code] : cases) {
    SCOPED_TRACE(script);
    const Result result = roadie_cli({"run", "-f", stack("good.yaml"), "--state",
                                      dir.path().string(), "--", "/bin/sh", "-c", script});
    EXPECT_EQ(result.code, code) << result.err;
  }
}

TEST_F(CliTest, RunExits127NamingACommandThatCannotBeExecuted) {
  roadie::testing::TempDir dir;
  const Result result = roadie_cli({"run", "-f", stack("good.yaml"), "--state", dir.path().string(),
                                    "--", "no-such-program-xyz"});
  EXPECT_EQ(result.code, 127);
  EXPECT_THAT(
      result.err,
      HasSubstr("roadie run: cannot execute 'no-such-program-xyz': No such file or directory"));
}

TEST_F(CliTest, RunExitsThreeNamingTheFailedServiceItsLastLinesAndWhatWasSkipped) {
  roadie::testing::TempDir dir;
  const fs::path ran = dir.path() / "ran";
  const Result result =
      roadie_cli({"run", "-f", stack("failing.yaml"), "--state", dir.path().string(), "--",
                  "/bin/sh", "-c", "touch " + ran.string()});
  EXPECT_EQ(result.code, 3);
  EXPECT_FALSE(fs::exists(ran)) << "CMD ran although the bring-up failed";
  EXPECT_THAT(result.err, HasSubstr("the stack could not be brought up"));
  EXPECT_THAT(result.err, HasSubstr("broken"));
  EXPECT_THAT(result.err, HasSubstr("[stderr] disk 42 on fire"));
  EXPECT_THAT(result.err, ::testing::ContainsRegex("api.*skipped|skipped.*api"));
  // db came up before broken failed: it was torn down.
  for (const auto& [name, pid] : ready_pids(result.err)) {
    EXPECT_FALSE(roadie::testing::exists(pid)) << name << " (pid " << pid << ") survived";
  }
}

TEST_F(CliTest, RunKeepsTheServiceLogsInTheStateDirectory) {
  roadie::testing::TempDir dir;
  const Result result = roadie_cli(
      {"run", "-f", stack("good.yaml"), "--state", dir.path().string(), "--", "/bin/true"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(read_file(dir.path() / "logs" / "db.log"), HasSubstr("listening"));
  EXPECT_THAT(read_file(dir.path() / "logs" / "api.log"), HasSubstr("api up"));
}

TEST_F(CliTest, RunDefaultsTheStateDirectoryToDotRoadieBesideTheStackFile) {
  roadie::testing::TempDir dir;
  fs::copy_file(kStacks / "good.yaml", dir.path() / "roadie.yaml");
  const Result result = roadie_cli({"run", "-f", (dir.path() / "roadie.yaml").string(), "--",
                                    "/bin/sh", "-c", "echo $ROADIE_STATE"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out, (dir.path() / ".roadie").string() + "\n");
  EXPECT_TRUE(fs::exists(dir.path() / ".roadie" / "logs" / "db.log"));
}

TEST_F(CliTest, SigtermToRunIsForwardedToTheCommandAndNoProcessSurvives) {
  roadie::testing::TempDir dir;
  const fs::path cmd_pid = dir.path() / "cmd.pid";
  Roadie roadie({"run", "-f", stack("good.yaml"), "--state", dir.path().string(), "--", "/bin/sh",
                 "-c",
                 "echo $$ > " + cmd_pid.string() + ".tmp && mv " + cmd_pid.string() + ".tmp " +
                     cmd_pid.string() + " && exec \"$CHILD_IDLE\""});
  ASSERT_TRUE(roadie::testing::wait_for_file(cmd_pid, 30s));
  const pid_t command = roadie::testing::read_pid(cmd_pid);
  ASSERT_GT(command, 0);
  ASSERT_EQ(::kill(roadie.pid(), SIGTERM), 0);
  const Result result = roadie.finish();
  EXPECT_EQ(result.code, 128 + SIGTERM) << result.err;
  const auto pids = ready_pids(result.err);
  EXPECT_EQ(pids.size(), 3U) << result.err;
  EXPECT_FALSE(roadie::testing::exists(command)) << "CMD survived";
  // roadie tore the stack down itself before exiting (its runtime's watchdog
  // and this test's own cleanup would also end the services).
  for (const char* name : {"db", "cache", "api"}) {
    EXPECT_THAT(result.err, HasSubstr(std::string("roadie: stopped ") + name + " ("));
  }
  for (const auto& [name, pid] : pids) {
    EXPECT_FALSE(roadie::testing::exists(pid)) << name << " (pid " << pid << ") survived";
  }
}

// --- up (foreground) -------------------------------------------------------

TEST_F(CliTest, UpKeepsTheStackUpUntilSigtermThenTearsItDown) {
  roadie::testing::TempDir dir;
  Roadie roadie({"up", "-f", stack("good.yaml"), "--state", dir.path().string()});
  ASSERT_TRUE(roadie.output().wait_for("^ROADIE_STATE=", 30s)) << roadie.output().excerpt();
  const auto up_pids = ready_pids(roadie.output().text(roadie::Stream::err));
  ASSERT_EQ(up_pids.size(), 3U);
  for (const auto& [name, pid] : up_pids) EXPECT_TRUE(roadie::testing::exists(pid)) << name;
  ASSERT_EQ(::kill(roadie.pid(), SIGTERM), 0);
  const Result result = roadie.finish();
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, ::testing::ContainsRegex("ROADIE_PORT_DB=[0-9]+"));
  for (const char* name : {"db", "cache", "api"}) {
    EXPECT_THAT(result.err, HasSubstr(std::string("roadie: stopped ") + name + " ("));
  }
  for (const auto& [name, pid] : up_pids) {
    EXPECT_FALSE(roadie::testing::exists(pid)) << name << " (pid " << pid << ") survived";
  }
}

TEST_F(CliTest, UpExitsThreeWhenTheBringUpFails) {
  roadie::testing::TempDir dir;
  const Result result =
      roadie_cli({"up", "-f", stack("failing.yaml"), "--state", dir.path().string()});
  EXPECT_EQ(result.code, 3);
  EXPECT_THAT(result.err, HasSubstr("[stderr] disk 42 on fire"));
}

}  // namespace
