// A sample test binary for test_gtest_listener: the listener installed, a
// passing, a failing (only with ROADIE_SAMPLE_FAIL set), a skipped and a
// parameterized test. Each test writes note.txt into its artifact directory.
// ROADIE_SAMPLE_EVENTS=FILE logs every bus event there; ROADIE_SAMPLE_BAD_HOOK
// adds a plugin whose finish_test hook throws.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>

#include "roadie/gtest.hpp"

namespace {

void write_note(const std::string& text) {
  auto dir = roadie::gtest::current_artifact_dir();
  ASSERT_TRUE(dir.has_value()) << "no artifact directory during the test";
  std::ofstream(*dir / "note.txt") << text << "\n";
}

TEST(Sample, Passes) {
  write_note("passes");
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(2, 1 + 1);
}

TEST(Sample, Fails) {
  write_note("fails");
  if (std::getenv("ROADIE_SAMPLE_FAIL") != nullptr) {
    ADD_FAILURE() << "first planned failure";
    EXPECT_EQ(1, 2) << "second planned failure";
  }
}

TEST(Sample, Skipped) {
  write_note("skipped");
  GTEST_SKIP() << "skipped on purpose";
}

class Param : public ::testing::TestWithParam<int> {};

TEST_P(Param, Works) {
  write_note("param " + std::to_string(GetParam()));
  EXPECT_GT(GetParam(), 0);
}

INSTANTIATE_TEST_SUITE_P(Values, Param, ::testing::Values(1, 2));

// Logs every event the listener fires: "event key=value key=value".
class EventLog : public roadie::Plugin {
 public:
  explicit EventLog(std::string file) : Plugin("event_log"), out_(file) {}
  void initialize() override {
    for (std::string_view event :
         {roadie::events::session_start, roadie::events::suite_start, roadie::events::start_test,
          roadie::events::finish_test, roadie::events::suite_finish,
          roadie::events::session_finish}) {
      register_hook(std::string(event), [this](roadie::EventContext& e) {
        out_ << e.event();
        for (const auto& [name, value] : e.visible()) {
          if (name == "failure_text" || name == "artifact_path") continue;
          if (const std::string* s = value.get_if<std::string>()) {
            out_ << " " << name << "=" << *s;
          } else if (value.get_if<double>() != nullptr) {
            out_ << " " << name << "=<float>";
          }
        }
        out_ << "\n" << std::flush;
      });
    }
  }

 private:
  std::ofstream out_;
};

class BadHook : public roadie::Plugin {
 public:
  BadHook() : Plugin("bad_hook") {}
  void initialize() override {
    register_hook(std::string(roadie::events::finish_test),
                  [](roadie::EventContext&) { throw std::runtime_error("planned hook failure"); });
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  roadie::HookBus bus;
  if (const char* file = std::getenv("ROADIE_SAMPLE_EVENTS")) bus.emplace_plugin<EventLog>(file);
  if (std::getenv("ROADIE_SAMPLE_BAD_HOOK") != nullptr) bus.emplace_plugin<BadHook>();
  roadie::gtest::install(bus);
  return RUN_ALL_TESTS();
}
