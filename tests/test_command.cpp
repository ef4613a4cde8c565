#include <gtest/gtest.h>

#include "roadie/command.hpp"
#include "roadie/exit_status.hpp"

using roadie::Command;

TEST(Command, DisplayQuotesOnlyWhatNeedsIt) {
  Command c{"redis-server", "--port", "7001", "--save", "", "it's here"};
  EXPECT_EQ(c.display(), "redis-server --port 7001 --save '' 'it'\\''s here'");
}

TEST(Command, ShellRunsThroughBinSh) {
  auto c = Command::shell("echo $HOME");
  EXPECT_EQ(c.argv(), (std::vector<std::string>{"/bin/sh", "-c", "echo $HOME"}));
}

TEST(Command, EmptyArgvIsRejected) {
  EXPECT_THROW(Command(std::vector<std::string>{}), std::invalid_argument);
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
