// A user's plugin on the hook bus of a GoogleTest binary, in a main of its own.
// roadie::gtest::install(bus) turns GoogleTest's events into start_test /
// finish_test (and session, suite) events on the bus and adds the built-in
// artifact plugins; this plugin writes verdict.txt into each test's artifact
// directory:
//
//     PluginSample.Passes started
//     PluginSample.Passes passed in 0.001 s
//
// The artifact root is ROADIE_ARTIFACTS_DIR, else ./roadie-artifacts; each
// test gets <root>/<suite>/<test>/ ("-2", "-3", ... when it exists already).
#include <gtest/gtest.h>

#include <fstream>
#include <iomanip>

#include "roadie/gtest.hpp"

namespace {

class Verdict : public roadie::Plugin {
 public:
  using Plugin::Plugin;

  void initialize() override {
    // artifact_path is set by the artifacts layer before these hooks run.
    register_hook("start_test", [](roadie::EventContext& e) {
      std::ofstream(file(e)) << name(e) << " started\n";
    });
    register_hook("finish_test", [](roadie::EventContext& e) {
      std::ofstream out(file(e), std::ios::app);
      out << name(e) << " " << e.string("test_result") << " in " << std::fixed
          << std::setprecision(3) << e.floating("test_duration") << " s\n";
      if (const std::string failure = e.string("failure_text"); !failure.empty()) {
        out << failure << "\n";
      }
    });
  }

 private:
  static std::filesystem::path file(const roadie::EventContext& e) {
    return e.path("artifact_path") / "verdict.txt";
  }
  static std::string name(const roadie::EventContext& e) {
    return e.string("suite_name") + "." + e.string("test_name");
  }
};

TEST(PluginSample, Passes) {
  // A test may write files of its own next to the plugin's.
  const auto dir = roadie::gtest::current_artifact_dir();
  ASSERT_TRUE(dir.has_value());
  std::ofstream(*dir / "note.txt") << "written by the test itself\n";
  EXPECT_EQ(2 + 2, 4);
}

TEST(PluginSample, IsSkipped) {
  GTEST_SKIP() << "skipped on purpose, to show the verdict";
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  roadie::HookBus bus;  // outlives RUN_ALL_TESTS
  bus.emplace_plugin<Verdict>("verdict");
  roadie::gtest::install(bus);  // the listener and the artifact plugins
  return RUN_ALL_TESTS();
}
