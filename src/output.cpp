#include "roadie/output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>

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

struct Subscriber {
  std::function<void(const Line&)> on_line;
  bool active = true;
};

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

  // Callbacks run under `dispatch` (recursive, so a callback may unsubscribe
  // itself); cancelling takes it too, so it waits for a call in progress.
  std::recursive_mutex dispatch;
  std::mutex subscribers_mutex;
  std::list<std::shared_ptr<Subscriber>> subscribers;
  std::atomic<std::size_t> subscriber_count{0};

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

  void notify(std::vector<Line>& published) {
    changed.notify_all();
    if (published.empty()) return;
    std::lock_guard dispatch_lock(dispatch);
    std::vector<std::shared_ptr<Subscriber>> targets;
    {
      std::lock_guard lock(subscribers_mutex);
      targets.assign(subscribers.begin(), subscribers.end());
    }
    for (const auto& line : published) {
      for (const auto& sub : targets) {
        if (!sub->active) continue;
        // One failing subscriber never stops the others or the event loop.
        try {
          sub->on_line(line);
        } catch (const std::exception& e) {
          detail::log().error("output subscriber threw: {}", e.what());
        } catch (...) {
          detail::log().error("output subscriber threw");
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
  {
    std::lock_guard lock(state_->mutex);
    // Read under the lock that subscribe() counts under: a subscriber that
    // looked at lines() before this append is sure to be published to.
    const bool collect = state_->subscriber_count.load(std::memory_order_relaxed) != 0;
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
  }
  state_->notify(published);
}

void Output::close(Stream stream) {
  std::vector<Line> published;
  {
    std::lock_guard lock(state_->mutex);
    auto& buf = state_->streams[index(stream)];
    if (buf.closed) return;
    buf.closed = true;
    if (!buf.partial.empty()) {
      bool collect = state_->subscriber_count.load(std::memory_order_relaxed) != 0;
      state_->push(stream, buf.partial, {}, true, std::chrono::system_clock::now(),
                   collect ? &published : nullptr);
      buf.partial.clear();
    }
  }
  state_->notify(published);
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
  auto sub = std::make_shared<Subscriber>();
  sub->on_line = std::move(on_line);
  {
    std::lock_guard lock(state_->mutex);
    std::lock_guard subscribers_lock(state_->subscribers_mutex);
    state_->subscribers.push_back(sub);
    state_->subscriber_count.fetch_add(1);
  }
  std::weak_ptr<State> weak = state_;
  return Subscription([weak, sub] {
    auto state = weak.lock();
    if (!state) return;
    std::lock_guard dispatch_lock(state->dispatch);
    sub->active = false;
    std::lock_guard lock(state->subscribers_mutex);
    state->subscribers.remove(sub);
    state->subscriber_count.fetch_sub(1);
  });
}

}  // namespace roadie
