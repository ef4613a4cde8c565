// The event loop: standalone Asio on one thread. Boost.Process is not included
// here (see spawn.cpp) so that its Asio and standalone Asio never meet.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <cerrno>
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

// Watches one child: its two pipes and its pidfd. Lives on the loop thread,
// kept alive by its pending operations and by the runtime's table.
class Watch : public std::enable_shared_from_this<Watch> {
 public:
  Watch(RuntimeImpl& runtime, asio::io_context& io, std::shared_ptr<ProcessState> state, int pidfd,
        int out, int err)
      : runtime_(runtime),
        state_(std::move(state)),
        pidfd_(io, pidfd),
        out_(io, out),
        err_(io, err) {}

  void start() {
    read(Stream::out);
    read(Stream::err);
    wait_exit();
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

  void wait_exit() {
    pidfd_.async_wait(asio::posix::descriptor_base::wait_read,
                      [self = shared_from_this()](std::error_code ec) {
                        if (!ec && self->state_) self->on_wake();
                      });
  }

  // A wake-up is not an exit: the reactor can deliver a readiness event that
  // was queued for a descriptor since closed (a released process) to the
  // descriptor that took its number. Ask the kernel, and wait again if the
  // child is still running.
  void on_wake() {
    const ChildPeek peek = peek_child(pidfd_.native_handle());
    if (peek.state == ChildState::running) {
      wait_exit();
      return;
    }
    on_exit(peek);
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
        runtime_.adopt_orphans(state);
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
    // Somebody else reaped our child (waitpid(-1), SIGCHLD ignored): no status
    // to be had, but waiters must not wait for ever. From now on its pid may
    // be a stranger's: nothing signals it (see Process::signal, stop()).
    {
      std::lock_guard lock(state->mutex);
      state->reaped_elsewhere = true;
    }
    log().warn("{} (pid {}) was reaped by someone else; its exit status is lost", state->name,
               state->pid);
    state->publish_exit(ExitStatus::exited(-1));
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

// An orphan of a supervised process, re-parented to us: reaped when it exits,
// and its own orphans adopted in turn.
class Adoptee : public std::enable_shared_from_this<Adoptee> {
 public:
  Adoptee(RuntimeImpl& runtime, asio::io_context& io, pid_t pid, int pidfd,
          std::weak_ptr<ProcessState> owner)
      : runtime_(runtime), pid_(pid), pidfd_(io, pidfd), owner_(std::move(owner)) {}

  void start() {
    pidfd_.async_wait(asio::posix::descriptor_base::wait_read,
                      [self = shared_from_this()](std::error_code ec) {
                        if (ec || !self->pidfd_.is_open()) return;
                        // A stale wake-up (see Watch::on_wake) is not an exit.
                        if (peek_child(self->pidfd_.native_handle()).state == ChildState::running) {
                          self->start();
                        } else {
                          self->on_exit();
                        }
                      });
  }
  pid_t pid() const { return pid_; }
  bool owned_by(const ProcessState* state) const {
    auto owner = owner_.lock();
    return !owner || owner.get() == state;
  }
  // Reaps and closes now if it has exited (the exit handler then finds the
  // descriptor closed). Returns whether it did.
  bool finish_if_exited() {
    if (!has_exited(pidfd_.native_handle())) return false;
    reap_pidfd(pidfd_.native_handle());
    std::error_code ignored;
    pidfd_.close(ignored);
    return true;
  }

 private:
  void on_exit();

  RuntimeImpl& runtime_;
  pid_t pid_;
  asio::posix::stream_descriptor pidfd_;
  std::weak_ptr<ProcessState> owner_;
};

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
  environment.push_back(prefix);  // completed on the loop thread with the serial

  loop_->run(on_loop_thread(), [&] {
    state->marker = marker_ + "/" + std::to_string(++loop_->serial);
    state->marker_entry = prefix + state->marker;
    environment.back() = state->marker_entry;
    SpawnedChild child = spawn_child(command, environment);
    std::error_code ec;
    PidFd pidfd = PidFd::open(child.pid, ec);
    if (!pidfd.valid()) {
      ::kill(child.pid, SIGKILL);
      reap(child.pid, true);
      ::close(child.stdout_fd);
      ::close(child.stderr_fd);
      throw Error("roadie needs pidfd_open (Linux 5.3 or later): " + ec.message());
    }
    state->pid = child.pid;
    state->pidfd = pidfd.get();
    auto watch = std::make_shared<Watch>(*this, loop_->io, state, pidfd.release(), child.stdout_fd,
                                         child.stderr_fd);
    loop_->watches.emplace(state.get(), watch);
    loop_->leaders.insert(child.pid);
    {
      std::lock_guard lock(seen_mutex_);
      loop_->seen_children.insert(child.pid);
    }
    if (watchdog_) watchdog_->guard(child.pid);
    watch->start();
  });
  return state;
}

void RuntimeImpl::release(const std::shared_ptr<ProcessState>& state) {
  loop_->run(on_loop_thread(), [&] {
    auto it = loop_->watches.find(state.get());
    if (it == loop_->watches.end()) return;
    it->second->release();
    loop_->watches.erase(it);
    loop_->leaders.erase(state->pid);
    {
      std::lock_guard lock(seen_mutex_);
      loop_->seen_children.erase(state->pid);
    }
    if (watchdog_) watchdog_->forget(state->pid);
    // Its adopted orphans that stop() ended: reaped and closed now, so no
    // descriptor outlives stop().
    for (auto a = loop_->adoptees.begin(); a != loop_->adoptees.end();) {
      if (a->second->owned_by(state.get()) && a->second->finish_if_exited()) {
        {
          std::lock_guard lock(seen_mutex_);
          loop_->seen_children.erase(a->first);
        }
        if (watchdog_) watchdog_->forget(a->first);
        a = loop_->adoptees.erase(a);
      } else {
        ++a;
      }
    }
  });
}

std::vector<pid_t> RuntimeImpl::adopt_orphans(const std::shared_ptr<ProcessState>& owner) {
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
    // A process of ours (of any runtime here), or another one's descendant
    // that kept its marker: left for that process's own exit (or stop()).
    std::string marker = environ_value(child, Runtime::marker_variable);
    if (marker.rfind(this_process, 0) == 0 && marker != owner->marker) continue;
    {
      std::lock_guard lock(seen_mutex_);
      loop_->seen_children.insert(child);
    }
    // The test binary's own children (std::system, popen...) stay in its group.
    if (process_group(child) == our_group) continue;
    std::error_code ec;
    PidFd pidfd = PidFd::open(child, ec);
    if (!pidfd.valid()) continue;
    auto adoptee = std::make_shared<Adoptee>(*this, loop_->io, child, pidfd.get(), owner);
    (void)pidfd.release();  // the adoptee owns it now
    loop_->adoptees.emplace(child, adoptee);
    if (watchdog_) watchdog_->guard(child);
    {
      std::lock_guard lock(owner->mutex);
      owner->adopted.push_back(child);
    }
    adoptee->start();
  }
  return children;
}

std::vector<pid_t> RuntimeImpl::adopt_orphans_now(const std::shared_ptr<ProcessState>& owner) {
  // Orphans can only be among children not looked at yet: when every child
  // has been, adopting would do nothing, and the hop to the loop thread (two
  // thread wake-ups, costly on a VM) is saved.
  if (!on_loop_thread()) {
    auto children = own_children();
    std::lock_guard lock(seen_mutex_);
    if (std::all_of(children.begin(), children.end(),
                    [&](pid_t pid) { return loop_->seen_children.count(pid) != 0; })) {
      return children;
    }
  }
  return loop_->run(on_loop_thread(), [&] { return adopt_orphans(owner); });
}

void RuntimeImpl::forget_adoptee(pid_t pid) {
  loop_->adoptees.erase(pid);
  {
    std::lock_guard lock(seen_mutex_);
    loop_->seen_children.erase(pid);
  }
  if (watchdog_) watchdog_->forget(pid);
}

pid_t RuntimeImpl::watchdog_pid() const noexcept {
  return watchdog_ ? watchdog_->pid() : 0;
}

void Adoptee::on_exit() {
  // Forget it before reaping: once reaped, its pid may be a stranger's, and
  // stop() must no longer find it among the adopted.
  auto owner = owner_.lock();
  if (owner) {
    std::lock_guard lock(owner->mutex);
    std::erase(owner->adopted, pid_);
  }
  // Ours to reap: it was re-parented to us and attributed to `owner_`.
  reap_pidfd(pidfd_.native_handle());
  auto self = shared_from_this();  // keep alive while the table lets go
  runtime_.forget_adoptee(pid_);
  if (owner) runtime_.adopt_orphans(owner);
}

bool ProcessState::publish_exit(ExitStatus s) {
  std::list<std::shared_ptr<ExitCallback>> callbacks;
  {
    std::lock_guard lock(mutex);
    if (status) return false;
    status = s;
    exit_seen = std::chrono::steady_clock::now();
    callbacks.swap(exit_callbacks);
  }
  exited.notify_all();
  std::lock_guard dispatch_lock(dispatch);
  for (const auto& callback : callbacks) {
    if (!callback->active) continue;
    try {
      callback->fn(s);
    } catch (const std::exception& e) {
      log().error("{}: exit callback threw: {}", name, e.what());
    } catch (...) {
      log().error("{}: exit callback threw", name);
    }
  }
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
