#include "worker_pool.hpp"

#include <algorithm>
#include <system_error>

#include "../log.hpp"

namespace roadie::detail {

namespace {

// Queued work that found every worker busy for this long means the jobs block:
// the pool grows (doubling). Short jobs never trigger it, so a fan-out of
// no-op jobs runs on a few threads instead of contending on many.
constexpr auto kStallBeforeGrowing = std::chrono::milliseconds(1);

std::size_t base_threads(std::size_t window) {
  // hardware_concurrency() reads /sys on every call: once is enough.
  static const std::size_t cores = std::max<std::size_t>(2, std::thread::hardware_concurrency());
  // A window says how many jobs should run at once: honour it at once.
  return std::min(WorkerPool::max_threads(), window != 0 ? std::max(window, cores) : cores);
}

}  // namespace

WorkerPool::WorkerPool(std::mutex& mutex, std::string label, std::size_t window,
                       Callbacks callbacks)
    : mutex_(mutex), label_(std::move(label)), window_(window), callbacks_(std::move(callbacks)) {}

WorkerPool::~WorkerPool() {
  std::unique_lock lock(mutex_);
  join(lock);
}

void WorkerPool::submit(const Batch& batch, bool from_worker) {
  const auto& jobs = batch.jobs;
  if (jobs.empty()) return;
  queue_.insert(queue_.begin(), jobs.begin(), jobs.end());
  // Up to base_threads() at once, more when the queue stalls (see check()).
  const std::size_t available = idle_ + (from_worker ? 1 : 0);
  std::size_t base = base_threads(window_);
  if (window_ == 0) {
    // Services and nested schedulers are known to block (on readiness, on
    // their own jobs): each gets a thread at once instead of after a stall.
    base = std::min(max_threads(), std::max(base, threads_.size() - idle_ + batch.blocking));
  }
  for (std::size_t i = available; i < queue_.size() && threads_.size() < base; ++i) {
    if (!add_thread()) break;
  }
  if (queue_.size() > available && !stalled_since_) {
    stalled_since_ = Clock::now();
    callbacks_.stalled();
  }
  const std::size_t wake = jobs.size() - (from_worker ? 1 : 0);
  for (std::size_t i = 0; i < wake; ++i) work_ready_.notify_one();
}

std::vector<Node*> WorkerPool::take_queued() {
  std::vector<Node*> taken(queue_.begin(), queue_.end());
  queue_.clear();
  return taken;
}

std::optional<WorkerPool::Clock::time_point> WorkerPool::next_check() const {
  if (!stalled_since_ || threads_.size() >= max_threads()) return std::nullopt;
  return *stalled_since_ + kStallBeforeGrowing;
}

void WorkerPool::check(Clock::time_point now) {
  if (!stalled_since_ || now < *stalled_since_ + kStallBeforeGrowing) return;
  if (queue_.empty() || idle_ > 0) {
    stalled_since_.reset();
  } else if (now >= std::max(*stalled_since_, last_take_) + kStallBeforeGrowing) {
    grow();  // nothing was taken for a while: the workers are blocked
  } else {
    stalled_since_ = last_take_;  // the queue moves: look again later
  }
}

// One more worker. When the system refuses a thread, the queue waits for the
// workers there are; with none at all, nothing could ever run.
bool WorkerPool::add_thread() {
  try {
    threads_.emplace_back([this] { work(); });
    return true;
  } catch (const std::system_error& e) {
    if (!refused_) {
      refused_ = true;
      log().warn("scheduler '{}': cannot start another worker thread ({}); {} running", label_,
                 e.what(), threads_.size());
    }
    if (threads_.empty()) callbacks_.starved(std::string("cannot start a worker thread: ") + e.what());
    return false;
  }
}

void WorkerPool::grow() {
  const std::size_t more = std::min(queue_.size(), std::max<std::size_t>(threads_.size(), 1));
  for (std::size_t i = 0; i < more && threads_.size() < max_threads(); ++i) {
    if (!add_thread()) break;
  }
  // Look again: if the new workers block too, the queue stalls again.
  stalled_since_ = Clock::now();
}

void WorkerPool::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty()) stalled_since_.reset();
    ++idle_;
    work_ready_.wait(lock, [&] { return !queue_.empty() || closing_; });
    --idle_;
    if (queue_.empty()) return;
    while (!queue_.empty()) {
      Node* job = queue_.front();
      queue_.pop_front();
      last_take_ = Clock::now();
      lock.unlock();
      auto next = callbacks_.execute(*job);
      lock.lock();
      submit(next, true);
    }
  }
}

void WorkerPool::join(std::unique_lock<std::mutex>& lock) {
  closing_ = true;
  work_ready_.notify_all();
  auto threads = std::move(threads_);
  threads_.clear();
  lock.unlock();
  for (auto& t : threads) t.join();
  lock.lock();
}

}  // namespace roadie::detail
