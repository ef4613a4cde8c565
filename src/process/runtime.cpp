// The event loop: standalone Asio on one thread. Boost.Process is not included
// here (see spawn.cpp) so that its Asio and standalone Asio never meet.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <limits>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "../log.hpp"
#include "../text.hpp"
#include "linux.hpp"
#include "roadie/error.hpp"
#include "runtime_impl.hpp"
#include "spawn.hpp"

extern char** environ;

namespace roadie::detail {

namespace {

// Reads (of 64 KiB) per pipe per wake-up of the event loop.
constexpr int kReadsPerWakeup = 16;

// Waits on `pidfd` until the kernel says the child exited, then calls
// `exited(peek)`; `wanted()` false drops the wait (released). A wake-up alone
// is not an exit: the reactor can deliver a readiness event that was queued
// for a descriptor since closed (a released process) to the descriptor that
// took its number, so each wake-up is checked and the wait armed again while
// the child runs. `owner` (which holds `pidfd`) is kept alive meanwhile.
template <class Owner, class Wanted, class Exited>
void await_exit(asio::posix::stream_descriptor& pidfd, std::shared_ptr<Owner> owner, Wanted wanted,
                Exited exited) {
  pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                   [&pidfd, owner, wanted, exited](std::error_code ec) {
                     if (ec || !wanted()) return;
                     const ChildPeek peek = peek_child(pidfd.native_handle());
                     if (peek.state == ChildState::running) {
                       await_exit(pidfd, owner, wanted, exited);
                     } else {
                       exited(peek);
                     }
                   });
}

// Watches one child: its two pipes and its pidfd. Lives on the loop thread,
// kept alive by its pending operations and by the runtime's table.
class Watch : public std::enable_shared_from_this<Watch> {
 public:
  Watch(RuntimeImpl& runtime, asio::io_context& io, std::shared_ptr<ProcessState> state, int pidfd,
        int out, int err)
      : runtime_(runtime), state_(std::move(state)), pidfd_(io), out_(io, out), err_(io, err) {
    if (pidfd >= 0) pidfd_.assign(pidfd);
  }

  void start() {
    read(Stream::out);
    read(Stream::err);
    if (pidfd_.is_open()) {
      Watch* self = this;
      await_exit(
          pidfd_, shared_from_this(), [self] { return self->state_ != nullptr; },
          [self](const ChildPeek& peek) { self->on_exit(peek); });
    } else {
      // Reaped by someone else before a pidfd could hold it (SIGCHLD
      // ignored, a waitpid(-1) loop): it has exited, and what it wrote is in
      // the pipes already.
      on_exit(ChildPeek{ChildState::not_ours});
    }
  }

  // Reads what is left without waiting, then closes everything.
  void release() {
    drain(Stream::out);
    drain(Stream::err);
    for (Stream s : {Stream::out, Stream::err}) {
      if (descriptor(s).is_open()) finish(s);
    }
    std::error_code ignored;
    pidfd_.close(ignored);
    // Aborted operations complete later; they must not keep the process's
    // state (and its log file) alive past stop().
    state_.reset();
  }

 private:
  asio::posix::stream_descriptor& descriptor(Stream s) { return s == Stream::out ? out_ : err_; }
  std::array<char, 64 * 1024>& buffer(Stream s) { return s == Stream::out ? out_buf_ : err_buf_; }

  // One reader per pipe: wait for readability, then read here. (Letting Asio
  // read too, with async_read_some, would give two readers sharing a buffer:
  // a read Asio made early could be overwritten by drain() before its
  // handler ran.)
  void read(Stream s) {
    descriptor(s).async_wait(asio::posix::descriptor_base::wait_read,
                             [self = shared_from_this(), s](std::error_code ec) {
                               if (!self->state_ || ec) return;  // released or aborted
                               // Bounded, so that a flooding child cannot starve the
                               // other pipes and exits; the rest comes next round.
                               if (self->drain(s, kReadsPerWakeup)) self->read(s);
                             });
  }

  void finish(Stream s) {
    std::error_code ignored;
    descriptor(s).close(ignored);
    state_->output.close(s);
  }

  // Non-blocking reads until the pipe is empty, closed, or `max_reads` were
  // made. Returns whether the pipe is still open.
  bool drain(Stream s, int max_reads = std::numeric_limits<int>::max()) {
    auto& d = descriptor(s);
    if (!d.is_open()) return false;
    auto& buf = buffer(s);
    for (int reads = 0; reads < max_reads;) {
      ssize_t n = ::read(d.native_handle(), buf.data(), buf.size());
      if (n > 0) {
        ++reads;
        state_->output.append(s, {buf.data(), static_cast<std::size_t>(n)});
      } else if (n == 0) {
        finish(s);
        return false;
      } else if (errno != EINTR) {
        break;  // EAGAIN: empty for now
      }
    }
    return true;
  }

  void on_exit(const ChildPeek& peek) {
    // Held here: a callback below may drop the last Process, whose stop()
    // releases this watch (and its reference) meanwhile.
    auto state = state_;
    // The child is gone, so everything it wrote is in the pipes: take it
    // before announcing the exit, so that a waiter sees all its output.
    drain(Stream::out);
    drain(Stream::err);
    // Its orphans were re-parented to us before the exit became visible: take
    // them in before announcing the exit too, so that when wait() returns they
    // are known (and guarded by the watchdog). stop() does the same after
    // every exit it sees, so none is missed.
    if (runtime_.subreaper()) {
      try {
        runtime_.scan_children();
      } catch (const std::exception& e) {
        // The exit is published regardless: waiters must not hang. stop()
        // looks for the orphans again.
        log().error("{} (pid {}): cannot adopt its orphans: {}", state->name, state->pid, e.what());
      }
    }
    if (peek.state == ChildState::exited) {
      state->publish_exit(peek.status);
      return;
    }
    {
      std::lock_guard lock(state->mutex);
      // stop() reaped it first: stop() publishes.
      if (state->reaping) return;
    }
    // Somebody else reaped our child (waitpid(-1), SIGCHLD ignored).
    state->publish_exit(state->mark_reaped_elsewhere());
    // Nothing after the exit callbacks: one of them may have dropped the
    // process, releasing this watch (and perhaps the runtime).
  }

  RuntimeImpl& runtime_;
  std::shared_ptr<ProcessState> state_;
  asio::posix::stream_descriptor pidfd_;
  asio::posix::stream_descriptor out_;
  asio::posix::stream_descriptor err_;
  std::array<char, 64 * 1024> out_buf_;
  std::array<char, 64 * 1024> err_buf_;
};

std::string random_hex() {
  std::random_device device;
  std::uint64_t value = (std::uint64_t{device()} << 32) ^ device();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

// An orphan re-parented to us (the subreaper): watched through its pidfd,
// reaped when it exits (and its own orphans looked for then).
class Adoptee : public std::enable_shared_from_this<Adoptee> {
 public:
  Adoptee(RuntimeImpl& runtime, asio::io_context& io, pid_t pid, int pidfd)
      : runtime_(runtime), pid_(pid), pidfd_(io, pidfd) {}

  void start() {
    Adoptee* self = this;
    await_exit(
        pidfd_, shared_from_this(), [self] { return self->pidfd_.is_open(); },
        [self](const ChildPeek&) { self->on_exit(); });
  }
  bool exited() { return has_exited(pidfd_.native_handle()); }
  // Reaps and closes it (the exit handler then finds the descriptor closed).
  void finish() {
    reap_pidfd(pidfd_.native_handle());
    std::error_code ignored;
    pidfd_.close(ignored);
  }

 private:
  void on_exit();

  RuntimeImpl& runtime_;
  pid_t pid_;
  asio::posix::stream_descriptor pidfd_;
};

// One spawned process, for attributing orphans by start time.
struct RunRecord {
  std::weak_ptr<ProcessState> state;
  pid_t leader = 0;
  unsigned long long start = 0;              // clock ticks since boot
  std::optional<unsigned long long> end;     // when its stop() completed
};

// How often the loop looks for orphans while anything of ours runs: a daemon
// re-parented without any exit of ours is guarded within this time.
constexpr auto kScanInterval = std::chrono::milliseconds(50);

struct RuntimeImpl::Loop {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread;
  std::unordered_map<const ProcessState*, std::shared_ptr<Watch>> watches;  // loop thread only
  bool orphaned = false;              // set on the loop thread when the runtime died on it
  std::uint64_t serial = 0;           // loop thread only
  std::unordered_set<pid_t> leaders;  // pids roadie spawned (loop thread only)
  // Children already looked at. Written on the loop thread only, under
  // RuntimeImpl::seen_mutex_ (stop() reads it from other threads).
  std::unordered_set<pid_t> seen_children;
  std::unordered_map<pid_t, std::shared_ptr<Adoptee>> adoptees;  // loop thread only
  std::vector<RunRecord> runs;                                    // loop thread only
  asio::steady_timer scan_timer{io};
  bool scan_armed = false;  // loop thread only
  // Creates the reactor (epoll, eventfd, timerfd) now rather than at the first
  // spawn, so the runtime's descriptors exist from its construction on.
  asio::posix::stream_descriptor reactor_warmup{io};

  template <class F>
  auto run(bool on_loop, F&& f) -> decltype(f()) {
    if (on_loop) return f();
    std::packaged_task<decltype(f())()> task(std::forward<F>(f));
    auto result = task.get_future();
    asio::post(io, [&task] { task(); });
    return result.get();
  }
};

RuntimeImpl::RuntimeImpl(RuntimeOptions options)
    : loop_(std::make_unique<Loop>()), marker_(std::to_string(::getpid()) + "." + random_hex()) {
  if (options.child_subreaper) subreaper_ = make_child_subreaper();
  // Forked before the loop thread exists, and never taken for an orphan.
  if (options.watchdog) watchdog_ = Watchdog::start(marker_);
  fill_reserve();
  if (watchdog_) loop_->seen_children.insert(watchdog_->pid());  // no other thread yet
  std::promise<void> started;
  // The thread uses only `loop`: if the runtime is destroyed from the loop
  // thread itself (a callback dropped the last process), the thread deletes
  // the loop once run() has returned.
  Loop* loop = loop_.get();
  loop_->thread = std::thread([this, loop, &started] {
    loop_thread_id_ = std::this_thread::get_id();
    started.set_value();
    for (;;) {
      try {
        loop->io.run();
        break;
      } catch (const std::exception& e) {
        log().error("event loop: unexpected exception: {}", e.what());
      }
    }
    if (loop->orphaned) delete loop;
  });
  started.get_future().wait();
}

RuntimeImpl::~RuntimeImpl() {
  loop_->work.reset();
  loop_->io.stop();
  if (on_loop_thread()) {
    // We are inside io.run(): the thread deletes the loop after it returns.
    loop_->orphaned = true;
    loop_->thread.detach();
    (void)loop_.release();
  } else {
    loop_->thread.join();
  }
}

std::shared_ptr<ProcessState> RuntimeImpl::spawn(const Command& command, ProcessOptions options) {
  std::string name = options.name.empty() ? default_name(command) : options.name;
  auto state = std::make_shared<ProcessState>(std::move(name), command, std::move(options));
  std::vector<std::string> environment = command.environment(environ);
  const std::string prefix = std::string(Runtime::marker_variable) + "=";
  std::erase_if(environment, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  // First, so that a reader of a huge environment (the watchdog) finds it in
  // the first bytes; completed on the loop thread with the serial.
  environment.insert(environment.begin(), prefix);

  loop_->run(on_loop_thread(), [&] {
    state->marker = marker_ + "/" + std::to_string(++loop_->serial);
    state->marker_entry = prefix + state->marker;
    environment.front() = state->marker_entry;
    SpawnedChild child = spawn_child(command, environment);
    std::error_code ec;
    UniqueFd pidfd = open_pidfd(child.pid, ec);
    // No such process: it exited and somebody reaped it already (the kernel,
    // when SIGCHLD is ignored, or a waitpid(-1) loop). Its pid is not ours any
    // more: it is published as reaped elsewhere, and never signalled.
    if (!pidfd.valid() && ec != std::errc::no_such_process) {
      ::kill(child.pid, SIGKILL);
      reap(child.pid, true);
      ::close(child.stdout_fd);
      ::close(child.stderr_fd);
      throw Error("roadie needs pidfd_open (Linux 5.3 or later): " + ec.message());
    }
    state->pid = child.pid;
    state->pidfd = pidfd.get();  // -1 when already reaped elsewhere
    auto watch = std::make_shared<Watch>(*this, loop_->io, state, pidfd.release(), child.stdout_fd,
                                         child.stderr_fd);
    loop_->watches.emplace(state.get(), watch);
    loop_->leaders.insert(child.pid);
    {
      std::lock_guard lock(seen_mutex_);
      loop_->seen_children.insert(child.pid);
    }
    if (watchdog_ && state->pidfd >= 0) watchdog_->guard(child.pid);
    RunRecord run;
    run.state = state;
    run.leader = child.pid;
    // Its start time, for attributing orphans; "now" if it cannot be read
    // (out of descriptors: the child is already ours and must be watched).
    run.start = ticks_now();
    try {
      if (auto stat = proc_stat(child.pid)) run.start = stat->start;
    } catch (const std::system_error&) {
    }
    if (state->pidfd >= 0) loop_->runs.push_back(std::move(run));
    watch->start();
    arm_scan();
  });
  return state;
}

void RuntimeImpl::release(const std::shared_ptr<ProcessState>& state) {
  loop_->run(on_loop_thread(), [&] {
    auto it = loop_->watches.find(state.get());
    if (it == loop_->watches.end()) return;
    // Out of the table first: releasing drains the pipes, and a subscriber may
    // spawn (and so change the table) meanwhile.
    auto watch = std::move(it->second);
    loop_->watches.erase(it);
    bool reaped_elsewhere;
    {
      std::lock_guard lock(state->mutex);
      state->released = true;  // Process::signal() no longer uses the pidfd
      reaped_elsewhere = state->reaped_elsewhere;
    }
    watch->release();
    // A pid reaped by someone else may be another process's now (even one of
    // ours): its bookkeeping is left alone.
    if (!reaped_elsewhere) {
      loop_->leaders.erase(state->pid);
      {
        std::lock_guard lock(seen_mutex_);
        loop_->seen_children.erase(state->pid);
      }
      if (watchdog_) watchdog_->forget(state->pid);
    }
    // Its run ends now. Ended runs stay candidates for orphans that started
    // during them for a while (a straggler re-parented late), then go: the
    // list stays short, and so does every look at it.
    const auto now = ticks_now();
    auto run = std::find_if(loop_->runs.rbegin(), loop_->runs.rend(),
                            [&](const RunRecord& r) { return r.state.lock() == state; });
    if (run != loop_->runs.rend()) run->end = now;
    static const auto keep = static_cast<unsigned long long>(10 * ::sysconf(_SC_CLK_TCK));
    std::erase_if(loop_->runs, [&](const RunRecord& r) {
      return r.state.expired() || (r.end && *r.end + keep < now);
    });
    // Its adopted orphans that stop() ended: reaped and closed now, so no
    // descriptor outlives stop().
    std::vector<pid_t> ended;
    {
      std::lock_guard lock(orphans_mutex_);
      for (const auto& [pid, orphan] : orphans_) {
        if (belongs(orphan, *state)) ended.push_back(pid);
      }
    }
    for (pid_t pid : ended) {
      auto a = loop_->adoptees.find(pid);
      if (a == loop_->adoptees.end() || !a->second->exited()) continue;
      // Out of the table before its pidfd closes: a concurrent stop() must
      // never duplicate a descriptor number that is about to be reused.
      drop_orphan(pid);
      a->second->finish();
      forget_adoptee(pid);
    }
  });
}

void RuntimeImpl::arm_scan() {
  if (loop_->scan_armed || !subreaper_) return;
  loop_->scan_armed = true;
  loop_->scan_timer.expires_after(kScanInterval);
  loop_->scan_timer.async_wait([this, loop = loop_.get()](std::error_code ec) {
    loop->scan_armed = false;
    if (ec || loop->orphaned) return;
    if (loop->watches.empty() && loop->adoptees.empty()) return;  // nothing can orphan
    try {
      scan_children();
    } catch (const std::exception& e) {
      log().error("looking for orphans: {}", e.what());
    }
    arm_scan();
  });
}

std::vector<pid_t> RuntimeImpl::scan_children() {
  const pid_t our_group = ::getpgrp();
  const auto children = own_children();
  // Forget children that are gone, so that a recycled pid is looked at again.
  {
    std::lock_guard lock(seen_mutex_);
    std::erase_if(loop_->seen_children, [&](pid_t pid) {
      return !std::binary_search(children.begin(), children.end(), pid);
    });
  }
  // Every runtime of this process marks its children "<our pid>.<random>/N".
  const std::string this_process = std::to_string(::getpid()) + ".";
  for (pid_t child : children) {
    if (loop_->seen_children.count(child)) continue;
    if (loop_->leaders.count(child)) continue;
    if (is_watchdog(child)) continue;  // ours, or another runtime's
    // Looked at only once it could be looked at: a shortage (thrown) leaves
    // it for the next look.
    const auto stat = proc_stat(child);
    std::vector<std::weak_ptr<ProcessState>> candidates;
    // The test binary's own children (std::system, popen...) stay in its group.
    if (stat && stat->pgrp != our_group) candidates = attribute(child, *stat, this_process);
    UniqueFd pidfd;
    if (!candidates.empty()) {
      std::error_code ec;
      pidfd = open_pidfd(child, ec);
      if (!pidfd.valid() && is_resource_shortage(ec.value())) {
        throw std::system_error(ec, "pid " + std::to_string(child) +
                                        ": an orphan of a service cannot be held");
      }
    }
    // Marked as looked at only once it is in the adoption table: stop()'s
    // fast path trusts "looked at" to mean "in the table if an orphan".
    auto mark_seen = [&] {
      std::lock_guard lock(seen_mutex_);
      loop_->seen_children.insert(child);
    };
    if (!pidfd.valid()) {  // gone, or no service could have started it
      mark_seen();
      continue;
    }
    if (candidates.size() > 1) {
      std::string names;
      for (const auto& c : candidates) {
        if (auto state = c.lock()) names += (names.empty() ? "" : ", ") + state->name;
      }
      log().warn(
          "pid {} ({}) was re-parented to roadie but cannot be attributed to one service (it "
          "started while {} were running); it is guarded, and stopped with the last of them",
          child, process_name(child), names);
    }
    const int fd = pidfd.get();
    auto adoptee = std::make_shared<Adoptee>(*this, loop_->io, child, pidfd.release());
    {
      std::lock_guard lock(orphans_mutex_);
      orphans_[child] = Orphan{fd, std::move(candidates)};
    }
    loop_->adoptees.emplace(child, adoptee);
    mark_seen();
    if (watchdog_) watchdog_->guard(child);
    adoptee->start();
  }
  return children;
}

std::vector<std::weak_ptr<ProcessState>> RuntimeImpl::attribute(pid_t child, const ProcStat& stat,
                                                                const std::string& this_process) {
  // 1. Its marker names the process it descends from (unless it hid it).
  const std::string marker = environ_value(child, Runtime::marker_variable);
  if (marker.rfind(this_process, 0) == 0) {
    for (const auto& run : loop_->runs) {
      auto state = run.state.lock();
      if (state && state->marker == marker) return {run.state};
    }
    return {};  // another runtime's: that runtime's stop() finds it by marker
  }
  // 2. A member of a service's process group (its leader, our unreaped child,
  //    reserves the id), or of the group or session of an orphan already
  //    attributed (a double fork's grandchild).
  for (const auto& run : loop_->runs) {
    if (!run.end && run.leader == stat.pgrp) return {run.state};
  }
  {
    std::lock_guard lock(orphans_mutex_);
    for (pid_t link : {stat.pgrp, stat.session}) {
      auto it = orphans_.find(link);
      if (it != orphans_.end()) return it->second.candidates;
    }
  }
  // 3. By start time: the services running when it started. None: the test
  //    binary's own child (it left its group). One: that service. More: it
  //    cannot be told apart; the last of them to stop ends it.
  std::vector<std::weak_ptr<ProcessState>> candidates;
  for (const auto& run : loop_->runs) {
    if (run.start > stat.start) continue;
    if (run.end && *run.end < stat.start) continue;
    if (run.state.expired()) continue;
    candidates.push_back(run.state);
  }
  return candidates;
}

std::vector<pid_t> RuntimeImpl::scan_children_now() {
  // Orphans can only be among children not looked at yet: when every child
  // has been, a look would do nothing, and the hop to the loop thread (two
  // thread wake-ups, costly on a VM) is saved.
  if (!on_loop_thread()) {
    auto children = own_children();
    std::lock_guard lock(seen_mutex_);
    if (std::all_of(children.begin(), children.end(),
                    [&](pid_t pid) { return loop_->seen_children.count(pid) != 0; })) {
      return children;
    }
  }
  return loop_->run(on_loop_thread(), [&] { return scan_children(); });
}

void RuntimeImpl::begin_stop(ProcessState& state) {
  std::lock_guard lock(orphans_mutex_);
  state.stop_begun = true;
}

bool RuntimeImpl::belongs(const Orphan& orphan, const ProcessState& state) {
  bool named = false;
  for (const auto& candidate : orphan.candidates) {
    auto other = candidate.lock();
    if (other.get() == &state) {
      named = true;
    } else if (other && !other->stop_begun) {
      return false;  // another service that may own it still runs
    }
  }
  return named;
}

std::vector<std::pair<pid_t, int>> RuntimeImpl::orphans_of(const ProcessState& state) {
  std::vector<std::pair<pid_t, int>> result;
  std::lock_guard lock(orphans_mutex_);
  for (const auto& [pid, orphan] : orphans_) {
    if (!belongs(orphan, state)) continue;
    const int fd = ::fcntl(orphan.pidfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      for (auto& [_, held] : result) ::close(held);
      throw std::system_error(errno, std::system_category(),
                              "pid " + std::to_string(pid) + " (an orphan of " + state.name +
                                  "): cannot hold it to stop it");
    }
    result.emplace_back(pid, fd);
  }
  return result;
}

void RuntimeImpl::forget_adoptee(pid_t pid) {
  loop_->adoptees.erase(pid);
  {
    std::lock_guard lock(seen_mutex_);
    loop_->seen_children.erase(pid);
  }
  if (watchdog_) watchdog_->forget(pid);
}

void RuntimeImpl::fill_reserve() noexcept {
  std::lock_guard lock(reserve_mutex_);
  while (reserve_.size() < kReserve) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    reserve_.emplace_back(fd);
  }
}

bool RuntimeImpl::release_reserve() noexcept {
  std::lock_guard lock(reserve_mutex_);
  const bool had = !reserve_.empty();
  reserve_.clear();
  return had;
}

pid_t RuntimeImpl::watchdog_pid() const noexcept {
  return watchdog_ ? watchdog_->pid() : 0;
}

void Adoptee::on_exit() {
  auto self = shared_from_this();  // keep alive while the table lets go
  // Its children are orphans now. Looked for while it is still an unreaped
  // zombie, holding its pid and so its session and group ids: the children
  // it left in them (a double fork's grandchild) are linked to its services
  // by its entry in the table.
  try {
    runtime_.scan_children();
  } catch (const std::exception& e) {
    log().error("pid {}: looking for its orphans: {}", pid_, e.what());
  }
  // Out of the table before it is reaped: once reaped, its pid may be a
  // stranger's, and stop() must no longer find it.
  runtime_.drop_orphan(pid_);
  reap_pidfd(pidfd_.native_handle());  // ours to reap: it was re-parented to us
  runtime_.forget_adoptee(pid_);
}

void RuntimeImpl::drop_orphan(pid_t pid) {
  std::lock_guard lock(orphans_mutex_);
  orphans_.erase(pid);
}

ExitStatus ProcessState::mark_reaped_elsewhere() {
  {
    std::lock_guard lock(mutex);
    reaped_elsewhere = true;
  }
  log().warn("{} (pid {}) was reaped by someone else; its exit status is lost", name, pid);
  return ExitStatus::exited(-1);
}

bool ProcessState::publish_exit(ExitStatus s) {
  {
    std::lock_guard lock(mutex);
    if (status) return false;
    exit_seq = output.next_seq();
    status = s;
    exit_seen = std::chrono::steady_clock::now();
  }
  exited.notify_all();
  exit_callbacks.call(s, [this](const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log().error("{}: exit callback threw: {}", name, e.what());
    } catch (...) {
      log().error("{}: exit callback threw", name);
    }
  });
  return true;
}

}  // namespace roadie::detail

namespace roadie {

Runtime::Runtime(RuntimeOptions options) : impl_(std::make_shared<detail::RuntimeImpl>(options)) {}

Runtime::~Runtime() = default;

Runtime& Runtime::global() {
  static Runtime runtime;
  return runtime;
}

const std::string& Runtime::marker() const noexcept {
  return impl_->marker();
}

pid_t Runtime::watchdog_pid() const noexcept {
  return impl_->watchdog_pid();
}

}  // namespace roadie
