// Captured output of a process: split into lines, kept in bounded ring buffers
// (one per stream), optionally teed to a log file, offered to subscribers, and
// searchable with a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/subscription.hpp"

namespace roadie {

enum class Stream { out, err };

/// "stdout" or "stderr".
std::string_view to_string(Stream stream) noexcept;

/// One line of output, without its newline (a trailing "\r" is removed too).
struct Line {
  /// Position in the process's output, counting both streams from 0; never
  /// reused, so `Output::since(seq)` finds what came later even after the ring
  /// dropped older lines.
  std::uint64_t seq = 0;
  Stream stream = Stream::out;
  /// When the bytes that completed the line were read.
  std::chrono::system_clock::time_point time;
  std::string text;
};

/// Bounds and destinations of captured output.
struct OutputOptions {
  /// Lines kept per stream; older ones are dropped (and counted).
  std::size_t max_lines = 10'000;
  /// Bytes of line text kept per stream.
  std::size_t max_bytes = 8 * 1024 * 1024;
  /// A line longer than this is cut into pieces of this size, so that output
  /// without newlines cannot grow memory without bound.
  std::size_t max_line_bytes = 64 * 1024;
  /// When set, every byte from both streams is appended to this file as it
  /// arrives and flushed at once (nothing is lost if the test binary dies).
  /// A new file is created with mode 0644 (less when the umask removes more):
  /// never writable by others, even under umask 0. A symbolic link at this
  /// path is refused, never followed.
  std::filesystem::path log_file;
};

/// A position in an Output, taken by Output::bookmark().
struct OutputBookmark {
  /// The seq the next completed line gets (Output::next_seq() when taken).
  std::uint64_t seq = 0;
  /// Bytes in the output's journal when taken: where that line's record will
  /// start (0 when the journal could not be created).
  std::uint64_t journal_offset = 0;
};

/// The lines of a range of seqs, from Output::between().
struct OutputWindow {
  /// In seq order, each with its time and stream.
  std::vector<Line> lines;
  /// Lines of the range that could not be returned: dropped by the ring
  /// before any bookmark started the journal, or lost because a journal write
  /// failed (a full file system).
  std::uint64_t missing = 0;
};

/// The output of one process. Thread-safe: the runtime's event loop appends,
/// any thread reads, waits, subscribes, bookmarks or reads windows.
///
/// Subscribers run on the event-loop thread, which serves every process of
/// the runtime: a slow subscriber delays every service's output and exit.
/// A consumer that needs "the lines of one test" takes a bookmark() at each
/// end and reads between() them later, on its own thread; one that must do
/// real work per line hands the line to a thread of its own.
class Output {
 public:
  using Bookmark = OutputBookmark;
  using Window = OutputWindow;

  /// Throws roadie::Error when the log file cannot be opened (or is a
  /// symbolic link).
  explicit Output(OutputOptions options = {});
  ~Output();
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  /// Lines still in the buffers, both streams, in the order they were completed.
  std::vector<Line> lines() const;
  /// Lines still in one stream's buffer.
  std::vector<Line> lines(Stream stream) const;
  /// The last n lines of both streams.
  std::vector<Line> tail(std::size_t n) const;
  /// Lines with `seq >= first` still in the buffers.
  std::vector<Line> since(std::uint64_t first) const;
  /// The seq the next completed line will get.
  std::uint64_t next_seq() const;
  /// One stream's buffered lines joined with '\n'.
  std::string text(Stream stream) const;
  /// The last n lines, each prefixed with "  [stdout] " or "  [stderr] ", for
  /// error messages.
  std::string excerpt(std::size_t n = 20) const;

  /// Bytes received on a stream, including those no longer buffered.
  std::uint64_t bytes(Stream stream) const;
  /// Lines dropped from a stream's buffer to respect the bounds.
  std::uint64_t dropped_lines(Stream stream) const;
  /// True once the stream reached end of file (its partial line, if any, was
  /// completed as a line).
  bool closed(Stream stream) const;

  /// Waits until a line matching `pattern` with `seq >= first` arrives on
  /// `stream` (either stream when empty), and returns it. Returns no value when
  /// the timeout passes or when the watched streams are all closed without a
  /// match, so a dead process never makes a caller wait out the whole timeout.
  ///
  /// `pattern` is an RE2 regular expression (https://github.com/google/re2/wiki/Syntax:
  /// Perl-like, without back-references or look-around), searched anywhere in
  /// the line unless anchored with ^ or $. It sees one line at a time, without
  /// its newline (nor a trailing "\r"), at most `max_line_bytes` long: a longer
  /// line arrives as several pieces, so a match cannot span a cut. Text is
  /// UTF-8; `.` does not match a byte that is not valid UTF-8. Matching takes
  /// time linear in the line and never recurses: no pattern and no output can
  /// crash the process. Throws roadie::Error naming the pattern when it is not
  /// valid, before waiting.
  ///
  /// Any duration is accepted; a huge one (`milliseconds::max()`) means no
  /// practical limit, never an overflow into the past.
  template <class Rep, class Period>
  std::optional<Line> wait_for(std::string_view pattern, std::chrono::duration<Rep, Period> timeout,
                               std::optional<Stream> stream = {}, std::uint64_t first = 0) const {
    return wait_for_ns(pattern, saturated_ns(timeout), stream, first);
  }

  /// Calls `on_line` for every line completed from now on, on the event-loop
  /// thread: keep it short and never block in it (see the class comment).
  /// A subscriber that throws is logged; the others still run. Resetting the
  /// subscription waits for a call in progress on another thread.
  Subscription subscribe(std::function<void(const Line&)> on_line);

  /// The position now. The first bookmark starts the journal: from then on
  /// every completed line (seq, time, stream, text) is also appended to an
  /// unlinked temporary file (in $TMPDIR, else /tmp) by append()/close(),
  /// one write per call, so between() can return lines the ring buffers have
  /// dropped. Nothing is journaled, and nothing costs, before the first
  /// bookmark. The journal grows with the output (disk, not memory) and is
  /// deleted with this Output. Never throws for the journal: when it cannot
  /// be created or written, the lines it would have kept are reported as
  /// `missing` by between(). Cheap: call it at every test's start and end.
  Bookmark bookmark();

  /// The lines with `first_seq <= seq < end_seq` (end_seq is clamped to
  /// next_seq(): lines not written yet are neither returned nor missing),
  /// exact even when the ring buffers dropped them, provided a bookmark was
  /// taken at or before `first_seq`: those are read back from the journal.
  /// Lines before the first bookmark come from the ring only; those it
  /// dropped count in `missing`. Reads the journal without holding the lock
  /// the producer takes, so a large window never stalls the event loop.
  Window between(std::uint64_t first_seq, std::uint64_t end_seq) const;

  // Producer side: the runtime feeds process output here. Public so that the
  // same splitting and bounds can be used (and tested) on any byte source.

  /// Appends raw bytes read from a stream; completes lines at each '\n'.
  void append(Stream stream, std::string_view bytes);
  /// Marks a stream as ended; a pending partial line becomes a line.
  void close(Stream stream);

 private:
  std::optional<Line> wait_for_ns(std::string_view pattern, std::chrono::nanoseconds timeout,
                                  std::optional<Stream> stream, std::uint64_t first) const;

  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace roadie
