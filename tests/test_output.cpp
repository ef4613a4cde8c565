// Line splitting, bounds, tee and waiting, fed directly (no process needed).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>

#include <fstream>
#include <mutex>
#include <thread>

#include "roadie/error.hpp"
#include "roadie/output.hpp"
#include "roadie/process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::Line;
using roadie::Output;
using roadie::OutputOptions;
using roadie::Stream;

namespace {

std::vector<std::string> texts(const std::vector<Line>& lines) {
  std::vector<std::string> result;
  for (const auto& line : lines) result.push_back(line.text);
  return result;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST(Output, SplitsLinesAcrossPartialWrites) {
  Output out;
  out.append(Stream::out, "hel");
  EXPECT_TRUE(out.lines().empty());
  out.append(Stream::out, "lo\nwor");
  out.append(Stream::out, "ld\r\n\nlast");
  EXPECT_EQ(texts(out.lines()), (Strings{"hello", "world", ""}));
  out.close(Stream::out);
  EXPECT_EQ(texts(out.lines()), (Strings{"hello", "world", "", "last"}));
  EXPECT_TRUE(out.closed(Stream::out));
  EXPECT_FALSE(out.closed(Stream::err));
}

TEST(Output, NumbersLinesAcrossStreamsInArrivalOrder) {
  Output out;
  out.append(Stream::out, "a\n");
  out.append(Stream::err, "b\n");
  out.append(Stream::out, "c\n");
  auto lines = out.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].seq, 0u);
  EXPECT_EQ(lines[1].seq, 1u);
  EXPECT_EQ(lines[1].stream, Stream::err);
  EXPECT_EQ(texts(out.lines(Stream::out)), (Strings{"a", "c"}));
  EXPECT_EQ(texts(out.since(1)), (Strings{"b", "c"}));
  EXPECT_EQ(texts(out.tail(2)), (Strings{"b", "c"}));
  EXPECT_EQ(out.next_seq(), 3u);
  EXPECT_EQ(out.text(Stream::out), "a\nc");
}

TEST(Output, RingKeepsTheLastLinesAndCountsDropped) {
  OutputOptions options;
  options.max_lines = 3;
  Output out(options);
  for (int i = 0; i < 10; ++i) out.append(Stream::out, std::to_string(i) + "\n");
  EXPECT_EQ(texts(out.lines()), (Strings{"7", "8", "9"}));
  EXPECT_EQ(out.dropped_lines(Stream::out), 7u);
  EXPECT_EQ(out.bytes(Stream::out), 20u);
  EXPECT_EQ(texts(out.since(2)), (Strings{"7", "8", "9"}));  // dropped ones are gone
}

TEST(Output, ByteBoundDropsOldestLines) {
  OutputOptions options;
  options.max_bytes = 10;
  Output out(options);
  out.append(Stream::err, "aaaa\nbbbb\ncccc\n");
  EXPECT_EQ(texts(out.lines()), (Strings{"bbbb", "cccc"}));
  EXPECT_EQ(out.dropped_lines(Stream::err), 1u);
}

TEST(Output, CutsLinesLongerThanTheBound) {
  OutputOptions options;
  options.max_line_bytes = 4;
  Output out(options);
  out.append(Stream::out, "abcdefghij");
  out.append(Stream::out, "kl\nmnop\n");
  EXPECT_EQ(texts(out.lines()), (Strings{"abcd", "efgh", "ijkl", "mnop"}));
}

TEST(Output, UnterminatedLastLineReachesSubscribersAtEndOfFile) {
  Output out;
  std::vector<std::string> seen;
  auto subscription = out.subscribe([&](const Line& line) { seen.push_back(line.text); });
  out.append(Stream::out, "first\nlast without newline");
  EXPECT_EQ(seen, (Strings{"first"}));
  out.close(Stream::out);
  EXPECT_EQ(seen, (Strings{"first", "last without newline"}));
}

// The same through a real process: ProcessOptions::on_line gets the last line
// that the child left without a newline when it exited.
class OutputOfAProcess : public roadie::testing::NoLeaks {};

TEST_F(OutputOfAProcess, UnterminatedLastLineReachesOnLine) {
  std::mutex mutex;
  std::vector<std::string> seen;
  roadie::ProcessOptions options;
  options.on_line = [&](const Line& line) {
    std::lock_guard lock(mutex);
    seen.push_back(line.text);
  };
  auto p = roadie::Process::spawn(roadie::Command{roadie::testing::child("child_partial"), "0"},
                                  options);
  auto status = p.wait_for(roadie::scaled(10s));
  ASSERT_TRUE(status) << p.output().excerpt();
  p.stop();
  std::lock_guard lock(mutex);
  EXPECT_EQ(seen, (Strings{"hello world", "no newline at the end"}));
}

TEST(Output, SubscribersSeeEveryLineUntilUnsubscribed) {
  Output out;
  std::vector<std::string> seen;
  auto subscription = out.subscribe([&](const Line& line) { seen.push_back(line.text); });
  out.append(Stream::out, "one\ntw");
  out.append(Stream::out, "o\n");
  subscription.reset();
  out.append(Stream::out, "three\n");
  EXPECT_EQ(seen, (Strings{"one", "two"}));
}

TEST(Output, ThrowingSubscriberDoesNotStopOthers) {
  Output out;
  int calls = 0;
  auto bad = out.subscribe([](const Line&) { throw std::runtime_error("boom"); });
  auto good = out.subscribe([&](const Line&) { ++calls; });
  out.append(Stream::out, "x\ny\n");
  EXPECT_EQ(calls, 2);
}

TEST(Output, WaitForFindsExistingAndFutureLines) {
  Output out;
  out.append(Stream::out, "starting\n");
  auto found = out.wait_for("start", 0ms);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->text, "starting");

  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    out.append(Stream::err, "listening on port 80");
    out.append(Stream::err, "80\n");
  });
  auto later = out.wait_for("port \\d+$", 10s, Stream::err);
  writer.join();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->text, "listening on port 8080");
  EXPECT_EQ(later->stream, Stream::err);
}

TEST(Output, WaitForSeesALineEvenIfTheRingDroppedIt) {
  OutputOptions options;
  options.max_lines = 1;
  Output out(options);
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    out.append(Stream::out, "banner\nnoise\nnoise\n");
  });
  auto found = out.wait_for("banner", 10s);
  writer.join();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->seq, 0u);
}

TEST(Output, WaitForTimesOutAndRespectsTheStartingSeq) {
  Output out;
  out.append(Stream::out, "old match\n");
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(out.wait_for("match", 50ms, std::nullopt, 1));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_FALSE(out.wait_for("match", 0ms, Stream::err));
}

// std::regex recursed once per character: these lines overflowed the stack.
TEST(Output, WaitForMatchesLongLinesWithoutCrashing) {
  Output out;
  const std::string long_match = "started " + std::string(60'000, 'x') + " done";
  const std::string full_line(64 * 1024, 'a');  // exactly max_line_bytes
  out.append(Stream::out, long_match + "\n");
  out.append(Stream::out, full_line + "\n");
  out.append(Stream::out, "aab\n");
  auto found = out.wait_for("started.*done", 0ms);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->seq, 0u);
  EXPECT_EQ(found->text.size(), long_match.size());
  // Exponential for a backtracking matcher on the 64 KiB line of 'a's.
  auto pathological = out.wait_for("(a+)+b", 0ms);
  ASSERT_TRUE(pathological);
  EXPECT_EQ(pathological->text, "aab");
  EXPECT_FALSE(out.wait_for("^(a|aa)+$x", 0ms));

  // The same through a waiter, matched on the appending thread.
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    out.append(Stream::err, "started " + std::string(60'000, 'y') + " done\n");
  });
  auto later = out.wait_for("started y+ done$", 10s, Stream::err);
  writer.join();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->stream, Stream::err);
}

TEST(Output, WaitForRejectsAnInvalidPatternNamingIt) {
  Output out;
  out.append(Stream::out, "x\n");
  try {
    out.wait_for("unclosed (group", 0ms);
    FAIL() << "no exception";
  } catch (const roadie::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/unclosed (group/"), std::string::npos) << e.what();
  }
}

// A huge timeout means "no practical limit": it must wait, not overflow into
// the past and return at once.
TEST(Output, WaitForWithAHugeTimeoutWaits) {
  for (auto timeout :
       {std::chrono::nanoseconds::max(), roadie::saturated_ns(std::chrono::milliseconds::max())}) {
    Output out;
    std::thread writer([&] {
      std::this_thread::sleep_for(100ms);
      out.append(Stream::out, "late line\n");
    });
    auto found = out.wait_for("late", timeout);
    writer.join();
    ASSERT_TRUE(found);
    EXPECT_EQ(found->text, "late line");
  }
  Output out;
  std::thread writer([&] {
    std::this_thread::sleep_for(100ms);
    out.append(Stream::out, "late line\n");
  });
  auto found = out.wait_for("late", std::chrono::milliseconds::max());
  writer.join();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->text, "late line");
}

TEST(Output, WaitForReturnsWhenTheStreamsClose) {
  Output out;
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);
    out.close(Stream::out);
    out.close(Stream::err);
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(out.wait_for("never", 60s));
  closer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST(Output, ExcerptPrefixesEachLineWithItsStream) {
  Output out;
  out.append(Stream::out, "a\n");
  out.append(Stream::err, "b\npartial");
  EXPECT_EQ(out.excerpt(), "  [stdout] a\n  [stderr] b\n  [stderr] partial  (no newline yet)\n");
}

TEST(Output, TeesRawBytesToTheLogFile) {
  roadie::testing::TempDir dir;
  OutputOptions options;
  options.log_file = dir.path() / "service.log";
  {
    Output out(options);
    out.append(Stream::out, "hel");
    out.append(Stream::err, "lo\n");
    // Flushed as it arrives, before the Output is gone.
    std::ifstream log(options.log_file);
    std::string content((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "hello\n");
  }
}

TEST(Output, UnwritableLogFileIsAClearError) {
  OutputOptions options;
  options.log_file = "/nonexistent-dir/service.log";
  try {
    Output out(options);
    FAIL() << "no exception";
  } catch (const roadie::Error& e) {
    EXPECT_STREQ(e.what(),
                 "cannot open log file '/nonexistent-dir/service.log': No such file or directory");
  }
}

TEST(Output, LogFileIsNotFollowedThroughASymlink) {
  roadie::testing::TempDir dir;
  const auto target = dir.path() / "precious";
  { std::ofstream(target) << "keep me\n"; }
  std::filesystem::create_symlink(target, dir.path() / "service.log");
  OutputOptions options;
  options.log_file = dir.path() / "service.log";
  try {
    Output out(options);
    out.append(Stream::out, "overwritten\n");
    FAIL() << "a symlink at the log path was followed";
  } catch (const roadie::Error& e) {
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "keep me\n");
}

TEST(Output, LogFileIsNotWorldWritableUnderUmaskZero) {
  roadie::testing::TempDir dir;
  OutputOptions options;
  options.log_file = dir.path() / "service.log";
  const mode_t old_mask = ::umask(0);
  try {
    Output out(options);
  } catch (...) {
    ::umask(old_mask);
    throw;
  }
  ::umask(old_mask);
  struct stat st {};
  ASSERT_EQ(::stat(options.log_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

// --- bookmarks and windows ---------------------------------------------------------------------

namespace {

// The number in "out123" / "err123".
long number(const std::string& text) {
  return std::stol(text.substr(3));
}

}  // namespace

TEST(OutputWindow, BetweenReturnsTheExactLinesEvenWhenTheRingDroppedThem) {
  roadie::testing::TempDir dir;
  const auto go = dir.path() / "go";
  constexpr int kPerStream = 3000;
  roadie::ProcessOptions options;
  options.output.max_lines = 10;
  // Waits for the bookmark, then prints outN and errN lines on the two streams.
  auto p = roadie::Process::spawn(
      roadie::Command::shell("while [ ! -e " + go.string() +
                             " ]; do sleep 0.01; done; i=0; while [ $i -lt " +
                             std::to_string(kPerStream) +
                             " ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"),
      options);
  Output& out = p.output();
  const auto mark = out.bookmark();
  EXPECT_EQ(mark.seq, 0u);
  EXPECT_EQ(mark.journal_offset, 0u);
  std::ofstream(go) << "x";
  ASSERT_TRUE(p.wait_for(roadie::scaled(30s)));
  const std::uint64_t total = out.next_seq();
  ASSERT_EQ(total, 2u * kPerStream);
  ASSERT_GT(out.dropped_lines(Stream::out), 0u);  // the ring kept 10 of each

  const auto end = out.bookmark();
  EXPECT_EQ(end.seq, total);
  EXPECT_GT(end.journal_offset, 0u);

  for (auto [first, last] : {std::pair<std::uint64_t, std::uint64_t>{0, total},
                             {1234, 4321}, {total - 15, total}, {17, 18}}) {
    auto window = out.between(first, last);
    EXPECT_EQ(window.missing, 0u) << first << ".." << last;
    ASSERT_EQ(window.lines.size(), last - first) << first << ".." << last;
    long next[2] = {-1, -1};
    for (std::size_t i = 0; i < window.lines.size(); ++i) {
      const auto& line = window.lines[i];
      ASSERT_EQ(line.seq, first + i);
      const bool is_out = line.stream == Stream::out;
      ASSERT_EQ(line.text.substr(0, 3), is_out ? "out" : "err") << line.text;
      long& expected = next[is_out ? 0 : 1];
      // Each stream's numbers follow one another.
      if (expected >= 0) {
        ASSERT_EQ(number(line.text), expected) << line.text;
      }
      expected = number(line.text) + 1;
      if (i > 0) {
        ASSERT_GE(line.time, window.lines[i - 1].time);
      }
    }
  }
  // A window past the end: clamped, nothing missing.
  auto beyond = out.between(total - 2, total + 100);
  EXPECT_EQ(beyond.lines.size(), 2u);
  EXPECT_EQ(beyond.missing, 0u);
  p.stop();
}

TEST(OutputWindow, LinesBeforeTheFirstBookmarkComeOnlyFromTheRing) {
  OutputOptions options;
  options.max_lines = 10;
  Output out(options);
  for (int i = 0; i < 100; ++i) out.append(Stream::out, "early" + std::to_string(i) + "\n");
  // Nothing journaled yet: a window the ring dropped is missing.
  auto before = out.between(0, 100);
  EXPECT_EQ(before.lines.size(), 10u);
  EXPECT_EQ(before.missing, 90u);
  const auto mark = out.bookmark();
  EXPECT_EQ(mark.seq, 100u);
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += "late" + std::to_string(i) + "\n";
  out.append(Stream::out, batch);
  auto window = out.between(0, 200);
  EXPECT_EQ(window.missing, 100u);  // early0..early99: dropped before the journal
  ASSERT_EQ(window.lines.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(window.lines[i].seq, 100u + i);
    EXPECT_EQ(window.lines[i].text, "late" + std::to_string(i));
    EXPECT_EQ(window.lines[i].stream, Stream::out);
  }
}

TEST(OutputWindow, AJournalOnAFullFileSystemReportsMissingLines) {
  // RLIMIT_FSIZE plays a full disk: a write past it fails with EFBIG
  // (SIGXFSZ ignored for the duration).
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 16 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  OutputOptions options;
  options.max_lines = 10;
  Output out(options);
  out.bookmark();
  constexpr int kLines = 5000;
  for (int i = 0; i < kLines; ++i) out.append(Stream::out, "line" + std::to_string(i) + "\n");
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  auto window = out.between(0, kLines);
  EXPECT_GT(window.missing, 0u);
  EXPECT_GT(window.lines.size(), 10u);  // what fit in the journal, and the ring
  EXPECT_EQ(window.lines.size() + window.missing, static_cast<std::uint64_t>(kLines));
  for (const auto& line : window.lines) {
    EXPECT_EQ(line.text, "line" + std::to_string(line.seq));
  }
  // Writes work again once there is room.
  out.append(Stream::out, "after\n");
  auto last = out.between(kLines, kLines + 1);
  ASSERT_EQ(last.lines.size(), 1u);
  EXPECT_EQ(last.lines[0].text, "after");
}
