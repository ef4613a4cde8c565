// Private: the hook bus's shared state (bus.cpp, config.cpp, connect.cpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "roadie/hooks.hpp"

namespace roadie::detail {

/// "abc", control characters and NUL escaped (\n, \x00), cut after `max`
/// bytes with "...": names and values are shown, never trusted, in messages.
std::string printable(std::string_view text, std::size_t max = 200);

/// Whether a pre or post registration is still wanted, and how many calls of
/// it are running; its Subscription's reset() waits for those (but not for
/// one on its own thread, nor for one the watchdog left behind).
struct Slot {
  std::atomic<int> active{0};
  std::atomic<bool> removed{false};

  bool enter() noexcept;
  void leave() noexcept;
  /// Marks the registration removed and waits for its calls to end.
  void remove_and_wait() noexcept;
};

/// Marks a slot as running on this thread for the length of a scope (a
/// callback that resets its own subscription must not wait for itself).
class RunningOnThisThread {
 public:
  explicit RunningOnThisThread(const Slot* slot) noexcept;
  ~RunningOnThisThread();
  RunningOnThisThread(const RunningOnThisThread&) = delete;
  RunningOnThisThread& operator=(const RunningOnThisThread&) = delete;
  static int count(const Slot* slot) noexcept;

 private:
  const Slot* slot_;
  RunningOnThisThread* prev_;
};

enum class Phase : int { pre = 0, hook = 1, post = 2 };
std::string_view phase_name(Phase phase) noexcept;

/// One registered callback, as dispatched.
struct Callback {
  HookFn fn;
  int priority = 0;
  /// Registration order (pre/post) or the plugin's add order (hooks).
  std::uint64_t order = 0;
  std::string who;
  /// pre/post only: its subscription's state.
  std::shared_ptr<Slot> slot;
  /// hooks only: keeps the plugin alive for a callback the watchdog left
  /// behind.
  std::shared_ptr<Plugin> plugin;
};

/// The callbacks of one event, sorted, immutable once published: a fire
/// takes a reference and dispatches without the bus's lock.
struct Dispatch {
  std::vector<Callback> phases[3];
};

/// One event name. Entries are never removed while the bus lives, so the
/// lock-free table below may hand out plain pointers.
struct EventEntry {
  explicit EventEntry(std::string n, std::size_t h) : name(std::move(n)), hash(h) {}
  const std::string name;
  const std::size_t hash;
  /// Registered pre + hook + post callbacks (read without the lock).
  std::atomic<int> listeners{0};
  // Guarded by BusState::mu.
  std::vector<Callback> registered[3];
  std::shared_ptr<const Dispatch> dispatch;
};

/// Open-addressing table of entries, read without a lock (acquire loads);
/// written under BusState::mu, replaced by a bigger copy when half full (the
/// old tables stay until the bus goes, so a reader never sees freed memory).
struct EventTable {
  explicit EventTable(std::size_t capacity);
  std::size_t mask;
  std::unique_ptr<std::atomic<EventEntry*>[]> slots;
  std::size_t used = 0;
};

/// Worker threads for threaded and watchdog dispatch. A thread is started
/// whenever a job finds no idle one (never capped: hooks mostly wait); idle
/// threads end after a while. Threads own the pool through a shared_ptr, so a
/// callback left behind by the watchdog outlives the bus harmlessly.
class Pool : public std::enable_shared_from_this<Pool> {
 public:
  void submit(std::function<void()> job);
  void stop();

 private:
  void work();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  int idle_ = 0;
  bool stopping_ = false;
};

/// A service connected to a bus (connect.cpp). Guarded by Impl::mu.
struct Connection {
  std::uint64_t id = 0;
  ServiceEntry entry;
  /// The executor's listener registration; reset outside Impl::mu (it waits
  /// for a listener call in progress, which may take the lock).
  Subscription listening;
};

struct PostedEvent {
  std::string event;
  Values locals;
};

}  // namespace roadie::detail

namespace roadie {

/// Everything behind a HookBus. Shared: a Subscription holds it weakly.
/// (A nested class of HookBus, so it may read a Plugin's hooks.)
struct HookBus::Impl {
  using EventEntry = detail::EventEntry;
  using EventTable = detail::EventTable;
  HookBus* bus = nullptr;

  // Options read on every fire (configure() writes them).
  std::atomic<bool> squash{false};
  std::atomic<bool> threaded{false};
  std::atomic<std::int64_t> watchdog_ms{0};
  std::atomic<std::size_t> post_limit{100'000};
  /// Sets the options (under mu) and their atomic copies.
  void set_options(const HookBusOptions& next);

  mutable std::mutex mu;
  HookBusOptions options;  // guarded by mu (options() hands out a reference)
  std::shared_ptr<const Values> globals = std::make_shared<const Values>();
  std::atomic<std::uint64_t> globals_version{0};
  std::vector<std::shared_ptr<Plugin>> plugins;
  std::uint64_t next_order = 0;
  std::vector<HookFailure> failures;
  std::uint64_t failures_dropped = 0;

  std::atomic<int> total_listeners{0};
  std::atomic<EventTable*> table{nullptr};
  std::vector<std::unique_ptr<EventTable>> tables;    // guarded by mu
  std::vector<std::unique_ptr<EventEntry>> entries;   // guarded by mu

  std::shared_ptr<detail::Pool> pool = std::make_shared<detail::Pool>();

  // connect(Executor&): guarded by mu.
  std::vector<std::shared_ptr<detail::Connection>> connections;
  std::uint64_t next_connection = 0;
  /// Ends every connection (waits for listener calls in progress); before the
  /// dispatcher ends, so nothing is posted after it.
  void disconnect_all() noexcept;

  // post(): guarded by post_mu.
  std::mutex post_mu;
  std::condition_variable post_cv;
  std::condition_variable drained_cv;
  std::deque<detail::PostedEvent> posted;
  std::uint64_t posted_count = 0;
  std::uint64_t dispatched_count = 0;
  bool dispatcher_stopping = false;
  std::thread dispatcher;
  std::atomic<std::uint64_t> dropped{0};

  Impl();
  ~Impl();
  /// The entry for `event`, or nullptr (no lock, no allocation).
  EventEntry* lookup(std::string_view event) const noexcept;
  /// The entry for `event`, created when missing. Caller holds mu.
  EventEntry& entry_locked(std::string_view event);
  /// Sorts the entry's registrations into a new Dispatch. Caller holds mu.
  void publish_locked(EventEntry& entry);

  void record_locked(HookFailure failure);
  /// Runs initialize() on each (not yet on the bus), then adds them all or
  /// none: throws HookError for a bad or taken ident, or what initialize()
  /// threw.
  /// `failed` (when given) gets the index of the plugin at fault.
  void add_plugins(std::vector<std::shared_ptr<Plugin>> plugins, std::size_t* failed = nullptr);
  /// Throws HookError unless the ident is usable (not empty, no '/', no NUL,
  /// not "." or "..", at most 200 bytes: plugins name files after it).
  static void check_ident(const std::string& ident);

  Values fire(std::string_view event, Values locals, bool force_squash);
  void dispatcher_loop();
  /// Ends the dispatcher after it dispatched what was queued; finish() of
  /// every plugin (last added first). Never throws.
  void shut_down() noexcept;
};

}  // namespace roadie
