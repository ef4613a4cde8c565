// Private: the one registry of callbacks behind Output::subscribe,
// Process::on_exit and the executor's listeners. (The hook bus keeps its own
// slots: a callback its watchdog abandoned must not make a reset wait.)
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "roadie/subscription.hpp"

namespace roadie::detail {

/// Logs a callback's exception through the "roadie" logger: "<what> threw: <message>".
/// Defined in callback_list.cpp, so this header needs no spdlog.
void log_callback_error(std::string_view what, const std::exception_ptr& error) noexcept;

/// A list of callbacks taking `Args...`, called in a deterministic order:
/// priority ascending, then registration order.
///
/// Thread-safety: every member may be called from any thread at any time,
/// including from inside one of the list's own callbacks. Calls may run on
/// several threads at once (call(), or Handle::invoke() on a snapshot).
///
/// Removal (resetting the Subscription add() returned):
/// - the callback is never started again once reset() begins;
/// - reset() waits until every call of it in progress on another thread has
///   returned, so its captures may be destroyed right after reset() returns;
///   the std::function itself is destroyed by reset() (or, when it is still
///   running on the resetting thread, when that call returns);
/// - reset() from inside the callback itself (same thread) does not wait for
///   that call, and reset() from inside another callback of this list never
///   deadlocks: when two threads, each inside a callback of this list, reset
///   each other's running callback, the second reset to begin returns
///   without waiting for the first thread (the only alternative is a
///   deadlock); the first one waits as usual.
/// - a callback added during a call runs from the next call on.
///
/// The list may be destroyed while subscriptions remain: resetting them is
/// then a no-op. A Handle keeps its callback's entry alive, not the list.
template <class... Args>
class CallbackList {
  struct Core;

  struct Entry {
    std::function<void(Args...)> fn;
    int priority = 0;
    std::size_t order = 0;
    // Under Core::mutex:
    bool active = true;
    std::vector<std::thread::id> running;  // one element per call in progress
  };

  struct Core {
    explicit Core(std::string w) : what(std::move(w)) {}
    const std::string what;
    std::mutex mutex;
    std::condition_variable idle;
    std::vector<std::shared_ptr<Entry>> entries;  // sorted by (priority, order)
    std::size_t next_order = 0;
    std::atomic<std::size_t> count{0};
    // Threads inside reset(), and the entry each waits for (cycle detection).
    std::vector<std::pair<std::thread::id, const Entry*>> waiting;
    std::size_t waiters = 0;

    // True when thread `t`, through the entry it waits for, waits (directly or
    // not) for `self`.
    bool waits_for(std::thread::id t, std::thread::id self, std::vector<std::thread::id>& seen) {
      if (std::find(seen.begin(), seen.end(), t) != seen.end()) return false;
      seen.push_back(t);
      for (const auto& [thread, entry] : waiting) {
        if (thread != t) continue;
        for (auto u : entry->running) {
          if (u == self) return true;
          if (u != t && waits_for(u, self, seen)) return true;
        }
      }
      return false;
    }

    // Must a reset on `self` keep waiting for `entry`? (mutex held)
    bool busy(const Entry& entry, std::thread::id self) {
      for (auto t : entry.running) {
        if (t == self) continue;
        std::vector<std::thread::id> seen;
        if (!waits_for(t, self, seen)) return true;
      }
      return false;
    }
  };

 public:
  /// Runs one callback; copyable, cheap (one shared pointer).
  class Handle {
   public:
    /// Calls the callback, unless it was removed (then returns false without
    /// calling). Exceptions from the callback propagate to the caller.
    bool invoke(Args... args) const {
      Core& core = *core_;
      const auto self = std::this_thread::get_id();
      {
        std::lock_guard lock(core.mutex);
        if (!entry_->active) return false;
        entry_->running.push_back(self);
      }
      struct Leave {
        Core& core;
        Entry& entry;
        std::thread::id self;
        ~Leave() {
          std::function<void(Args...)> dead;
          {
            std::lock_guard lock(core.mutex);
            auto& r = entry.running;
            r.erase(std::find(r.begin(), r.end(), self));
            if (!entry.active && r.empty()) dead = std::move(entry.fn);
            if (core.waiters != 0) core.idle.notify_all();
          }
        }
      } leave{core, *entry_, self};
      entry_->fn(args...);
      return true;
    }
    int priority() const noexcept { return entry_->priority; }
    /// Registration number: increases with every add() to the list.
    std::size_t order() const noexcept { return entry_->order; }

   private:
    friend class CallbackList;
    Handle(std::shared_ptr<Core> core, std::shared_ptr<Entry> entry)
        : core_(std::move(core)), entry_(std::move(entry)) {}
    std::shared_ptr<Core> core_;
    std::shared_ptr<Entry> entry_;
  };

  /// `what` names the callbacks in the log ("output subscriber").
  explicit CallbackList(std::string what = "callback")
      : core_(std::make_shared<Core>(std::move(what))) {}
  CallbackList(const CallbackList&) = delete;
  CallbackList& operator=(const CallbackList&) = delete;

  /// Registers `fn`; it stays registered while the returned Subscription lives.
  [[nodiscard]] Subscription add(std::function<void(Args...)> fn, int priority = 0) {
    auto entry = std::make_shared<Entry>();
    entry->fn = std::move(fn);
    entry->priority = priority;
    {
      std::lock_guard lock(core_->mutex);
      entry->order = core_->next_order++;
      auto& v = core_->entries;
      auto at = std::upper_bound(v.begin(), v.end(), priority,
                                 [](int p, const auto& e) { return p < e->priority; });
      v.insert(at, entry);
      core_->count.fetch_add(1, std::memory_order_release);
    }
    std::weak_ptr<Core> weak = core_;
    std::weak_ptr<Entry> weak_entry = entry;
    return Subscription([weak, weak_entry] { remove(weak.lock(), weak_entry.lock()); });
  }

  /// Calls every active callback in order, each in its own try/catch: one that
  /// throws never stops the others; its exception goes to `on_error`, or is
  /// logged when there is none. Callbacks added meanwhile wait for the next call.
  void call(Args... args, const std::function<void(std::exception_ptr)>& on_error = {}) const {
    if (empty()) return;
    for (const auto& handle : snapshot()) {
      try {
        handle.invoke(args...);
      } catch (...) {
        report(std::current_exception(), on_error);
      }
    }
  }

  /// The active callbacks, in calling order.
  std::vector<Handle> snapshot() const {
    std::vector<Handle> result;
    std::lock_guard lock(core_->mutex);
    result.reserve(core_->entries.size());
    for (const auto& e : core_->entries) result.push_back(Handle(core_, e));
    return result;
  }

  /// True when no callback is registered: one atomic load.
  bool empty() const noexcept { return core_->count.load(std::memory_order_acquire) == 0; }
  std::size_t size() const noexcept { return core_->count.load(std::memory_order_acquire); }

  /// Passes an exception to `on_error`, or logs it; never throws.
  void report(const std::exception_ptr& error,
              const std::function<void(std::exception_ptr)>& on_error = {}) const noexcept {
    if (on_error) {
      try {
        on_error(error);
        return;
      } catch (...) {
        log_callback_error(core_->what + " error handler", std::current_exception());
      }
    }
    log_callback_error(core_->what, error);
  }

 private:
  static void remove(const std::shared_ptr<Core>& core, const std::shared_ptr<Entry>& entry) {
    if (!core || !entry) return;
    std::function<void(Args...)> dead;
    {
      std::unique_lock lock(core->mutex);
      if (entry->active) {
        entry->active = false;
        auto& v = core->entries;
        v.erase(std::find(v.begin(), v.end(), entry));
        core->count.fetch_sub(1, std::memory_order_release);
      }
      const auto self = std::this_thread::get_id();
      if (core->busy(*entry, self)) {
        ++core->waiters;
        core->waiting.emplace_back(self, entry.get());
        core->idle.wait(lock, [&] { return !core->busy(*entry, self); });
        auto& w = core->waiting;
        w.erase(std::find(w.begin(), w.end(), std::pair<std::thread::id, const Entry*>{self, entry.get()}));
        --core->waiters;
      }
      if (entry->running.empty()) dead = std::move(entry->fn);
    }
  }

  std::shared_ptr<Core> core_;
};

}  // namespace roadie::detail
