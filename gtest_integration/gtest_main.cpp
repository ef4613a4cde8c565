// roadie::gtest_main: gtest_main with --roadie_stack and --roadie_artifacts.
#include <gtest/gtest.h>

#include "roadie/gtest.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  static roadie::HookBus bus;  // outlives RUN_ALL_TESTS and the listener's last event
  if (int code = roadie::gtest::init_from_command_line(argc, argv, bus); code != 0) return code;
  return RUN_ALL_TESTS();
}
