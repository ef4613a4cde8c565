// The bring-up display of `roadie run` and `roadie up`, fed by the stack's
// scheduler observer events.
//
// On a terminal: one live line per service and job (waiting for X, starting,
// ready in 0.42 s, failed), redrawn in place. Elsewhere (a CI log, a pipe):
// one timestamped line per event ("12:00:01.123 redis ready in 0.42 s (pid
// 4242)"), so a log reads in order and tools can pick the pids. Colour only on
// a terminal and without NO_COLOR.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "roadie/scheduler.hpp"

namespace roadie::cli {

class Progress : public SchedulerObserver {
 public:
  struct Style {
    bool live = false;    ///< redraw lines in place (a terminal)
    bool colour = false;  ///< ANSI colours
  };
  /// The style for `stream`: live and coloured on a terminal, plain
  /// elsewhere; no colour when NO_COLOR is set (to anything).
  static Style style_for(std::FILE* stream);

  /// Writes to `out`; `scheduler` is the observed one (for the services' pids).
  Progress(std::FILE* out, Style style, Scheduler& scheduler);
  ~Progress() override;

  /// A line of its own, under the live lines (or timestamped when not live).
  void note(const std::string& text);

  void on_run_start(std::string_view scheduler, const std::vector<JobView>& jobs) override;
  void on_job_start(const JobView& job) override;
  void on_job_done(const JobView& job) override;
  void on_run_end(const RunReport& report) override;

 private:
  struct Row {
    std::string label;
    bool service = false;
    std::vector<std::string> requirements;
    JobState state = JobState::idle;
    std::chrono::steady_clock::time_point started;
    std::chrono::nanoseconds duration{0};
    std::string reason;
    pid_t pid = -1;
  };
  std::string describe(const Row& row, bool coloured) const;
  std::string waiting_for(const Row& row) const;
  void print_event(const Row& row);  // not live: one timestamped line
  void redraw();                     // live: every row in place
  void tick();

  std::FILE* out_;
  Style style_;
  Scheduler& scheduler_;
  std::mutex mutex_;
  std::vector<Row> rows_;
  std::map<std::string, std::size_t> index_;
  std::size_t drawn_ = 0;  // live lines on the screen
  std::size_t width_ = 0;  // label column
  bool running_ = false;
  bool stop_ticker_ = false;
  std::condition_variable tick_;
  std::thread ticker_;
};

}  // namespace roadie::cli
