// Private: the scheduler's graph and run state.
#pragma once

#include <any>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "event_bus.hpp"
#include "roadie/scheduler.hpp"

namespace roadie::detail {

using Clock = std::chrono::steady_clock;

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
  Clock::time_point deadline{};  // its own timeout's, scaled and saturated (max(): none)
  bool timed_out = false;
  bool cancel_requested = false;
  bool holds_slot = false;
  std::size_t pending = 0;
};

struct SchedulerImpl {
  explicit SchedulerImpl(SchedulerOptions o)
      : options(std::move(o)), bus(std::make_shared<EventBus>(options.label)) {}

  /// The implementation behind a scheduler (Scheduler befriends this type).
  static SchedulerImpl& of(Scheduler& s) noexcept { return *s.impl_; }
  static const SchedulerImpl& of(const Scheduler& s) noexcept { return *s.impl_; }

  SchedulerOptions options;
  std::vector<std::unique_ptr<Node>> nodes;

  mutable std::mutex mutex;
  std::condition_variable changed;  // wakes the coordinator (run())

  // The current or last run.
  bool has_run = false;
  bool ok = true;
  bool aborting = false;
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

  // Observers and the events waiting for them. Shared: a Subscription may
  // outlive the scheduler; a nested scheduler's bus forwards to its parent's.
  std::shared_ptr<EventBus> bus;

  Node& node(std::size_t index) { return *nodes[index]; }
  const Node& node(std::size_t index) const { return *nodes[index]; }
};

/// A view of `n` as the observers of its own scheduler see it; with `s.mutex` held.
JobView view_of(const SchedulerImpl& s, const Node& n);

/// The message of an exception ("unknown exception" if it is not a std::exception).
std::string message_of(const std::exception_ptr& error);

/// What the listings are made of: one scheduler's state and views, with the
/// same for each nested scheduler job (`inner[i]`, null for other kinds).
struct Snapshot {
  std::string label;
  bool has_run = false;
  bool ok = true;
  std::string why;
  Clock::time_point run_start{};
  Clock::time_point run_end{};
  std::vector<JobView> jobs;
  std::vector<std::unique_ptr<Snapshot>> inner;
};

/// Takes each scheduler's lock in turn (never two at once).
Snapshot snapshot_of(const SchedulerImpl& s, const std::string& number_prefix = {},
                     const std::string& path_prefix = {}, std::size_t depth = 0);

}  // namespace roadie::detail
