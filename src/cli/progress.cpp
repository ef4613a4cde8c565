#include "progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

namespace roadie::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string seconds(std::chrono::nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", std::chrono::duration<double>(d).count());
  return text;
}

// "12:00:01.123", local wall-clock time.
std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  ::localtime_r(&t, &local);
  char text[32];
  std::snprintf(text, sizeof text, "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min, local.tm_sec,
                static_cast<int>(ms));
  return text;
}

// The first line of a message; the rest (the last output lines) is for the
// report after the bring-up.
std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  constexpr std::string_view tail = " Last output:";
  if (line.size() >= tail.size() &&
      line.compare(line.size() - tail.size(), tail.size(), tail) == 0) {
    line.resize(line.size() - tail.size());
  }
  return line;
}

std::size_t terminal_columns(std::FILE* out) {
  winsize size{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

const char* colour_of(JobState state) {
  switch (state) {
    case JobState::ready:
    case JobState::done:
      return "\x1b[32m";
    case JobState::running:
      return "\x1b[33m";
    case JobState::failed:
    case JobState::timed_out:
      return "\x1b[31m";
    default:
      return "\x1b[2m";
  }
}

}  // namespace

Progress::Style Progress::style_for(std::FILE* stream) {
  Style style;
  style.live = ::isatty(::fileno(stream)) == 1;
  const char* no_colour = std::getenv("NO_COLOR");
  style.colour = style.live && no_colour == nullptr;
  return style;
}

Progress::Progress(std::FILE* out, Style style, Scheduler& scheduler)
    : out_(out), style_(style), scheduler_(scheduler) {
  // Live lines show the seconds a service has been starting: redraw them
  // while the run lasts.
  if (style_.live) ticker_ = std::thread([this] { tick(); });
}

Progress::~Progress() {
  {
    std::lock_guard lock(mutex_);
    stop_ticker_ = true;
  }
  tick_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void Progress::tick() {
  std::unique_lock lock(mutex_);
  while (!stop_ticker_) {
    tick_.wait_for(lock, std::chrono::milliseconds(100));
    if (running_ && !stop_ticker_) redraw();
  }
}

void Progress::note(const std::string& text) {
  std::lock_guard lock(mutex_);
  if (style_.live) {
    std::fprintf(out_, "%s\n", text.c_str());
    drawn_ = 0;  // the live lines are above the note now: never drawn over again
  } else {
    std::fprintf(out_, "%s %s\n", timestamp().c_str(), text.c_str());
  }
  std::fflush(out_);
}

std::string Progress::waiting_for(const Row& row) const {
  std::string names;
  for (const auto& requirement : row.requirements) {
    auto it = index_.find(requirement);
    if (it != index_.end()) {
      const JobState state = rows_[it->second].state;
      if (state == JobState::ready || state == JobState::done) continue;
    }
    names += (names.empty() ? "" : ", ") + requirement;
  }
  return names;
}

std::string Progress::describe(const Row& row, bool coloured) const {
  std::string what;
  switch (row.state) {
    case JobState::idle:
    case JobState::waiting: {
      const std::string names = waiting_for(row);
      what = names.empty() ? "waiting" : "waiting for " + names;
      break;
    }
    case JobState::running:
      what = "starting";
      if (style_.live) what += " (" + seconds(Clock::now() - row.started) + ")";
      break;
    case JobState::ready:
      what = "ready in " + seconds(row.duration);
      if (row.pid > 0) what += " (pid " + std::to_string(row.pid) + ")";
      break;
    case JobState::done:
      what = "done in " + seconds(row.duration);
      break;
    default:
      what = std::string(to_string(row.state));
      if (!row.reason.empty()) what += ": " + first_line(row.reason);
      break;
  }
  if (!coloured) return what;
  return colour_of(row.state) + what + "\x1b[0m";
}

void Progress::print_event(const Row& row) {
  std::fprintf(out_, "%s %s %s\n", timestamp().c_str(), row.label.c_str(),
               describe(row, style_.colour).c_str());
  std::fflush(out_);
}

void Progress::redraw() {
  const std::size_t columns = terminal_columns(out_);
  std::string screen;
  if (drawn_ > 0) screen += "\x1b[" + std::to_string(drawn_) + "A";
  for (const Row& row : rows_) {
    std::string label = "  " + row.label + std::string(width_ - row.label.size() + 2, ' ');
    std::string plain = describe(row, false);
    // A wrapped line would break the cursor arithmetic: cut it to the width.
    const std::size_t room = columns > label.size() + 1 ? columns - label.size() - 1 : 0;
    if (plain.size() > room) plain.resize(room);
    screen += "\r\x1b[2K" + label;
    screen += style_.colour ? colour_of(row.state) + plain + "\x1b[0m" : plain;
    screen += "\n";
  }
  drawn_ = rows_.size();
  std::fputs(screen.c_str(), out_);
  std::fflush(out_);
}

void Progress::on_run_start(std::string_view, const std::vector<JobView>& jobs) {
  std::lock_guard lock(mutex_);
  rows_.clear();
  index_.clear();
  for (const JobView& job : jobs) {
    if (job.depth != 0) continue;
    Row row;
    row.label = job.label;
    row.service = job.kind == JobKind::service;
    for (const auto& requirement : job.requirements) row.requirements.push_back(requirement.label);
    index_[row.label] = rows_.size();
    width_ = std::max(width_, row.label.size());
    rows_.push_back(std::move(row));
  }
  running_ = true;
  if (style_.live) {
    redraw();
    return;
  }
  for (const Row& row : rows_) {
    if (!row.requirements.empty()) print_event(row);
  }
}

void Progress::on_job_start(const JobView& job) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(job.label);
  if (job.depth != 0 || it == index_.end()) return;
  Row& row = rows_[it->second];
  row.state = JobState::running;
  row.started = Clock::now();
  style_.live ? redraw() : print_event(row);
}

void Progress::on_job_done(const JobView& job) {
  pid_t pid = -1;
  if (job.state == JobState::ready) {
    // Job accessors may be called from an observer (never under the run's lock).
    if (auto handle = scheduler_.find(job.label); handle && handle->service() != nullptr) {
      pid = handle->service()->pid();
    }
  }
  std::lock_guard lock(mutex_);
  auto it = index_.find(job.label);
  if (job.depth != 0 || it == index_.end()) return;
  Row& row = rows_[it->second];
  row.state = job.state;
  row.duration = job.duration;
  row.reason = job.reason.empty() ? job.error : job.reason;
  row.pid = pid;
  style_.live ? redraw() : print_event(row);
}

void Progress::on_run_end(const RunReport&) {
  std::lock_guard lock(mutex_);
  running_ = false;
  if (style_.live) redraw();
}

}  // namespace roadie::cli
