// Job handles, their context, Sequence and the run report.
#include <condition_variable>
#include <mutex>

#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"

namespace roadie {

using detail::Clock;
using detail::Node;
using detail::SchedulerImpl;

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

std::string_view to_string(JobKind kind) noexcept {
  switch (kind) {
    case JobKind::callable:
      return "callable";
    case JobKind::service:
      return "service";
    case JobKind::scheduler:
      return "scheduler";
  }
  return "?";
}

bool JobContext::sleep_until(std::chrono::steady_clock::time_point deadline) const {
  // Our own flag, set under the mutex by the stop callback: the waiter can
  // never miss the wake-up between its check and its wait. (libstdc++ 12's
  // condition_variable_any::wait_until with a stop_token notifies without
  // that mutex and lost it: a forever job slept out its hour under TSan.)
  std::mutex m;
  std::condition_variable cv;
  bool stopped = false;
  std::stop_callback wake(token_, [&] {
    std::lock_guard guard(m);
    stopped = true;
    cv.notify_all();
  });
  std::unique_lock lock(m);
  if (deadline == Clock::time_point::max()) {
    // No practical limit: only the stop ends it (wait_until would overflow).
    cv.wait(lock, [&] { return stopped; });
  } else {
    cv.wait_until(lock, deadline, [&] { return stopped; });
  }
  return !token_.stop_requested();
}

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
  if (jobs.size() == 0) throw SchedulerError("roadie::Sequence: no jobs to chain (give at least one)");
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

}  // namespace roadie
