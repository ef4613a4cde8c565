// The hook bus: everything that happens (a test starts, a service prints a
// line, a job ends) is a named event; plugins register one hook per event, and
// pre and post callbacks run around them. riggerlib's design, with a
// deterministic order, typed values and bounded time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "roadie/error.hpp"
#include "roadie/subscription.hpp"

namespace roadie {

class Executor;
class Output;
class Scheduler;
class HookBus;

/// A value in a namespace: string, integer, float, bool, path or list of
/// strings. Its type never changes by itself: reading it as another type is an
/// error (see EventContext).
class Value {
 public:
  enum class Type { string, integer, floating, boolean, path, strings };

  Value() : data_(std::string()) {}
  Value(std::string v) : data_(std::move(v)) {}
  Value(const char* v) : data_(std::string(v)) {}
  Value(std::string_view v) : data_(std::string(v)) {}
  /// Any integer but bool (an unsigned value above INT64_MAX throws HookError).
  template <std::integral I>
    requires(!std::is_same_v<I, bool>)
  Value(I v) : data_(to_int64(v)) {}
  Value(double v) : data_(v) {}
  Value(bool v) : data_(v) {}
  Value(std::filesystem::path v) : data_(std::move(v)) {}
  Value(std::vector<std::string> v) : data_(std::move(v)) {}

  Type type() const noexcept { return static_cast<Type>(data_.index()); }
  /// The alternative, or nullptr when the value has another type.
  template <class T>
  const T* get_if() const noexcept {
    return std::get_if<T>(&data_);
  }
  /// "integer 3", "string \"abc\"", "list of 2 strings", for error messages.
  std::string describe() const;

  friend bool operator==(const Value&, const Value&) = default;

 private:
  template <class I>
  static std::int64_t to_int64(I v) {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
      if (v > static_cast<std::make_unsigned_t<std::int64_t>>(INT64_MAX)) out_of_range();
    }
    return static_cast<std::int64_t>(v);
  }
  [[noreturn]] static void out_of_range();
  std::variant<std::string, std::int64_t, double, bool, std::filesystem::path,
               std::vector<std::string>>
      data_;
};

/// "string", "integer", "float", "bool", "path", "list of strings".
std::string_view to_string(Value::Type type) noexcept;

/// A namespace: names to values, ordered by name.
using Values = std::map<std::string, Value, std::less<>>;

/// Reading a name that is not there, or as the wrong type; or a hook that
/// failed (see HookBus::fire).
class HookError : public Error {
 public:
  using Error::Error;
};

/// One failure of a callback, for the end-of-run report.
struct HookFailure {
  std::string event;
  /// "pre", "hook" or "post".
  std::string phase;
  /// The plugin's ident for a hook; the callback's label for pre and post.
  std::string who;
  std::string message;
  /// True when the callback overran the watchdog (it may still be running).
  bool timed_out = false;
};

/// What a callback sees during one event: the event-local namespace layered
/// over the global one, as it was when the phase began, and the updates this
/// callback makes. Updates become visible from the next phase on, never to
/// the other callbacks of the same phase.
///
/// Thread-safety: one context belongs to one callback call; do not keep it.
class EventContext {
 public:
  const std::string& event() const noexcept { return *event_; }
  HookBus& bus() const noexcept { return *bus_; }

  /// The value of `name` (a local hides a global of the same name), or
  /// nullptr.
  const Value* find(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }

  /// Typed reads. Each throws HookError naming the event, the name and what
  /// was there ("event 'start_test': 'test_name' is an integer 3, not a
  /// string") when the name is missing or has another type.
  const std::string& string(std::string_view name) const { return get<std::string>(name); }
  std::int64_t integer(std::string_view name) const { return get<std::int64_t>(name); }
  double floating(std::string_view name) const { return get<double>(name); }
  bool boolean(std::string_view name) const { return get<bool>(name); }
  const std::filesystem::path& path(std::string_view name) const {
    return get<std::filesystem::path>(name);
  }
  const std::vector<std::string>& strings(std::string_view name) const {
    return get<std::vector<std::string>>(name);
  }
  /// The typed value, or `fallback` when the name is missing (still an error
  /// when it is there with another type).
  template <class T>
  T get_or(std::string_view name, T fallback) const {
    if (find(name) == nullptr) return fallback;
    return get<T>(name);
  }
  template <class T>
  const T& get(std::string_view name) const;

  /// Every visible name, locals over globals.
  Values visible() const;

  /// Sets an event-local value (gone when the event ends).
  void set_local(std::string name, Value value);
  /// Sets a global value (kept by the bus).
  void set_global(std::string name, Value value);

  // Internal: built by the bus.
  EventContext(HookBus& bus, const std::string& event, const Values& locals, const Values& globals,
               Values& local_updates, Values& global_updates)
      : bus_(&bus),
        event_(&event),
        locals_(&locals),
        globals_(&globals),
        local_updates_(&local_updates),
        global_updates_(&global_updates) {}

 private:
  [[noreturn]] void wrong(std::string_view name, std::string_view wanted) const;
  HookBus* bus_;
  const std::string* event_;
  const Values* locals_;
  const Values* globals_;
  Values* local_updates_;
  Values* global_updates_;
};

template <class T>
const T& EventContext::get(std::string_view name) const {
  const Value* value = find(name);
  const T* typed = value != nullptr ? value->get_if<T>() : nullptr;
  if (typed == nullptr) {
    constexpr std::string_view wanted = std::is_same_v<T, std::string>        ? "a string"
                                        : std::is_same_v<T, std::int64_t>     ? "an integer"
                                        : std::is_same_v<T, double>           ? "a float"
                                        : std::is_same_v<T, bool>             ? "a bool"
                                        : std::is_same_v<T, std::filesystem::path> ? "a path"
                                                                              : "a list of strings";
    wrong(name, wanted);
  }
  return *typed;
}

using HookFn = std::function<void(EventContext&)>;

/// A plugin: an ident (its name on the bus, e.g. "logs") and one hook per
/// event name, registered in initialize().
///
///     class Stamp : public roadie::Plugin {
///      public:
///       using Plugin::Plugin;
///       void initialize() override {
///         register_hook("finish_test", [](roadie::EventContext& e) {
///           std::ofstream(e.path("artifact_path") / "result.txt") << e.string("test_result");
///         });
///       }
///     };
///
/// Thread-safety: initialize() runs once, on the thread that adds the plugin;
/// hooks may run on any thread (see HookBus).
class Plugin {
 public:
  explicit Plugin(std::string ident);
  virtual ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  const std::string& ident() const noexcept { return ident_; }
  /// Registers the plugin's hooks; called once by HookBus::add_plugin.
  virtual void initialize() = 0;
  /// Called when the bus goes away (last added plugin first), after its last
  /// hook returned, except a hook the watchdog left behind, which may still
  /// run (flush files here). Never throws out of the bus.
  virtual void finish() {}

 protected:
  /// Registers the hook for `event`: one per event and plugin (a second one
  /// throws HookError). Inside the hook phase, hooks run by `priority`
  /// (lower first), then in the order the plugins were added.
  void register_hook(std::string event, HookFn fn, int priority = 0);
  /// The bus the plugin was added to, from initialize() on (a plugin may add
  /// pre and post callbacks there, or read services()). Throws HookError
  /// before. Plugins live as long as their bus, so the reference stays valid
  /// in every hook.
  HookBus& bus() const;

 private:
  friend class HookBus;
  HookBus* bus_ = nullptr;
  struct Hook {
    std::string event;
    HookFn fn;
    int priority;
  };
  std::string ident_;
  std::vector<Hook> hooks_;
};

struct HookBusOptions {
  /// A failed callback is logged (spdlog, "roadie" logger) and recorded in
  /// failures() instead of making fire() throw.
  bool squash_exceptions = false;
  /// The hooks of one phase run at once, each on its own thread (not capped at
  /// the core count: hooks mostly wait on files and sockets). Their updates are
  /// merged in hook order after all finished.
  bool threaded = false;
  /// Longest a callback may run. Zero: callbacks run on the firing thread
  /// without a bound (the cheapest dispatch). Positive: each phase runs on the
  /// bus's worker threads and a callback that overruns is reported as a
  /// failure (timed_out) and left behind: the event goes on and returns in
  /// bounded time; the late callback's updates are dropped. Without
  /// `threaded` the callbacks of a phase still run one after the other, each
  /// bounded by the watchdog (a phase waits at most watchdog x callbacks);
  /// with it, a phase waits at most the watchdog. A late callback keeps what
  /// it reads (its context's values, its plugin) alive, so it may end after
  /// the event or the bus is gone; it must not touch the bus (EventContext::bus()
  /// may be dangling by then), and Subscription::reset() does not wait for it.
  std::chrono::milliseconds watchdog{0};
  /// Events queued by post() and not yet dispatched; when full, post() drops
  /// the event and counts it (dropped_posts()), never blocking the caller.
  std::size_t post_queue_limit = 100'000;
};

/// Options of a plugin created from YAML. A factory reads what it knows; an
/// option it did not read, or read as the wrong type, is a ConfigError naming
/// the file, line, column and key, and the plugin is not created.
class PluginOptions {
 public:
  /// The plugin's ident (its key under `plugins:`).
  const std::string& ident() const noexcept;
  bool has(std::string_view key) const;
  std::string string(std::string_view key, std::string fallback) const;
  std::int64_t integer(std::string_view key, std::int64_t fallback) const;
  double floating(std::string_view key, double fallback) const;
  bool boolean(std::string_view key, bool fallback) const;
  std::filesystem::path path(std::string_view key, std::filesystem::path fallback) const;
  std::vector<std::string> strings(std::string_view key, std::vector<std::string> fallback) const;
  /// A duration ("250ms", "10s", "2m", or a number of seconds).
  std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds fallback) const;
  /// A ConfigError located at `key` (or at the plugin when absent).
  [[noreturn]] void fail(std::string_view key, const std::string& what) const;

  struct Impl;
  explicit PluginOptions(std::shared_ptr<Impl> impl);
  ~PluginOptions();

 private:
  std::shared_ptr<Impl> impl_;
};

using PluginFactory = std::function<std::unique_ptr<Plugin>(const PluginOptions&)>;

/// Makes `name` usable as `plugin: NAME` in YAML for every bus of the process.
/// Replaces an earlier factory of the same name. Thread-safe.
void register_plugin_factory(std::string name, PluginFactory factory);
/// The registered factory names, sorted.
std::vector<std::string> plugin_factory_names();

/// A service connected to the bus (see HookBus::connect), as plugins see it.
struct ServiceEntry {
  std::string name;
  /// The output of its current (or last) run; null before its first start.
  std::shared_ptr<Output> output;
  pid_t pid = -1;
  bool running = false;
};

/// The bus.
///
/// One event (fire()) is: the pre callbacks, then the plugin hooks, then the
/// post callbacks. Inside each phase: by priority (lower first), then by
/// registration (for hooks: the order the plugins were added). Each callback
/// reads the event's locals layered over the globals as they were when the
/// phase began, and its updates (set_local, set_global) are applied after the
/// phase in the callbacks' order, so the next phase sees them and the result
/// never depends on timing. Locals live for one event; globals for the bus.
///
/// A throwing callback never stops the others nor the later phases. Without
/// `squash_exceptions`, fire() throws one HookError listing every failure of
/// the event after the post callbacks ran; with it, failures are logged and
/// recorded (failures(), report()).
///
/// Thread-safety: thread-safe. Events may be fired from several threads at
/// once (each has its own locals; global updates are applied under the bus's
/// lock, none is lost); a callback may fire another event (nested) without
/// deadlock. add_plugin() and configure() while events are fired on other
/// threads are safe; the new plugin's hooks take part from the next event.
/// post() never runs a callback on the calling thread: the event loop uses it.
class HookBus {
 public:
  explicit HookBus(HookBusOptions options = {});
  /// Dispatches what post() queued, calls every plugin's finish(), never throws.
  ~HookBus();
  HookBus(const HookBus&) = delete;
  HookBus& operator=(const HookBus&) = delete;

  const HookBusOptions& options() const noexcept;

  /// Adds a plugin and calls its initialize(). Throws HookError when the ident
  /// is taken or unusable (empty, longer than 200 bytes, containing '/' or a
  /// NUL, "." or "..": plugins name files after their ident), or when
  /// initialize() throws (nothing is added).
  Plugin& add_plugin(std::unique_ptr<Plugin> plugin);
  template <class P, class... A>
  P& emplace_plugin(A&&... args) {
    return static_cast<P&>(add_plugin(std::make_unique<P>(std::forward<A>(args)...)));
  }
  /// The plugin with this ident, or nullptr.
  Plugin* find_plugin(std::string_view ident) const;
  /// Idents in the order the plugins were added.
  std::vector<std::string> plugin_idents() const;

  /// Callbacks around an event's hooks; `label` names them in failures.
  Subscription add_pre(std::string event, HookFn fn, int priority = 0, std::string label = "pre");
  Subscription add_post(std::string event, HookFn fn, int priority = 0,
                        std::string label = "post");

  /// Fires `event` on the calling thread with these locals; returns the
  /// locals as they were after the post callbacks.
  Values fire(std::string_view event, Values locals = {});
  /// Queues `event` for the bus's dispatcher thread (in order, one at a time;
  /// the thread starts with the first post) and returns at once. An event
  /// nobody listens to when it is posted is not queued. Failures are always
  /// squashed (recorded).
  void post(std::string event, Values locals = {});
  /// Waits until every event posted before the call was dispatched. Throws
  /// HookError when called from a posted event's callback (it would wait for
  /// itself).
  void drain();
  /// Events post() dropped because the queue was full.
  std::uint64_t dropped_posts() const noexcept;

  /// True when a pre, hook or post callback is registered for `event`: a
  /// producer skips the work of building an event nobody reads.
  bool listens(std::string_view event) const noexcept;

  Values globals() const;
  void set_global(std::string name, Value value);

  /// Failures recorded under `squash_exceptions` (and of posted events): the
  /// first 10,000; report() counts the rest.
  std::vector<HookFailure> failures() const;
  /// One line per recorded failure; empty when there was none.
  std::string report() const;

  /// Reads a YAML document: `squash_exceptions`, `threaded`, `watchdog`
  /// (a duration), `plugins: {IDENT: {plugin: NAME, enabled: BOOL, ...}}`.
  /// A plugin entry without `enabled` is enabled (listing a plugin means
  /// wanting it; write `enabled: false` to keep one off). Every error is a
  /// ConfigError with file, line and column, and then nothing is created.
  /// Options apply to events fired afterwards.
  void configure(const std::filesystem::path& file);
  /// The same from text; `file` names it in errors.
  void configure_text(std::string_view yaml, std::string file = "<memory>");
  /// Reads only the `plugins:` map of a larger document (a stack file), with
  /// the same rules and errors located in that document; its other keys
  /// belong to the caller and are not looked at. No `plugins:`, no change.
  void configure_plugins_text(std::string_view yaml, std::string file);

  /// Makes an executor's lifecycle events on this bus: service_starting,
  /// service_ready, service_exited, service_stopped, service_start_failed,
  /// and service_line (only while something listens to it when the service
  /// starts). Events from the event-loop thread are posted, never fired there.
  /// The service appears in services() until the returned Subscription ends
  /// or the executor goes away; the bus ends the connection when it goes.
  Subscription connect(Executor& executor);
  /// Makes a scheduler's job events (job_start, job_done, nested schedulers
  /// included) on this bus, fired on the run's threads, until the
  /// Subscription ends; end it (or let the scheduler go) before the bus goes.
  /// A hook failure that is not squashed is the scheduler's to log.
  Subscription connect(Scheduler& scheduler);
  /// The connected services, in the order they were connected.
  std::vector<ServiceEntry> services() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

/// Event names roadie fires, and the names each one carries in its locals.
namespace events {
/// session: string (the test binary or stack name).
inline constexpr std::string_view session_start = "session_start";
/// session, session_result: string ("passed" or "failed"), session_duration: float seconds.
inline constexpr std::string_view session_finish = "session_finish";
/// suite_name: string.
inline constexpr std::string_view suite_start = "suite_start";
/// suite_name, suite_result: string, suite_duration: float seconds.
inline constexpr std::string_view suite_finish = "suite_finish";
/// suite_name, test_name: string; test_location: string ("file:line", may be
/// absent). The artifacts pre callback adds artifact_path: path.
inline constexpr std::string_view start_test = "start_test";
/// suite_name, test_name, artifact_path (when the test started on this bus),
/// test_result: string ("passed", "failed", "skipped"), test_duration: float
/// seconds, failure_text: string (empty when it passed).
inline constexpr std::string_view finish_test = "finish_test";
/// service_name: string, command: list of strings.
inline constexpr std::string_view service_starting = "service_starting";
/// service_name, pid: integer, time_to_ready: float seconds.
inline constexpr std::string_view service_ready = "service_ready";
/// service_name, error: string (start() failed: spawn, exit, timeout).
inline constexpr std::string_view service_start_failed = "service_start_failed";
/// service_name, stream: string ("stdout"/"stderr"), text: string, seq: integer.
inline constexpr std::string_view service_line = "service_line";
/// service_name, pid, exit_code: integer (-N for signal N), exit_status:
/// string, last_lines: list of strings. An exit nobody asked for.
inline constexpr std::string_view service_exited = "service_exited";
/// service_name, pid, exit_code, exit_status.
inline constexpr std::string_view service_stopped = "service_stopped";
/// job_label, job_path: string (nested: "outer/inner/job").
inline constexpr std::string_view job_start = "job_start";
/// job_label, job_path, job_state: string, job_duration: float seconds,
/// job_reason: string (empty when it succeeded).
inline constexpr std::string_view job_done = "job_done";
}  // namespace events

}  // namespace roadie
