// Connecting roadie's own producers to a bus: a scheduler's job events.
// (connect(Executor&) and services() wait for the executor's listener
// Subscription.)
#include <chrono>
#include <memory>
#include <string>

#include "bus_impl.hpp"
#include "roadie/hooks.hpp"
#include "roadie/scheduler.hpp"

namespace roadie {

namespace {

// Fires job_start / job_done on the run's threads (never the event loop's):
// the observer is called one event at a time per scheduler, so a job's events
// reach the bus in order. A hook failure is the scheduler's to log (an
// observer's exception never stops a run); squash it to record it instead.
class JobEvents : public SchedulerObserver {
 public:
  explicit JobEvents(HookBus& bus) : bus_(bus) {}

  void on_job_start(const JobView& job) override {
    if (!bus_.listens(events::job_start)) return;
    bus_.fire(events::job_start, {{"job_label", job.label}, {"job_path", job.path}});
  }

  void on_job_done(const JobView& job) override {
    if (!bus_.listens(events::job_done)) return;
    bus_.fire(events::job_done,
              {{"job_label", job.label},
               {"job_path", job.path},
               {"job_state", std::string(to_string(job.state))},
               {"job_duration", std::chrono::duration<double>(job.duration).count()},
               {"job_reason", job.reason.empty() ? job.error : job.reason}});
  }

 private:
  HookBus& bus_;
};

}  // namespace

Subscription HookBus::connect(Scheduler& scheduler) {
  return scheduler.add_observer(std::make_shared<JobEvents>(*this));
}

}  // namespace roadie
