// Readiness checks against hostile input: long lines and pathological patterns
// (which must never crash the test binary), invalid patterns, ports and URLs
// (clear roadie::Errors when the check is made), huge timeouts (no practical
// limit, never an overflow).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>

#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/ready.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Command;
using roadie::Executor;
using roadie::ExecutorOptions;
using roadie::Port;
using roadie::testing::child;
using roadie::testing::error_of;
namespace ready = roadie::ready;

namespace {

class ReadyTest : public roadie::testing::NoLeaks {};

ExecutorOptions with_timeout(std::chrono::milliseconds timeout) {
  ExecutorOptions options;
  options.timeout = timeout;
  options.stop_timeout = 5s;
  return options;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

// --- patterns ---------------------------------------------------------------

// std::regex recursed once per character: on the event-loop thread this line
// overflowed the stack and killed the whole test binary.
TEST_F(ReadyTest, BannerMatchesASixtyKilobyteLineWithoutCrashing) {
  Executor e(Command::shell("printf 'started %060000d done\\n' 7; exec sleep 1000"),
             ready::banner("started.*done"), with_timeout(30s));
  e.start();
  auto lines = e.output().lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text.size(), 60'000u + 13u);
  e.stop();
}

// A full 64 KiB line (max_line_bytes) of 'a', then a short match: a
// backtracking matcher takes exponential time (or the stack) on the long one.
TEST_F(ReadyTest, BannerPathologicalPatternOnAFullLengthLine) {
  Executor e(Command::shell("head -c 65536 /dev/zero | tr '\\000' a; echo; echo aab; "
                            "exec sleep 1000"),
             ready::banner("(a+)+b", roadie::Stream::out), with_timeout(30s));
  e.start();
  auto line = e.output().wait_for("^aab$", 0s);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->seq, 1u);
  EXPECT_EQ(e.output().lines().front().text, std::string(64 * 1024, 'a'));
  e.stop();
}

TEST(Ready, InvalidBannerPatternIsAnErrorNamingItWhenTheCheckIsMade) {
  auto message = error_of([] { ready::banner("ready (on port"); });
  EXPECT_TRUE(contains(message, "ready::banner: invalid pattern /ready (on port/")) << message;
  EXPECT_NE(error_of([] { roadie::OutputExecutor(Command{"true"}, "(a)\\1"); }), "");
}

TEST_F(ReadyTest, HttpStatusPatternIsMatchedWholeWithoutBacktracking) {
  const auto reserved = roadie::testing::free_port();
  const auto port = reserved.port().value();
  roadie::HttpCheck request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/health";
  request.status = "(2+)+0*4";
  Executor e(Command{child("child_http"), std::to_string(port), "--status", "204"},
             ready::http(request), with_timeout(30s));
  e.start();
  e.stop();

  // Matched whole: "20" alone would be a partial match of 204.
  request.status = "(2|0)+";
  Executor partial(Command{child("child_http"), std::to_string(port), "--status", "204"},
                   ready::http(request), with_timeout(500ms));
  EXPECT_THROW(partial.start(), roadie::TimeoutExpired);
}

TEST(Ready, HttpUrlWithASixtyKilobytePathIsParsedWithoutCrashing) {
  auto check = ready::http("http://127.0.0.1:8080/" + std::string(60'000, 'p'));
  EXPECT_EQ(check.describe().size(), std::string("http HEAD http://127.0.0.1:8080/").size() +
                                         60'000u + std::string(" -> /2../").size());
}

TEST(Ready, InvalidHttpStatusPatternIsAnErrorNamingItWhenTheCheckIsMade) {
  roadie::HttpCheck request;
  request.url = "http://127.0.0.1:8080/";
  request.status = "2((";
  auto message = error_of([&] { ready::http(request); });
  EXPECT_TRUE(contains(message, "invalid pattern /2((/")) << message;
}

// --- ports and URLs ---------------------------------------------------------

static_assert(!std::is_convertible_v<bool, Port>, "a bool is not a port");

TEST(Ready, PortsOutsideOneTo65535AreErrorsNamingTheValue) {
  EXPECT_EQ(Port(1).value(), 1u);
  EXPECT_EQ(Port(65535).value(), 65535u);
  EXPECT_EQ(Port(std::uint16_t{6379}).value(), 6379u);
  EXPECT_EQ(error_of([] { Port(0); }), "invalid TCP port 0 (expected 1 to 65535)");
  EXPECT_EQ(error_of([] { Port(-1); }), "invalid TCP port -1 (expected 1 to 65535)");
  EXPECT_EQ(error_of([] { Port(70000); }), "invalid TCP port 70000 (expected 1 to 65535)");
  EXPECT_EQ(error_of([] { Port(65536); }), "invalid TCP port 65536 (expected 1 to 65535)");
  // Would be port 80 after a wrap to 16 bits.
  EXPECT_NE(error_of([] { Port((std::int64_t{1} << 32) + 80); }), "");
  EXPECT_NE(error_of([] { Port(std::uint64_t{1} << 63); }), "");
}

TEST(Ready, TcpCheckAndExecutorRejectPortsThatWouldWrap) {
  EXPECT_TRUE(contains(error_of([] { ready::tcp("127.0.0.1", 0); }), "port 0"));
  EXPECT_TRUE(contains(error_of([] { ready::tcp("127.0.0.1", 70000); }), "port 70000"));
  EXPECT_TRUE(
      contains(error_of([] { roadie::TcpExecutor(Command{"true"}, "127.0.0.1", -1); }), "port -1"));
  EXPECT_EQ(ready::tcp("127.0.0.1", 6379).describe(), "tcp 127.0.0.1:6379");
}

TEST(Ready, UrlPortsOutOfRangeAreRoadieErrors) {
  // A 20-digit port used to escape as std::out_of_range.
  auto message = error_of([] { ready::http("http://127.0.0.1:12345678901234567890/health"); });
  EXPECT_TRUE(contains(message, "bad port 12345678901234567890")) << message;
  message = error_of([] { ready::http("http://127.0.0.1:99999999999999999999/"); });
  EXPECT_TRUE(contains(message, "bad port 99999999999999999999")) << message;
  EXPECT_NE(error_of([] { ready::http("http://127.0.0.1:0/"); }), "");
  EXPECT_NE(error_of([] { ready::http("http://127.0.0.1:65536/"); }), "");
  EXPECT_EQ(ready::http("https://[::1]:65535/x").describe(),
            "http HEAD https://[::1]:65535/x -> /2../");
}

// --- huge timeouts ----------------------------------------------------------

// attempt_timeout = milliseconds::max() means "no bound of its own": each
// attempt must run (bounded by the start deadline), not expire at once.
TEST_F(ReadyTest, ExecProbeWithAHugeAttemptTimeoutWaitsForTheProbe) {
  Executor e(Command{child("child_idle")},
             ready::exec(Command{"/bin/sh", "-c", "sleep 0.05"}, std::chrono::milliseconds::max()),
             with_timeout(20s));
  e.start();
  e.stop();
}

TEST(Ready, EmptyCompositionsAndANullCheckAreRoadieErrors) {
  EXPECT_NE(error_of([] { ready::all_of({}); }).find("all_of: no checks"), std::string::npos);
  EXPECT_NE(error_of([] { ready::any_of({}); }).find("any_of: no checks"), std::string::npos);
  EXPECT_NE(error_of([] { roadie::ReadinessCheck(nullptr); }).find("null check"),
            std::string::npos);
}
