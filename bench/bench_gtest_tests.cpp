// The GoogleTest binary bench_gtest runs: BENCH_TESTS trivial tests (default
// 10,000). Bare, it is plain GoogleTest; with BENCH_MODE=roadie it installs
// the listener with every built-in artifact plugin (root BENCH_ROOT) and
// brings up BENCH_STACK (one running service) for the session.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "roadie/gtest.hpp"

namespace {

int tests_from_env() {
  const char* count = std::getenv("BENCH_TESTS");
  return count != nullptr ? std::atoi(count) : 10'000;
}

class Trivial : public ::testing::TestWithParam<int> {};
TEST_P(Trivial, Passes) { EXPECT_GE(GetParam(), 0); }
INSTANTIATE_TEST_SUITE_P(Many, Trivial, ::testing::Range(0, tests_from_env()));

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  static roadie::HookBus bus;
  const char* mode = std::getenv("BENCH_MODE");
  if (mode != nullptr && std::string(mode) == "roadie") {
    roadie::ArtifactOptions options;
    options.root = std::getenv("BENCH_ROOT");
    roadie::gtest::install(bus, std::move(options));
    roadie::gtest::add_stack(std::filesystem::path(std::getenv("BENCH_STACK")));
  }
  return RUN_ALL_TESTS();
}
