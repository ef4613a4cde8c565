#include "event_bus.hpp"

#include <exception>

#include "../log.hpp"

namespace roadie::detail {

namespace {

const char* name_of(Event::Type type) {
  switch (type) {
    case Event::Type::run_start:
      return "on_run_start";
    case Event::Type::job_start:
      return "on_job_start";
    case Event::Type::job_done:
      return "on_job_done";
    case Event::Type::run_end:
      return "on_run_end";
  }
  return "?";
}

}  // namespace

bool EventBus::wanted() const {
  if (listeners_.load(std::memory_order_acquire) > 0) return true;
  auto parent = parent_.lock();
  return parent && parent->wanted();
}

void EventBus::post(Event event) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(event));
}

void EventBus::deliver(bool wait) {
  std::unique_lock lock(mutex_);
  if (delivering_) {
    if (!wait) return;
    idle_.wait(lock, [&] { return !delivering_; });
  }
  delivering_ = true;
  while (!queue_.empty()) {
    Event event = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    dispatch(event);
    lock.lock();
  }
  delivering_ = false;
  idle_.notify_all();
}

void EventBus::dispatch(const Event& event) {
  std::vector<std::shared_ptr<Entry>> targets;
  {
    std::lock_guard lock(mutex_);
    targets = entries_;
  }
  for (const auto& entry : targets) call(*entry, event);
  if (event.type != Event::Type::job_start && event.type != Event::Type::job_done) return;
  auto parent = parent_.lock();
  if (!parent || !parent->wanted()) return;
  Event outer;
  outer.type = event.type;
  outer.job = event.job;
  outer.job.number = number_in_parent_ + "." + outer.job.number;
  outer.job.path = label_in_parent_ + "/" + outer.job.path;
  ++outer.job.depth;
  parent->post(std::move(outer));
  parent->deliver();
}

void EventBus::call(Entry& entry, const Event& event) {
  {
    std::lock_guard lock(mutex_);
    if (entry.removed) return;
    entry.calling = true;
    entry.caller = std::this_thread::get_id();
  }
  try {
    SchedulerObserver& o = *entry.observer;
    switch (event.type) {
      case Event::Type::run_start:
        o.on_run_start(event.scheduler, event.jobs);
        break;
      case Event::Type::job_start:
        o.on_job_start(event.job);
        break;
      case Event::Type::job_done:
        o.on_job_done(event.job);
        break;
      case Event::Type::run_end:
        o.on_run_end(*event.report);
        break;
    }
  } catch (const std::exception& e) {
    log().error("scheduler '{}': an observer's {} threw: {}", label_, name_of(event.type),
                e.what());
  } catch (...) {
    log().error("scheduler '{}': an observer's {} threw a non-standard exception", label_,
                name_of(event.type));
  }
  {
    std::lock_guard lock(mutex_);
    entry.calling = false;
    entry.caller = {};
  }
  idle_.notify_all();
}

void EventBus::nest_in(std::weak_ptr<EventBus> parent, std::string number, std::string label) {
  std::lock_guard lock(mutex_);
  parent_ = std::move(parent);
  number_in_parent_ = std::move(number);
  label_in_parent_ = std::move(label);
}

Subscription EventBus::add(std::shared_ptr<SchedulerObserver> observer) {
  auto entry = std::make_shared<Entry>();
  entry->observer = std::move(observer);
  {
    std::lock_guard lock(mutex_);
    entries_.push_back(entry);
    listeners_.fetch_add(1, std::memory_order_release);
  }
  // The scheduler may be gone first: the bus is shared, the handle holds it weakly.
  std::weak_ptr<EventBus> self = weak_from_this();
  return Subscription([self, entry] {
    if (auto bus = self.lock()) bus->remove(entry);
  });
}

void EventBus::remove(const std::shared_ptr<Entry>& entry) {
  std::unique_lock lock(mutex_);
  if (entry->removed) return;
  entry->removed = true;
  std::erase(entries_, entry);
  listeners_.fetch_sub(1, std::memory_order_release);
  // A call in progress on another thread ends first, so the observer's
  // captures may go right after; one on this thread (an observer removing
  // itself) cannot be waited for.
  idle_.wait(lock, [&] { return !entry->calling || entry->caller == std::this_thread::get_id(); });
}

}  // namespace roadie::detail
