// The GoogleTest listener: GoogleTest's events as hook bus events.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "roadie/gtest.hpp"
#include "services_impl.hpp"

namespace roadie::gtest {
namespace {

namespace fs = std::filesystem;

std::atomic<BusListener*> g_installed{nullptr};

double seconds(::testing::internal::TimeInMillis ms) { return static_cast<double>(ms) / 1000.0; }

std::string location(const char* file, int line) {
  if (file == nullptr || *file == '\0') return "";
  return line >= 0 ? std::string(file) + ":" + std::to_string(line) : std::string(file);
}

}  // namespace

std::string session_name() {
  std::error_code error;
  fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (!error && !exe.filename().empty()) return exe.filename().string();
  return program_invocation_short_name;
}

std::string_view result_of(const ::testing::TestResult& result) {
  if (result.Failed()) return "failed";
  if (result.Skipped()) return "skipped";
  return "passed";
}

std::string failure_text(const ::testing::TestResult& result) {
  std::string text;
  for (int i = 0; i < result.total_part_count(); ++i) {
    const ::testing::TestPartResult& part = result.GetTestPartResult(i);
    if (!part.failed()) continue;
    if (!text.empty()) text += '\n';
    const std::string where = location(part.file_name(), part.line_number());
    text += where.empty() ? std::string("(unknown file)") : where;
    text += ": ";
    text += part.message();
  }
  return text;
}

BusListener::BusListener(HookBus& bus) : bus_(&bus), session_(session_name()) {}

Values BusListener::fire(std::string_view event, Values locals, bool in_test) {
  std::string what;
  try {
    return bus_->fire(event, std::move(locals));
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  ++failures_;
  std::fprintf(stderr, "[  ROADIE  ] hook bus failure on %.*s: %s\n",
               static_cast<int>(event.size()), event.data(), what.c_str());
  std::fflush(stderr);
  if (in_test) {
    try {
      ::testing::Test::RecordProperty("roadie_hook_failure",
                                      std::string(event) + ": " + what);
    } catch (...) {
    }
  }
  return {};
}

void BusListener::OnTestProgramStart(const ::testing::UnitTest&) {
  fire(events::session_start, {{"session", session_}}, false);
}

void BusListener::OnTestSuiteStart(const ::testing::TestSuite& suite) {
  fire(events::suite_start, {{"suite_name", suite.name()}}, false);
}

void BusListener::OnTestStart(const ::testing::TestInfo& info) {
  Values locals{{"suite_name", info.test_suite_name()}, {"test_name", info.name()}};
  if (std::string where = location(info.file(), info.line()); !where.empty()) {
    locals.emplace("test_location", std::move(where));
  }
  Values after = fire(events::start_test, std::move(locals), true);
  artifact_dir_.reset();
  if (auto it = after.find("artifact_path"); it != after.end()) {
    if (const fs::path* dir = it->second.get_if<fs::path>()) artifact_dir_ = *dir;
  }
}

void BusListener::OnTestEnd(const ::testing::TestInfo& info) {
  const ::testing::TestResult& result = *info.result();
  Values locals{{"suite_name", info.test_suite_name()},
                {"test_name", info.name()},
                {"test_result", std::string(result_of(result))},
                {"test_duration", seconds(result.elapsed_time())},
                {"failure_text", failure_text(result)}};
  if (std::string where = location(info.file(), info.line()); !where.empty()) {
    locals.emplace("test_location", std::move(where));
  }
  // Still GoogleTest's current test here: RecordProperty from the hooks lands
  // on this test.
  fire(events::finish_test, std::move(locals), true);
  artifact_dir_.reset();
}

void BusListener::OnTestSuiteEnd(const ::testing::TestSuite& suite) {
  std::string verdict = suite.Failed() ? "failed"
                        : (suite.skipped_test_count() > 0 &&
                           suite.skipped_test_count() == suite.test_to_run_count())
                            ? "skipped"
                            : "passed";
  fire(events::suite_finish,
       {{"suite_name", suite.name()},
        {"suite_result", std::move(verdict)},
        {"suite_duration", seconds(suite.elapsed_time())}},
       false);
}

void BusListener::OnTestProgramEnd(const ::testing::UnitTest& unit_test) {
  fire(events::session_finish,
       {{"session", session_},
        {"session_result", unit_test.Passed() ? "passed" : "failed"},
        {"session_duration", seconds(unit_test.elapsed_time())}},
       false);
}

BusListener& install(HookBus& bus, ArtifactOptions options) {
  if (!options.record_property) {
    options.record_property = [](const std::string& key, const std::string& value) {
      ::testing::Test::RecordProperty(key, value);
    };
  }
  const fs::path root = options.root.empty() ? default_artifacts_root() : options.root;
  install_artifacts(bus, std::move(options));
  detail::set_installed(&bus, root);
  auto* listener = new BusListener(bus);
  ::testing::UnitTest::GetInstance()->listeners().Append(listener);  // owns it
  g_installed.store(listener);
  return *listener;
}

std::optional<std::filesystem::path> current_artifact_dir() {
  BusListener* listener = g_installed.load();
  if (listener == nullptr) return std::nullopt;
  return listener->artifact_dir();
}

}  // namespace roadie::gtest
