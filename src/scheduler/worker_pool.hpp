// Private: the threads that run a scheduler's jobs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace roadie::detail {

struct Node;

/// Threads made on demand and reused, up to max_threads(). The pool knows
/// nothing of the run: a worker hands each job to `execute` (called without
/// the lock) and queues the jobs it returns, running the first itself (a chain
/// never changes thread).
///
/// The pool's state is guarded by the run's mutex, passed in: every member but
/// the constructor, and join() is called with it held.
class WorkerPool {
 public:
  using Clock = std::chrono::steady_clock;
  /// Jobs to queue; `blocking` of them are known to block (services, nested
  /// schedulers): each of those gets a thread at once instead of after a stall.
  struct Batch {
    std::vector<Node*> jobs;
    std::size_t blocking = 0;
  };
  struct Callbacks {
    /// Runs one job (without the lock); returns the jobs that may start now.
    std::function<Batch(Node&)> execute;
    /// Queued work found every worker busy: the coordinator should call
    /// check() at next_check() (with the lock held).
    std::function<void()> stalled;
    /// The system refused the first thread: nothing can run (lock held).
    std::function<void(const std::string& why)> starved;
  };

  WorkerPool(std::mutex& mutex, std::string label, std::size_t window, Callbacks callbacks);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool();  // joins (the lock must not be held)

  /// Queues jobs and makes threads for them. `from_worker`: called by a worker
  /// (from `execute`'s result), which runs the first job itself.
  void submit(const Batch& batch, bool from_worker);

  /// Takes the jobs no worker has picked up yet (an abort cancels them).
  std::vector<Node*> take_queued();

  /// When the coordinator should look at the pool next (grow()), if ever.
  std::optional<Clock::time_point> next_check() const;
  /// Grows the pool when queued work has found every worker busy for a while
  /// (the jobs block).
  void check(Clock::time_point now);

  /// Lets the workers finish and joins them; the lock is released meanwhile.
  void join(std::unique_lock<std::mutex>& lock);

  /// Jobs that execute at once, at most (jobs_window bounds it further).
  static constexpr std::size_t max_threads() { return 128; }

 private:
  bool add_thread();
  void grow();
  void work();

  std::mutex& mutex_;
  const std::string label_;
  const std::size_t window_;
  const Callbacks callbacks_;
  std::deque<Node*> queue_;
  std::condition_variable work_ready_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool closing_ = false;
  bool refused_ = false;  // the system refused a thread (warned once)
  // Since when queued work has found every worker busy (no value: it has not).
  std::optional<Clock::time_point> stalled_since_;
  Clock::time_point last_take_{};  // when a worker last took a job from the queue
};

}  // namespace roadie::detail
