#include "roadie/process.hpp"

#include <signal.h>

#include <map>

#include "../log.hpp"
#include "linux.hpp"
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

bool Process::running() const {
  std::lock_guard lock(state_->mutex);
  return !state_->status;
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

std::optional<ExitStatus> Process::wait_for(std::chrono::nanoseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  state_->exited.wait_for(lock, timeout, [&] { return state_->status.has_value(); });
  return state_->status;
}

void Process::signal(int sig) const {
  std::lock_guard lock(state_->stop_mutex);
  // While not stopped the leader is unreaped, so its group id is reserved.
  if (!state_->stopped) ::kill(-state_->pid, sig);
}

Subscription Process::on_exit(std::function<void(const ExitStatus&)> fn) const {
  auto callback = std::make_shared<detail::ExitCallback>();
  callback->fn = std::move(fn);
  {
    std::unique_lock lock(state_->mutex);
    if (state_->status) {
      ExitStatus status = *state_->status;
      lock.unlock();
      callback->fn(status);
      return {};
    }
    state_->exit_callbacks.push_back(callback);
  }
  std::weak_ptr<detail::ProcessState> weak = state_;
  return Subscription([weak, callback] {
    auto state = weak.lock();
    if (!state) return;
    std::lock_guard dispatch_lock(state->dispatch);
    callback->active = false;
    std::lock_guard lock(state->mutex);
    state->exit_callbacks.remove(callback);
  });
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

ExitStatus Process::stop(const StopOptions& options) {
  auto& s = *state_;
  std::lock_guard stop_lock(s.stop_mutex);
  if (s.stopped) {
    if (auto status = exit_status()) return *status;
    throw Error(s.name + " (pid " + std::to_string(s.pid) + "): could not be stopped");
  }

  const pid_t pgid = s.pid;
  const bool children_only = runtime_->subreaper();
  // Descendants outside the leader, each held by a pidfd so that a signal can
  // never reach a process that reused the pid.
  std::map<pid_t, detail::PidFd> tracked;
  int current_signal = options.signal;

  std::vector<pid_t> last_children;  // our children at the last look (subreaper only)
  auto adopted = [&] {
    std::lock_guard lock(s.mutex);
    return s.adopted;
  };
  auto track_new = [&] {
    // One look at our children serves both: the loop thread adopts the
    // orphans among them (attributed at the exit that orphaned them: their
    // environment may no longer show the marker) and hands the list back.
    const auto candidates =
        children_only ? runtime_->adopt_orphans_now(state_) : detail::all_pids();
    if (children_only) last_children = candidates;
    for (pid_t pid : detail::attributed_among(candidates, pgid, s.marker_entry)) {
      if (tracked.count(pid)) continue;
      std::error_code ec;
      auto pidfd = detail::PidFd::open(pid, ec);
      // Re-check after opening: the pidfd now pins the process we checked.
      if (!pidfd.valid() || !detail::is_attributed(pid, pgid, s.marker_entry)) continue;
      detail::send_signal(pidfd.get(), current_signal);
      tracked.emplace(pid, std::move(pidfd));
    }
    for (pid_t pid : adopted()) {
      if (tracked.count(pid)) continue;
      std::error_code ec;
      auto pidfd = detail::PidFd::open(pid, ec);
      if (!pidfd.valid()) continue;
      bool still_ours = false;
      for (pid_t again : adopted()) still_ours = still_ours || again == pid;
      if (!still_ours) continue;  // reaped meanwhile: the pidfd may be a stranger's
      detail::send_signal(pidfd.get(), current_signal);
      tracked.emplace(pid, std::move(pidfd));
    }
  };
  auto signal_all = [&] {
    // The leader is in its group (setsid() is refused to a group leader); its
    // pidfd is the fallback only if the group is gone, so it gets one signal.
    if (::kill(-pgid, current_signal) != 0) detail::send_signal(s.pidfd, current_signal);
    for (auto& [pid, pidfd] : tracked) detail::send_signal(pidfd.get(), current_signal);
  };
  auto alive = [&] {
    std::vector<int> fds;
    if (!detail::has_exited(s.pidfd)) fds.push_back(s.pidfd);
    for (auto& [pid, pidfd] : tracked) {
      if (!detail::has_exited(pidfd.get())) fds.push_back(pidfd.get());
    }
    return fds;
  };

  track_new();
  signal_all();
  auto deadline = std::chrono::steady_clock::now() + options.grace;
  bool escalated = false;
  for (bool first = true;; first = false) {
    auto waiting = alive();
    // An exit can orphan more descendants (re-parented to us, the subreaper,
    // before the exit is visible): look again after every wait, and at once
    // if something known has already exited. When nothing known was alive
    // before the look and the look finds nothing new, every orphan has been
    // seen: done.
    if (!first || waiting.size() < 1 + tracked.size()) {
      const std::size_t known = tracked.size();
      track_new();
      if (tracked.size() != known) continue;  // signalled: wait for them too
      if (waiting.empty()) break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (escalated) {
        detail::log().error("{} (pid {}): {} process(es) still alive {} s after {}", s.name, s.pid,
                            waiting.size(), kAfterKill.count(), signal_name(current_signal));
        break;
      }
      escalated = true;
      current_signal = options.kill_signal;
      signal_all();
      deadline = std::chrono::steady_clock::now() + kAfterKill;
      continue;
    }
    detail::wait_any_exit(waiting, deadline);
  }

  // Reap: descendants that are our children (re-parented to us), zombies left
  // in the group, then the leader.
  for (auto& [pid, pidfd] : tracked) detail::reap_pidfd(pidfd.get());
  // (Taken at the last look, after every known exit, when we are the
  // subreaper; otherwise looked up now.)
  if (!children_only) last_children = detail::own_children();
  for (pid_t pid : detail::attributed_among(last_children, pgid, s.marker_entry)) {
    if (detail::process_state(pid) != 'Z') continue;
    std::error_code ec;
    auto pidfd = detail::PidFd::open(pid, ec);
    if (pidfd.valid() && detail::is_attributed(pid, pgid, s.marker_entry)) {
      detail::reap_pidfd(pidfd.get());
    }
  }
  {
    std::lock_guard lock(s.mutex);
    s.reaping = true;
  }
  auto status = detail::reap(s.pid, !escalated || alive().empty());
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

}  // namespace roadie
