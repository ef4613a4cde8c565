// A test binary for test_gtest_scopes, linked with roadie::gtest_main: the
// driver runs it with --roadie_stack and a filter per scenario. SAMPLE_DIR
// is the driver's scratch directory; the children's paths come in
// CHILD_LISTEN / CHILD_TRIGGER.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "roadie/gtest.hpp"

namespace {

using namespace std::chrono_literals;

std::string sample_dir() {
  const char* dir = std::getenv("SAMPLE_DIR");
  return dir != nullptr ? dir : ".";
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

void append(const std::string& file, const std::string& line) {
  std::ofstream(sample_dir() + "/" + file, std::ios::app) << line << "\n";
}

bool connects(roadie::Port port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port.value());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

// Waits until `done` holds (bounded).
template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// --- Session scope (run with --roadie_stack=stacks/session.yaml) ------------

TEST(Session, ReachesTheServiceAndItsPort) {
  roadie::gtest::Service web = roadie::gtest::service("web");
  EXPECT_TRUE(web.alive());
  EXPECT_FALSE(web.attached() && env("ROADIE_STATE").empty());
  EXPECT_EQ(env("ROADIE_PORT_WEB"), std::to_string(web.port().value()));
  EXPECT_TRUE(connects(web.port("web")));
  append("session.pids", std::to_string(web.pid()));
}

TEST(Session, ReachesTheSameServiceInTheNextTest) {
  roadie::gtest::Service web = roadie::gtest::service("web");
  EXPECT_TRUE(connects(web.port()));
  append("session.pids", std::to_string(web.pid()));
}

TEST(Session, StoppedStopsAndStartsAgain) {
  roadie::gtest::Service web = roadie::gtest::service("web");
  const roadie::Port port = web.port();
  {
    auto scope = web.stopped();
    EXPECT_FALSE(connects(port)) << "the port still accepts inside stopped()";
  }
  EXPECT_TRUE(connects(port)) << "the port refuses after stopped()";
}

// Each trigger prints its own lines: this test's log window holds exactly
// trigger N, where N is the test's number (1 or 2).
std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

void trigger_and_wait(int n) {
  roadie::gtest::Service talker = roadie::gtest::service("talker");
  ASSERT_EQ(::kill(talker.pid(), SIGUSR1), 0);
  // "done" comes on both streams: once both are read, so is every line.
  const std::string done = "trigger " + std::to_string(n) + " done";
  if (talker.attached()) {  // its lines reach us through its log file
    ASSERT_TRUE(eventually([&] {
      std::ifstream in(talker.log_file());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      return count(text, done) == 2;
    }));
    return;
  }
  ASSERT_TRUE(talker.executor().output().wait_for(done, 5s, roadie::Stream::out));
  ASSERT_TRUE(talker.executor().output().wait_for(done, 5s, roadie::Stream::err));
}
TEST(Window, First) { trigger_and_wait(1); }
TEST(Window, Second) { trigger_and_wait(2); }

TEST(Unknown, ServiceNamesWhatIsInReach) {
  try {
    roadie::gtest::service("nosuch");
    ADD_FAILURE() << "service(\"nosuch\") did not throw";
  } catch (const roadie::Error& e) {
    append("unknown.txt", e.what());
  }
}

// Two processes attached to one stack with a reset: their tests never
// overlap ("in" and "out" of one process stay together).
TEST(Shared, HoldsTheStack) {
  append("shared.txt", "in " + std::to_string(::getpid()));
  std::this_thread::sleep_for(50ms);
  append("shared.txt", "out " + std::to_string(::getpid()));
}

// SAMPLE_KILL: the first test kills the service, the second needs it.
TEST(Dying, KillsTheService) {
  if (env("SAMPLE_KILL").empty()) GTEST_SKIP() << "only with SAMPLE_KILL";
  roadie::gtest::Service web = roadie::gtest::service("web");
  ASSERT_EQ(::kill(web.pid(), SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return web.death().has_value(); }));
}
TEST(Dying, NeedsTheServiceLater) { append("after-death.txt", "ran"); }

// SAMPLE_HANG: writes hang.ready, then waits to be killed.
TEST(Hang, UntilKilled) {
  if (env("SAMPLE_HANG").empty()) GTEST_SKIP() << "only with SAMPLE_HANG";
  roadie::gtest::Service talker = roadie::gtest::service("talker");
  ASSERT_EQ(::kill(talker.pid(), SIGUSR1), 0);
  ASSERT_TRUE(talker.executor().output().wait_for("trigger 1 done", 5s));
  append("hang.pids", std::to_string(roadie::gtest::service("web").pid()) + " " +
                          std::to_string(talker.pid()));
  std::ofstream(sample_dir() + "/hang.ready") << "ready\n";
  std::this_thread::sleep_for(600s);
}

// --- A real redis with a request reset (run with stacks/redis_reset.yaml) ---

// One inline command to redis on a fresh connection; its first reply line.
std::string redis(roadie::Port port, const std::string& command) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port.value());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string line = command + "\r\n";
    if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
      char c = 0;
      while (::read(fd, &c, 1) == 1 && c != '\n') reply += c;
    }
  }
  ::close(fd);
  if (!reply.empty() && reply.back() == '\r') reply.pop_back();
  return reply;
}

TEST(Redis, First) {
  const roadie::Port port = roadie::gtest::service("redis").port();
  EXPECT_EQ(redis(port, "GET left"), "$-1");
  EXPECT_EQ(redis(port, "SET left behind"), "+OK");
}
TEST(Redis, Second) {
  // The reset emptied redis before this test.
  EXPECT_EQ(redis(roadie::gtest::service("redis").port(), "GET left"), "$-1");
}

// --- Suite scope ------------------------------------------------------------

roadie::TcpExecutor listener(roadie::Port port, const std::string& name) {
  roadie::ExecutorOptions options;
  options.name = name;
  return roadie::TcpExecutor({env("CHILD_LISTEN"), "tcp:" + std::to_string(port.value())},
                             "127.0.0.1", port, options);
}

class SuiteA : public roadie::gtest::SuiteServices<SuiteA> {
 public:
  static void services(roadie::gtest::ServiceSet& set) {
    roadie::Port port = set.reserve("suite_web");
    set.add(listener(port, "suite_web"), {.ports = {{"suite_web", port}}});
  }
};
TEST_F(SuiteA, One) {
  append("suite.pids", "A " + std::to_string(service("suite_web").pid()));
  EXPECT_TRUE(connects(service("suite_web").port()));
  EXPECT_EQ(env("ROADIE_PORT_SUITE_WEB"), std::to_string(service("suite_web").port().value()));
}
TEST_F(SuiteA, Two) { append("suite.pids", "A " + std::to_string(service("suite_web").pid())); }

class SuiteB : public roadie::gtest::SuiteServices<SuiteB> {
 public:
  static void services(roadie::gtest::ServiceSet& set) {
    roadie::Port port = set.reserve("suite_web");
    set.add(listener(port, "suite_web"), {.ports = {{"suite_web", port}}});
  }
};
TEST_F(SuiteB, One) { append("suite.pids", "B " + std::to_string(service("suite_web").pid())); }
TEST_F(SuiteB, Two) {
  append("suite.pids", "B " + std::to_string(service("suite_web").pid()));
  // From the free function too (suite scope is in reach).
  EXPECT_EQ(roadie::gtest::service("suite_web").pid(), service("suite_web").pid());
}

// SAMPLE_KILL: the suite's service dies in its first test.
class SuiteDying : public roadie::gtest::SuiteServices<SuiteDying> {
 public:
  static void services(roadie::gtest::ServiceSet& set) {
    roadie::Port port = set.reserve("fragile");
    set.add(listener(port, "fragile"), {.ports = {{"fragile", port}}});
  }
};
TEST_F(SuiteDying, Kills) {
  if (env("SAMPLE_KILL").empty()) GTEST_SKIP() << "only with SAMPLE_KILL";
  ASSERT_EQ(::kill(service("fragile").pid(), SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return service("fragile").death().has_value(); }));
}
TEST_F(SuiteDying, NeedsIt) { append("suite-after-death.txt", "ran"); }

// A suite whose service cannot start: every test fails with the reason.
class SuiteBroken : public roadie::gtest::SuiteServices<SuiteBroken> {
 public:
  static void services(roadie::gtest::ServiceSet& set) {
    roadie::ExecutorOptions options;
    options.name = "missing";
    set.add(roadie::Executor({"/nonexistent/roadie-sample-binary"}, options));
  }
};
TEST_F(SuiteBroken, One) { append("broken-ran.txt", "ran"); }
TEST_F(SuiteBroken, Two) { append("broken-ran.txt", "ran"); }

// --- Test scope -------------------------------------------------------------

class PerTest : public roadie::gtest::TestServices<> {
 protected:
  roadie::Port port = reserve("own");
  roadie::TcpExecutor& own = add(listener(port, "own"), {.ports = {{"own", port}}});
};
TEST_F(PerTest, One) {
  EXPECT_TRUE(own.running());
  EXPECT_TRUE(connects(port));
  append("test.pids", std::to_string(own.pid()));
}
TEST_F(PerTest, Two) {
  EXPECT_TRUE(connects(service("own").port()));
  append("test.pids", std::to_string(own.pid()));
}
TEST_F(PerTest, DiesWithSampleKill) {
  if (env("SAMPLE_KILL").empty()) GTEST_SKIP() << "only with SAMPLE_KILL";
  ASSERT_EQ(::kill(own.pid(), SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return service("own").death().has_value(); }));
}

// SAMPLE_KILL: four threads read the service (the accessors are thread-safe)
// while it is killed and its death recorded from the event loop.
TEST_F(PerTest, AccessorsFromThreadsWhileItDies) {
  if (env("SAMPLE_KILL").empty()) GTEST_SKIP() << "only with SAMPLE_KILL";
  roadie::gtest::Service own_service = service("own");
  std::atomic<bool> done{false};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!done) {
        (void)own_service.alive();
        (void)own_service.death();
        try {
          (void)own_service.port();
          (void)own_service.pid();
          (void)roadie::gtest::service("own").last_lines(5);
        } catch (const roadie::Error&) {  // the death, once recorded
        }
        ++reads;
      }
    });
  }
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(::kill(own.pid(), SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return own_service.death().has_value(); }));
  std::this_thread::sleep_for(20ms);
  done = true;
  for (auto& reader : readers) reader.join();
  append("reads.txt", std::to_string(reads.load()));
}

// A handle kept past its scope refuses instead of reaching a freed executor.
std::optional<roadie::gtest::Service> kept;
TEST_F(PerTest, KeepsAHandle) { kept = service("own"); }
TEST(PerTestAfter, TheKeptHandleRefuses) {
  ASSERT_TRUE(kept.has_value());
  EXPECT_FALSE(kept->alive());
  try {
    (void)kept->pid();
    ADD_FAILURE() << "a handle past its scope answered";
  } catch (const roadie::Error& e) {
    append("kept.txt", e.what());
  }
}

// A test-scope port named like the session's: the session's comes back.
class ShadowPort : public roadie::gtest::TestServices<> {
 protected:
  roadie::Port port = reserve("web");
  roadie::TcpExecutor& own = add(listener(port, "shadow"), {.ports = {{"web", port}}});
};
TEST_F(ShadowPort, HasItsOwn) { EXPECT_EQ(env("ROADIE_PORT_WEB"), std::to_string(port.value())); }
TEST(ShadowPortAfter, TheSessionsIsBack) {
  EXPECT_EQ(env("ROADIE_PORT_WEB"), std::to_string(roadie::gtest::service("web").port().value()));
}

// One start fails at once, the other would take 30 s: it is cancelled.
class OneFails : public roadie::gtest::TestServices<> {
 protected:
  roadie::Port port = reserve("slow");
  roadie::TcpExecutor& slow = add(
      roadie::TcpExecutor({env("CHILD_LISTEN"), "tcp:" + std::to_string(port.value()),
                           "--delay-ms", "30000"},
                          "127.0.0.1", port, slow_options()),
      {.name = "slow"});
  roadie::Executor& broken = add(roadie::Executor({"/nonexistent/roadie-sample-binary"}),
                                 {.name = "broken"});
  static roadie::ExecutorOptions slow_options() {
    roadie::ExecutorOptions options;
    options.timeout = std::chrono::seconds(60);
    return options;
  }
};
TEST_F(OneFails, NeverRuns) { append("onefails-ran.txt", "ran"); }

// SAMPLE_KILL: the test reads the dead service through an accessor.
TEST(Dying2, AccessorAfterTheDeath) {
  if (env("SAMPLE_KILL").empty()) GTEST_SKIP() << "only with SAMPLE_KILL";
  roadie::gtest::Service web = roadie::gtest::service("web");
  ASSERT_EQ(::kill(web.pid(), SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return web.death().has_value(); }));
  try {
    (void)web.port();  // throws the death
  } catch (const roadie::Error&) {
    // swallowed: the death still fails the test, at its end
  }
}

// started() on an executor the test holds itself.
TEST(Scopes, StartedStartsAndStops) {
  auto reserved = roadie::PortReservation::reserve("adhoc");
  roadie::TcpExecutor adhoc = listener(reserved.port(), "adhoc");
  {
    auto scope = adhoc.started();
    EXPECT_TRUE(connects(reserved.port()));
    append("adhoc.pids", std::to_string(adhoc.pid()));
  }
  EXPECT_FALSE(connects(reserved.port()));
}

}  // namespace
