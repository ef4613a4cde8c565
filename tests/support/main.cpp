// Test main: creates the global runtime before the first test, so that its own
// descriptors (epoll, eventfd) are not mistaken for leaks.
#include <gtest/gtest.h>

#include "roadie/runtime.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  roadie::Runtime::global();
  return RUN_ALL_TESTS();
}
