// Private: the scheduler's graph and run state.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "roadie/scheduler.hpp"

namespace roadie::detail {

using Clock = std::chrono::steady_clock;

enum class JobKind { callable, service, scheduler };

struct Requirement {
  std::size_t index;
  bool allow_failure;
};

struct Node {
  std::size_t index = 0;
  std::string label;
  JobOptions options;
  JobKind kind = JobKind::callable;
  std::function<std::any(JobContext&)> fn;
  std::function<std::string(const std::any&)> describe;
  std::unique_ptr<Executor> service;
  std::unique_ptr<Scheduler> nested;
  std::vector<Requirement> requires_;   // same scheduler, no duplicates
  std::vector<std::string> foreign;     // labels of required jobs of other schedulers
  std::vector<std::size_t> dependents;  // built when a run starts

  // Run state, guarded by SchedulerImpl::mutex.
  JobState state = JobState::idle;
  std::any result;
  std::exception_ptr error;
  std::string reason;
  std::string root_cause;  // skipped: the failure that started the skipping (see outcome())
  std::stop_source stop;
  bool started = false;
  bool finished = false;
  Clock::time_point start_time{};
  Clock::time_point finish_time{};
  Clock::time_point deadline{};  // its own timeout's, saturated (time_point::max(): none)
  bool timed_out = false;
  bool cancel_requested = false;
  bool holds_slot = false;
  std::size_t pending = 0;
};

struct SchedulerImpl {
  explicit SchedulerImpl(SchedulerOptions o) : options(std::move(o)) {}

  SchedulerOptions options;
  std::vector<std::unique_ptr<Node>> nodes;

  mutable std::mutex mutex;
  std::condition_variable changed;  // wakes the coordinator (run())

  // The current or last run.
  bool has_run = false;
  bool ok = true;
  bool aborting = false;
  bool thread_refused = false;  // the system refused a worker thread (warned once)
  std::string abort_reason;
  Clock::time_point run_start{};
  Clock::time_point run_end{};
  std::size_t running = 0;          // jobs holding a window slot
  std::size_t in_flight = 0;        // jobs whose callable has not returned
  std::size_t unfinished = 0;       // non-forever jobs not in a final state
  std::deque<Node*> ready;          // requirements met, waiting for a slot
  std::deque<Node*> ready_forever;  // forever jobs: they start without a slot
  std::vector<Node*> timed;   // started jobs with their own timeout (the coordinator watches them)
  std::vector<Node*> stops;   // jobs whose stop the coordinator requests, outside the lock
  bool winding_down = false;  // forever jobs are being cancelled: not a failure
  bool shut_down = false;

  // Worker pool of the current run.
  std::deque<Node*> work;
  std::condition_variable work_ready;
  std::vector<std::thread> threads;
  std::size_t idle_threads = 0;
  bool pool_closing = false;
  // Since when queued work has found every worker busy (no value: it has not).
  std::optional<Clock::time_point> stalled_since;
  Clock::time_point last_take{};  // when a worker last took a job from the queue

  Node& node(std::size_t index) { return *nodes.at(index); }
  const Node& node(std::size_t index) const { return *nodes.at(index); }
};

}  // namespace roadie::detail
