// The hook bus: registration, the event table, and fire()'s three phases
// (inline, threaded, or under the watchdog).
#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <utility>

#include "../log.hpp"
#include "bus_impl.hpp"
#include "roadie/hooks.hpp"

namespace roadie {

namespace detail {

namespace {
thread_local RunningOnThisThread* t_running = nullptr;
}

bool Slot::enter() noexcept {
  active.fetch_add(1);
  if (removed.load()) {
    leave();
    return false;
  }
  return true;
}

void Slot::leave() noexcept {
  // Both seq_cst: either remove_and_wait() sees this decrement, or this sees
  // `removed` and wakes it.
  active.fetch_sub(1);
  if (removed.load()) active.notify_all();
}

void Slot::remove_and_wait() noexcept {
  removed.store(true);
  const int mine = RunningOnThisThread::count(this);
  for (;;) {
    int now = active.load();
    if (now <= mine) return;
    active.wait(now);
  }
}

RunningOnThisThread::RunningOnThisThread(const Slot* slot) noexcept
    : slot_(slot), prev_(t_running) {
  t_running = this;
}

RunningOnThisThread::~RunningOnThisThread() { t_running = prev_; }

int RunningOnThisThread::count(const Slot* slot) noexcept {
  int n = 0;
  for (auto* r = t_running; r != nullptr; r = r->prev_) n += r->slot_ == slot ? 1 : 0;
  return n;
}

std::string_view phase_name(Phase phase) noexcept {
  switch (phase) {
    case Phase::pre: return "pre";
    case Phase::hook: return "hook";
    case Phase::post: return "post";
  }
  return "?";
}

EventTable::EventTable(std::size_t capacity)
    : mask(capacity - 1), slots(new std::atomic<EventEntry*>[capacity]) {
  for (std::size_t i = 0; i < capacity; ++i) slots[i].store(nullptr, std::memory_order_relaxed);
}

void Pool::submit(std::function<void()> job) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(job));
  if (queue_.size() <= static_cast<std::size_t>(idle_)) {
    cv_.notify_one();
    return;
  }
  try {
    std::thread([self = shared_from_this()] { self->work(); }).detach();
  } catch (...) {
    queue_.pop_back();
    throw;
  }
}

void Pool::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

void Pool::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) return;
      ++idle_;
      bool woke = cv_.wait_for(lock, std::chrono::seconds(30),
                               [&] { return !queue_.empty() || stopping_; });
      --idle_;
      if (!woke || queue_.empty()) return;
    }
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job();  // never throws (see run_job)
    job = nullptr;
    lock.lock();
  }
}

namespace {

// Moves every entry of `from` into `into` (later wins), reusing the nodes.
void apply(Values& into, Values& from) {
  while (!from.empty()) {
    auto node = from.extract(from.begin());
    if (auto it = into.find(node.key()); it != into.end()) {
      it->second = std::move(node.mapped());
    } else {
      into.insert(std::move(node));
    }
  }
}

std::string message_of(std::exception_ptr error) {
  try {
    std::rethrow_exception(std::move(error));
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// One completion counter for the callbacks of a phase handed to workers.
struct Batch {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t remaining = 0;
};

// One callback call on a worker. Everything it reads is owned here, so a call
// the watchdog left behind may finish after the event, or the bus, is gone.
struct Job {
  std::shared_ptr<Batch> batch;
  std::shared_ptr<const Dispatch> dispatch;  // keeps `cb` (and its plugin) alive
  const Callback* cb = nullptr;
  std::shared_ptr<const std::string> event;
  std::shared_ptr<const Values> locals;
  std::shared_ptr<const Values> globals;
  HookBus* bus = nullptr;
  Values local_updates;
  Values global_updates;
  std::exception_ptr error;
  bool done = false;  // guarded by batch->mu
  std::atomic<bool> released{false};

  // Ends the call's hold on its subscription: when it returns, or when the
  // watchdog gives up on it, whichever comes first.
  void release() noexcept {
    if (cb->slot && !released.exchange(true)) cb->slot->leave();
  }
};

void run_job(const std::shared_ptr<Job>& job) noexcept {
  {
    RunningOnThisThread running(job->cb->slot.get());
    EventContext context(*job->bus, *job->event, *job->locals, *job->globals, job->local_updates,
                         job->global_updates);
    try {
      job->cb->fn(context);
    } catch (...) {
      job->error = std::current_exception();
    }
  }
  job->release();
  std::lock_guard lock(job->batch->mu);
  job->done = true;
  if (--job->batch->remaining == 0) job->batch->cv.notify_all();
}

struct Failures {
  std::vector<HookFailure> list;
  void add(const std::string& event, Phase phase, const Callback& cb, std::string message,
           bool timed_out = false) {
    list.push_back(HookFailure{event, std::string(phase_name(phase)), cb.who, std::move(message),
                               timed_out});
  }
};

}  // namespace

}  // namespace detail

using detail::Callback;
using detail::Dispatch;
using detail::EventEntry;
using detail::EventTable;
using detail::Phase;

// ---------------------------------------------------------------- Plugin

Plugin::Plugin(std::string ident) : ident_(std::move(ident)) {}
Plugin::~Plugin() = default;

HookBus& Plugin::bus() const {
  if (bus_ == nullptr) {
    throw HookError("plugin '" + detail::printable(ident_) +
                    "': bus() is reachable from initialize() on, once the plugin is added");
  }
  return *bus_;
}

void Plugin::register_hook(std::string event, HookFn fn, int priority) {
  if (event.empty()) throw HookError("plugin '" + detail::printable(ident_) + "': an event name cannot be empty");
  if (!fn) throw HookError("plugin '" + detail::printable(ident_) + "': the hook for '" + detail::printable(event) + "' is empty");
  for (const auto& hook : hooks_) {
    if (hook.event == event) {
      throw HookError("plugin '" + detail::printable(ident_) + "' registers a second hook for event '" +
                      detail::printable(event) + "' (one per event)");
    }
  }
  hooks_.push_back(Hook{std::move(event), std::move(fn), priority});
}

// ---------------------------------------------------------------- Impl

HookBus::Impl::Impl() {
  tables.push_back(std::make_unique<EventTable>(16));
  table.store(tables.back().get(), std::memory_order_release);
}

HookBus::Impl::~Impl() = default;

EventEntry* HookBus::Impl::lookup(std::string_view event) const noexcept {
  const EventTable* t = table.load(std::memory_order_acquire);
  const std::size_t hash = std::hash<std::string_view>{}(event);
  for (std::size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
    EventEntry* e = t->slots[i].load(std::memory_order_acquire);
    if (e == nullptr) return nullptr;
    if (e->hash == hash && e->name == event) return e;
  }
}

EventEntry& HookBus::Impl::entry_locked(std::string_view event) {
  if (EventEntry* found = lookup(event)) return *found;
  const std::size_t hash = std::hash<std::string_view>{}(event);
  entries.push_back(std::make_unique<EventEntry>(std::string(event), hash));
  EventEntry* created = entries.back().get();
  EventTable* t = table.load(std::memory_order_relaxed);
  if ((t->used + 1) * 2 > t->mask + 1) {
    // Readers may still walk the old table: it stays until the bus goes.
    auto bigger = std::make_unique<EventTable>((t->mask + 1) * 2);
    for (const auto& e : entries) {
      if (e.get() == created) continue;
      std::size_t i = e->hash & bigger->mask;
      while (bigger->slots[i].load(std::memory_order_relaxed) != nullptr) i = (i + 1) & bigger->mask;
      bigger->slots[i].store(e.get(), std::memory_order_relaxed);
      ++bigger->used;
    }
    t = bigger.get();
    tables.push_back(std::move(bigger));
    table.store(t, std::memory_order_release);
  }
  std::size_t i = hash & t->mask;
  while (t->slots[i].load(std::memory_order_relaxed) != nullptr) i = (i + 1) & t->mask;
  t->slots[i].store(created, std::memory_order_release);
  ++t->used;
  return *created;
}

void HookBus::Impl::publish_locked(EventEntry& entry) {
  auto next = std::make_shared<Dispatch>();
  int count = 0;
  for (int p = 0; p < 3; ++p) {
    auto& phase = next->phases[p];
    phase = entry.registered[p];
    std::stable_sort(phase.begin(), phase.end(), [](const Callback& a, const Callback& b) {
      return a.priority != b.priority ? a.priority < b.priority : a.order < b.order;
    });
    count += static_cast<int>(phase.size());
  }
  const int before = entry.listeners.load(std::memory_order_relaxed);
  entry.dispatch = count == 0 ? nullptr : std::move(next);
  entry.listeners.store(count, std::memory_order_relaxed);
  total_listeners.fetch_add(count - before, std::memory_order_relaxed);
}

void HookBus::Impl::set_options(const HookBusOptions& next) {
  std::lock_guard lock(mu);
  options = next;
  if (options.watchdog.count() < 0) options.watchdog = std::chrono::milliseconds(0);
  squash.store(options.squash_exceptions);
  threaded.store(options.threaded);
  watchdog_ms.store(options.watchdog.count());
  post_limit.store(options.post_queue_limit);
}

void HookBus::Impl::record_locked(HookFailure failure) {
  // A hook failing on every line of a chatty service must not grow without
  // bound: the first 10,000 are kept, the rest counted.
  if (failures.size() < 10'000) {
    failures.push_back(std::move(failure));
  } else {
    ++failures_dropped;
  }
}

void HookBus::Impl::check_ident(const std::string& ident) {
  std::string_view why;
  if (ident.empty()) {
    why = "is empty";
  } else if (ident.size() > 200) {
    why = "is longer than 200 bytes";
  } else if (ident.find('\0') != std::string::npos) {
    why = "contains a NUL";
  } else if (ident.find('/') != std::string::npos) {
    why = "contains '/'";
  } else if (ident == "." || ident == "..") {
    why = "is '.' or '..'";
  }
  if (!why.empty()) {
    throw HookError("plugin ident '" + detail::printable(ident) + "' " + std::string(why) +
                    " (plugins name files after their ident)");
  }
}

void HookBus::Impl::add_plugins(std::vector<std::shared_ptr<Plugin>> adding, std::size_t* failed) {
  std::size_t ignored = 0;
  std::size_t& at = failed != nullptr ? *failed : ignored;
  for (std::size_t i = 0; i < adding.size(); ++i) {
    at = i;
    check_ident(adding[i]->ident());
    for (std::size_t j = 0; j < i; ++j) {
      if (adding[j]->ident() == adding[i]->ident()) {
        throw HookError("plugin ident '" + detail::printable(adding[i]->ident()) + "' is taken");
      }
    }
  }
  auto taken_locked = [&] {
    for (std::size_t i = 0; i < adding.size(); ++i) {
      at = i;
      for (const auto& present : plugins) {
        if (present->ident() == adding[i]->ident()) {
          throw HookError("plugin ident '" + detail::printable(adding[i]->ident()) + "' is taken");
        }
      }
    }
  };
  {
    std::lock_guard lock(mu);
    taken_locked();
  }
  // initialize() is the plugin's code: it runs without the bus's lock (it may
  // look at the bus), before the plugin is on the bus.
  for (std::size_t i = 0; i < adding.size(); ++i) {
    at = i;
    adding[i]->bus_ = bus;
    adding[i]->initialize();
  }

  std::lock_guard lock(mu);
  taken_locked();
  for (auto& plugin : adding) {
    const std::uint64_t order = next_order++;
    for (auto& hook : plugin->hooks_) {
      EventEntry& entry = entry_locked(hook.event);
      entry.registered[static_cast<int>(Phase::hook)].push_back(
          Callback{hook.fn, hook.priority, order, plugin->ident(), nullptr, plugin});
      publish_locked(entry);
    }
    plugins.push_back(std::move(plugin));
  }
}

Values HookBus::Impl::fire(std::string_view event, Values locals, bool force_squash) {
  if (total_listeners.load(std::memory_order_relaxed) == 0) return locals;
  EventEntry* entry = lookup(event);
  if (entry == nullptr || entry->listeners.load(std::memory_order_relaxed) == 0) return locals;

  std::shared_ptr<const Dispatch> dispatch;
  std::shared_ptr<const Values> globals_now;
  std::uint64_t version = 0;
  {
    std::lock_guard lock(mu);
    dispatch = entry->dispatch;
    globals_now = globals;
    version = globals_version.load(std::memory_order_relaxed);
  }
  if (!dispatch) return locals;
  const bool squashed = force_squash || squash.load(std::memory_order_relaxed);
  const bool in_threads = threaded.load(std::memory_order_relaxed);
  const auto watchdog = std::chrono::milliseconds(watchdog_ms.load(std::memory_order_relaxed));
  const std::string& name = entry->name;
  detail::Failures failed;

  for (int p = 0; p < 3; ++p) {
    const auto phase = static_cast<Phase>(p);
    const auto& callbacks = dispatch->phases[p];
    if (callbacks.empty()) continue;
    if (globals_version.load(std::memory_order_acquire) != version) {
      std::lock_guard lock(mu);
      globals_now = globals;
      version = globals_version.load(std::memory_order_relaxed);
    }
    Values local_updates;
    Values global_updates;

    if (watchdog.count() == 0 && !in_threads) {
      // The cheap path: on this thread, no copies.
      Values mine_local;
      Values mine_global;
      for (const Callback& cb : callbacks) {
        if (cb.slot && !cb.slot->enter()) continue;
        try {
          detail::RunningOnThisThread running(cb.slot.get());
          EventContext context(*bus, name, locals, *globals_now, mine_local, mine_global);
          cb.fn(context);
          detail::apply(local_updates, mine_local);
          detail::apply(global_updates, mine_global);
        } catch (...) {
          failed.add(name, phase, cb, detail::message_of(std::current_exception()));
          mine_local.clear();
          mine_global.clear();
        }
        if (cb.slot) cb.slot->leave();
      }
    } else {
      // On workers: each call owns copies of what it reads.
      auto shared_locals = std::make_shared<const Values>(locals);
      auto shared_name = std::make_shared<const std::string>(name);
      std::vector<std::shared_ptr<detail::Job>> jobs;
      jobs.reserve(callbacks.size());
      auto start = [&](const Callback& cb, const std::shared_ptr<detail::Batch>& batch) {
        if (cb.slot && !cb.slot->enter()) return;
        auto job = std::make_shared<detail::Job>();
        job->batch = batch;
        job->dispatch = dispatch;
        job->cb = &cb;
        job->event = shared_name;
        job->locals = shared_locals;
        job->globals = globals_now;
        job->bus = bus;
        {
          std::lock_guard lock(batch->mu);
          ++batch->remaining;
        }
        try {
          pool->submit([job] { detail::run_job(job); });
        } catch (...) {
          job->release();
          {
            std::lock_guard lock(batch->mu);
            --batch->remaining;
          }
          failed.add(name, phase, cb,
                     "could not start a thread: " + detail::message_of(std::current_exception()));
          return;
        }
        jobs.push_back(std::move(job));
      };
      auto wait = [&](const std::shared_ptr<detail::Batch>& batch) {
        std::unique_lock lock(batch->mu);
        auto finished = [&] { return batch->remaining == 0; };
        if (watchdog.count() == 0) {
          batch->cv.wait(lock, finished);
        } else {
          batch->cv.wait_until(lock, std::chrono::steady_clock::now() + watchdog, finished);
        }
      };
      if (in_threads) {
        auto batch = std::make_shared<detail::Batch>();
        for (const Callback& cb : callbacks) start(cb, batch);
        wait(batch);
      } else {
        // One after the other, each bounded by the watchdog: a phase takes
        // at most watchdog x callbacks.
        for (const Callback& cb : callbacks) {
          auto batch = std::make_shared<detail::Batch>();
          start(cb, batch);
          wait(batch);
        }
      }
      for (const auto& job : jobs) {
        bool done = false;
        {
          std::lock_guard lock(job->batch->mu);
          done = job->done;
        }
        if (!done) {
          job->release();
          failed.add(name, phase, *job->cb,
                     "still running after the watchdog's " + std::to_string(watchdog.count()) +
                         " ms (left behind, its updates dropped)",
                     true);
        } else if (job->error) {
          failed.add(name, phase, *job->cb, detail::message_of(job->error));
        } else {
          detail::apply(local_updates, job->local_updates);
          detail::apply(global_updates, job->global_updates);
        }
      }
    }

    detail::apply(locals, local_updates);
    if (!global_updates.empty()) {
      std::lock_guard lock(mu);
      auto next = std::make_shared<Values>(*globals);
      detail::apply(*next, global_updates);
      globals = next;
      globals_now = std::move(next);
      version = globals_version.fetch_add(1, std::memory_order_release) + 1;
    }
  }

  if (!failed.list.empty()) {
    if (squashed) {
      for (const auto& f : failed.list) {
        detail::log().error("event '{}': {} '{}' {}: {}", detail::printable(f.event), f.phase,
                            detail::printable(f.who), f.timed_out ? "timed out" : "failed",
                            f.message);
      }
      std::lock_guard lock(mu);
      for (auto& f : failed.list) record_locked(std::move(f));
    } else {
      std::string message = "event '" + detail::printable(name) + "': " +
                            std::to_string(failed.list.size()) +
                            (failed.list.size() == 1 ? " callback failed" : " callbacks failed");
      for (const auto& f : failed.list) {
        message += "\n  " + f.phase + " '" + detail::printable(f.who) + "'" +
                   (f.timed_out ? " timed out" : "") + ": " + f.message;
      }
      throw HookError(message);
    }
  }
  return locals;
}

void HookBus::Impl::dispatcher_loop() {
  std::unique_lock lock(post_mu);
  for (;;) {
    post_cv.wait(lock, [&] { return !posted.empty() || dispatcher_stopping; });
    if (posted.empty()) return;
    detail::PostedEvent next = std::move(posted.front());
    posted.pop_front();
    lock.unlock();
    try {
      fire(next.event, std::move(next.locals), true);
    } catch (...) {
      // Squashed: only the machinery itself (memory) can throw here.
      detail::log().error("posted event '{}': {}", detail::printable(next.event),
                          detail::message_of(std::current_exception()));
    }
    lock.lock();
    ++dispatched_count;
    drained_cv.notify_all();
  }
}

void HookBus::Impl::disconnect_all() noexcept {
  std::vector<std::shared_ptr<detail::Connection>> ending;
  {
    std::lock_guard lock(mu);
    ending.swap(connections);
  }
  for (auto& connection : ending) connection->listening.reset();
}

void HookBus::Impl::shut_down() noexcept {
  disconnect_all();
  {
    std::lock_guard lock(post_mu);
    dispatcher_stopping = true;
    post_cv.notify_all();
  }
  if (dispatcher.joinable()) dispatcher.join();
  std::vector<std::shared_ptr<Plugin>> finishing;
  {
    std::lock_guard lock(mu);
    finishing = plugins;
  }
  for (auto it = finishing.rbegin(); it != finishing.rend(); ++it) {
    try {
      (*it)->finish();
    } catch (...) {
      detail::log().error("plugin '{}': finish() threw: {}", detail::printable((*it)->ident()),
                          detail::message_of(std::current_exception()));
    }
  }
  pool->stop();
}

// ---------------------------------------------------------------- HookBus

HookBus::HookBus(HookBusOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->bus = this;
  impl_->set_options(options);
}

HookBus::~HookBus() { impl_->shut_down(); }

const HookBusOptions& HookBus::options() const noexcept { return impl_->options; }

Plugin& HookBus::add_plugin(std::unique_ptr<Plugin> plugin) {
  if (!plugin) throw HookError("add_plugin: no plugin (null pointer)");
  std::shared_ptr<Plugin> shared(std::move(plugin));
  Plugin& added = *shared;
  impl_->add_plugins({std::move(shared)});
  return added;
}

Plugin* HookBus::find_plugin(std::string_view ident) const {
  std::lock_guard lock(impl_->mu);
  for (const auto& plugin : impl_->plugins) {
    if (plugin->ident() == ident) return plugin.get();
  }
  return nullptr;
}

std::vector<std::string> HookBus::plugin_idents() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> idents;
  idents.reserve(impl_->plugins.size());
  for (const auto& plugin : impl_->plugins) idents.push_back(plugin->ident());
  return idents;
}

namespace {

Subscription add_around(const std::shared_ptr<HookBus::Impl>& impl, Phase phase,
                        std::string event, HookFn fn, int priority, std::string label) {
  if (event.empty()) throw HookError("an event name cannot be empty");
  if (!fn) throw HookError("the " + std::string(detail::phase_name(phase)) + " callback for '" +
                           detail::printable(event) + "' is empty");
  auto slot = std::make_shared<detail::Slot>();
  {
    std::lock_guard lock(impl->mu);
    EventEntry& entry = impl->entry_locked(event);
    entry.registered[static_cast<int>(phase)].push_back(
        Callback{std::move(fn), priority, impl->next_order++, std::move(label), slot, nullptr});
    impl->publish_locked(entry);
  }
  std::weak_ptr<HookBus::Impl> weak = impl;
  return Subscription([weak, slot, phase, event = std::move(event)] {
    if (auto alive = weak.lock()) {
      std::lock_guard lock(alive->mu);
      if (EventEntry* entry = alive->lookup(event)) {
        auto& list = entry->registered[static_cast<int>(phase)];
        list.erase(std::remove_if(list.begin(), list.end(),
                                  [&](const Callback& cb) { return cb.slot == slot; }),
                   list.end());
        alive->publish_locked(*entry);
      }
    }
    slot->remove_and_wait();
  });
}

}  // namespace

Subscription HookBus::add_pre(std::string event, HookFn fn, int priority, std::string label) {
  return add_around(impl_, Phase::pre, std::move(event), std::move(fn), priority, std::move(label));
}

Subscription HookBus::add_post(std::string event, HookFn fn, int priority, std::string label) {
  return add_around(impl_, Phase::post, std::move(event), std::move(fn), priority,
                    std::move(label));
}

Values HookBus::fire(std::string_view event, Values locals) {
  return impl_->fire(event, std::move(locals), false);
}

void HookBus::post(std::string event, Values locals) {
  if (!listens(event)) return;
  std::lock_guard lock(impl_->post_mu);
  if (impl_->dispatcher_stopping) return;
  if (impl_->posted.size() >= impl_->post_limit.load(std::memory_order_relaxed)) {
    impl_->dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!impl_->dispatcher.joinable()) {
    impl_->dispatcher = std::thread([impl = impl_.get()] { impl->dispatcher_loop(); });
  }
  impl_->posted.push_back(detail::PostedEvent{std::move(event), std::move(locals)});
  ++impl_->posted_count;
  impl_->post_cv.notify_one();
}

void HookBus::drain() {
  std::unique_lock lock(impl_->post_mu);
  if (impl_->dispatcher.joinable() && impl_->dispatcher.get_id() == std::this_thread::get_id()) {
    throw HookError("drain() from a callback of a posted event would wait for itself");
  }
  const std::uint64_t target = impl_->posted_count;
  impl_->drained_cv.wait(lock, [&] { return impl_->dispatched_count >= target; });
}

std::uint64_t HookBus::dropped_posts() const noexcept {
  return impl_->dropped.load(std::memory_order_relaxed);
}

bool HookBus::listens(std::string_view event) const noexcept {
  if (impl_->total_listeners.load(std::memory_order_relaxed) == 0) return false;
  const EventEntry* entry = impl_->lookup(event);
  return entry != nullptr && entry->listeners.load(std::memory_order_relaxed) > 0;
}

Values HookBus::globals() const {
  std::lock_guard lock(impl_->mu);
  return *impl_->globals;
}

void HookBus::set_global(std::string name, Value value) {
  std::lock_guard lock(impl_->mu);
  auto next = std::make_shared<Values>(*impl_->globals);
  next->insert_or_assign(std::move(name), std::move(value));
  impl_->globals = std::move(next);
  impl_->globals_version.fetch_add(1, std::memory_order_release);
}

std::vector<HookFailure> HookBus::failures() const {
  std::lock_guard lock(impl_->mu);
  return impl_->failures;
}

std::string HookBus::report() const {
  std::lock_guard lock(impl_->mu);
  std::string text;
  for (const auto& f : impl_->failures) {
    text += "event '" + detail::printable(f.event) + "': " + f.phase + " '" +
            detail::printable(f.who) + "'" + (f.timed_out ? " timed out" : " failed") + ": " +
            f.message + "\n";
  }
  if (impl_->failures_dropped != 0) {
    text += "... and " + std::to_string(impl_->failures_dropped) + " more failures\n";
  }
  return text;
}

}  // namespace roadie
