// The GoogleTest listener as a black box: runs the sample binary
// (sample.cpp) with roadie::Executor and checks the artifact directories,
// manifest.json, the XML report and the events it fired.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "roadie/executor.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct SampleRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

SampleRun run_sample(std::vector<std::string> args, std::map<std::string, std::string> env) {
  std::vector<std::string> argv{ROADIE_GTEST_SAMPLE};
  argv.insert(argv.end(), args.begin(), args.end());
  roadie::ExecutorOptions options;
  options.env = std::move(env);
  options.expected_exit_codes = {1};  // a failing sample run is no service error
  roadie::Executor sample(roadie::Command(argv), options);
  sample.start();
  auto status = sample.wait_for_exit(std::chrono::seconds(60));
  SampleRun run;
  if (!status) {
    sample.kill();
    ADD_FAILURE() << "the sample did not end in 60 s";
    return run;
  }
  run.exit_code = status->code();
  run.out = sample.output().text(roadie::Stream::out);
  run.err = sample.output().text(roadie::Stream::err);
  return run;
}

// "suite/name" -> the manifest entries of that test, in order.
std::map<std::string, std::vector<json>> entries_of(const fs::path& root) {
  std::map<std::string, std::vector<json>> entries;
  json manifest = json::parse(slurp(root / "manifest.json"));
  for (const json& entry : manifest.at("tests")) {
    entries[entry.at("suite").get<std::string>() + "/" + entry.at("name").get<std::string>()]
        .push_back(entry);
  }
  return entries;
}

// Every test directory under root (two levels: suite/test), relative.
std::set<std::string> test_dirs(const fs::path& root) {
  std::set<std::string> dirs;
  for (const auto& suite : fs::directory_iterator(root)) {
    if (!suite.is_directory() || suite.path().filename().string().starts_with(".")) continue;
    for (const auto& test : fs::directory_iterator(suite.path())) {
      dirs.insert(test.path().lexically_relative(root).generic_string());
    }
  }
  return dirs;
}

// The <testcase name="NAME" ...> element of the XML report (first one).
std::string testcase(const std::string& xml, const std::string& name) {
  std::size_t begin = xml.find("<testcase name=\"" + name + "\"");
  if (begin == std::string::npos) return "";
  std::size_t end = xml.find("</testcase>", begin);
  std::size_t self_closed = xml.find("/>\n", begin);
  if (end == std::string::npos || (self_closed < xml.find('>', begin) + 1)) end = self_closed;
  return xml.substr(begin, end - begin);
}

class GtestListener : public roadie::testing::NoLeaks {};

TEST_F(GtestListener, OneDirectoryPerTestAndAManifestEntryWithResultDurationAndFailure) {
  roadie::testing::TempDir tmp;
  const fs::path root = tmp.path() / "artifacts";
  const fs::path xml = tmp.path() / "report.xml";
  SampleRun run = run_sample({"--gtest_output=xml:" + xml.string()},
                       {{"ROADIE_ARTIFACTS_DIR", root.string()}, {"ROADIE_SAMPLE_FAIL", "1"}});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;

  EXPECT_EQ(test_dirs(root),
            (std::set<std::string>{"Sample/Passes", "Sample/Fails", "Sample/Skipped",
                                   "Values_Param/Works_0", "Values_Param/Works_1"}));

  auto entries = entries_of(root);
  ASSERT_EQ(entries.size(), 5u) << slurp(root / "manifest.json");
  const std::map<std::string, std::string> expected{
      {"Sample/Passes", "passed"},       {"Sample/Fails", "failed"},
      {"Sample/Skipped", "skipped"},     {"Values/Param/Works/0", "passed"},
      {"Values/Param/Works/1", "passed"}};
  for (const auto& [test, result] : expected) {
    ASSERT_EQ(entries[test].size(), 1u) << test;
    const json& entry = entries[test][0];
    EXPECT_EQ(entry.at("result"), result) << test;
    EXPECT_EQ(entry.at("files"), json::array({entry.at("dir").get<std::string>() + "/note.txt"}))
        << test;
    if (result != "failed") {
      EXPECT_EQ(entry.at("failure"), "") << test;
    }
  }
  // Durations are GoogleTest's, in seconds: Passes sleeps 60 ms.
  const double passes = entries["Sample/Passes"][0].at("duration").get<double>();
  EXPECT_GE(passes, 0.055);
  EXPECT_LT(passes, 10.0);
  EXPECT_LT(entries["Sample/Skipped"][0].at("duration").get<double>(), 0.055);

  // Every failed part, with its file:line.
  const std::string failure = entries["Sample/Fails"][0].at("failure").get<std::string>();
  EXPECT_THAT(failure, ::testing::MatchesRegex(".*sample\\.cpp:[0-9]+: .*first planned failure"
                                               "\n.*sample\\.cpp:[0-9]+: .*second planned "
                                               "failure.*"))
      << failure;
  EXPECT_NE(failure.find("/sample.cpp:"), std::string::npos) << failure;
}

TEST_F(GtestListener, RepeatsGetTheirOwnDirectoryAndManifestEntry) {
  roadie::testing::TempDir tmp;
  const fs::path root = tmp.path() / "artifacts";
  SampleRun run = run_sample({"--gtest_repeat=2"}, {{"ROADIE_ARTIFACTS_DIR", root.string()}});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;

  EXPECT_EQ(test_dirs(root),
            (std::set<std::string>{"Sample/Passes", "Sample/Fails", "Sample/Skipped",
                                   "Values_Param/Works_0", "Values_Param/Works_1",
                                   "Sample/Passes-2", "Sample/Fails-2", "Sample/Skipped-2",
                                   "Values_Param/Works_0-2", "Values_Param/Works_1-2"}));
  auto entries = entries_of(root);
  ASSERT_EQ(entries.size(), 5u) << slurp(root / "manifest.json");
  for (const auto& [test, runs] : entries) {
    ASSERT_EQ(runs.size(), 2u) << test;
    EXPECT_NE(runs[0].at("dir"), runs[1].at("dir")) << test;
    EXPECT_EQ(runs[1].at("dir").get<std::string>(), runs[0].at("dir").get<std::string>() + "-2")
        << test;
    for (const json& entry : runs) {
      EXPECT_EQ(entry.at("result"), test == "Sample/Skipped" ? "skipped" : "passed") << test;
    }
  }
}

TEST_F(GtestListener, ShardsRunningAtOnceIntoOneRootLoseNothing) {
  roadie::testing::TempDir tmp;
  const fs::path root = tmp.path() / "artifacts";
  // Two shards at once, each repeating twice, all into one root: four
  // processes' worth of directories and manifest entries meet there.
  std::vector<std::string> argv{ROADIE_GTEST_SAMPLE, "--gtest_repeat=2"};
  std::vector<roadie::Executor> shards;
  for (int index = 0; index < 2; ++index) {
    roadie::ExecutorOptions options;
    options.env = {{"ROADIE_ARTIFACTS_DIR", root.string()},
                   {"GTEST_TOTAL_SHARDS", "2"},
                   {"GTEST_SHARD_INDEX", std::to_string(index)}};
    shards.emplace_back(roadie::Command(argv), options);
  }
  for (auto& shard : shards) shard.start();
  for (auto& shard : shards) {
    auto status = shard.wait_for_exit(std::chrono::seconds(60));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << shard.output().excerpt();
  }
  auto entries = entries_of(root);
  ASSERT_EQ(entries.size(), 5u) << slurp(root / "manifest.json");
  std::set<std::string> dirs;
  for (const auto& [test, runs] : entries) {
    ASSERT_EQ(runs.size(), 2u) << test;
    for (const json& entry : runs) {
      EXPECT_TRUE(dirs.insert(entry.at("dir").get<std::string>()).second) << "shared " << entry;
      EXPECT_TRUE(fs::is_directory(root / entry.at("dir").get<std::string>())) << entry;
    }
  }
  EXPECT_EQ(test_dirs(root).size(), 10u);
}

TEST_F(GtestListener, TheXmlReportHasARoadieArtifactPropertyPerFile) {
  roadie::testing::TempDir tmp;
  const fs::path root = tmp.path() / "artifacts";
  const fs::path xml_file = tmp.path() / "report.xml";
  SampleRun run = run_sample({"--gtest_output=xml:" + xml_file.string()},
                       {{"ROADIE_ARTIFACTS_DIR", root.string()}, {"ROADIE_SAMPLE_FAIL", "1"}});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  const std::string xml = slurp(xml_file);
  const std::map<std::string, std::string> dirs{{"Passes", "Sample/Passes"},
                                                {"Fails", "Sample/Fails"},
                                                {"Skipped", "Sample/Skipped"},
                                                {"Works/0", "Values_Param/Works_0"},
                                                {"Works/1", "Values_Param/Works_1"}};
  for (const auto& [name, dir] : dirs) {
    const std::string element = testcase(xml, name);
    ASSERT_FALSE(element.empty()) << name << "\n" << xml;
    const std::string property = "<property name=\"roadie_artifact:note.txt\" value=\"" +
                                 (fs::absolute(root) / dir / "note.txt").string() + "\"/>";
    EXPECT_NE(element.find(property), std::string::npos) << property << "\n" << element;
    // One property per file: the directory holds only note.txt.
    std::size_t count = 0;
    for (std::size_t at = element.find("roadie_artifact:"); at != std::string::npos;
         at = element.find("roadie_artifact:", at + 1)) {
      ++count;
    }
    EXPECT_EQ(count, 1u) << element;
  }
}

TEST_F(GtestListener, FiresSessionSuiteAndTestEventsInOrder) {
  roadie::testing::TempDir tmp;
  const fs::path log = tmp.path() / "events.log";
  SampleRun run = run_sample({"--gtest_filter=Sample.*"},
                       {{"ROADIE_ARTIFACTS_DIR", (tmp.path() / "artifacts").string()},
                        {"ROADIE_SAMPLE_FAIL", "1"},
                        {"ROADIE_SAMPLE_EVENTS", log.string()}});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  std::vector<std::string> lines;
  std::istringstream in(slurp(log));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<std::string> expected{"session_start session=roadie_gtest_sample",
                                    "suite_start suite_name=Sample"};
  for (const std::string test : {"Passes", "Fails", "Skipped"}) {
    const std::string result =
        test == std::string("Passes") ? "passed" : test == std::string("Fails") ? "failed" : "skipped";
    expected.push_back("start_test suite_name=Sample test_location=<loc> test_name=" + test);
    expected.push_back("finish_test suite_name=Sample test_duration=<float> test_location=<loc> "
                       "test_name=" + test + " test_result=" + result);
  }
  expected.push_back("suite_finish suite_duration=<float> suite_name=Sample suite_result=failed");
  expected.push_back(
      "session_finish session=roadie_gtest_sample session_duration=<float> session_result=failed");
  // test_location is "…/sample.cpp:LINE": replaced by <loc> once checked.
  for (std::string& line : lines) {
    std::size_t at = line.find("test_location=");
    if (at == std::string::npos) continue;
    std::size_t end = line.find(' ', at);
    const std::string where = line.substr(at + 14, end - at - 14);
    EXPECT_THAT(where, ::testing::MatchesRegex(".*/sample\\.cpp:[0-9]+")) << line;
    line.replace(at + 14, end - at - 14, "<loc>");
  }
  EXPECT_EQ(lines, expected);
}

TEST_F(GtestListener, AFailingHookIsReportedAndNeverCrashesTheBinary) {
  roadie::testing::TempDir tmp;
  const fs::path xml_file = tmp.path() / "report.xml";
  SampleRun run = run_sample({"--gtest_filter=Sample.Passes", "--gtest_output=xml:" + xml_file.string()},
                       {{"ROADIE_ARTIFACTS_DIR", (tmp.path() / "artifacts").string()},
                        {"ROADIE_SAMPLE_BAD_HOOK", "1"}});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.err.find("[  ROADIE  ] hook bus failure on finish_test:"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("planned hook failure"), std::string::npos) << run.err;
  const std::string element = testcase(slurp(xml_file), "Passes");
  EXPECT_NE(element.find("<property name=\"roadie_hook_failure\""), std::string::npos) << element;
}

}  // namespace
