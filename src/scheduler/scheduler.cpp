#include "roadie/scheduler.hpp"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <system_error>

#include "../log.hpp"
#include "../text.hpp"
#include "roadie/clock.hpp"
#include "scheduler_impl.hpp"

namespace roadie {

using detail::Clock;
using detail::JobKind;
using detail::Node;
using detail::SchedulerImpl;
using detail::seconds;

std::string_view to_string(JobState state) noexcept {
  switch (state) {
    case JobState::idle:
      return "idle";
    case JobState::waiting:
      return "waiting";
    case JobState::running:
      return "running";
    case JobState::ready:
      return "ready";
    case JobState::done:
      return "done";
    case JobState::failed:
      return "failed";
    case JobState::skipped:
      return "skipped";
    case JobState::cancelled:
      return "cancelled";
    case JobState::timed_out:
      return "timed out";
    case JobState::stopped:
      return "stopped";
  }
  return "?";
}

bool JobContext::sleep_until(std::chrono::steady_clock::time_point deadline) const {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  if (deadline == Clock::time_point::max()) {
    // No practical limit: only the stop ends it (wait_until would overflow).
    cv.wait(lock, token_, [] { return false; });
  } else {
    cv.wait_until(lock, token_, deadline, [] { return false; });
  }
  return !token_.stop_requested();
}

namespace {

std::string message_of(const std::exception_ptr& error) {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

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

}  // namespace

// ---- run mechanics (all with SchedulerImpl::mutex held unless noted) -----------

namespace detail {

// Jobs that execute at once, at most (jobs_window bounds it further).
constexpr std::size_t kMaxThreads = 128;
// Queued work that found every worker busy for this long means the jobs block:
// the pool grows (doubling). Short jobs never trigger it, so a fan-out of
// no-op jobs runs on a few threads instead of contending on many.
constexpr auto kStallBeforeGrowing = std::chrono::milliseconds(1);

std::size_t base_threads(std::size_t window) {
  // hardware_concurrency() reads /sys on every call: once is enough.
  static const std::size_t cores = std::max<std::size_t>(2, std::thread::hardware_concurrency());
  // A window says how many jobs should run at once: honour it at once.
  return std::min(kMaxThreads, window != 0 ? std::max(window, cores) : cores);
}

struct Runner {
  SchedulerImpl& s;

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
    for (Node* queued : s.work) {
      --s.in_flight;
      release_slot(*queued);
      settle(*queued, JobState::cancelled, "not started: " + reason, false);
    }
    s.work.clear();
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
      if (n->options.timeout) {
        n->deadline = deadline_after(*n->options.timeout, n->start_time);
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

  // Runs one job (without the lock), then records its end (with it).
  std::vector<Node*> execute(Node& n) {
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
    std::lock_guard lock(s.mutex);
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
             n.options.timeout ? "ran past its timeout of " + seconds(*n.options.timeout)
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
    auto next = dispatch();
    if (s.unfinished == 0) s.changed.notify_all();  // the end (or forever jobs winding down)
    return next;
  }

  // Hands jobs to the pool; called with the lock held. `from_worker`: the
  // calling worker takes the first job itself (no hand-off on a chain).
  void submit(const std::vector<Node*>& jobs, bool from_worker) {
    if (jobs.empty()) return;
    s.work.insert(s.work.begin(), jobs.begin(), jobs.end());
    // Threads are made on demand and reused: up to base_threads() at once,
    // more when the coordinator sees the queue stall (see grow()).
    const std::size_t available = s.idle_threads + (from_worker ? 1 : 0);
    // Services and nested schedulers are known to block (on readiness, on
    // their own jobs): each gets a thread at once instead of after a stall.
    std::size_t blocking = 0;
    for (const Node* n : jobs) blocking += n->kind != JobKind::callable ? 1 : 0;
    std::size_t base = base_threads(s.options.jobs_window);
    if (s.options.jobs_window == 0) {
      base = std::min(kMaxThreads, std::max(base, s.threads.size() - s.idle_threads + blocking));
    }
    for (std::size_t i = available; i < s.work.size() && s.threads.size() < base; ++i) {
      if (!add_thread()) break;
    }
    if (s.work.size() > available && !s.stalled_since) {
      s.stalled_since = Clock::now();
      s.changed.notify_all();
    }
    const std::size_t wake = jobs.size() - (from_worker ? 1 : 0);
    for (std::size_t i = 0; i < wake; ++i) s.work_ready.notify_one();
  }

  // One more worker. When the system refuses a thread, the queue waits for the
  // workers there are; with none at all, nothing could ever run: the run is
  // aborted with the reason.
  bool add_thread() {
    try {
      s.threads.emplace_back([this] { worker(); });
      return true;
    } catch (const std::system_error& e) {
      if (!s.thread_refused) {
        s.thread_refused = true;
        log().warn("scheduler '{}': cannot start another worker thread ({}); {} running",
                   s.options.label, e.what(), s.threads.size());
      }
      if (s.threads.empty()) abort(std::string("cannot start a worker thread: ") + e.what());
      return false;
    }
  }

  // Called by the coordinator when queued work has waited with every worker busy.
  void grow() {
    const std::size_t more = std::min(s.work.size(), std::max<std::size_t>(s.threads.size(), 1));
    for (std::size_t i = 0; i < more && s.threads.size() < kMaxThreads; ++i) {
      if (!add_thread()) break;
    }
    // Look again: if the new workers block too, the queue stalls again.
    s.stalled_since = Clock::now();
  }

  void worker() {
    std::unique_lock lock(s.mutex);
    for (;;) {
      if (s.work.empty()) s.stalled_since.reset();
      ++s.idle_threads;
      s.work_ready.wait(lock, [&] { return !s.work.empty() || s.pool_closing; });
      --s.idle_threads;
      if (s.work.empty()) return;
      for (;;) {
        Node* n = s.work.front();
        s.work.pop_front();
        s.last_take = Clock::now();
        lock.unlock();
        auto next = execute(*n);  // takes the lock itself to record the end
        lock.lock();
        submit(next, true);
        if (s.work.empty()) break;
      }
    }
  }
};

}  // namespace detail

// ---- Job ------------------------------------------------------------------------

namespace {
// The scheduler behind a handle; an empty handle is a clear error, not a null
// dereference.
SchedulerImpl& scheduler_of(SchedulerImpl* s, const char* call) {
  if (s == nullptr) {
    throw Error(std::string("roadie::") + call +
                ": empty Job handle (default-constructed; use one returned by "
                "Scheduler::add(), add_service(), add_scheduler(), find() or jobs())");
  }
  return *s;
}
}  // namespace

Job& Job::require(Job other) {
  Node& n = scheduler_of(scheduler_, "Job::require()").node(index_);
  if (other.scheduler_ != scheduler_) {
    n.foreign.push_back(other.valid() ? other.label() : "<empty job handle>");
    return *this;
  }
  for (const auto& r : n.requires_) {
    if (r.index == other.index_) return *this;  // duplicates are ignored
  }
  n.requires_.push_back({other.index_, false});
  return *this;
}

Job& Job::require_allowing_failure(Job other) {
  Node& n = scheduler_of(scheduler_, "Job::require_allowing_failure()").node(index_);
  require(other);
  for (auto& r : n.requires_) {
    if (r.index == other.index_ && other.scheduler_ == scheduler_) r.allow_failure = true;
  }
  return *this;
}

std::size_t Job::id() const {
  scheduler_of(scheduler_, "Job::id()");
  return index_ + 1;
}
const std::string& Job::label() const {
  return scheduler_of(scheduler_, "Job::label()").node(index_).label;
}
bool Job::critical() const {
  return scheduler_of(scheduler_, "Job::critical()").node(index_).options.critical;
}
bool Job::forever() const {
  return scheduler_of(scheduler_, "Job::forever()").node(index_).options.forever;
}
Executor* Job::service() const {
  return scheduler_of(scheduler_, "Job::service()").node(index_).service.get();
}

JobState Job::state() const {
  SchedulerImpl& s = scheduler_of(scheduler_, "Job::state()");
  std::lock_guard lock(s.mutex);
  return s.node(index_).state;
}
const std::any& Job::result() const {
  SchedulerImpl& s = scheduler_of(scheduler_, "Job::result()");
  std::lock_guard lock(s.mutex);
  return s.node(index_).result;
}
std::exception_ptr Job::error() const {
  SchedulerImpl& s = scheduler_of(scheduler_, "Job::error()");
  std::lock_guard lock(s.mutex);
  return s.node(index_).error;
}
std::string Job::reason() const {
  SchedulerImpl& s = scheduler_of(scheduler_, "Job::reason()");
  std::lock_guard lock(s.mutex);
  return s.node(index_).reason;
}
std::chrono::nanoseconds Job::duration() const {
  SchedulerImpl& s = scheduler_of(scheduler_, "Job::duration()");
  std::lock_guard lock(s.mutex);
  const Node& n = s.node(index_);
  if (!n.started) return {};
  return (n.finished ? n.finish_time : Clock::now()) - n.start_time;
}

Sequence::Sequence(std::initializer_list<Job> jobs) {
  if (jobs.size() == 0) throw std::invalid_argument("roadie::Sequence: no jobs");
  first_ = *jobs.begin();
  Job previous;
  for (Job job : jobs) {
    if (previous.valid()) job.require(previous);
    previous = job;
  }
  last_ = previous;
}

// ---- RunReport --------------------------------------------------------------------

void RunReport::throw_if_failed() const {
  if (ok_) return;
  std::string message = "scheduler '" + label_ + "' failed: " + why_;
  for (const auto& f : failures_) message += "\n  " + f;
  throw SchedulerError(message);
}

// ---- Scheduler ----------------------------------------------------------------------

Scheduler::Scheduler(SchedulerOptions options)
    : impl_(std::make_unique<SchedulerImpl>(std::move(options))) {}

Scheduler::Scheduler(Scheduler&&) noexcept = default;

Scheduler::~Scheduler() {
  if (!impl_) return;
  try {
    shutdown();
  } catch (const std::exception& e) {
    detail::log().error("scheduler '{}': shutdown failed: {}", impl_->options.label, e.what());
  }
}

const SchedulerOptions& Scheduler::options() const noexcept {
  return impl_->options;
}

Job Scheduler::add_callable(Callable fn, Describer describe, JobOptions options) {
  auto n = std::make_unique<Node>();
  n->index = impl_->nodes.size();
  n->label = options.label.empty() ? "job " + std::to_string(n->index + 1) : options.label;
  n->options = std::move(options);
  n->kind = JobKind::callable;
  n->fn = std::move(fn);
  n->describe = std::move(describe);
  impl_->nodes.push_back(std::move(n));
  return Job(impl_.get(), impl_->nodes.size() - 1);
}

Job Scheduler::add_service(Executor executor, JobOptions options) {
  auto n = std::make_unique<Node>();
  n->index = impl_->nodes.size();
  n->label = options.label.empty() ? executor.name() : options.label;
  n->options = std::move(options);
  n->kind = JobKind::service;
  n->service = std::make_unique<Executor>(std::move(executor));
  impl_->nodes.push_back(std::move(n));
  return Job(impl_.get(), impl_->nodes.size() - 1);
}

Job Scheduler::add_scheduler(Scheduler inner, JobOptions options) {
  auto n = std::make_unique<Node>();
  n->index = impl_->nodes.size();
  n->label = options.label.empty() ? inner.options().label : options.label;
  options.critical = options.critical && inner.options().critical;
  n->options = std::move(options);
  n->kind = JobKind::scheduler;
  n->nested = std::make_unique<Scheduler>(std::move(inner));
  impl_->nodes.push_back(std::move(n));
  return Job(impl_.get(), impl_->nodes.size() - 1);
}

std::optional<Job> Scheduler::find(std::string_view label) const {
  for (const auto& n : impl_->nodes) {
    if (n->label == label) return Job(impl_.get(), n->index);
  }
  return std::nullopt;
}

std::vector<Job> Scheduler::jobs() const {
  std::vector<Job> all;
  for (const auto& n : impl_->nodes) all.push_back(Job(impl_.get(), n->index));
  return all;
}

void Scheduler::validate() const {
  const auto& nodes = impl_->nodes;
  std::vector<std::string> problems;
  for (const auto& n : nodes) {
    for (const auto& f : n->foreign) {
      problems.push_back("job '" + n->label + "' requires '" + f +
                         "', which is not in scheduler '" + impl_->options.label + "'");
    }
    for (const auto& r : n->requires_) {
      const Node& required = *nodes[r.index];
      if (required.options.forever && required.kind != JobKind::service) {
        problems.push_back("job '" + n->label + "' requires forever job '" + required.label +
                           "', which never finishes (only a service's readiness can be required)");
      }
    }
  }
  // Cycle search: iterative depth-first, O(V+E), reporting the first cycle's path.
  enum : char { white, grey, black };
  std::vector<char> colour(nodes.size(), white);
  std::vector<std::pair<std::size_t, std::size_t>> stack;  // (node, next requirement)
  for (std::size_t root = 0; root < nodes.size() && problems.empty(); ++root) {
    if (colour[root] != white) continue;
    stack.push_back({root, 0});
    colour[root] = grey;
    while (!stack.empty()) {
      auto& [index, next] = stack.back();
      const auto& reqs = nodes[index]->requires_;
      if (next == reqs.size()) {
        colour[index] = black;
        stack.pop_back();
        continue;
      }
      std::size_t to = reqs[next++].index;
      if (colour[to] == grey) {
        std::string path;
        auto from =
            std::find_if(stack.begin(), stack.end(), [&](auto& e) { return e.first == to; });
        for (auto it = from; it != stack.end(); ++it) path += nodes[it->first]->label + " -> ";
        path += nodes[to]->label;
        problems.push_back("requirement cycle: " + path + " (each requires the next)");
        break;
      }
      if (colour[to] == white) {
        colour[to] = grey;
        stack.push_back({to, 0});
      }
    }
    stack.clear();
  }
  if (!problems.empty()) {
    std::string message = "scheduler '" + impl_->options.label + "' is invalid:";
    for (const auto& p : problems) message += "\n  " + p;
    throw SchedulerError(message);
  }
}

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
    runner.submit(runner.dispatch(), false);
  }
  std::stop_callback on_cancel(cancel, [&] {
    std::lock_guard lock(s.mutex);
    runner.abort("the run was cancelled");
  });

  // Saturated: a huge timeout is no limit, never an overflow into the past.
  const std::optional<Clock::time_point> deadline =
      s.options.timeout ? std::optional(deadline_after(*s.options.timeout, s.run_start))
                        : std::nullopt;
  bool forever_cancelled = false;
  std::unique_lock lock(s.mutex);
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
    if (s.unfinished == 0 && s.in_flight == 0) break;
    // The next deadline: the run's, or a running job's own.
    auto next = deadline.value_or(Clock::time_point::max());
    std::erase_if(s.timed, [](Node* n) { return n->state != JobState::running || n->timed_out; });
    for (Node* n : s.timed) next = std::min(next, n->deadline);
    if (s.stalled_since && s.threads.size() < detail::kMaxThreads) {
      next = std::min(next, *s.stalled_since + detail::kStallBeforeGrowing);
    }
    if (next == Clock::time_point::max()) {
      s.changed.wait(lock);
    } else {
      s.changed.wait_until(lock, next);
    }
    const auto now = Clock::now();
    if (s.stalled_since && now >= *s.stalled_since + detail::kStallBeforeGrowing) {
      if (s.work.empty() || s.idle_threads > 0) {
        s.stalled_since.reset();
      } else if (now >= std::max(*s.stalled_since, s.last_take) + detail::kStallBeforeGrowing) {
        runner.grow();  // nothing was taken for a while: the workers are blocked
      } else {
        s.stalled_since = s.last_take;  // the queue moves: look again later
      }
    }
    for (Node* n : s.timed) {
      if (n->state == JobState::running && !n->timed_out && now >= n->deadline) {
        n->timed_out = true;
        runner.want_stop(*n);
      }
    }
    if (deadline && now >= *deadline && !s.aborting && s.unfinished > 0) {
      for (auto& n : s.nodes) {
        if (n->state == JobState::running && !n->options.forever) n->timed_out = true;
      }
      runner.abort("the run timed out after " + seconds(*s.options.timeout));
    }
    runner.send_stops(lock);
  }
  s.run_end = Clock::now();
  s.pool_closing = true;
  s.work_ready.notify_all();
  auto threads = std::move(s.threads);
  lock.unlock();
  for (auto& t : threads) t.join();
  lock.lock();

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
  return report;
}

std::vector<StopOutcome> Scheduler::shutdown() {
  SchedulerImpl& s = *impl_;
  std::vector<StopOutcome> outcomes;
  // Reverse of a topological order (requirements first, insertion order among
  // equals), so each service stops before the ones it requires.
  const std::size_t count = s.nodes.size();
  std::vector<std::size_t> indegree(count, 0);
  std::vector<std::vector<std::size_t>> dependents(count);
  for (const auto& n : s.nodes) {
    for (const auto& r : n->requires_) {
      ++indegree[n->index];
      dependents[r.index].push_back(n->index);
    }
  }
  std::vector<std::size_t> order;
  std::deque<std::size_t> queue;
  for (std::size_t i = 0; i < count; ++i) {
    if (indegree[i] == 0) queue.push_back(i);
  }
  while (!queue.empty()) {
    std::size_t i = queue.front();
    queue.pop_front();
    order.push_back(i);
    for (std::size_t d : dependents[i]) {
      if (--indegree[d] == 0) queue.push_back(d);
    }
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& n = s.node(*it);
    if (n.kind == JobKind::scheduler) {
      auto inner = n.nested->shutdown();
      outcomes.insert(outcomes.end(), inner.begin(), inner.end());
      continue;
    }
    if (n.kind != JobKind::service) continue;
    {
      // Only services that became ready: a failed start cleaned up after itself.
      std::lock_guard lock(s.mutex);
      if (n.state != JobState::ready) continue;
    }
    StopOutcome outcome{n.label, std::nullopt, {}};
    try {
      n.service->stop();
    } catch (const std::exception& e) {
      outcome.error = e.what();
    }
    outcome.status = n.service->exit_status();
    std::lock_guard lock(s.mutex);
    n.state = JobState::stopped;
    n.reason =
        outcome.error.empty() ? (outcome.status ? outcome.status->describe() : "") : outcome.error;
    outcomes.push_back(std::move(outcome));
  }
  s.shut_down = true;
  return outcomes;
}

std::string Scheduler::why() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->ok ? "" : impl_->abort_reason;
}

}  // namespace roadie
