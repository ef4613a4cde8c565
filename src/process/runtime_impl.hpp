// Private: the state shared between a Process handle and the event loop.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "roadie/process.hpp"
#include "roadie/runtime.hpp"
#include "../callback_list.hpp"
#include "linux.hpp"
#include "watchdog.hpp"

namespace roadie::detail {

struct ProcessState {
  ProcessState(std::string name_, Command command_, ProcessOptions options)
      : name(std::move(name_)),
        command(std::move(command_)),
        stop_options(options.stop),
        output(std::move(options.output)) {
    if (options.on_line) line_subscription = output.subscribe(std::move(options.on_line));
  }

  const std::string name;
  const Command command;
  const StopOptions stop_options;
  pid_t pid = -1;
  int pidfd = -1;            // owned by the event loop; valid until released
  std::string marker;        // value of ROADIE_SUPERVISOR
  std::string marker_entry;  // "ROADIE_SUPERVISOR=" + marker
  Output output;

  mutable std::mutex mutex;
  mutable std::condition_variable exited;
  std::optional<ExitStatus> status;  // set once, by whoever learns it first
  bool reaping = false;              // stop() is about to reap the leader
  bool reaped_elsewhere = false;     // someone else reaped it: its pid is not ours
  bool exited_before_stop = false;   // the exit was known when stop() began
  bool released = false;             // the runtime let go of its pidfd (under mutex)
  std::uint64_t exit_seq = UINT64_MAX;  // output().next_seq() when the exit was published
  std::atomic<bool> kill_signal_sent{false};  // stop()'s escalation or kill() sent it
  std::chrono::steady_clock::time_point exit_seen;
  // Added to under `mutex` while `status` is unknown; called once, by publish_exit().
  CallbackList<const ExitStatus&> exit_callbacks{"exit callback"};
  // Guarded by RuntimeImpl::orphans_mutex_: stop() has begun (an orphan
  // shared with other services goes to the last of them to stop).
  bool stop_begun = false;
  Subscription line_subscription;  // ProcessOptions::on_line

  // stop() runs once at a time; `stopped` is set when it finished (reaped,
  // pipes drained and closed).
  std::mutex stop_mutex;
  bool stopped = false;

  /// Somebody else reaped it (waitpid(-1), SIGCHLD ignored): notes that its
  /// pid may be a stranger's from now on (nothing signals it), warns, and
  /// returns the status to publish, "exited with code -1", so that waiters
  /// never wait for ever.
  ExitStatus mark_reaped_elsewhere();

  /// Records the exit status (first caller wins), wakes waiters, runs the exit
  /// callbacks on this thread. Returns false if it was already known.
  bool publish_exit(ExitStatus s);
};

class RuntimeImpl {
 public:
  explicit RuntimeImpl(RuntimeOptions options);
  ~RuntimeImpl();
  RuntimeImpl(const RuntimeImpl&) = delete;
  RuntimeImpl& operator=(const RuntimeImpl&) = delete;

  /// Spawns on the event-loop thread and starts watching; throws SpawnError.
  std::shared_ptr<ProcessState> spawn(const Command& command, ProcessOptions options);

  /// Drains what is left in the pipes, then closes them and the pidfd. Blocks
  /// until done. Call after the process and its descendants were reaped.
  void release(const std::shared_ptr<ProcessState>& state);

  bool on_loop_thread() const noexcept { return std::this_thread::get_id() == loop_thread_id_; }
  const std::string& marker() const noexcept { return marker_; }
  pid_t watchdog_pid() const noexcept;
  bool subreaper() const noexcept { return subreaper_; }

  /// Looks at our children (loop thread): every child roadie did not spawn
  /// and has not looked at yet is an orphan re-parented to us (the
  /// subreaper), unless it is the test binary's own. Each orphan is
  /// attributed (see ARCHITECTURE.md, "Orphans"), watched through a pidfd,
  /// guarded by the watchdog and reaped when it exits. Runs at every exit of
  /// a supervised or adopted process, every 50 ms while anything runs, and on
  /// demand. Returns the children it looked at.
  std::vector<pid_t> scan_children();
  /// scan_children() on the loop thread, from any thread; returns when done,
  /// with the children it looked at (one look serves the caller too).
  std::vector<pid_t> scan_children_now();
  /// Drops an adopted orphan that exited and was reaped (loop thread).
  void forget_adoptee(pid_t pid);

  /// stop() of `state` has begun: orphans it shares with other services go to
  /// the last of them to stop.
  void begin_stop(ProcessState& state);
  /// The adopted orphans that stop() of `state` must end, each with its own
  /// pidfd (a duplicate: valid even after the orphan is reaped, and never a
  /// stranger's).
  std::vector<std::pair<pid_t, int>> orphans_of(const ProcessState& state);

  /// The adoption table, under orphans_mutex_: an orphan's pidfd (owned by
  /// its watcher, valid while the entry exists) and the services it may
  /// belong to (one when attributed).
  struct Orphan {
    int pidfd = -1;
    std::vector<std::weak_ptr<ProcessState>> candidates;
  };
  /// True when `state` is the one to end `orphan`: its only candidate, or
  /// among its candidates with every other one gone or stopping.
  static bool belongs(const Orphan& orphan, const ProcessState& state);
  /// Takes an orphan out of the table (before it is reaped).
  void drop_orphan(pid_t pid);

  /// Descriptors held in reserve for stop(): when the process has none left,
  /// stop() closes the reserve and looks again, instead of stopping blind.
  void fill_reserve() noexcept;
  /// Closes the reserve; false when it was already empty.
  bool release_reserve() noexcept;
  static constexpr std::size_t kReserve = 16;

 private:
  struct Loop;
  void arm_scan();
  std::vector<std::weak_ptr<ProcessState>> attribute(pid_t child, const ProcStat& stat,
                                                     const std::string& this_process);
  std::unique_ptr<Loop> loop_;
  std::thread::id loop_thread_id_;
  std::string marker_;
  bool subreaper_ = false;
  std::mutex seen_mutex_;  // guards Loop::seen_children against readers off the loop
  std::mutex orphans_mutex_;
  std::unordered_map<pid_t, Orphan> orphans_;  // guarded by orphans_mutex_
  std::mutex reserve_mutex_;
  std::vector<UniqueFd> reserve_;  // guarded by reserve_mutex_
  // Declared after loop_: destroyed first, once the loop thread has ended.
  std::unique_ptr<Watchdog> watchdog_;
};

}  // namespace roadie::detail
