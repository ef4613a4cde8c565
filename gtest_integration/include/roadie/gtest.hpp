// GoogleTest integration: a listener that turns GoogleTest's events into hook
// bus events (session, suite and test starts and ends), and install(), which
// adds the artifact plugins and the listener in one call.
//
//     int main(int argc, char** argv) {
//       ::testing::InitGoogleTest(&argc, argv);
//       roadie::HookBus bus;              // outlives RUN_ALL_TESTS()
//       roadie::gtest::install(bus);      // artifacts under ROADIE_ARTIFACTS_DIR, ...
//       return RUN_ALL_TESTS();
//     }
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "roadie/artifacts.hpp"
#include "roadie/hooks.hpp"

namespace roadie::gtest {

/// Fires, on the bus it was given:
/// - OnTestProgramStart: session_start {session: the binary's file name};
/// - OnTestSuiteStart: suite_start {suite_name};
/// - OnTestStart: start_test {suite_name, test_name (GoogleTest's full names:
///   "Prefix/Suite", "Name/0" for parameterized tests), test_location "file:line"};
/// - OnTestEnd: finish_test {suite_name, test_name, test_location, test_result
///   "passed"/"failed"/"skipped", test_duration float seconds, failure_text:
///   every failed part as "file:line: message", joined with newlines};
/// - OnTestSuiteEnd: suite_finish {suite_name, suite_result, suite_duration};
/// - OnTestProgramEnd: session_finish {session, session_result, session_duration}.
///
/// start_test and finish_test fire while the test is still GoogleTest's current
/// test, so hooks may call ::testing::Test::RecordProperty (it lands on the test
/// in the XML report). A bus failure (an exception out of fire()) never leaves
/// the listener: it is printed to stderr as "[  ROADIE  ] ..." and counted
/// (failures()); for a test event it is also recorded as the test's property
/// "roadie_hook_failure".
///
/// The bus must outlive the listener's events (the whole RUN_ALL_TESTS()).
/// Thread-safety: GoogleTest calls listeners on the main thread; the bus is
/// thread-safe.
class BusListener : public ::testing::EmptyTestEventListener {
 public:
  explicit BusListener(HookBus& bus);

  void OnTestProgramStart(const ::testing::UnitTest& unit_test) override;
  void OnTestSuiteStart(const ::testing::TestSuite& suite) override;
  void OnTestStart(const ::testing::TestInfo& info) override;
  void OnTestEnd(const ::testing::TestInfo& info) override;
  void OnTestSuiteEnd(const ::testing::TestSuite& suite) override;
  void OnTestProgramEnd(const ::testing::UnitTest& unit_test) override;

  HookBus& bus() const noexcept { return *bus_; }
  /// The artifact directory of the running test (artifact_path as start_test
  /// left it), or nothing outside a test or without the artifacts layer.
  const std::optional<std::filesystem::path>& artifact_dir() const noexcept { return artifact_dir_; }
  /// How many events failed on the bus so far.
  int failures() const noexcept { return failures_; }

 private:
  Values fire(std::string_view event, Values locals, bool in_test);
  HookBus* bus_;
  std::string session_;
  std::optional<std::filesystem::path> artifact_dir_;
  int failures_ = 0;
};

/// The binary's file name (of /proc/self/exe), the session name.
std::string session_name();

/// "passed", "failed" or "skipped" for a finished test's result.
std::string_view result_of(const ::testing::TestResult& result);
/// Every failed part of the result as "file:line: message", joined with '\n'
/// ("" when none failed).
std::string failure_text(const ::testing::TestResult& result);

/// install_artifacts(bus, options) with options.record_property set to
/// ::testing::Test::RecordProperty when empty, then appends a BusListener to
/// GoogleTest's listeners (which own it). Call after InitGoogleTest and before
/// RUN_ALL_TESTS; the bus must outlive RUN_ALL_TESTS. Throws like
/// install_artifacts.
BusListener& install(HookBus& bus, ArtifactOptions options = {});

/// The artifact directory of the running test, from the last listener
/// install() appended; nothing when none or outside a test.
std::optional<std::filesystem::path> current_artifact_dir();

}  // namespace roadie::gtest
