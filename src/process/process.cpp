#include "roadie/process.hpp"

#include <signal.h>

#include <algorithm>
#include <map>

#include "../log.hpp"
#include "linux.hpp"
#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "runtime_impl.hpp"

namespace roadie {

namespace {

// How long to wait after the kill signal before giving up on a process (one
// in uninterruptible sleep cannot be killed at all).
constexpr auto kAfterKill = std::chrono::seconds(10);

const std::string& empty_string() {
  static const std::string empty;
  return empty;
}

// Signals the leader's process group while the leader, our unreaped child
// (alive or a zombie), reserves its pid and so the group id; otherwise (or if
// the group is gone) the leader alone, through its pidfd, which can never
// reach a stranger that reused the pid. The leader is in its group: setsid()
// is refused to a group leader.
void signal_group(const detail::ProcessState& s, int sig) {
  const bool reserved =
      s.pidfd >= 0 && detail::peek_child(s.pidfd).state != detail::ChildState::not_ours;
  if (!reserved || ::kill(-s.pid, sig) != 0) detail::send_signal(s.pidfd, sig);
}

}  // namespace

Process::Process(std::shared_ptr<detail::RuntimeImpl> runtime,
                 std::shared_ptr<detail::ProcessState> state)
    : runtime_(std::move(runtime)), state_(std::move(state)) {}

Process Process::spawn(const Command& command, ProcessOptions options, Runtime& runtime) {
  auto state = runtime.impl()->spawn(command, std::move(options));
  return Process(runtime.impl(), std::move(state));
}

Process::Process(Process&& other) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (state_) {
      try {
        stop();
      } catch (const std::exception& e) {
        detail::log().error("{}: stop failed: {}", state_->name, e.what());
      }
    }
    runtime_ = std::move(other.runtime_);
    state_ = std::move(other.state_);
  }
  return *this;
}

Process::~Process() {
  if (!state_) return;
  try {
    stop();
  } catch (const std::exception& e) {
    detail::log().error("{} (pid {}): stop failed: {}", state_->name, state_->pid, e.what());
  } catch (...) {
    detail::log().error("{} (pid {}): stop failed", state_->name, state_->pid);
  }
}

pid_t Process::pid() const noexcept {
  return state_ ? state_->pid : -1;
}
const std::string& Process::name() const noexcept {
  return state_ ? state_->name : empty_string();
}
const Command& Process::command() const noexcept {
  return state_->command;
}
const std::string& Process::marker() const noexcept {
  return state_ ? state_->marker : empty_string();
}
const StopOptions& Process::options_stop() const {
  return state_->stop_options;
}
Output& Process::output() const {
  return state_->output;
}

std::shared_ptr<Output> Process::output_handle() const {
  // Shares the state's ownership, not the runtime's: holding a run's output
  // keeps no event loop alive.
  return {state_, &state_->output};
}

bool Process::running() const {
  std::lock_guard lock(state_->mutex);
  return !state_->status;
}

bool Process::exited_now() const {
  if (!running()) return true;
  // The pidfd is valid until stop() releases it; a stop in progress knows.
  std::unique_lock stop_lock(state_->stop_mutex, std::try_to_lock);
  if (!stop_lock.owns_lock()) return !running();
  if (state_->stopped || state_->pidfd < 0) return !running();
  return detail::peek_child(state_->pidfd).state != detail::ChildState::running;
}

std::optional<ExitStatus> Process::exit_status() const {
  std::lock_guard lock(state_->mutex);
  return state_->status;
}

ExitStatus Process::wait() const {
  std::unique_lock lock(state_->mutex);
  state_->exited.wait(lock, [&] { return state_->status.has_value(); });
  return *state_->status;
}

std::optional<ExitStatus> Process::wait_for_ns(std::chrono::nanoseconds timeout) const {
  // Saturated: a huge timeout waits for ever instead of overflowing into the past.
  const auto deadline = deadline_after(timeout);
  std::unique_lock lock(state_->mutex);
  auto exited = [&] { return state_->status.has_value(); };
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    state_->exited.wait(lock, exited);
  } else {
    state_->exited.wait_until(lock, deadline, exited);
  }
  return state_->status;
}

void Process::signal(int sig) const {
  auto& s = *state_;
  // Under the state's mutex (never stop()'s, which a stop waiting for the
  // event loop holds: a loop callback may signal): the runtime sets
  // `released` under it before it closes the pidfd.
  std::lock_guard lock(s.mutex);
  if (s.released || s.pidfd < 0) return;  // reaped: the pid may be a stranger's
  signal_group(s, sig);
}

Subscription Process::on_exit(std::function<void(const ExitStatus&)> fn) const {
  std::unique_lock lock(state_->mutex);
  if (state_->status) {
    ExitStatus status = *state_->status;
    lock.unlock();
    fn(status);
    return {};
  }
  return state_->exit_callbacks.add(std::move(fn));
}

std::vector<pid_t> Process::descendants() const {
  std::vector<pid_t> result;
  // A full /proc scan: grandchildren still under their parent count too.
  for (pid_t pid : detail::attributed_processes(state_->pid, state_->marker_entry, false)) {
    if (detail::process_state(pid) != 'Z') result.push_back(pid);
  }
  return result;
}

ExitStatus Process::kill() {
  StopOptions options = state_->stop_options;
  options.signal = options.kill_signal;
  options.grace = std::chrono::milliseconds(0);
  return stop(options);
}

namespace {

// One stop() of one process: signal the group and every descendant roadie
// can attribute to it, wait, escalate, reap. Each descendant is held by a
// pidfd before it is signalled, so a recycled pid is never signalled.
class Stopper {
 public:
  Stopper(detail::RuntimeImpl& runtime, const std::shared_ptr<detail::ProcessState>& state,
          const StopOptions& options)
      : runtime_(runtime),
        state_(state),
        s_(*state),
        options_(options),
        children_only_(runtime.subreaper()),
        signal_(options.signal) {}

  // Returns whether the wait after the kill signal ran out with processes
  // still alive.
  bool signal_and_wait() {
    look_for_descendants();
    signal_everyone();
    auto deadline = deadline_after(options_.grace);
    for (bool first = true;; first = false) {
      auto waiting = alive();
      // An exit can orphan more descendants (re-parented to us, the
      // subreaper, before the exit is visible): look again after every wait,
      // and at once if something known has already exited. When nothing
      // known was alive before the look and the look finds nothing new,
      // every orphan has been seen: done.
      if (!first || waiting.size() < 1 + tracked_.size()) {
        const std::size_t known = tracked_.size();
        look_for_descendants();
        if (tracked_.size() != known) continue;  // signalled: wait for them too
        if (waiting.empty()) return false;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        if (escalated_) {
          detail::log().error("{} (pid {}): {} process(es) still alive {} s after {}", s_.name,
                              s_.pid, waiting.size(), kAfterKill.count(), signal_name(signal_));
          return true;
        }
        escalate();
        deadline = deadline_after(kAfterKill);
        continue;
      }
      detail::wait_any_exit(waiting, deadline);
    }
  }

  // Reaps the descendants that are our children (re-parented to us), zombies
  // left in the group, then the leader; returns the leader's status when this
  // call reaped it.
  std::optional<ExitStatus> reap(bool gave_up) {
    for (auto& [pid, pidfd] : tracked_) detail::reap_pidfd(pidfd.get());
    // (Taken at the last look, after every known exit, when we are the
    // subreaper; otherwise looked up now.)
    if (!children_only_) last_children_ = detail::own_children();
    for (pid_t pid : detail::attributed_among(last_children_, s_.pid, s_.marker_entry)) {
      if (detail::process_state(pid) != 'Z') continue;
      std::error_code ec;
      auto pidfd = detail::open_pidfd(pid, ec);
      if (pidfd.valid() && detail::is_attributed(pid, s_.pid, s_.marker_entry)) {
        detail::reap_pidfd(pidfd.get());
      }
    }
    {
      std::lock_guard lock(s_.mutex);
      s_.reaping = true;
    }
    // Through the pidfd: if somebody else reaped the leader, its pid may be
    // another child's by now, and waiting by pid would reap that one.
    return detail::reap_pidfd(s_.pidfd, /*block=*/!gave_up || alive().empty());
  }

  // The kill signal to the leader's group, which needs no new descriptor.
  void kill_group() {
    s_.kill_signal_sent.store(true);
    signal_group(s_, options_.kill_signal);
  }

 private:
  void track(pid_t pid, detail::UniqueFd pidfd) {
    detail::send_signal(pidfd.get(), signal_);
    tracked_.emplace(pid, std::move(pidfd));
  }

  void look_for_descendants() {
    // One look at our children serves both: the loop thread adopts the
    // orphans among them (their environment may no longer show the marker)
    // and hands the list back.
    const auto candidates = children_only_ ? runtime_.scan_children_now() : detail::all_pids();
    if (children_only_) last_children_ = candidates;
    for (pid_t pid : detail::attributed_among(candidates, s_.pid, s_.marker_entry)) {
      if (tracked_.count(pid)) continue;
      std::error_code ec;
      auto pidfd = detail::open_pidfd(pid, ec);
      if (!pidfd.valid() && detail::is_resource_shortage(ec.value())) {
        throw std::system_error(ec, "cannot hold pid " + std::to_string(pid) + " to stop it");
      }
      // Re-check after opening: the pidfd now pins the process we checked.
      if (!pidfd.valid() || !detail::is_attributed(pid, s_.pid, s_.marker_entry)) continue;
      track(pid, std::move(pidfd));
    }
    // Adopted orphans come with their own pidfd (never a stranger's).
    for (auto [pid, fd] : runtime_.orphans_of(s_)) {
      detail::UniqueFd pidfd(fd);
      if (!tracked_.count(pid)) track(pid, std::move(pidfd));
    }
  }

  void signal_everyone() {
    if (signal_ == options_.kill_signal) s_.kill_signal_sent.store(true);
    signal_group(s_, signal_);
    for (auto& [pid, pidfd] : tracked_) detail::send_signal(pidfd.get(), signal_);
  }

  void escalate() {
    escalated_ = true;
    signal_ = options_.kill_signal;
    signal_everyone();
  }

  std::vector<int> alive() const {
    std::vector<int> fds;
    if (s_.pidfd >= 0 && !detail::has_exited(s_.pidfd)) fds.push_back(s_.pidfd);
    for (const auto& [pid, pidfd] : tracked_) {
      if (!detail::has_exited(pidfd.get())) fds.push_back(pidfd.get());
    }
    return fds;
  }

  detail::RuntimeImpl& runtime_;
  const std::shared_ptr<detail::ProcessState>& state_;
  detail::ProcessState& s_;
  const StopOptions& options_;
  const bool children_only_;
  int signal_;
  bool escalated_ = false;
  std::map<pid_t, detail::UniqueFd> tracked_;  // descendants outside the leader
  std::vector<pid_t> last_children_;        // our children at the last look (subreaper only)
};

}  // namespace

ExitStatus Process::stop(const StopOptions& options) {
  auto& s = *state_;
  std::lock_guard stop_lock(s.stop_mutex);
  if (s.stopped) {
    if (auto status = exit_status()) return *status;
    throw Error(s.name + " (pid " + std::to_string(s.pid) + "): could not be stopped");
  }
  {
    std::lock_guard lock(s.mutex);
    s.exited_before_stop = s.status.has_value();
  }
  runtime_->begin_stop(s);
  Stopper stopper(*runtime_, state_, options);
  bool gave_up = false;
  std::optional<ExitStatus> status;
  try {
    // Out of descriptors (or memory) the looks cannot see: the runtime's
    // reserve is closed and everything is looked at again, never skipped.
    try {
      gave_up = stopper.signal_and_wait();
      status = stopper.reap(gave_up);
    } catch (const std::system_error& e) {
      if (!detail::is_resource_shortage(e.code().value()) || !runtime_->release_reserve()) throw;
      detail::log().warn("{} (pid {}): {}; stopping with the descriptors held in reserve", s.name,
                         s.pid, e.what());
      gave_up = stopper.signal_and_wait();
      status = stopper.reap(gave_up);
    }
  } catch (const std::system_error& e) {
    // Still blind: end what can be ended without a descriptor, and say so.
    stopper.kill_group();
    runtime_->fill_reserve();
    throw Error(s.name + " (pid " + std::to_string(s.pid) + "): cannot be stopped completely: " +
                e.what() + ". Its process group was killed; descendants that left it may still run.");
  }
  runtime_->fill_reserve();
  // Somebody else reaped the leader while we stopped it (the event loop then
  // left the publishing to us): no status to be had, but waiters must not
  // wait for ever.
  if (!status && !exit_status() &&
      detail::peek_child(s.pidfd).state == detail::ChildState::not_ours) {
    status = s.mark_reaped_elsewhere();
  }
  // Drain and close the pipes first: when the exit is published, all the
  // output is in (as when the event loop publishes it).
  runtime_->release(state_);
  if (status) s.publish_exit(*status);
  s.stopped = true;
  auto final_status = exit_status();
  if (!final_status) {
    throw Error(s.name + " (pid " + std::to_string(s.pid) + "): could not be stopped");
  }
  return *final_status;
}

std::uint64_t Process::exit_seq() const {
  std::lock_guard lock(state_->mutex);
  return state_->exit_seq;
}

bool Process::exited_before_stop() const {
  std::lock_guard lock(state_->mutex);
  return state_->exited_before_stop;
}

bool Process::kill_signal_sent() const noexcept {
  return state_ && state_->kill_signal_sent.load();
}

}  // namespace roadie
