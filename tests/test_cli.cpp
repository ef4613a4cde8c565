// The `roadie` command as a black box: run the built executable, check its
// exit code, stdout and stderr (DESIGN.md, "The roadie command"). Services are
// the child programs of tests/resources, named to the stack files in
// tests/stacks/cli/ through ${env.CHILD_*}.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "roadie/command.hpp"
#include "roadie/executor.hpp"
#include "roadie/runtime.hpp"
#include "test_support.hpp"

extern char** environ;

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
using Env = std::vector<std::pair<std::string, std::string>>;

class Roadie {
 public:
  explicit Roadie(std::vector<std::string> args, const Env& env = {})
      : executor_(make(std::move(args), env)) {
    try {
      executor_.start();  // ready once spawned
    } catch (const roadie::ProcessExitedWithError& e) {
      early_exit_ = e.status();  // a usage error can end it before start() returns
    }
  }
  pid_t pid() const { return executor_.pid(); }
  bool running() const { return executor_.running(); }
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
  static roadie::Executor make(std::vector<std::string> args, const Env& env) {
    args.insert(args.begin(), ROADIE_CLI);
    roadie::Command command(std::move(args));
    command.set_env("CHILD_LISTEN", child("child_listen"))
        .set_env("CHILD_BANNER", child("child_banner"))
        .set_env("CHILD_EXIT", child("child_exit"))
        .set_env("CHILD_IDLE", child("child_idle"))
        .unset_env("NO_COLOR");
    for (const auto& [name, value] : env) command.set_env(name, value);
    roadie::ExecutorOptions options;
    options.name = "roadie";
    options.stop_timeout = 20s;
    return roadie::Executor(std::move(command), options);
  }
  roadie::Executor executor_;
  std::optional<roadie::ExitStatus> early_exit_;
};

Result roadie_cli(std::vector<std::string> args, const Env& env = {}) {
  return Roadie(std::move(args), env).finish();
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
      {"down", "Tear down the stack", "roadie down --state build/.roadie"},
      {"status", "not ours", "roadie status --json"},
      {"logs", "--follow", "roadie logs --follow redis"},
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
      {{}, "roadie: no verb given (verbs: check, graph, run, up, down, status, logs)"},
      {{"frobnicate"},
       "roadie: unknown verb 'frobnicate' (verbs: check, graph, run, up, down, status, logs)"},
      {{"--bogus"}, "roadie: unknown option '--bogus'"},
      {{"check", "--bogus"}, "roadie check: unknown option '--bogus'"},
      {{"check", "extra"}, "roadie check: unexpected argument 'extra'"},
      {{"graph", "--format"}, "roadie graph: --format: 1 required TEXT:{dot,text} missing"},
      {{"graph", "--format", "svg"}, "roadie graph: --format: svg not in {dot,text}"},
      {{"check", "-f"}, "roadie check: --file: 1 required TEXT missing"},
      {{"run"}, "roadie run: command is required"},
      {{"logs"}, "roadie logs: service is required"},
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

// --- the live display on a terminal -------------------------------------------

struct TerminalRun {
  int code = -1000;
  std::string screen;  // every byte roadie wrote to the terminal
};

// `roadie ARGS` on a pseudo-terminal (forkpty: stdin, stdout and stderr are
// its slave, 120 columns), NO_COLOR set or not; bounded to 60 s.
TerminalRun roadie_on_terminal(std::vector<std::string> args, bool no_color) {
  args.insert(args.begin(), ROADIE_CLI);
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    if (text.rfind("NO_COLOR=", 0) != 0 && text.rfind("TERM=", 0) != 0) environment.push_back(text);
  }
  environment.push_back("TERM=xterm");
  if (no_color) environment.push_back("NO_COLOR=1");
  for (const char* name : {"child_listen", "child_banner", "child_exit"}) {
    std::string upper = name;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    environment.push_back(upper + "=" + child(name));
  }
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  winsize size{};
  size.ws_row = 40;
  size.ws_col = 120;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
  if (pid == 0) {
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  TerminalRun run;
  if (pid < 0) {
    ADD_FAILURE() << "forkpty: " << std::strerror(errno);
    return run;
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool exited = false;
  int status = 0;
  for (;;) {
    pollfd fd{master, POLLIN, 0};
    if (::poll(&fd, 1, 50) > 0) {
      char buffer[4096];
      const ssize_t n = ::read(master, buffer, sizeof buffer);
      if (n > 0) {
        run.screen.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (exited) break;  // EIO: every slave descriptor is closed
    } else if (exited) {
      break;  // exited and nothing more to read
    }
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    if (!exited && std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "roadie on a terminal did not exit within 60 s";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      exited = true;
    }
  }
  ::close(master);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return run;
}

// The screen's text: escape sequences and carriage returns removed.
std::string plain_text(const std::string& screen) {
  return std::regex_replace(screen, std::regex("\x1b\\[[0-9;]*[A-Za-z]|\r"), "");
}

const std::regex kColour("\x1b\\[[0-9;]*m");

TEST_F(CliTest, OnATerminalEachServiceHasALiveLineRedrawnInPlace) {
  roadie::testing::TempDir dir;
  for (const bool no_color : {true, false}) {
    SCOPED_TRACE(no_color ? "NO_COLOR=1" : "colour");
    const TerminalRun run = roadie_on_terminal(
        {"run", "-f", stack("good.yaml"), "--state", dir.path().string(), "--", "true"}, no_color);
    EXPECT_EQ(run.code, 0) << run.screen;
    // Redrawn in place: back to the start of the line, erase it, and up
    // over the lines drawn before.
    EXPECT_THAT(run.screen, HasSubstr("\r\x1b[2K  db "));
    EXPECT_THAT(run.screen, ::testing::ContainsRegex("\x1b\\[4A"));
    const std::string text = plain_text(run.screen);
    EXPECT_THAT(text, ::testing::ContainsRegex("  api +waiting for db, seed\n"));
    EXPECT_THAT(text, ::testing::ContainsRegex("  db +starting \\([0-9]+\\.[0-9]{2} s\\)\n"));
    for (const char* name : {"db", "cache", "api"}) {
      EXPECT_THAT(text, ::testing::ContainsRegex(std::string("  ") + name +
                                                 " +ready in [0-9]+\\.[0-9]{2} s \\(pid [0-9]+\\)\n"));
    }
    EXPECT_THAT(text, ::testing::ContainsRegex("  seed +done in [0-9]+\\.[0-9]{2} s\n"));
    // No timestamped lines on a terminal: those are for logs.
    EXPECT_THAT(text, Not(::testing::ContainsRegex("[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} db")));
    if (no_color) {
      EXPECT_FALSE(std::regex_search(run.screen, kColour)) << "a colour code despite NO_COLOR";
    } else {
      EXPECT_THAT(run.screen, HasSubstr("\x1b[32mready in "));  // green
    }
  }
}

TEST_F(CliTest, OnATerminalAFailedServiceShowsFailedOnItsLine) {
  roadie::testing::TempDir dir;
  const TerminalRun run = roadie_on_terminal(
      {"run", "-f", stack("failing.yaml"), "--state", dir.path().string(), "--", "true"}, true);
  EXPECT_EQ(run.code, 3) << run.screen;
  const std::string text = plain_text(run.screen);
  EXPECT_THAT(text, ::testing::ContainsRegex("  broken +failed: [^\n]*exited with code 3"));
  EXPECT_THAT(text, ::testing::ContainsRegex("  api +skipped"));
  EXPECT_FALSE(std::regex_search(run.screen, kColour));
}

// --- an empty stack ----------------------------------------------------------

TEST_F(CliTest, AnEmptyStackIsValidAndRunRunsTheCommandAlone) {
  for (const char* file : {"empty.yaml", "empty_services.yaml"}) {
    SCOPED_TRACE(file);
    const Result checked = roadie_cli({"check", "-f", stack(file)});
    EXPECT_EQ(checked.code, 0) << checked.err;
    EXPECT_EQ(checked.out, stack(file) + ": 0 services, 0 jobs, 0 ports\n");
    roadie::testing::TempDir dir;
    const Result ran = roadie_cli({"run", "-f", stack(file), "--state", dir.path().string(), "--",
                                   "/bin/sh", "-c", "echo state=$ROADIE_STATE; exit 5"});
    EXPECT_EQ(ran.code, 5) << ran.err;
    EXPECT_EQ(ran.out, "state=" + dir.path().string() + "\n");
    const Result trivial =
        roadie_cli({"run", "-f", stack(file), "--state", dir.path().string(), "--", "true"});
    EXPECT_EQ(trivial.code, 0) << trivial.err;
    const Result missing = roadie_cli({"run", "-f", stack(file), "--state", dir.path().string(),
                                       "--", "no-such-program-xyz"});
    EXPECT_EQ(missing.code, 127);
    EXPECT_THAT(missing.err, HasSubstr("roadie run: cannot execute 'no-such-program-xyz': No "
                                       "such file or directory"));
  }
}

// --- run --isolate -----------------------------------------------------------

// Whether this machine lets a process make a network namespace (root, or
// unprivileged user namespaces): asked of a forked child, which exits.
bool network_namespaces_work() {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int flags = ::geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET;
    ::_exit(::unshare(flags) == 0 ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool port_answers(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

TEST_F(CliTest, IsolatedRunsOfAStackWithAFixedPortRunSideBySide) {
  if (!network_namespaces_work()) {
    GTEST_SKIP() << "this machine creates no network namespace (not root, and unprivileged "
                    "user namespaces are disabled)";
  }
  roadie::testing::TempDir dir;
  // The "fixed" port: reserved here, so no other test takes it meanwhile.
  const roadie::PortReservation fixed = roadie::testing::free_port();
  const Env env = {{"FIXED_PORT", std::to_string(fixed.port().value())}};
  const fs::path go = dir.path() / "go";
  // Each CMD says it is up, then waits (bounded) for the test's go.
  const auto cmd = [&](const std::string& name) {
    return std::vector<std::string>{
        "/bin/sh", "-c",
        "touch " + (dir.path() / name).string() + "; i=0; while [ ! -e " + go.string() +
            " ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done"};
  };
  const auto args = [&](std::vector<std::string> head, const std::string& name) {
    head.push_back("--state");
    head.push_back((dir.path() / (name + ".state")).string());
    head.push_back("--");
    for (auto& word : cmd(name)) head.push_back(word);
    return head;
  };
  {
    // --isolate on the command line, and `isolate: network` in the file.
    Roadie a(args({"run", "--isolate", "-f", stack("fixed_port.yaml")}, "a"), env);
    Roadie b(args({"run", "-f", stack("fixed_port_isolated.yaml")}, "b"), env);
    ASSERT_TRUE(roadie::testing::wait_for_file(dir.path() / "a", 60s)) << a.output().excerpt();
    ASSERT_TRUE(roadie::testing::wait_for_file(dir.path() / "b", 60s)) << b.output().excerpt();
    // Both serve the port, each in its own namespace; the host's is free.
    EXPECT_FALSE(port_answers(fixed.port().value()));
    std::ofstream(go).put('\n');
    const Result ra = a.finish();
    const Result rb = b.finish();
    EXPECT_EQ(ra.code, 0) << ra.err;
    EXPECT_EQ(rb.code, 0) << rb.err;
    EXPECT_EQ(ready_pids(ra.err).size(), 1U) << ra.err;
    EXPECT_EQ(ready_pids(rb.err).size(), 1U) << rb.err;
  }
  // Without isolation the second meets the first's port.
  fs::remove(go);
  Roadie c(args({"run", "-f", stack("fixed_port.yaml")}, "c"), env);
  ASSERT_TRUE(roadie::testing::wait_for_file(dir.path() / "c", 60s)) << c.output().excerpt();
  EXPECT_TRUE(port_answers(fixed.port().value()));
  const Result d = roadie_cli(args({"run", "-f", stack("fixed_port.yaml")}, "d"), env);
  EXPECT_EQ(d.code, 3) << d.err;
  EXPECT_THAT(d.err, HasSubstr("is already served by another process")) << d.err;
  EXPECT_FALSE(fs::exists(dir.path() / "d"));
  std::ofstream(go).put('\n');
  EXPECT_EQ(c.finish().code, 0);
}

// Whether an unprivileged user (nobody) may make a user and a network
// namespace here, reach what the test runs (roadie, the stack file, the
// child program, `dir`), and setpriv is there to become one.
bool unprivileged_namespaces_work(const fs::path& dir) {
  if (::access("/usr/bin/setpriv", X_OK) != 0) return false;
  const std::string cli = ROADIE_CLI;
  const std::string file = stack("fixed_port.yaml");
  const std::string listen = child("child_listen");
  const std::string where = dir.string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    if (::access(cli.c_str(), X_OK) != 0 || ::access(file.c_str(), R_OK) != 0 ||
        ::access(listen.c_str(), X_OK) != 0 || ::access(where.c_str(), W_OK | X_OK) != 0) {
      ::_exit(3);
    }
    ::_exit(::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST_F(CliTest, AnUnprivilegedIsolatedRunGetsAUserAndNetworkNamespace) {
  roadie::testing::TempDir dir;
  fs::permissions(dir.path(), fs::perms::all);  // nobody writes its state here
  if (!unprivileged_namespaces_work(dir.path())) {
    GTEST_SKIP() << "no /usr/bin/setpriv, the build or source tree is out of nobody's reach, "
                    "or unprivileged user namespaces are disabled here";
  }
  // The host's loopback serves the "fixed" port already: only a namespace of
  // its own lets the stack's service listen on it.
  const roadie::PortReservation fixed = roadie::testing::free_port();
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(fixed.port().value()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  // roadie as nobody, through setpriv (which execs it, environment kept).
  roadie::Command command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                           "--clear-groups", ROADIE_CLI, "run", "--isolate", "-f",
                           stack("fixed_port.yaml"), "--state", (dir.path() / "state").string(),
                           "--", "/bin/sh", "-c", "id -u; cat /proc/self/uid_map"});
  command.set_env("CHILD_LISTEN", child("child_listen"))
      .set_env("FIXED_PORT", std::to_string(fixed.port().value()))
      .unset_env("NO_COLOR");
  roadie::ExecutorOptions options;
  options.name = "roadie-as-nobody";
  options.stop_timeout = 20s;
  roadie::Executor executor(std::move(command), options);
  Result result;
  try {
    executor.start();
    const auto status = executor.wait_for_exit(60s);
    EXPECT_TRUE(status.has_value()) << "roadie did not exit within 60 s";
    if (status) result.code = status->code();
    executor.stop();
  } catch (const roadie::ProcessExitedWithError& e) {
    result.code = e.status().code();
  } catch (const roadie::ProcessFinishedWithError&) {
  }
  for (const auto& line : executor.output().lines()) {
    (line.stream == roadie::Stream::out ? result.out : result.err) += line.text + "\n";
  }
  ::close(listener);
  EXPECT_EQ(result.code, 0) << result.err;
  // nobody, in a user namespace that maps only nobody.
  EXPECT_THAT(result.out, ::testing::MatchesRegex("65534\n +65534 +65534 +1\n")) << result.out;
  EXPECT_THAT(result.err, ::testing::ContainsRegex("web ready in")) << result.err;
}

// --- up --detach, status, logs, down ---------------------------------------

// /proc/PID/stat: the state letter and field 22 (the start time); none when
// there is no such process.
std::optional<std::pair<char, unsigned long long>> proc_stat(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  char state = 0;
  fields >> state;
  std::string field;
  for (int number = 4; number < 22; ++number) fields >> field;
  unsigned long long start = 0;
  fields >> start;
  return std::make_pair(state, start);
}

// Gone: no such process, or a zombie (reaped here when it is our child: this
// test binary is a child subreaper, so it adopts what a dead supervisor left).
bool gone(pid_t pid) {
  auto stat = proc_stat(pid);
  if (stat && stat->first == 'Z') {
    ::waitpid(pid, nullptr, WNOHANG);
    return true;
  }
  return !stat;
}

bool gone_within(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!gone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

using roadie::testing::reap_adopted;

struct Recorded {
  pid_t supervisor = -1;
  int http_port = 0;
  std::string token;
  std::map<std::string, pid_t> services;
};

Recorded recorded(const fs::path& state_dir) {
  const std::string text = read_file(state_dir / "state.json");
  Recorded r;
  std::smatch match;
  if (std::regex_search(text, match, std::regex(R"("supervisor": \{\s*"pid": (\d+))"))) {
    r.supervisor = std::stoi(match[1]);
  }
  if (std::regex_search(text, match,
                        std::regex(R"re("port": (\d+),\s*"token": "([0-9a-f]+)")re"))) {
    r.http_port = std::stoi(match[1]);
    r.token = match[2];
  }
  static const std::regex service(R"re("name": "([^"]+)",\s*"pid": (\d+))re");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), service);
       it != std::sregex_iterator(); ++it) {
    r.services[(*it)[1]] = std::stoi((*it)[2]);
  }
  return r;
}

// A plain HTTP/1.0 request to 127.0.0.1:PORT; {status, body}, status 0 when
// nothing answered.
std::pair<int, std::string> http_get(int port, const std::string& path,
                                     const std::string& token = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return {0, ""};
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  request += "\r\n";
  [[maybe_unused]] auto sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, n);
  ::close(fd);
  std::smatch match;
  if (!std::regex_search(response, match, std::regex(R"(^HTTP/1\.[01] (\d+))"))) return {0, ""};
  const auto body = response.find("\r\n\r\n");
  return {std::stoi(match[1]), body == std::string::npos ? "" : response.substr(body + 4)};
}

// `roadie` run by a plain fork and exec, its output in files: what `up
// --detach` leaves behind must not look like a service's daemon to this test
// binary's runtime (a child subreaper that adopts and stops, with the service
// that was running when they started, the orphans re-parented to it).
Result roadie_plain(std::vector<std::string> args, const fs::path& dir,
                    const std::vector<std::string>& extra_env = {}) {
  args.insert(args.begin(), ROADIE_CLI);
  std::map<std::string, std::string> env;
  for (const std::string& entry : extra_env) {
    env[entry.substr(0, entry.find('='))] = entry.substr(entry.find('=') + 1);
  }
  for (const char* name :
       {"child_listen", "child_banner", "child_exit", "child_idle", "child_daemon"}) {
    std::string upper = name;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    env.emplace(upper, child(name));
  }
  const roadie::testing::PlainRun run = roadie::testing::run_plain(args, env, dir, {"NO_COLOR"});
  Result result;
  result.code = run.code;
  result.out = run.out;
  result.err = run.err;
  return result;
}

TEST_F(CliTest, AnEmptyStacksRunPassesSignalsOnAndItsCommandDiesWithIt) {
  roadie::testing::TempDir dir;
  const fs::path cmd_pid = dir.path() / "cmd.pid";
  const std::vector<std::string> args = {
      "run", "-f", stack("empty.yaml"), "--state", (dir.path() / "state").string(), "--",
      "/bin/sh", "-c",
      "echo $$ > " + cmd_pid.string() + ".tmp && mv " + cmd_pid.string() + ".tmp " +
          cmd_pid.string() + " && exec \"$CHILD_IDLE\""};
  {
    // SIGTERM to roadie reaches CMD; roadie exits with CMD's death.
    Roadie roadie(args);
    ASSERT_TRUE(roadie::testing::wait_for_file(cmd_pid, 30s));
    const pid_t command = roadie::testing::read_pid(cmd_pid);
    ASSERT_GT(command, 0);
    ASSERT_EQ(::kill(roadie.pid(), SIGTERM), 0);
    const Result result = roadie.finish();
    EXPECT_EQ(result.code, 128 + SIGTERM) << result.err;
    EXPECT_FALSE(roadie::testing::exists(command)) << "CMD survived";
  }
  fs::remove(cmd_pid);
  {
    // A roadie killed outright takes CMD with it.
    Roadie roadie(args);
    ASSERT_TRUE(roadie::testing::wait_for_file(cmd_pid, 30s));
    const pid_t command = roadie::testing::read_pid(cmd_pid);
    ASSERT_GT(command, 0);
    ASSERT_EQ(::kill(roadie.pid(), SIGKILL), 0);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (roadie::testing::exists(command) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_FALSE(roadie::testing::exists(command)) << "CMD outlived a SIGKILLed roadie";
    roadie.finish();
  }
}

// --- one owner per state directory -------------------------------------------

TEST_F(CliTest, ASecondRunOrUpIntoTheStateDirectoryOfARunningOneIsRefusedNamingIt) {
  roadie::testing::TempDir dir;
  const fs::path state = dir.path() / "state";
  const fs::path up = dir.path() / "up";
  const fs::path go = dir.path() / "go";
  // The first holds its stack up until the test says go (bounded: 60 s).
  Roadie first({"run", "-f", stack("good.yaml"), "--state", state.string(), "--", "/bin/sh", "-c",
                "touch " + up.string() + "; i=0; while [ ! -e " + go.string() +
                    " ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done"});
  ASSERT_TRUE(roadie::testing::wait_for_file(up, 60s)) << first.output().excerpt();
  const std::string named = "a stack is already running in " + state.string() + ": " +
                            stack("good.yaml") + " (roadie run, pid " +
                            std::to_string(first.pid()) + ")";
  // A killed supervisor's state file left there does not name the holder.
  std::ofstream(state / "state.json")
      << "{\"version\": 1, \"stack_file\": \"/x/roadie.yaml\", \"stack_hash\": \"\",\n"
         " \"supervisor\": {\"pid\": 999999999, \"start_time\": 1}, \"started_at\": 0,\n"
         " \"http\": {\"host\": \"127.0.0.1\", \"port\": 1, \"token\": \"t\"}, \"services\": []}\n";
  for (const std::vector<std::string>& second :
       {std::vector<std::string>{"run", "-f", stack("empty.yaml"), "--state", state.string(), "--",
                                 "/bin/sh", "-c", "echo ran"},
        std::vector<std::string>{"up", "-f", stack("empty.yaml"), "--state", state.string()}}) {
    SCOPED_TRACE(second.front());
    const Result refused = roadie_cli(second);
    EXPECT_EQ(refused.code, 3) << refused.err;
    EXPECT_EQ(refused.out, "");  // CMD never ran, no stack came up
    EXPECT_THAT(refused.err, HasSubstr("roadie " + second.front() + ": " + named)) << refused.err;
  }
  const Result detached = roadie_plain(
      {"up", "--detach", "-f", stack("empty.yaml"), "--state", state.string()}, dir.path());
  EXPECT_EQ(detached.code, 3) << detached.err;
  EXPECT_THAT(detached.err, HasSubstr(named));
  // The first is untouched, and the state directory is free again after it.
  EXPECT_TRUE(first.running());
  std::ofstream(go).put('\n');
  const Result done = first.finish();
  EXPECT_EQ(done.code, 0) << done.err;
  const Result after =
      roadie_cli({"run", "-f", stack("empty.yaml"), "--state", state.string(), "--", "true"});
  EXPECT_EQ(after.code, 0) << after.err;
}

TEST_F(CliTest, RunRecordsItsStackInTheStateFileWhileCmdRuns) {
  roadie::testing::TempDir dir;
  const fs::path state = dir.path() / "state";
  Roadie roadie({"run", "-f", stack("good.yaml"), "--state", state.string(), "--", "/bin/sh", "-c",
                 "\"$ROADIE\" status --state \"$ROADIE_STATE\"; cat \"$ROADIE_STATE/state.json\""},
                {{"ROADIE", ROADIE_CLI}});
  const pid_t pid = roadie.pid();
  const Result result = roadie.finish();
  EXPECT_EQ(result.code, 0) << result.err;
  // What `status` (and a GoogleTest binary attaching through ROADIE_STATE) sees.
  EXPECT_THAT(result.out, HasSubstr(stack("good.yaml") + ": supervisor pid " +
                                    std::to_string(pid) + " running\n"));
  EXPECT_THAT(result.out, ::testing::ContainsRegex("db +running +pid [0-9]+ +up [0-9]+ s +db=[0-9]+"));
  EXPECT_THAT(result.out, ::testing::ContainsRegex("\"supervisor\": \\{\\s*\"pid\": " +
                                                   std::to_string(pid) + ","));
  EXPECT_FALSE(fs::exists(state / "state.json")) << "the state file outlived the run";
}

TEST_F(CliTest, DownStopsAForegroundUp) {
  roadie::testing::TempDir dir;
  const fs::path state = dir.path() / "state";
  Roadie up({"up", "-f", stack("good.yaml"), "--state", state.string()});
  ASSERT_TRUE(up.output().wait_for("^ROADIE_STATE=", 30s)) << up.output().excerpt();
  const auto pids = ready_pids(up.output().text(roadie::Stream::err));
  ASSERT_EQ(pids.size(), 3U);
  const Result downed = roadie_cli({"down", "--state", state.string()});
  EXPECT_EQ(downed.code, 0) << downed.err;
  const Result result = up.finish();
  EXPECT_EQ(result.code, 0) << result.err;
  for (const char* name : {"db", "cache", "api"}) {
    EXPECT_THAT(result.err, HasSubstr(std::string("roadie: stopped ") + name + " ("));
  }
  for (const auto& [name, pid] : pids) {
    EXPECT_FALSE(roadie::testing::exists(pid)) << name << " (pid " << pid << ") survived";
  }
  EXPECT_FALSE(fs::exists(state / "state.json"));
}

TEST_F(CliTest, AForegroundUpHoldsItsStateDirectory) {
  roadie::testing::TempDir dir;
  const fs::path state = dir.path() / "state";
  Roadie up({"up", "-f", stack("empty.yaml"), "--state", state.string()});
  ASSERT_TRUE(up.output().wait_for("^ROADIE_STATE=", 30s)) << up.output().excerpt();
  const Result refused =
      roadie_cli({"run", "-f", stack("empty.yaml"), "--state", state.string(), "--", "true"});
  EXPECT_EQ(refused.code, 3);
  EXPECT_THAT(refused.err, HasSubstr("already running in " + state.string() + ": " +
                                     stack("empty.yaml") + " (roadie up, pid " +
                                     std::to_string(up.pid()) + ")"));
  ASSERT_EQ(::kill(up.pid(), SIGTERM), 0);
  EXPECT_EQ(up.finish().code, 0);
}

class CliDetachTest : public CliTest {
 protected:
  void TearDown() override {
    // Whatever a failed test left running.
    if (fs::exists(state_ / "state.json")) roadie_cli({"down", "--state", state_.string()});
    reap_adopted();
    CliTest::TearDown();
  }
  Result up() {
    return roadie_plain({"up", "--detach", "-f", stack("good.yaml"), "--state", state_.string()},
                        dir_.path());
  }
  roadie::testing::TempDir dir_;
  fs::path state_ = dir_.path() / "state";
};

TEST_F(CliDetachTest, UpDetachStatusLogsDownLeavesNoProcess) {
  const Result started = up();
  ASSERT_EQ(started.code, 0) << started.err;
  EXPECT_THAT(started.out, ::testing::ContainsRegex("ROADIE_PORT_DB=[0-9]+"));
  EXPECT_THAT(started.out, HasSubstr("ROADIE_STATE=" + state_.string() + "\n"));
  struct stat info {};
  ASSERT_EQ(::stat((state_ / "state.json").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600U);
  const Recorded r = recorded(state_);
  ASSERT_EQ(r.services.size(), 3U) << read_file(state_ / "state.json");
  ASSERT_GT(r.supervisor, 0);
  for (const auto& [name, pid] : r.services) EXPECT_FALSE(gone(pid)) << name;

  const Result text = roadie_cli({"status", "--state", state_.string()});
  EXPECT_EQ(text.code, 0) << text.err;
  for (const auto& [name, pid] : r.services) {
    EXPECT_THAT(text.out, ::testing::ContainsRegex(name + " +running +pid " + std::to_string(pid) +
                                                   " +up [0-9]+ s"));
  }
  EXPECT_THAT(text.out, ::testing::ContainsRegex("db +running .* db=[0-9]+"));

  const Result json = roadie_cli({"status", "--state", state_.string(), "--json"});
  EXPECT_EQ(json.code, 0) << json.err;
  for (const auto& [name, pid] : r.services) {
    EXPECT_THAT(json.out, ::testing::ContainsRegex("\"name\": \"" + name +
                                                   "\",\\s*\"state\": \"running\",\\s*\"pid\": " +
                                                   std::to_string(pid) + ","));
  }
  EXPECT_THAT(json.out, ::testing::ContainsRegex("\"uptime_s\": [0-9]+"));

  const Result logs = roadie_cli({"logs", "--state", state_.string(), "api"});
  EXPECT_EQ(logs.code, 0) << logs.err;
  EXPECT_THAT(logs.out, HasSubstr("api up"));
  const Result unknown = roadie_cli({"logs", "--state", state_.string(), "nope"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("no service 'nope' (services: db, cache, api)"));

  const Result downed = roadie_cli({"down", "--state", state_.string()});
  EXPECT_EQ(downed.code, 0) << downed.err;
  for (const auto& [name, pid] : r.services) {
    EXPECT_TRUE(gone_within(pid, 10s)) << name << " (pid " << pid << ") survived down";
  }
  EXPECT_TRUE(gone_within(r.supervisor, 10s)) << "the supervisor survived down";
  EXPECT_FALSE(fs::exists(state_ / "state.json"));
  const Result after = roadie_cli({"status", "--state", state_.string()});
  EXPECT_EQ(after.code, 0);
  EXPECT_THAT(after.out, HasSubstr("nothing is running"));
  const Result after_json = roadie_cli({"status", "--state", state_.string(), "--json"});
  EXPECT_EQ(after_json.code, 0);
  EXPECT_THAT(after_json.out,
              ::testing::ContainsRegex("\"supervisor\": null,\\s*\"services\": \\[\\]"));
}

TEST_F(CliDetachTest, ASecondUpIntoTheSameStateDirectoryIsRefusedNamingTheRunningOne) {
  const Result first = up();
  ASSERT_EQ(first.code, 0) << first.err;
  const Recorded r = recorded(state_);
  const Result second = up();
  EXPECT_EQ(second.code, 3);
  EXPECT_THAT(second.err, HasSubstr("already running in " + state_.string()));
  EXPECT_THAT(second.err, HasSubstr(stack("good.yaml")));
  EXPECT_THAT(second.err, HasSubstr("supervisor pid " + std::to_string(r.supervisor)));
  // The first is untouched.
  EXPECT_EQ(recorded(state_).supervisor, r.supervisor);
  for (const auto& [name, pid] : r.services) EXPECT_FALSE(gone(pid)) << name;
  EXPECT_EQ(roadie_cli({"down", "--state", state_.string()}).code, 0);
}

// The state file's text for one service `db` at `pid` started at `start`,
// under a supervisor at `supervisor` started at `supervisor_start` (by
// default one that is gone).
std::string hand_made_state(pid_t pid, const std::string& start, pid_t supervisor = 999999999,
                            const std::string& supervisor_start = "1") {
  return "{\"version\": 1, \"stack_file\": \"/x/roadie.yaml\", \"stack_hash\": \"\",\n"
         " \"supervisor\": {\"pid\": " +
         std::to_string(supervisor) + ", \"start_time\": " + supervisor_start +
         "},\n"
         " \"started_at\": 0, \"http\": {\"host\": \"127.0.0.1\", \"port\": 1, \"token\": "
         "\"t\"},\n \"services\": [{\"name\": \"db\", \"pid\": " +
         std::to_string(pid) + ", \"start_time\": " + start +
         ", \"started_at\": 0, \"ports\": {}, \"log\": \"\", \"stop_timeout_ms\": 2000, "
         "\"stop_signal\": 15}]}\n";
}

TEST_F(CliDetachTest, ARecordedPidWithAnotherStartTimeIsNotOursAndNeverSignalled) {
  // Another live process under a recorded pid: the kernel reused it.
  roadie::Executor other(roadie::Command({child("child_idle")}));
  other.start();
  const pid_t pid = other.pid();
  const auto stat = proc_stat(pid);
  ASSERT_TRUE(stat);
  const std::string wrong = std::to_string(stat->second + 4242);
  fs::create_directories(state_ / "logs");
  std::ofstream(state_ / "state.json") << hand_made_state(pid, wrong, pid, wrong);
  const Result json = roadie_cli({"status", "--state", state_.string(), "--json"});
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_THAT(json.out, ::testing::ContainsRegex("\"name\": \"db\",\\s*\"state\": \"not ours\""));
  EXPECT_THAT(json.out,
              ::testing::ContainsRegex("\"supervisor\": \\{[^}]*\"state\": \"not ours\""));
  const Result downed = roadie_cli({"down", "--state", state_.string()});
  EXPECT_EQ(downed.code, 0) << downed.err;
  EXPECT_THAT(downed.err, HasSubstr("pid " + std::to_string(pid) + " is another process now"));
  std::this_thread::sleep_for(200ms);  // a signal, had one been sent, has landed
  EXPECT_TRUE(other.running()) << "down signalled a process that is not ours";
  EXPECT_FALSE(fs::exists(state_ / "state.json"));
  other.stop();
}

TEST_F(CliDetachTest, DownWithoutASupervisorStopsTheRecordedServicesDirectly) {
  roadie::Executor service(roadie::Command({child("child_idle")}));
  service.start();
  const pid_t pid = service.pid();
  const auto stat = proc_stat(pid);
  ASSERT_TRUE(stat);
  fs::create_directories(state_);
  std::ofstream(state_ / "state.json") << hand_made_state(pid, std::to_string(stat->second));
  const Result json = roadie_cli({"status", "--state", state_.string(), "--json"});
  EXPECT_THAT(json.out, ::testing::ContainsRegex("\"name\": \"db\",\\s*\"state\": \"running\""));
  const Result downed = roadie_cli({"down", "--state", state_.string()});
  EXPECT_EQ(downed.code, 0) << downed.err;
  EXPECT_THAT(downed.err, HasSubstr("the supervisor (pid 999999999) is gone"));
  EXPECT_THAT(downed.err, HasSubstr("stopped db (pid " + std::to_string(pid) + ")"));
  const auto status = service.wait_for_exit(10s);
  ASSERT_TRUE(status) << "down left the recorded service running";
  EXPECT_EQ(status->signal(), SIGTERM);
  EXPECT_FALSE(fs::exists(state_ / "state.json"));
  try {
    service.stop();
  } catch (const roadie::ProcessFinishedWithError&) {
  }
}

TEST_F(CliDetachTest, LogsFollowPrintsUntilTheServiceStops) {
  const Result started = up();
  ASSERT_EQ(started.code, 0) << started.err;
  Roadie follow({"logs", "--state", state_.string(), "--follow", "api"});
  ASSERT_TRUE(follow.output().wait_for("api up", 10s)) << follow.output().excerpt();
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(follow.running()) << "--follow returned while api ran";
  EXPECT_EQ(roadie_cli({"down", "--state", state_.string()}).code, 0);
  const Result followed = follow.finish(20s);
  EXPECT_EQ(followed.code, 0) << followed.err;
  EXPECT_THAT(followed.out, HasSubstr("api up"));
}

using roadie::testing::marked_by;

// Each way of dying of the detached supervisor (a graceful SIGINT, SIGTERM or
// SIGHUP: it tears down; SIGKILL, SIGSEGV, SIGABRT: its runtime's watchdog
// does) leaves no service, not the daemonized one either, no process with
// its runtime's marker and no held port; `down` then cleans up what is left
// of the state, and the state directory takes a new stack.
class SupervisorDeath : public CliDetachTest, public ::testing::WithParamInterface<int> {};

TEST_P(SupervisorDeath, LeavesNoServiceNoMarkedProcessAndNoHeldPort) {
  const int signal = GetParam();
  // One of them daemonizes: no parent-death signal reaches it, only the
  // supervisor's teardown or its watchdog.
  const fs::path pidfile = dir_.path() / "daemon.pid";
  const std::vector<std::string> env = {"DAEMON_PIDFILE=" + pidfile.string()};
  const auto up_daemon = [&] {
    return roadie_plain({"up", "--detach", "-f", stack("daemon.yaml"), "--state", state_.string()},
                        dir_.path(), env);
  };
  const Result started = up_daemon();
  ASSERT_EQ(started.code, 0) << started.err;
  const Recorded r = recorded(state_);
  ASSERT_EQ(r.services.size(), 2U);
  std::smatch match;
  const std::string state_text = read_file(state_ / "state.json");
  ASSERT_TRUE(std::regex_search(state_text, match, std::regex(R"("ports": \{\s*"db": (\d+))")))
      << state_text;
  const roadie::Port port(std::stoi(match[1]));
  const pid_t daemon = roadie::testing::read_pid(pidfile);
  ASSERT_GT(daemon, 0);
  ASSERT_FALSE(gone(daemon));
  // Re-parented to the supervisor (a child subreaper), whose runtime looks
  // for orphans every 50 ms and hands them to its watchdog.
  const auto parent_of = [](pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream fields(stat.substr(stat.rfind(')') + 1));
    char state = 0;
    pid_t parent = 0;
    fields >> state >> parent;
    return parent;
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (parent_of(daemon) != r.supervisor && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(parent_of(daemon), r.supervisor);
  std::this_thread::sleep_for(300ms);
  ASSERT_FALSE(marked_by(r.supervisor).empty());
  ASSERT_EQ(::kill(r.supervisor, signal), 0);
  for (const auto& [name, pid] : r.services) {
    EXPECT_TRUE(gone_within(pid, 30s)) << name << " (pid " << pid << ") outlived its supervisor";
  }
  EXPECT_TRUE(gone_within(daemon, 30s))
      << "the daemon (pid " << daemon << ") outlived its supervisor";
  EXPECT_TRUE(gone_within(r.supervisor, 30s));
  const auto unmarked_by = std::chrono::steady_clock::now() + 20s;
  while (!marked_by(r.supervisor).empty() && std::chrono::steady_clock::now() < unmarked_by) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(marked_by(r.supervisor).empty())
      << "a process with the supervisor's marker outlived it";
  // Its reservation died with it: the port can be reserved again.
  bool free = false;
  for (auto until = std::chrono::steady_clock::now() + 20s;
       !free && std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(10ms)) {
    try {
      roadie::PortReservation::reserve_exact(port, "again");
      free = true;
    } catch (const roadie::Error&) {
    }
  }
  EXPECT_TRUE(free) << "port " << port.value() << " still held after the supervisor died by "
                    << roadie::signal_name(signal);
  const Result status = roadie_cli({"status", "--state", state_.string()});
  EXPECT_EQ(status.code, 0);
  if (fs::exists(state_ / "state.json")) {
    EXPECT_THAT(status.out, HasSubstr("supervisor pid " + std::to_string(r.supervisor) + " gone"));
  } else {
    EXPECT_THAT(status.out, HasSubstr("nothing is running"));  // it tore down itself
  }
  const Result downed = roadie_cli({"down", "--state", state_.string()});
  EXPECT_EQ(downed.code, 0) << downed.err;
  EXPECT_FALSE(fs::exists(state_ / "state.json"));
  // And the state directory takes a new stack.
  fs::remove(pidfile);
  const Result again = up_daemon();
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(roadie_cli({"down", "--state", state_.string()}).code, 0);
  EXPECT_TRUE(gone_within(roadie::testing::read_pid(pidfile), 10s));
}

INSTANTIATE_TEST_SUITE_P(EveryWay, SupervisorDeath,
                         ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGKILL, SIGSEGV, SIGABRT),
                         [](const auto& test) { return roadie::signal_name(test.param).substr(3); });

TEST_F(CliDetachTest, StatusAndDownWarnWhenTheStackFileChangedAndStillActOnTheRecordedPids) {
  const fs::path file = dir_.path() / "roadie.yaml";
  fs::copy_file(kStacks / "good.yaml", file);
  const Result started = roadie_plain(
      {"up", "--detach", "-f", file.string(), "--state", state_.string()}, dir_.path());
  ASSERT_EQ(started.code, 0) << started.err;
  const Recorded r = recorded(state_);
  ASSERT_EQ(r.services.size(), 3U);
  const Result unchanged = roadie_cli({"status", "--state", state_.string()});
  EXPECT_EQ(unchanged.code, 0);
  EXPECT_THAT(unchanged.err, Not(HasSubstr("warning")));
  std::ofstream(file, std::ios::app) << "# edited while the stack runs\n";
  const std::string warning = "warning: " + file.string() + " changed since the stack was brought up";
  const Result status = roadie_cli({"status", "--state", state_.string()});
  EXPECT_EQ(status.code, 0);
  EXPECT_THAT(status.err, HasSubstr("roadie status: " + warning));
  EXPECT_THAT(status.out, ::testing::ContainsRegex("db +running"));
  const Result json = roadie_cli({"status", "--state", state_.string(), "--json"});
  EXPECT_EQ(json.code, 0);
  EXPECT_THAT(json.err, HasSubstr(warning));
  EXPECT_THAT(json.out, ::testing::StartsWith("{"));  // stdout stays JSON
  const Result downed = roadie_cli({"down", "--state", state_.string()});
  EXPECT_EQ(downed.code, 0) << downed.err;
  EXPECT_THAT(downed.err, HasSubstr("roadie down: " + warning));
  for (const auto& [name, pid] : r.services) {
    EXPECT_TRUE(gone_within(pid, 10s)) << name << " (pid " << pid << ") survived down";
  }
  EXPECT_TRUE(gone_within(r.supervisor, 10s));
}

TEST_F(CliDetachTest, TheStatusEndpointAnswersOnlyWithTheToken) {
  const Result started = up();
  ASSERT_EQ(started.code, 0) << started.err;
  const Recorded r = recorded(state_);
  ASSERT_GT(r.http_port, 0);
  ASSERT_EQ(r.token.size(), 32U);
  EXPECT_EQ(http_get(r.http_port, "/status").first, 401);
  EXPECT_EQ(http_get(r.http_port, "/status", std::string(32, '0')).first, 401);
  EXPECT_EQ(http_get(r.http_port, "/services/api/logs").first, 401);
  const auto status = http_get(r.http_port, "/status", r.token);
  EXPECT_EQ(status.first, 200);
  EXPECT_THAT(status.second,
              ::testing::ContainsRegex("\"name\": \"db\",\\s*\"state\": \"running\""));
  const auto logs = http_get(r.http_port, "/services/api/logs", r.token);
  EXPECT_EQ(logs.first, 200);
  EXPECT_THAT(logs.second, HasSubstr("api up"));
  EXPECT_EQ(roadie_cli({"down", "--state", state_.string()}).code, 0);
  EXPECT_TRUE(gone_within(r.supervisor, 10s));
}

TEST_F(CliDetachTest, UpDetachExitsThreeWithTheReportAndLeavesNothing) {
  const Result result = roadie_plain(
      {"up", "--detach", "-f", stack("failing.yaml"), "--state", state_.string()}, dir_.path());
  EXPECT_EQ(result.code, 3);
  EXPECT_THAT(result.err, HasSubstr("[stderr] disk 42 on fire"));
  EXPECT_FALSE(fs::exists(state_ / "state.json"));
  for (const auto& [name, pid] : ready_pids(result.err)) {
    EXPECT_TRUE(gone_within(pid, 10s)) << name << " (pid " << pid << ") survived";
  }
}

}  // namespace
