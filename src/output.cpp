#include "roadie/output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <list>
#include <map>
#include <mutex>

#include "callback_list.hpp"
#include "log.hpp"
#include "ready/pattern.hpp"
#include "roadie/error.hpp"

namespace roadie {

std::string_view to_string(Stream stream) noexcept {
  return stream == Stream::out ? "stdout" : "stderr";
}

namespace {

struct StreamBuffer {
  std::deque<Line> lines;
  std::size_t bytes = 0;  // text bytes held in `lines`
  std::uint64_t total_bytes = 0;
  std::uint64_t dropped = 0;
  std::string partial;  // bytes after the last newline
  bool closed = false;
};

// A wait_for() in progress: the producer tests every new line against it, so a
// match is seen even if the ring drops the line before the waiter wakes up.
struct Watcher {
  const re2::RE2* pattern;
  std::optional<Stream> stream;
  std::optional<Line> match;
};

// A journal record: this header, then `length` bytes of text.
struct RecordHeader {
  std::uint64_t seq;
  std::int64_t time_ns;
  std::uint32_t length;
  std::uint8_t stream;
  std::uint8_t pad[3];
};
static_assert(sizeof(RecordHeader) == 24);

// Bookmarked positions remembered for between() (seq -> journal offset).
// Older ones are forgotten: a window before the oldest left is read from the
// journal's start, slower but exact.
constexpr std::size_t kMaxMarks = 4096;

// An unlinked temporary file: O_TMPFILE where the file system has it, else
// mkstemp + unlink. -1 (and errno) when neither works.
int open_journal() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string name = dir + "/roadie-journal-XXXXXX";
  fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd >= 0) ::unlink(name.c_str());
  return fd;
}

std::size_t index(Stream s) {
  return s == Stream::out ? 0 : 1;
}

}  // namespace

struct Output::State {
  explicit State(OutputOptions o) : options(std::move(o)) {}

  OutputOptions options;
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  StreamBuffer streams[2];
  std::uint64_t next_seq = 0;
  mutable std::list<Watcher*> watchers;

  std::mutex log_mutex;
  std::FILE* log = nullptr;

  // Added to under `mutex`, so that append() decides under it who gets a line.
  detail::CallbackList<const Line&> subscribers{"output subscriber"};

  // The journal (bookmark(), between()); all under `mutex`. Written by the
  // producer at the end of each append()/close(), so no batch is pending
  // whenever another thread holds the lock.
  bool journal_started = false;
  int journal_fd = -1;
  std::uint64_t journal_first_seq = 0;  // lines from here on go to the journal
  std::uint64_t journal_size = 0;       // bytes written (the next record's offset)
  std::uint64_t journal_lost = 0;       // lines whose write failed
  std::string journal_batch;            // records of the current append()
  std::uint64_t journal_batch_lines = 0;
  std::map<std::uint64_t, std::uint64_t> marks;  // bookmarked seq -> offset

  ~State() {
    if (journal_fd >= 0) ::close(journal_fd);
  }

  void journal(const Line& line) {
    if (journal_fd < 0) return;
    RecordHeader h{};
    h.seq = line.seq;
    h.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(line.time.time_since_epoch())
                    .count();
    h.length = static_cast<std::uint32_t>(line.text.size());
    h.stream = static_cast<std::uint8_t>(index(line.stream));
    journal_batch.append(reinterpret_cast<const char*>(&h), sizeof h);
    journal_batch.append(line.text);
    ++journal_batch_lines;
  }

  // One write for the lines of one append(); with `mutex` held. A failure is
  // counted, never thrown: between() reports those lines as missing. The
  // next batch is written at the same offset, over any partial record.
  void flush_journal() noexcept {
    if (journal_batch.empty()) return;
    std::size_t done = 0;
    int error = 0;
    while (done < journal_batch.size()) {
      const auto n = ::pwrite(journal_fd, journal_batch.data() + done, journal_batch.size() - done,
                              static_cast<off_t>(journal_size + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : ENOSPC;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    if (error == 0) {
      journal_size += done;
    } else {
      if (journal_lost == 0) {
        try {
          detail::log().warn("output journal: write failed ({}); {} lines lost, reported as missing",
                             std::strerror(error), journal_batch_lines);
        } catch (...) {
        }
      }
      journal_lost += journal_batch_lines;
    }
    journal_batch.clear();
    if (journal_batch.capacity() > (1u << 20)) journal_batch.shrink_to_fit();
    journal_batch_lines = 0;
  }

  // Adds completed lines; called with `mutex` held.
  // Stores the line `head` + `tail` (a complete line's trailing '\r' dropped;
  // a line cut at the length bound keeps every byte). When the ring
  // is full the oldest line's storage is reused, so a flood of lines costs no
  // allocation per line.
  void push(Stream s, std::string_view head, std::string_view tail, bool complete,
            std::chrono::system_clock::time_point now, std::vector<Line>* published) {
    auto& buf = streams[index(s)];
    Line line;
    if (buf.lines.size() >= options.max_lines && !buf.lines.empty()) {
      line = std::move(buf.lines.front());
      buf.bytes -= line.text.size();
      buf.lines.pop_front();
      ++buf.dropped;
    }
    line.text.reserve(head.size() + tail.size());
    line.text.assign(head);
    line.text.append(tail);
    if (complete && !line.text.empty() && line.text.back() == '\r') line.text.pop_back();
    line.seq = next_seq++;
    line.stream = s;
    line.time = now;
    buf.bytes += line.text.size();
    if (journal_started) journal(line);
    for (Watcher* w : watchers) {
      if (!w->match && (!w->stream || *w->stream == s) && detail::search(*w->pattern, line.text)) {
        w->match = line;
      }
    }
    if (published != nullptr) published->push_back(line);
    buf.lines.push_back(std::move(line));
    while (buf.bytes > options.max_bytes && buf.lines.size() > 1) {
      buf.bytes -= buf.lines.front().text.size();
      buf.lines.pop_front();
      ++buf.dropped;
    }
  }

  using Targets = std::vector<detail::CallbackList<const Line&>::Handle>;

  // The subscribers a line completed now goes to; with `mutex` held.
  bool collect(Targets& targets) const {
    if (subscribers.empty()) return false;
    targets = subscribers.snapshot();
    return !targets.empty();
  }

  void notify(const std::vector<Line>& published, const Targets& targets) {
    changed.notify_all();
    for (const auto& line : published) {
      for (const auto& target : targets) {
        // One failing subscriber never stops the others or the event loop.
        try {
          target.invoke(line);
        } catch (...) {
          subscribers.report(std::current_exception());
        }
      }
    }
  }
};

Output::Output(OutputOptions options) : state_(std::make_shared<State>(std::move(options))) {
  if (!state_->options.max_lines) state_->options.max_lines = 1;
  if (!state_->options.max_line_bytes) state_->options.max_line_bytes = 1;
  if (!state_->options.log_file.empty()) {
    const auto& path = state_->options.log_file;
    // O_NOFOLLOW: a symbolic link planted at the path must not redirect the
    // tee. The mode is explicit: fopen() would create it 0666 under umask 0.
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      const int error = errno;
      throw Error("cannot open log file '" + path.string() + "': " +
                  (error == ELOOP ? std::string("it is a symbolic link (not followed)")
                                  : std::string(std::strerror(error))));
    }
    state_->log = ::fdopen(fd, "a");
    if (state_->log == nullptr) {
      const int error = errno;
      ::close(fd);
      throw Error("cannot open log file '" + path.string() + "': " + std::strerror(error));
    }
  }
}

Output::~Output() {
  if (state_->log != nullptr) std::fclose(state_->log);
}

void Output::append(Stream stream, std::string_view bytes) {
  if (bytes.empty()) return;
  if (state_->log != nullptr) {
    std::lock_guard lock(state_->log_mutex);
    std::fwrite(bytes.data(), 1, bytes.size(), state_->log);
    std::fflush(state_->log);
  }
  const auto now = std::chrono::system_clock::now();
  std::vector<Line> published;
  State::Targets targets;
  {
    std::lock_guard lock(state_->mutex);
    // Decided under the lock that subscribe() adds under: a subscriber that
    // looked at lines() before this append is sure to be published to.
    const bool collect = state_->collect(targets);
    auto& buf = state_->streams[index(stream)];
    buf.total_bytes += bytes.size();
    const std::size_t max_line = state_->options.max_line_bytes;
    while (!bytes.empty()) {
      const auto newline = bytes.find('\n');
      const std::size_t segment = newline == std::string_view::npos ? bytes.size() : newline;
      // Invariant: partial.size() <= max_line. A segment that does not fit is
      // cut, so output without newlines cannot grow memory without bound.
      const std::size_t room = max_line - buf.partial.size();
      if (segment > room) {
        state_->push(stream, buf.partial, bytes.substr(0, room), false, now,
                     collect ? &published : nullptr);
        buf.partial.clear();
        bytes.remove_prefix(room);
        continue;
      }
      if (newline == std::string_view::npos) {
        buf.partial.append(bytes);
        break;
      }
      state_->push(stream, buf.partial, bytes.substr(0, segment), true, now,
                   collect ? &published : nullptr);
      buf.partial.clear();
      bytes.remove_prefix(newline + 1);
    }
    state_->flush_journal();
  }
  state_->notify(published, targets);
}

void Output::close(Stream stream) {
  std::vector<Line> published;
  State::Targets targets;
  {
    std::lock_guard lock(state_->mutex);
    auto& buf = state_->streams[index(stream)];
    if (buf.closed) return;
    buf.closed = true;
    if (!buf.partial.empty()) {
      const bool collect = state_->collect(targets);
      state_->push(stream, buf.partial, {}, true, std::chrono::system_clock::now(),
                   collect ? &published : nullptr);
      buf.partial.clear();
      state_->flush_journal();
    }
  }
  state_->notify(published, targets);
}

std::vector<Line> Output::lines() const {
  return since(0);
}

std::vector<Line> Output::lines(Stream stream) const {
  std::lock_guard lock(state_->mutex);
  const auto& l = state_->streams[index(stream)].lines;
  return {l.begin(), l.end()};
}

std::vector<Line> Output::since(std::uint64_t first) const {
  std::vector<Line> result;
  std::lock_guard lock(state_->mutex);
  auto seq_less = [](const Line& line, std::uint64_t seq) { return line.seq < seq; };
  const auto& out = state_->streams[0].lines;
  const auto& err = state_->streams[1].lines;
  auto a = std::lower_bound(out.begin(), out.end(), first, seq_less);
  auto b = std::lower_bound(err.begin(), err.end(), first, seq_less);
  result.reserve(static_cast<std::size_t>((out.end() - a) + (err.end() - b)));
  std::merge(a, out.end(), b, err.end(), std::back_inserter(result),
             [](const Line& x, const Line& y) { return x.seq < y.seq; });
  return result;
}

std::vector<Line> Output::tail(std::size_t n) const {
  std::uint64_t next = next_seq();
  // Lines are numbered across both streams, so the last n lines have seq >= next - n
  // unless the ring dropped some of them, in which case fewer are returned.
  return since(next > n ? next - n : 0);
}

std::uint64_t Output::next_seq() const {
  std::lock_guard lock(state_->mutex);
  return state_->next_seq;
}

std::string Output::text(Stream stream) const {
  std::string joined;
  std::lock_guard lock(state_->mutex);
  for (const auto& line : state_->streams[index(stream)].lines) {
    if (!joined.empty()) joined += '\n';
    joined += line.text;
  }
  return joined;
}

std::string Output::excerpt(std::size_t n) const {
  std::string result;
  for (const auto& line : tail(n)) {
    result += "  [";
    result += to_string(line.stream);
    result += "] ";
    result += line.text;
    result += '\n';
  }
  std::lock_guard lock(state_->mutex);
  for (Stream s : {Stream::out, Stream::err}) {
    const auto& partial = state_->streams[index(s)].partial;
    if (partial.empty()) continue;
    result += "  [";
    result += to_string(s);
    result += "] ";
    result += partial;
    result += "  (no newline yet)\n";
  }
  return result;
}

std::uint64_t Output::bytes(Stream stream) const {
  std::lock_guard lock(state_->mutex);
  return state_->streams[index(stream)].total_bytes;
}

std::uint64_t Output::dropped_lines(Stream stream) const {
  std::lock_guard lock(state_->mutex);
  return state_->streams[index(stream)].dropped;
}

bool Output::closed(Stream stream) const {
  std::lock_guard lock(state_->mutex);
  return state_->streams[index(stream)].closed;
}

std::optional<Line> Output::wait_for_ns(std::string_view pattern, std::chrono::nanoseconds timeout,
                                        std::optional<Stream> stream, std::uint64_t first) const {
  const auto deadline = deadline_after(timeout);
  const auto compiled = detail::compile_pattern(pattern, "Output::wait_for");
  std::unique_lock lock(state_->mutex);
  for (Stream s : {Stream::out, Stream::err}) {
    if (stream && *stream != s) continue;
    for (const auto& line : state_->streams[index(s)].lines) {
      if (line.seq >= first && detail::search(*compiled, line.text)) return line;
    }
  }
  Watcher watcher{compiled.get(), stream, std::nullopt};
  auto it = state_->watchers.insert(state_->watchers.end(), &watcher);
  auto all_closed = [&] {
    if (stream) return state_->streams[index(*stream)].closed;
    return state_->streams[0].closed && state_->streams[1].closed;
  };
  state_->changed.wait_until(lock, deadline, [&] { return watcher.match || all_closed(); });
  state_->watchers.erase(it);
  return std::move(watcher.match);
}

Subscription Output::subscribe(std::function<void(const Line&)> on_line) {
  std::lock_guard lock(state_->mutex);
  return state_->subscribers.add(std::move(on_line));
}

OutputBookmark Output::bookmark() {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (!s.journal_started) {
    s.journal_started = true;
    s.journal_first_seq = s.next_seq;
    s.journal_fd = open_journal();
    if (s.journal_fd < 0) {
      const int error = errno;
      try {
        detail::log().warn("output journal: cannot create a temporary file ({}); lines the ring "
                           "drops will be reported as missing", std::strerror(error));
      } catch (...) {
      }
    }
  }
  if (s.journal_fd >= 0) {
    s.marks[s.next_seq] = s.journal_size;
    if (s.marks.size() > kMaxMarks) s.marks.erase(s.marks.begin());
  }
  return {s.next_seq, s.journal_size};
}

OutputWindow Output::between(std::uint64_t first, std::uint64_t end) const {
  OutputWindow window;
  std::vector<Line> ring;
  std::uint64_t front[2];  // each stream's oldest buffered seq: from there on the ring has it
  int fd = -1;
  std::uint64_t offset = 0, size = 0;
  {
    const auto& s = *state_;
    std::lock_guard lock(s.mutex);
    end = std::min(end, s.next_seq);
    if (first >= end) return window;
    auto seq_less = [](const Line& line, std::uint64_t seq) { return line.seq < seq; };
    for (std::size_t i = 0; i < 2; ++i) {
      const auto& l = s.streams[i].lines;
      front[i] = l.empty() ? s.next_seq : l.front().seq;
      auto from = std::lower_bound(l.begin(), l.end(), first, seq_less);
      auto to = std::lower_bound(from, l.end(), end, seq_less);
      ring.insert(ring.end(), from, to);
    }
    if (ring.size() < end - first && s.journal_fd >= 0 && end > s.journal_first_seq) {
      fd = s.journal_fd;  // closed only with the state, which outlives this call
      size = s.journal_size;
      auto mark = s.marks.upper_bound(std::max(first, s.journal_first_seq));
      if (mark != s.marks.begin()) offset = std::prev(mark)->second;
    }
  }
  std::vector<Line> journaled;
  if (fd >= 0) {
    // Every seq from here on is in the ring.
    const std::uint64_t stop = std::min(end, std::max(front[0], front[1]));
    std::string buf;
    std::size_t pos = 0;  // parsed up to here in buf
    constexpr std::size_t kChunk = 256 * 1024;
    bool done = false;
    while (!done && offset < size) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - offset));
      buf.erase(0, pos);
      pos = 0;
      const std::size_t old = buf.size();
      buf.resize(old + want);
      const auto n = ::pread(fd, buf.data() + old, want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) {
        buf.resize(old);
        continue;
      }
      if (n <= 0) {
        buf.resize(old);
        break;
      }
      buf.resize(old + static_cast<std::size_t>(n));
      offset += static_cast<std::uint64_t>(n);
      while (buf.size() - pos >= sizeof(RecordHeader)) {
        RecordHeader h;
        std::memcpy(&h, buf.data() + pos, sizeof h);
        if (buf.size() - pos - sizeof h < h.length) break;  // the rest is in the next chunk
        if (h.seq >= stop) {
          done = true;
          break;
        }
        const std::size_t stream = h.stream != 0 ? 1 : 0;
        if (h.seq >= first && h.seq < front[stream]) {
          Line line;
          line.seq = h.seq;
          line.stream = stream == 0 ? Stream::out : Stream::err;
          line.time = std::chrono::system_clock::time_point(
              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                  std::chrono::nanoseconds(h.time_ns)));
          line.text.assign(buf.data() + pos + sizeof h, h.length);
          journaled.push_back(std::move(line));
        }
        pos += sizeof h + h.length;
      }
    }
  }
  std::sort(ring.begin(), ring.end(), [](const Line& x, const Line& y) { return x.seq < y.seq; });
  window.lines.reserve(ring.size() + journaled.size());
  std::merge(std::make_move_iterator(journaled.begin()), std::make_move_iterator(journaled.end()),
             std::make_move_iterator(ring.begin()), std::make_move_iterator(ring.end()),
             std::back_inserter(window.lines),
             [](const Line& x, const Line& y) { return x.seq < y.seq; });
  window.missing = (end - first) - window.lines.size();
  return window;
}

}  // namespace roadie
