#include <gtest/gtest.h>

#include "roadie/command.hpp"
#include "roadie/error.hpp"
#include "roadie/exit_status.hpp"
#include "test_support.hpp"

using roadie::Command;
using roadie::testing::error_of;

namespace {

const std::string nul(1, '\0');

}  // namespace

TEST(Command, DisplayQuotesOnlyWhatNeedsIt) {
  Command c{"redis-server", "--port", "7001", "--save", "", "it's here"};
  EXPECT_EQ(c.display(), "redis-server --port 7001 --save '' 'it'\\''s here'");
}

TEST(Command, ShellRunsThroughBinSh) {
  auto c = Command::shell("echo $HOME");
  EXPECT_EQ(c.argv(), (std::vector<std::string>{"/bin/sh", "-c", "echo $HOME"}));
}

TEST(Command, EmptyArgvIsRejected) {
  EXPECT_NE(roadie::testing::error_of([] { Command(std::vector<std::string>{}); }).find("argv must not be empty"),
            std::string::npos);
}

// A NUL would cut the C string the system gets: refused, never truncated.
TEST(Command, NulBytesInArgvAreRejectedNamingTheArgument) {
  EXPECT_EQ(error_of([] {
              Command({"redis-server", "--port", "70" + nul + "01"});
            }),
            "roadie::Command: argument 2 '70\\001' contains a NUL byte");
  EXPECT_EQ(error_of([] { Command{"redis" + nul + "-server"}; }),
            "roadie::Command: the program 'redis\\0-server' contains a NUL byte");
  EXPECT_NE(error_of([] { Command::shell("echo a" + nul + "b"); }), "");
}

TEST(Command, BadEnvironmentNamesAndValuesAreRejectedNamingThem) {
  Command c{"x"};
  EXPECT_EQ(error_of([&] { c.set_env("A=B", "1"); }),
            "roadie::Command::set_env: variable name 'A=B' contains '='");
  EXPECT_EQ(error_of([&] { c.set_env("", "1"); }), "roadie::Command::set_env: empty variable name");
  EXPECT_EQ(error_of([&] { c.set_env("N" + nul + "AME", "1"); }),
            "roadie::Command::set_env: variable name 'N\\0AME' contains a NUL byte");
  EXPECT_EQ(error_of([&] { c.set_env("NAME", "va" + nul + "lue"); }),
            "roadie::Command::set_env: the value of NAME ('va\\0lue') contains a NUL byte");
  EXPECT_EQ(error_of([&] { c.unset_env("A=B"); }),
            "roadie::Command::unset_env: variable name 'A=B' contains '='");
  EXPECT_EQ(error_of([&] { c.set_cwd("/tmp" + nul + "/x"); }),
            "roadie::Command::set_cwd: directory '/tmp\\0/x' contains a NUL byte");
  EXPECT_TRUE(c.env_changes().empty());
  EXPECT_FALSE(c.cwd());
}

TEST(Command, EnvironmentMergesOverTheParents) {
  const char* parent[] = {"HOME=/root", "PATH=/bin", "LANG=C", nullptr};
  Command c{"x"};
  c.set_env("PATH", "/opt/bin").unset_env("LANG").set_env("NEW", "1");
  EXPECT_EQ(c.environment(parent),
            (std::vector<std::string>{"HOME=/root", "NEW=1", "PATH=/opt/bin"}));
}

TEST(Command, ClearedEnvironmentHoldsOnlyWhatWasSet) {
  const char* parent[] = {"HOME=/root", nullptr};
  Command c{"x"};
  c.clear_env().set_env("ONLY", "this");
  EXPECT_EQ(c.environment(parent), (std::vector<std::string>{"ONLY=this"}));
}

TEST(ExitStatus, DescribesCodesAndSignals) {
  EXPECT_EQ(roadie::ExitStatus::exited(3).describe(), "exited with code 3");
  EXPECT_EQ(roadie::ExitStatus::killed(9).describe(), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(roadie::ExitStatus::killed(9).code(), -9);
  EXPECT_TRUE(roadie::ExitStatus::exited(0).success());
  EXPECT_FALSE(roadie::ExitStatus::killed(15).success());
}
