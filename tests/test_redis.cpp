// Executors against Debian's real redis-server (installed by scripts/install-deps).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Command;
using roadie::Executor;
using roadie::TcpExecutor;
using roadie::testing::free_port;
using ::testing::HasSubstr;

namespace {

class RedisTest : public roadie::testing::NoLeaks {
 protected:
  Command redis(std::uint16_t port) {
    return Command{"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                   "--save",       "",       "--appendonly",       "no"};
  }
  std::string cli(std::uint16_t port, std::initializer_list<std::string> args) {
    std::vector<std::string> argv{"redis-cli", "-p", std::to_string(port)};
    argv.insert(argv.end(), args);
    auto p = roadie::Process::spawn(Command(argv));
    p.wait();
    return p.output().text(roadie::Stream::out);
  }
};

}  // namespace

TEST_F(RedisTest, TcpExecutorStartsARealRedis) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor server(redis(port), "127.0.0.1", port);
  server.start();
  EXPECT_EQ(cli(port, {"SET", "roadie", "on stage"}), "OK");
  EXPECT_EQ(cli(port, {"GET", "roadie"}), "on stage");
  server.stop();  // redis exits 0 on SIGTERM
  EXPECT_EQ(server.exit_status()->code(), 0);
  EXPECT_THAT(server.output().text(roadie::Stream::out), HasSubstr("Redis is now ready to exit"));
}

TEST_F(RedisTest, ExecProbeWithRedisCliPing) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  Executor server(redis(port),
                  roadie::ready::exec(Command{"redis-cli", "-p", std::to_string(port), "ping"}));
  server.start();
  EXPECT_EQ(cli(port, {"PING"}), "PONG");
}

TEST_F(RedisTest, AllChecksAgree) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  Executor server(redis(port),
                  roadie::ready::all_of({roadie::ready::tcp("127.0.0.1", port),
                                         roadie::ready::banner("Ready to accept connections"),
                                         roadie::ready::exec(Command{
                                             "redis-cli", "-p", std::to_string(port), "ping"})}));
  server.start();
  EXPECT_TRUE(server.running());
}

TEST_F(RedisTest, SecondRedisOnTheSamePortIsAlreadyRunning) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor first(redis(port), "127.0.0.1", port);
  first.start();
  TcpExecutor second(redis(port), "127.0.0.1", port);
  EXPECT_THROW(second.start(), roadie::AlreadyRunning);
  EXPECT_EQ(cli(port, {"PING"}), "PONG");  // the first one is untouched
}

TEST_F(RedisTest, StoppedScopeWithRedis) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor server(redis(port), "127.0.0.1", port);
  server.start();
  {
    auto scope = server.stopped();
    EXPECT_THAT(cli(port, {"PING"}), ::testing::Not(HasSubstr("PONG")));
  }
  EXPECT_EQ(cli(port, {"PING"}), "PONG");
}

TEST_F(RedisTest, StartedScopeWithRedis) {
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  TcpExecutor server(redis(port), "127.0.0.1", port);
  {
    auto scope = server.started();
    EXPECT_EQ(cli(port, {"PING"}), "PONG");
  }
  EXPECT_THAT(cli(port, {"PING"}), ::testing::Not(HasSubstr("PONG")));  // refused again
}

TEST_F(RedisTest, DaemonizingRedisFailsClearlyAndLeavesNothingBehind) {
  roadie::testing::TempDir dir;
  const auto reserved = free_port();
  const auto port = reserved.port().value();
  auto pidfile = dir.path() / "redis.pid";
  roadie::PidExecutor server(
      Command{"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
              "--daemonize", "yes", "--pidfile", pidfile.string(), "--logfile",
              (dir.path() / "redis.log").string()},
      pidfile);
  pid_t daemon = 0;
  try {
    server.start();
    FAIL() << "a redis that daemonizes itself was reported ready";
  } catch (const roadie::ProcessExitedWithError& error) {
    EXPECT_EQ(error.exit_code(), 0);
    EXPECT_THAT(error.what(), HasSubstr("must be run in the foreground"));
  }
  // The failed start stopped the daemon too (re-parented to us and adopted):
  // if it wrote its pid file, that pid is gone.
  std::ifstream(pidfile) >> daemon;
  if (daemon > 0) {
    EXPECT_FALSE(roadie::testing::exists(daemon)) << "redis daemon " << daemon;
  }
  server.stop();
  EXPECT_FALSE(server.running());
  // Nothing else is left either: NoLeaks checks.
}
