// The run: the coordinator (run()'s thread), the bookkeeping done by the
// worker that finished a job, aborts, deadlines, and the events observers get.
#include <algorithm>
#include <cstdio>
#include <mutex>

#include "../text.hpp"
#include "roadie/clock.hpp"
#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"
#include "worker_pool.hpp"

namespace roadie {

using detail::Clock;
using detail::Event;
using detail::message_of;
using detail::Node;
using detail::SchedulerImpl;
using detail::seconds;

namespace {

bool succeeded(JobState s) {
  return s == JobState::done || s == JobState::ready || s == JobState::stopped;
}

// What a dependent is told about a requirement that did not succeed. A skipped
// requirement is named with the failure at the root, not with its own reason:
// nesting every reason would make the reasons of a chain of N jobs O(N^2) long.
std::string outcome(const Node& n) {
  std::string text = "requires '" + n.label + "' which ";
  switch (n.state) {
    case JobState::failed:
      text += "failed";
      break;
    case JobState::skipped:
      return text + "was skipped: " + n.root_cause;
    case JobState::cancelled:
      text += "was cancelled";
      break;
    case JobState::timed_out:
      text += "timed out";
      break;
    default:
      text += std::string(to_string(n.state));
      break;
  }
  if (!n.reason.empty()) text += ": " + n.reason;
  return text;
}

// " (ROADIE_TIME_SCALE=3)" when deadlines are stretched, as executors say it.
std::string scale_note() {
  if (time_scale() == 1.0) return {};
  char text[48];
  std::snprintf(text, sizeof text, " (ROADIE_TIME_SCALE=%g)", time_scale());
  return text;
}

}  // namespace

// ---- run mechanics (all with SchedulerImpl::mutex held unless noted) -----------

namespace detail {

struct Runner {
  SchedulerImpl& s;
  WorkerPool* pool = nullptr;
  // Whether anybody observes this run (read once: an observer added later
  // sees the events from the next job on).
  bool observed() const { return s.bus->wanted(); }

  // Queues an event for the observers (with the lock held: the view is
  // consistent); delivered by deliver(), outside the lock.
  void job_event(Event::Type type, const Node& n) {
    if (!observed()) return;
    Event event;
    event.type = type;
    event.job = view_of(s, n);
    s.bus->post(std::move(event));
  }

  void abort(const std::string& reason) {
    if (begin_abort(reason)) cancel_the_rest();
  }

  // Marks the run aborted with its reason (the first one wins); false if it
  // already was. Nothing is cancelled yet: see cancel_the_rest().
  bool begin_abort(const std::string& reason) {
    if (s.aborting) return false;
    s.aborting = true;
    s.ok = false;
    s.abort_reason = reason;
    return true;
  }

  // Stops what runs and cancels what has not started, with the abort's reason.
  void cancel_the_rest() {
    const std::string& reason = s.abort_reason;
    // Handed to the pool but not picked up yet: they never start.
    for (Node* queued : pool->take_queued()) {
      --s.in_flight;
      release_slot(*queued);
      settle(*queued, JobState::cancelled, "not started: " + reason, false);
    }
    for (auto& n : s.nodes) {
      if (n->state == JobState::running) {
        n->cancel_requested = true;
        want_stop(*n);
      } else if (n->state == JobState::idle || n->state == JobState::waiting) {
        settle(*n, JobState::cancelled, "not started: " + reason, false);
      }
    }
    s.ready.clear();
    s.ready_forever.clear();
    s.changed.notify_all();
  }

  // Stop requests run the stop callbacks registered on the job's token (user
  // code among them) on the requesting thread: never under our lock. The
  // coordinator sends them (send_stops()) after it lets go of the lock.
  void want_stop(Node& n) {
    s.stops.push_back(&n);
    s.changed.notify_all();
  }

  void send_stops(std::unique_lock<std::mutex>& lock) {
    while (!s.stops.empty()) {
      std::vector<std::stop_source> sources;
      for (Node* n : s.stops) sources.push_back(n->stop);
      s.stops.clear();
      lock.unlock();
      for (auto& source : sources) source.request_stop();
      lock.lock();
    }
  }

  // Puts a job in a final state and tells its dependents; a dependent that
  // cannot run is skipped with the reason, and so on down the graph (a
  // worklist, not recursion: a chain of 100,000 jobs skips on any stack).
  // A critical failure aborts the run, but only after its dependents were
  // told: they never ran because of it, and say so (skipped, not cancelled),
  // whichever thread gets here first.
  void settle(Node& first, JobState first_state, std::string first_reason, bool propagate = true) {
    struct Settlement {
      Node* node;
      JobState state;
      std::string reason;
    };
    std::vector<Settlement> todo;
    todo.push_back({&first, first_state, std::move(first_reason)});
    bool aborted_here = false;
    while (!todo.empty()) {
      Settlement next = std::move(todo.back());
      todo.pop_back();
      Node& n = *next.node;
      n.state = next.state;
      n.reason = std::move(next.reason);
      n.finished = true;
      n.finish_time = Clock::now();
      if (!n.options.forever) --s.unfinished;
      job_event(Event::Type::job_done, n);
      const bool wound_down = n.options.forever && s.winding_down && n.state == JobState::cancelled;
      if (!succeeded(n.state) && n.options.critical && !s.aborting && !wound_down) {
        aborted_here = begin_abort(abort_reason_for(n));
      }
      if (propagate) tell_dependents(n, todo);
    }
    if (aborted_here) cancel_the_rest();
    // The coordinator only cares about the end of the run (and aborts, which
    // notify it themselves); waking it per job would cost O(V) per job.
    if (s.unfinished == 0) s.changed.notify_all();
  }

  static std::string abort_reason_for(const Node& n) {
    const std::string what = n.state == JobState::skipped     ? "was skipped"
                             : n.state == JobState::timed_out ? "timed out"
                                                              : std::string(to_string(n.state));
    return "critical job '" + n.label + "' " + what + (n.reason.empty() ? "" : ": " + n.reason);
  }

  // Dependents that can no longer run are added to `skips` (settled by the
  // caller); the others count down and become ready when nothing is pending.
  template <class Settlements>
  void tell_dependents(const Node& n, Settlements& skips) {
    const bool ok = succeeded(n.state);
    // Reversed: the worklist is a stack, and dependents settle in graph order.
    for (auto it = n.dependents.rbegin(); it != n.dependents.rend(); ++it) {
      Node& dep = s.node(*it);
      if (dep.state != JobState::idle) continue;
      bool allowed = false;
      for (const auto& r : dep.requires_) {
        if (r.index == n.index) allowed = r.allow_failure;
      }
      if (ok || allowed) {
        if (--dep.pending == 0) make_ready(dep);
      } else {
        dep.state = JobState::skipped;  // claimed: a later requirement must not skip it again
        std::string why = outcome(n);
        dep.root_cause = n.state == JobState::skipped ? n.root_cause : why;
        skips.push_back({&dep, JobState::skipped, std::move(why)});
      }
    }
  }

  void make_ready(Node& n) {
    if (s.aborting) {
      settle(n, JobState::cancelled, "not started: " + s.abort_reason, false);
      return;
    }
    n.state = JobState::waiting;
    (n.options.forever ? s.ready_forever : s.ready).push_back(&n);
  }

  // Jobs that may start now (window permitting), marked running.
  std::vector<Node*> dispatch() {
    std::vector<Node*> start;
    const std::size_t window = s.options.jobs_window;
    // Forever jobs run beside the window: they end only after every other job
    // has, so a slot held by one could never be given back.
    while (!s.aborting && (!s.ready_forever.empty() ||
                           (!s.ready.empty() && (window == 0 || s.running < window)))) {
      const bool forever = !s.ready_forever.empty();
      auto& queue = forever ? s.ready_forever : s.ready;
      Node* n = queue.front();
      queue.pop_front();
      n->state = JobState::running;
      n->started = true;
      n->start_time = Clock::now();
      n->holds_slot = !forever;
      if (!forever) ++s.running;
      ++s.in_flight;
      start.push_back(n);
      job_event(Event::Type::job_start, *n);
      if (n->options.timeout) {
        // Stretched like the executors' timeouts; saturated, never overflowing.
        n->deadline = deadline_after(scaled(*n->options.timeout), n->start_time);
        s.timed.push_back(n);
        s.changed.notify_all();  // a new deadline to watch
      }
    }
    return start;
  }

  void release_slot(Node& n) {
    if (n.holds_slot) {
      n.holds_slot = false;
      --s.running;
    }
  }

  // Runs one job (without the lock), then records its end (with it), and
  // delivers the events; returns what may start now.
  WorkerPool::Batch execute(Node& n) {
    JobContext context(n.stop.get_token(), n.label);
    std::any result;
    std::exception_ptr error;
    try {
      switch (n.kind) {
        case JobKind::callable:
          result = n.fn(context);
          break;
        case JobKind::service:
          n.service->start(n.stop.get_token());
          break;
        case JobKind::scheduler: {
          auto report = n.nested->run(n.stop.get_token());
          if (!report) throw SchedulerError(report.why());
          break;
        }
      }
    } catch (...) {
      error = std::current_exception();
    }
    std::unique_lock lock(s.mutex);
    --s.in_flight;
    release_slot(n);
    n.error = error;
    if (!error) n.result = std::move(result);
    // Asked to stop, a job ends TIMED_OUT or CANCELLED however it returns
    // (normally or by throwing): it was stopped, whether it finished its work
    // or not cannot be told. The flags are set under the lock before the stop
    // is sent, so the state does not depend on when the job saw it. A service
    // whose start returned is up and ready whatever was asked: shutdown() must
    // stop it.
    const bool service_up = n.kind == JobKind::service && !error;
    if (n.timed_out && !service_up) {
      settle(n, JobState::timed_out,
             n.options.timeout
                 ? "ran past its timeout of " + seconds(*n.options.timeout) + scale_note()
                 : "the run timed out");
    } else if (n.cancel_requested && !service_up) {
      settle(n, JobState::cancelled,
             n.options.forever && !s.aborting ? "cancelled at the end of the run"
                                              : "cancelled: " + s.abort_reason);
    } else if (error) {
      settle(n, JobState::failed, message_of(error));
    } else {
      settle(n, n.kind == JobKind::service ? JobState::ready : JobState::done, "");
    }
    auto next = batch(dispatch());
    if (s.unfinished == 0) s.changed.notify_all();  // the end (or forever jobs winding down)
    lock.unlock();
    s.bus->deliver();
    return next;
  }

  static WorkerPool::Batch batch(std::vector<Node*> jobs) {
    WorkerPool::Batch b{std::move(jobs), 0};
    for (const Node* n : b.jobs) b.blocking += n->kind != JobKind::callable ? 1 : 0;
    return b;
  }
};

}  // namespace detail

RunReport Scheduler::run(std::stop_token cancel) {
  validate();
  SchedulerImpl& s = *impl_;
  detail::Runner runner{s};
  {
    std::lock_guard lock(s.mutex);
    if (s.has_run) {
      throw SchedulerError("scheduler '" + s.options.label + "' has already run; build a new one");
    }
    s.has_run = true;
  }
  // First, before any job can start (views outside the lock: nothing runs yet,
  // and nested schedulers take their own).
  if (runner.observed()) {
    Event start;
    start.type = Event::Type::run_start;
    start.scheduler = s.options.label;
    start.jobs = views();
    s.bus->post(std::move(start));
    s.bus->deliver(true);
  }
  detail::WorkerPool pool(s.mutex, s.options.label, s.options.jobs_window,
                          {.execute = [&](Node& n) { return runner.execute(n); },
                           .stalled = [&] { s.changed.notify_all(); },
                           .starved = [&](const std::string& why) { runner.abort(why); }});
  runner.pool = &pool;
  std::unique_lock lock(s.mutex);
  s.run_start = Clock::now();
  for (auto& n : s.nodes) {
    n->dependents.clear();
    n->pending = n->requires_.size();
  }
  for (auto& n : s.nodes) {
    for (const auto& r : n->requires_) s.node(r.index).dependents.push_back(n->index);
  }
  s.unfinished = static_cast<std::size_t>(
      std::count_if(s.nodes.begin(), s.nodes.end(), [](auto& n) { return !n->options.forever; }));
  for (auto& n : s.nodes) {
    if (n->pending == 0) runner.make_ready(*n);
  }
  pool.submit(runner.batch(runner.dispatch()), false);
  lock.unlock();
  std::stop_callback on_cancel(cancel, [&] {
    std::lock_guard guard(s.mutex);
    runner.abort("the run was cancelled");
  });

  // Stretched like the executors' deadlines and saturated: a huge timeout is
  // no limit, never an overflow into the past. max(): none.
  const Clock::time_point deadline = s.options.timeout
                                         ? deadline_after(scaled(*s.options.timeout), s.run_start)
                                         : Clock::time_point::max();
  bool forever_cancelled = false;
  lock.lock();
  for (;;) {
    if (s.unfinished == 0 && !forever_cancelled) {
      forever_cancelled = true;
      s.winding_down = true;
      for (auto& n : s.nodes) {
        if (!n->options.forever) continue;
        if (n->state == JobState::running) {
          n->cancel_requested = true;
          runner.want_stop(*n);
        } else if (n->state == JobState::idle || n->state == JobState::waiting) {
          std::erase(s.ready_forever, n.get());
          runner.settle(*n, JobState::cancelled, "not started before the end of the run", false);
        }
      }
    }
    runner.send_stops(lock);
    // What this thread settled (aborts, forever jobs, a cancel from the
    // caller's token) is delivered here; workers deliver their own.
    lock.unlock();
    s.bus->deliver();
    lock.lock();
    if (s.unfinished == 0 && s.in_flight == 0) break;
    // What happened while the lock was let go for the delivery (the last job
    // ended, a stop was asked for) was notified then: act on it now instead
    // of waiting for a notification that already came (the forever jobs were
    // never cancelled and the run waited for ever).
    if ((s.unfinished == 0 && !forever_cancelled) || !s.stops.empty()) continue;
    // The next deadline: the run's, a running job's own, or the pool's look.
    auto next = deadline;
    std::erase_if(s.timed, [](Node* n) { return n->state != JobState::running || n->timed_out; });
    for (Node* n : s.timed) next = std::min(next, n->deadline);
    if (auto check = pool.next_check()) next = std::min(next, *check);
    if (next == Clock::time_point::max()) {
      s.changed.wait(lock);
    } else {
      s.changed.wait_until(lock, next);
    }
    const auto now = Clock::now();
    pool.check(now);
    for (Node* n : s.timed) {
      if (n->state == JobState::running && !n->timed_out && now >= n->deadline) {
        n->timed_out = true;
        runner.want_stop(*n);
      }
    }
    if (now >= deadline && !s.aborting && s.unfinished > 0) {
      for (auto& n : s.nodes) {
        if (n->state == JobState::running && !n->options.forever) n->timed_out = true;
      }
      runner.abort("the run timed out after " + seconds(*s.options.timeout) + scale_note());
    }
    runner.send_stops(lock);
  }
  s.run_end = Clock::now();
  pool.join(lock);

  RunReport report;
  report.label_ = s.options.label;
  report.elapsed_ = s.run_end - s.run_start;
  for (const auto& n : s.nodes) {
    if (!succeeded(n->state) && !(n->options.forever && n->state == JobState::cancelled &&
                                  n->reason == "cancelled at the end of the run")) {
      report.failures_.push_back(n->label + ": " + std::string(to_string(n->state)) +
                                 (n->reason.empty() ? "" : " (" + n->reason + ")"));
    }
    if (n->options.critical && !succeeded(n->state) && !n->options.forever) s.ok = false;
  }
  if (!s.ok && s.abort_reason.empty()) s.abort_reason = "a critical job did not succeed";
  report.ok_ = s.ok;
  report.why_ = s.ok ? "" : s.abort_reason;
  lock.unlock();
  // Last: every job's done was queued before the workers were joined.
  if (runner.observed()) {
    Event end;
    end.type = Event::Type::run_end;
    end.report = report;
    s.bus->post(std::move(end));
  }
  s.bus->deliver(true);
  return report;
}

std::string Scheduler::why() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->ok ? "" : impl_->abort_reason;
}

}  // namespace roadie
