// Per-test artifacts: directories, the service log windows, the manifest, the
// JUnit properties and the timeline, driven by firing the test events directly
// (the GoogleTest listener fires the same events).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "roadie/artifacts.hpp"
#include "roadie/executor.hpp"
#include "roadie/hooks.hpp"
#include "test_support.hpp"

namespace roadie {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::TempDir;

class ArtifactsTest : public testing::NoLeaks {};

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Everything under `dir`, as paths relative to it.
std::set<std::string> tree(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& item : fs::recursive_directory_iterator(dir)) {
    names.insert(fs::relative(item.path(), dir).generic_string());
  }
  return names;
}

Values test_locals(std::string suite, std::string test) {
  return {{"suite_name", std::move(suite)}, {"test_name", std::move(test)}};
}

Values finish_locals(std::string suite, std::string test, std::string result) {
  Values locals = test_locals(std::move(suite), std::move(test));
  locals["test_result"] = std::move(result);
  locals["test_duration"] = 0.25;
  locals["failure_text"] = std::string(locals["test_result"] == Value("failed") ? "boom" : "");
  return locals;
}

// A plugin whose finish_test hook writes files into the test's directory (the
// artifact_path pre callback ran a phase before).
class FileWriter : public Plugin {
 public:
  FileWriter(std::string ident, std::function<void(const fs::path&)> write)
      : Plugin(std::move(ident)), write_(std::move(write)) {}
  void initialize() override {
    register_hook("finish_test", [this](EventContext& e) { write_(e.path("artifact_path")); });
  }

 private:
  std::function<void(const fs::path&)> write_;
};

// Every built-in plugin, attachments printed nowhere.
ArtifactOptions quiet(const fs::path& root) {
  ArtifactOptions options;
  options.root = root;
  options.print_attachment = [](const std::string&) {};
  return options;
}

ArtifactOptions only_paths(const fs::path& root) {
  ArtifactOptions options;
  options.root = root;
  options.service_logs = options.junit = options.timeline = false;
  options.manifest = true;
  return options;
}

TEST(ArtifactNames, HostileNamesBecomeOneSafeComponent) {
  EXPECT_EQ(sanitize_path_component("../../etc/passwd"), ".._.._etc_passwd");
  EXPECT_EQ(sanitize_path_component(".."), "_..");
  EXPECT_EQ(sanitize_path_component("."), "_.");
  EXPECT_EQ(sanitize_path_component(""), "_");
  EXPECT_EQ(sanitize_path_component(std::string("a\0b\nc\x7f", 6)), "a_b_c_");
  EXPECT_EQ(sanitize_path_component("Suite/Param.Test/3"), "Suite_Param.Test_3");
  EXPECT_EQ(sanitize_path_component("back\\slash"), "back_slash");
}

TEST(ArtifactNames, LongNamesAreCutOnACharacterBoundaryAndStayDistinct) {
  std::string base;
  for (int i = 0; i < 100; ++i) base += "\xc3\xa9";  // é, two bytes each
  std::string a = sanitize_path_component(base + "a", 41);
  std::string b = sanitize_path_component(base + "b", 41);
  EXPECT_LE(a.size(), 41u);
  EXPECT_NE(a, b);
  // The kept prefix is whole characters: an even number of bytes of é.
  std::size_t tilde = a.find('~');
  ASSERT_NE(tilde, std::string::npos);
  EXPECT_EQ(tilde % 2, 0u);
  EXPECT_EQ(a.substr(0, tilde), base.substr(0, tilde));
}

TEST_F(ArtifactsTest, StartTestPutsAFreshDirectoryInTheLocalsForEveryRepeat) {
  TempDir root;
  HookBus bus;
  install_artifacts(bus, only_paths(root.path()));
  std::vector<fs::path> seen;
  auto probe = bus.add_post("start_test", [&](EventContext& e) {
    seen.push_back(e.path("artifact_path"));
  });
  for (int i = 0; i < 3; ++i) {
    Values after = bus.fire("start_test", test_locals("Cache", "Evicts"));
    EXPECT_EQ(*after.at("artifact_path").get_if<fs::path>(), seen.back());
    bus.fire("finish_test", finish_locals("Cache", "Evicts", "passed"));
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], root.path() / "Cache" / "Evicts");
  EXPECT_EQ(seen[1], root.path() / "Cache" / "Evicts-2");
  EXPECT_EQ(seen[2], root.path() / "Cache" / "Evicts-3");
  for (const auto& dir : seen) EXPECT_TRUE(fs::is_directory(dir));
}

TEST_F(ArtifactsTest, FinishTestGetsTheDirectoryOfItsOwnStart) {
  TempDir root;
  HookBus bus;
  install_artifacts(bus, only_paths(root.path()));
  fs::path at_finish;
  auto probe = bus.add_post("finish_test", [&](EventContext& e) {
    at_finish = e.path("artifact_path");
  });
  Values started = bus.fire("start_test", test_locals("S", "T"));
  bus.fire("finish_test", finish_locals("S", "T", "passed"));
  EXPECT_EQ(at_finish, *started.at("artifact_path").get_if<fs::path>());
}

TEST_F(ArtifactsTest, HostileAndCollidingNamesNeverLeaveTheRoot) {
  TempDir scratch;
  fs::path root = scratch.path() / "root";
  HookBus bus;
  install_artifacts(bus, only_paths(root));
  const std::vector<std::pair<std::string, std::string>> names = {
      {"..", ".."},       {"../..", "../../x"}, {"/etc", "/passwd"},
      {"a/b", "c"},       {"a_b", "c"},         {std::string("n\0l", 3), "t\nx"},
      {"", ""},           {std::string(5000, 'x'), std::string(5000, 'y')},
      {"P/T.X/0", "p"},   {"P_T.X_0", "p"}};
  std::set<fs::path> dirs;
  for (const auto& [suite, test] : names) {
    Values after = bus.fire("start_test", test_locals(suite, test));
    fs::path dir = *after.at("artifact_path").get_if<fs::path>();
    EXPECT_TRUE(dirs.insert(dir).second) << dir;  // colliding names stay apart
    auto relative = fs::relative(dir, root);
    EXPECT_FALSE(relative.empty());
    EXPECT_NE(*relative.begin(), "..") << dir;
    EXPECT_EQ(std::distance(relative.begin(), relative.end()), 2) << dir;
    bus.fire("finish_test", finish_locals(suite, test, "passed"));
  }
  // Nothing appeared beside the root.
  EXPECT_EQ(tree(scratch.path()).count("etc"), 0u);
  for (const auto& name : tree(scratch.path())) EXPECT_EQ(name.rfind("root", 0), 0u) << name;
}

TEST_F(ArtifactsTest, ASymbolicLinkInTheRootIsRefusedNotFollowed) {
  TempDir scratch;
  fs::path root = scratch.path() / "root";
  fs::path elsewhere = scratch.path() / "elsewhere";
  fs::create_directories(root);
  fs::create_directories(elsewhere);
  fs::create_directory_symlink(elsewhere, root / "Suite");
  HookBus bus;
  install_artifacts(bus, only_paths(root));
  EXPECT_THROW(bus.fire("start_test", test_locals("Suite", "Test")), HookError);
  EXPECT_TRUE(fs::is_empty(elsewhere));
}

// A service that prints a batch of lines per trigger: each test's window holds
// exactly the lines of its own triggers, also when a test prints many more
// lines than the ring keeps.
class ServiceLogsTest : public ArtifactsTest {
 protected:
  static void trigger(Executor& service, int number) {
    ASSERT_EQ(::kill(service.pid(), SIGUSR1), 0);
    const std::string done = "^trigger " + std::to_string(number) + " done$";
    ASSERT_TRUE(service.output().wait_for(done, 10s, Stream::out)) << done;
    ASSERT_TRUE(service.output().wait_for(done, 10s, Stream::err)) << done;
  }
  static std::vector<std::string> expected_lines(int trigger, int lines) {
    std::vector<std::string> expected;
    for (int k = 0; k < lines; ++k) {
      expected.push_back("trigger " + std::to_string(trigger) + " line " + std::to_string(k));
    }
    expected.push_back("trigger " + std::to_string(trigger) + " done");
    expected.push_back("trigger " + std::to_string(trigger) + " done");
    return expected;
  }
  // The text of each line of a window file, without timestamp and stream;
  // checks the format on the way.
  static std::vector<std::string> texts(const fs::path& file) {
    std::vector<std::string> texts;
    for (const std::string& line : read_lines(file)) {
      if (line.rfind("# roadie:", 0) == 0) continue;
      // 2026-11-28T07:50:44.123456Z [stdout] text
      EXPECT_GE(line.size(), 38u) << line;
      EXPECT_EQ(line[27], ' ') << line;
      std::string stream = line.substr(28, 8);
      EXPECT_TRUE(stream == "[stdout]" || stream == "[stderr]") << line;
      std::string text = line.substr(37);
      // Even lines went to stdout, odd ones to stderr.
      if (auto at = text.find(" line "); at != std::string::npos) {
        long k = std::atol(text.c_str() + at + 6);
        EXPECT_EQ(stream, k % 2 == 0 ? "[stdout]" : "[stderr]") << line;
      }
      texts.push_back(text);
    }
    return texts;
  }
};

TEST_F(ServiceLogsTest, EachTestsWindowHoldsExactlyItsLinesEvenPastTheRing) {
  TempDir root;
  ExecutorOptions options;
  options.name = "printer";
  options.max_output_lines = 16;  // per stream: a test prints far more
  const int per_trigger = 200;
  OutputExecutor service({child("child_trigger"), std::to_string(per_trigger)}, "^ready$", options);
  HookBus bus;
  install_artifacts(bus, quiet(root.path()));
  auto link = bus.connect(service);
  service.start();

  std::vector<fs::path> dirs;
  for (int test = 1; test <= 3; ++test) {
    Values started = bus.fire("start_test", test_locals("Window", "T" + std::to_string(test)));
    dirs.push_back(*started.at("artifact_path").get_if<fs::path>());
    trigger(service, 2 * test - 1);  // two triggers per test
    trigger(service, 2 * test);
    bus.fire("finish_test", finish_locals("Window", "T" + std::to_string(test), "passed"));
  }
  service.stop();

  for (int test = 1; test <= 3; ++test) {
    const fs::path file = dirs[test - 1] / "printer.log";
    ASSERT_TRUE(fs::exists(file)) << file;
    std::vector<std::string> got = texts(file);
    std::multiset<std::string> got_set(got.begin(), got.end());
    std::multiset<std::string> want;
    for (int t : {2 * test - 1, 2 * test}) {
      for (auto& line : expected_lines(t, per_trigger)) want.insert(line);
    }
    EXPECT_EQ(got.size(), want.size()) << file;
    EXPECT_EQ(got_set, want) << file;
    EXPECT_EQ(read_file(file).find("not kept"), std::string::npos) << file;
  }
}

TEST_F(ServiceLogsTest, AFailedTestAlsoGetsTheLinesBeforeIt) {
  TempDir root;
  ExecutorOptions options;
  options.name = "printer";
  OutputExecutor service({child("child_trigger"), "4"}, "^ready$", options);
  HookBus bus;
  ArtifactOptions artifacts = quiet(root.path());
  artifacts.lines_before_failure = 3;
  install_artifacts(bus, artifacts);
  auto link = bus.connect(service);
  service.start();
  trigger(service, 1);  // before the test: 4 lines + 2 "done"

  Values started = bus.fire("start_test", test_locals("Fail", "Before"));
  trigger(service, 2);
  bus.fire("finish_test", finish_locals("Fail", "Before", "failed"));
  service.stop();

  fs::path file = *started.at("artifact_path").get_if<fs::path>() / "printer.log";
  std::string text = read_file(file);
  EXPECT_NE(text.find("# roadie: 3 lines printed before the test started"), std::string::npos)
      << text;
  std::vector<std::string> got = texts(file);
  ASSERT_EQ(got.size(), 3u + 6u) << text;
  std::multiset<std::string> during(got.begin() + 3, got.end());
  auto want_vector = expected_lines(2, 4);
  EXPECT_EQ(during, std::multiset<std::string>(want_vector.begin(), want_vector.end()));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i].rfind("trigger 1 ", 0), 0u) << got[i];
}

TEST_F(ServiceLogsTest, APassedTestGetsOnlyItsWindow) {
  TempDir root;
  ExecutorOptions options;
  options.name = "printer";
  OutputExecutor service({child("child_trigger"), "2"}, "^ready$", options);
  HookBus bus;
  install_artifacts(bus, quiet(root.path()));
  auto link = bus.connect(service);
  service.start();
  trigger(service, 1);
  Values started = bus.fire("start_test", test_locals("Pass", "Only"));
  bus.fire("finish_test", finish_locals("Pass", "Only", "passed"));
  service.stop();
  fs::path file = *started.at("artifact_path").get_if<fs::path>() / "printer.log";
  EXPECT_TRUE(texts(file).empty()) << read_file(file);
}

TEST_F(ArtifactsTest, ManifestListsEveryTestWithItsResultAndFiles) {
  TempDir root;
  HookBus bus;
  ArtifactOptions options{.root = root.path()};
  options.print_attachment = [](const std::string&) {};
  install_artifacts(bus, options);
  class Note : public Plugin {
   public:
    using Plugin::Plugin;
    void initialize() override {
      register_hook("finish_test", [](EventContext& e) {
        std::ofstream(e.path("artifact_path") / "note.txt") << e.string("test_name");
      });
    }
  };
  bus.emplace_plugin<Note>("note");
  bus.fire("start_test", test_locals("M", "passes"));
  bus.fire("finish_test", finish_locals("M", "passes", "passed"));
  bus.fire("start_test", test_locals("M", "fails"));
  bus.fire("finish_test", finish_locals("M", "fails", "failed"));
  bus.fire("session_finish", {{"session_result", "failed"}});

  json manifest = json::parse(read_file(root.path() / "manifest.json"));
  ASSERT_EQ(manifest["tests"].size(), 2u) << manifest.dump(2);
  const json& second = manifest["tests"][1];
  EXPECT_EQ(second["suite"], "M");
  EXPECT_EQ(second["name"], "fails");
  EXPECT_EQ(second["result"], "failed");
  EXPECT_EQ(second["failure"], "boom");
  EXPECT_DOUBLE_EQ(second["duration"].get<double>(), 0.25);
  EXPECT_EQ(second["dir"], "M/fails");
  EXPECT_EQ(second["files"], json::array({"M/fails/note.txt"}));
}

TEST_F(ArtifactsTest, JunitRecordsAPropertyAndAnAttachmentPerFile) {
  TempDir root;
  HookBus bus;
  std::vector<std::pair<std::string, std::string>> properties;
  std::vector<std::string> attachments;
  ArtifactOptions options{.root = root.path()};
  options.record_property = [&](const std::string& k, const std::string& v) {
    properties.emplace_back(k, v);
  };
  options.print_attachment = [&](const std::string& line) { attachments.push_back(line); };
  install_artifacts(bus, options);
  bus.emplace_plugin<FileWriter>("writer", [](const fs::path& dir) {
    std::ofstream(dir / "a.txt") << "a";
    std::ofstream(dir / "b.txt") << "b";
  });
  Values started = bus.fire("start_test", test_locals("J", "t"));
  bus.fire("finish_test", finish_locals("J", "t", "passed"));
  fs::path dir = *started.at("artifact_path").get_if<fs::path>();
  ASSERT_EQ(properties.size(), 2u);
  EXPECT_EQ(properties[0], std::make_pair(std::string("roadie_artifact:a.txt"), (dir / "a.txt").string()));
  EXPECT_EQ(attachments, (std::vector<std::string>{"[[ATTACHMENT|" + (dir / "a.txt").string() + "]]",
                                                   "[[ATTACHMENT|" + (dir / "b.txt").string() + "]]"}));
}

TEST_F(ArtifactsTest, TimelineHasTheServiceBringUpAndEachTestColouredByResult) {
  TempDir root;
  HookBus bus;
  ArtifactOptions options{.root = root.path()};
  options.print_attachment = [](const std::string&) {};
  install_artifacts(bus, options);
  {
    ExecutorOptions service_options;
    service_options.name = "printer";
    OutputExecutor service({child("child_trigger"), "1"}, "^ready$", service_options);
    auto link = bus.connect(service);
    service.start();
    bus.fire("start_test", test_locals("TL", "good"));
    bus.fire("finish_test", finish_locals("TL", "good", "passed"));
    bus.fire("start_test", test_locals("TL", "bad"));
    bus.fire("finish_test", finish_locals("TL", "bad", "failed"));
    service.stop();
    bus.drain();
  }
  bus.fire("session_finish", {{"session_result", "failed"}});
  json trace = json::parse(read_file(root.path() / ("timeline-" + std::to_string(::getpid()) + ".json")));
  std::map<std::string, json> spans;
  for (const json& event : trace["traceEvents"]) {
    if (event["ph"] == "X") spans[event["name"]] = event;
  }
  ASSERT_TRUE(spans.count("printer bring-up")) << trace.dump(2);
  ASSERT_TRUE(spans.count("printer")) << trace.dump(2);
  ASSERT_TRUE(spans.count("TL.good"));
  ASSERT_TRUE(spans.count("TL.bad"));
  EXPECT_EQ(spans["TL.good"]["cname"], "good");
  EXPECT_EQ(spans["TL.bad"]["cname"], "terrible");
  EXPECT_LE(spans["TL.good"]["ts"].get<double>(), spans["TL.bad"]["ts"].get<double>());
  EXPECT_GE(spans["printer"]["dur"].get<double>(),
            spans["TL.good"]["dur"].get<double>() + spans["TL.bad"]["dur"].get<double>());
}

// Run by the next test in two processes at once, into one root.
TEST(ArtifactsHelper, DISABLED_WritesFiftyTestsIntoTheSharedRoot) {
  const char* root = std::getenv("ROADIE_ARTIFACTS_DIR");
  ASSERT_NE(root, nullptr);
  HookBus bus;
  ArtifactOptions options;
  options.print_attachment = [](const std::string&) {};
  install_artifacts(bus, options);
  bus.emplace_plugin<FileWriter>("writer", [](const fs::path& dir) {
    std::ofstream(dir / "pid.txt") << ::getpid();
  });
  for (int i = 0; i < 50; ++i) {
    // The same names in both processes: they collide on purpose.
    bus.fire("start_test", test_locals("Shared", "t" + std::to_string(i % 5)));
    bus.fire("finish_test", finish_locals("Shared", "t" + std::to_string(i % 5), "passed"));
  }
  bus.fire("session_finish", {});
}

TEST_F(ArtifactsTest, TwoProcessesWritingIntoOneRootLoseNothing) {
  TempDir root;
  const std::string self = fs::read_symlink("/proc/self/exe");
  ExecutorOptions options;
  options.env["ROADIE_ARTIFACTS_DIR"] = root.path().string();
  options.timeout = 120s;
  std::vector<std::unique_ptr<Executor>> writers;
  for (int i = 0; i < 2; ++i) {
    writers.push_back(std::make_unique<Executor>(
        Command{self, "--gtest_filter=ArtifactsHelper.DISABLED_WritesFiftyTestsIntoTheSharedRoot",
                "--gtest_also_run_disabled_tests"},
        options));
  }
  for (auto& writer : writers) writer->start();
  for (auto& writer : writers) {
    auto status = writer->wait_for_exit(120s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(status->success()) << writer->output().excerpt();
  }
  json manifest = json::parse(read_file(root.path() / "manifest.json"));
  ASSERT_EQ(manifest["tests"].size(), 100u);
  std::set<std::string> dirs;
  std::map<long, int> per_pid;
  for (const json& test : manifest["tests"]) {
    EXPECT_TRUE(dirs.insert(test["dir"].get<std::string>()).second) << test["dir"];
    ++per_pid[test["pid"].get<long>()];
    ASSERT_EQ(test["files"].size(), 1u);
    // Each directory holds the file of the process that made it.
    std::string pid = read_file(root.path() / test["files"][0].get<std::string>());
    EXPECT_EQ(pid, std::to_string(test["pid"].get<long>()));
  }
  EXPECT_EQ(per_pid.size(), 2u);
  for (auto [pid, count] : per_pid) EXPECT_EQ(count, 50);
}

// Run by the next test, which SIGKILLs it while it writes.
TEST(ArtifactsHelper, DISABLED_WritesTestsUntilKilled) {
  HookBus bus;
  ArtifactOptions options;
  options.print_attachment = [](const std::string&) {};
  install_artifacts(bus, options);
  for (int i = 0;; ++i) {
    bus.fire("start_test", test_locals("Killed", "t" + std::to_string(i)));
    bus.fire("finish_test", finish_locals("Killed", "t" + std::to_string(i), "passed"));
    if (i == 20) std::printf("twenty tests written\n"), std::fflush(stdout);
  }
}

TEST_F(ArtifactsTest, AKilledWriterNeitherCorruptsTheManifestNorLosesItsEntries) {
  TempDir root;
  const std::string self = fs::read_symlink("/proc/self/exe");
  ExecutorOptions options;
  options.env["ROADIE_ARTIFACTS_DIR"] = root.path().string();
  OutputExecutor killed({self, "--gtest_filter=ArtifactsHelper.DISABLED_WritesTestsUntilKilled",
                         "--gtest_also_run_disabled_tests"},
                        "^twenty tests written$", options);
  killed.start();
  std::this_thread::sleep_for(200ms);  // many more entries, rebuilds under way
  killed.kill();
  // Whatever instant the kill hit, manifest.json is whole JSON.
  json before = json::parse(read_file(root.path() / "manifest.json"));
  EXPECT_GE(before["tests"].size(), 1u);
  // The killed writer's part file holds every test it finished; the next
  // writer's rebuild brings them all into manifest.json beside its own.
  std::size_t dirs_made = 0;
  for (const auto& item : fs::directory_iterator(root.path() / "Killed")) {
    dirs_made += item.is_directory() ? 1 : 0;
  }
  Executor writer({self, "--gtest_filter=ArtifactsHelper.DISABLED_WritesFiftyTestsIntoTheSharedRoot",
                   "--gtest_also_run_disabled_tests"},
                  options);
  writer.start();
  auto status = writer.wait_for_exit(120s);
  ASSERT_TRUE(status && status->success()) << writer.output().excerpt();
  json after = json::parse(read_file(root.path() / "manifest.json"));
  std::size_t killed_entries = 0, shared_entries = 0;
  for (const json& test : after["tests"]) {
    killed_entries += test["suite"] == "Killed" ? 1 : 0;
    shared_entries += test["suite"] == "Shared" ? 1 : 0;
  }
  EXPECT_EQ(shared_entries, 50u);
  // A test killed between its start and its finish has a directory and no
  // entry: at most one.
  EXPECT_GE(killed_entries + 1, dirs_made);
  EXPECT_LE(killed_entries, dirs_made);
  EXPECT_GT(killed_entries, 20u);
}

// Run by the next test with --gtest_output=xml: the junit plugin records
// through GoogleTest's RecordProperty, as the GoogleTest layer wires it.
TEST(ArtifactsHelper, DISABLED_RecordsArtifactsAsProperties) {
  HookBus bus;
  ArtifactOptions options;
  options.record_property = [](const std::string& key, const std::string& value) {
    ::testing::Test::RecordProperty(key, value);
  };
  install_artifacts(bus, options);
  bus.emplace_plugin<FileWriter>("writer", [](const fs::path& dir) {
    std::ofstream(dir / "server.log") << "x";
  });
  bus.fire("start_test", test_locals("Xml", "t"));
  bus.fire("finish_test", finish_locals("Xml", "t", "passed"));
}

TEST_F(ArtifactsTest, ArtifactsShowUpInGoogleTestsXmlAndAsJenkinsAttachments) {
  TempDir root;
  const std::string self = fs::read_symlink("/proc/self/exe");
  const fs::path xml = root.path() / "report.xml";
  ExecutorOptions options;
  options.env["ROADIE_ARTIFACTS_DIR"] = (root.path() / "artifacts").string();
  Executor run({self, "--gtest_filter=ArtifactsHelper.DISABLED_RecordsArtifactsAsProperties",
                "--gtest_also_run_disabled_tests", "--gtest_output=xml:" + xml.string()},
               options);
  run.start();
  auto status = run.wait_for_exit(60s);
  ASSERT_TRUE(status && status->success()) << run.output().excerpt();
  const std::string file = (root.path() / "artifacts" / "Xml" / "t" / "server.log").string();
  std::string report = read_file(xml);
  EXPECT_NE(report.find("name=\"roadie_artifact:server.log\" value=\"" + file + "\""),
            std::string::npos)
      << report;
  EXPECT_TRUE(run.output().wait_for("^\\[\\[ATTACHMENT\\|" + file + "\\]\\]$", 1s, Stream::out))
      << run.output().excerpt();
}

TEST_F(ArtifactsTest, BuiltInPluginsComeFromYaml) {
  TempDir root;
  register_artifact_plugins();
  HookBus bus;
  bus.configure_text("plugins:\n"
                     "  logs: {plugin: service_logs, root: \"" + root.path().string() + "\", lines_before_failure: 5}\n"
                     "  list: {plugin: manifest, root: \"" + root.path().string() + "\"}\n"
                     "  trace: {plugin: timeline, enabled: false}\n");
  EXPECT_EQ(bus.plugin_idents(), (std::vector<std::string>{"logs", "list"}));
  Values started = bus.fire("start_test", test_locals("Y", "t"));
  EXPECT_EQ(*started.at("artifact_path").get_if<fs::path>(), root.path() / "Y" / "t");
  bus.fire("finish_test", finish_locals("Y", "t", "passed"));
  EXPECT_TRUE(fs::exists(root.path() / "manifest.json"));
}

TEST_F(ArtifactsTest, ABuiltInPluginWithAMistypedOptionIsAnErrorWithItsPlace) {
  register_artifact_plugins();
  HookBus bus;
  try {
    bus.configure_text("plugins:\n  logs:\n    plugin: service_logs\n    lines_before_failure: many\n",
                       "stack.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 4);
    EXPECT_EQ(e.column(), 27);
    EXPECT_NE(std::string(e.what()).find("lines_before_failure"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(bus.plugin_idents().empty());
}

}  // namespace
}  // namespace roadie
