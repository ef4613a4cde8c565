// A GoogleTest program outside roadie, linked with the installed
// roadie::gtest_main: one service per test through TestServices.
#include <roadie/gtest.hpp>

namespace {

class Consumer : public roadie::gtest::TestServices<> {
 protected:
  roadie::OutputExecutor& echo = add(
      roadie::OutputExecutor({"sh", "-c", "echo up; exec sleep 60"}, "^up$"), {.name = "echo"});
};

TEST_F(Consumer, ReachesItsService) {
  EXPECT_TRUE(echo.running());
  EXPECT_EQ(service("echo").pid(), echo.pid());
}

}  // namespace
