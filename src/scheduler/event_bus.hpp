// Private: delivers a scheduler's events to its observers, in order, one
// thread at a time, never under the run's lock; forwards job events to the
// bus of the scheduler it is nested in.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "roadie/scheduler.hpp"

namespace roadie::detail {

struct Event {
  enum class Type { run_start, job_start, job_done, run_end };
  Type type = Type::job_start;
  std::string scheduler;           // run_start
  std::vector<JobView> jobs;       // run_start
  JobView job;                     // job_start, job_done
  std::optional<RunReport> report;  // run_end
};

class EventBus : public std::enable_shared_from_this<EventBus> {
 public:
  explicit EventBus(std::string label = {}) : label_(std::move(label)) {}

  /// Whether anybody listens here or in an outer scheduler (events are only
  /// made when somebody does).
  bool wanted() const;

  /// Queues an event; any thread, any lock held (the bus's lock is a leaf).
  void post(Event event);

  /// Delivers the queued events, without the run's lock held. When another
  /// thread is delivering already, returns at once (that thread delivers
  /// these too) or, with `wait`, waits for it and then delivers what is left.
  void deliver(bool wait = false);

  /// Job events delivered here are also queued, with `label` prepended to
  /// their path and `number` to their number, on `parent` (and delivered).
  void nest_in(std::weak_ptr<EventBus> parent, std::string number, std::string label);

  Subscription add(std::shared_ptr<SchedulerObserver> observer);

 private:
  struct Entry {
    std::shared_ptr<SchedulerObserver> observer;
    bool removed = false;
    bool calling = false;
    std::thread::id caller;
  };
  void remove(const std::shared_ptr<Entry>& entry);
  void dispatch(const Event& event);
  void call(Entry& entry, const Event& event);

  const std::string label_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;  // a delivery or an observer call ended
  std::deque<Event> queue_;
  bool delivering_ = false;
  std::vector<std::shared_ptr<Entry>> entries_;
  std::atomic<std::size_t> listeners_{0};
  // Set before the outer scheduler runs (add_scheduler), read by its runs.
  std::weak_ptr<EventBus> parent_;
  std::string number_in_parent_;
  std::string label_in_parent_;
};

}  // namespace roadie::detail
