// The scheduler: a DAG of jobs (callables) and services (executors) brought up
// in parallel, with criticality, forever jobs, timeouts, a concurrency window,
// nesting, a run report, listings, DOT and Chrome-trace output, and teardown
// in reverse dependency order; observers that follow a run as it happens.
#pragma once

#include <any>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/subscription.hpp"

namespace roadie {

class Scheduler;
namespace detail {
struct SchedulerImpl;
}

enum class JobState {
  idle,       ///< requirements not met yet
  waiting,    ///< requirements met, waiting for a slot in the jobs window
  running,    ///< running (a service: starting)
  ready,      ///< a service that is ready (its dependents may run)
  done,       ///< finished well
  failed,     ///< threw, or a service could not start
  skipped,    ///< not run: a requirement failed, was skipped, cancelled or timed out (see
              ///< reason()); so are the dependents of a critical job that failed
  cancelled,  ///< asked to stop by an abort (however it then returned), or never started
              ///< because the run was aborted; a service whose start returned is ready
  timed_out,  ///< ran past its own timeout or the scheduler's (however it then returned)
  stopped,    ///< a service stopped at teardown
};
std::string_view to_string(JobState state) noexcept;

/// What a job runs.
enum class JobKind {
  callable,   ///< Scheduler::add()
  service,    ///< Scheduler::add_service()
  scheduler,  ///< Scheduler::add_scheduler()
};
std::string_view to_string(JobKind kind) noexcept;

/// Handed to every job: its cancellation, and a sleep that wakes on it. Used
/// by the job's own thread; stop_requested() may be read from any thread.
class JobContext {
 public:
  JobContext(std::stop_token token, std::string_view label)
      : token_(std::move(token)), label_(label) {}
  const std::stop_token& stop_token() const noexcept { return token_; }
  bool stop_requested() const noexcept { return token_.stop_requested(); }
  std::string_view label() const noexcept { return label_; }
  /// Sleeps for `duration` unless a stop is requested first; returns false if
  /// it was (the job should then return or throw Cancelled). Any duration
  /// type: a huge one (`hours::max()`) sleeps until the stop, it never
  /// overflows into "at once"; zero or negative returns at once.
  template <class Rep, class Period>
  bool sleep_for(std::chrono::duration<Rep, Period> duration) const {
    return sleep_until(deadline_after(duration));
  }

 private:
  bool sleep_until(std::chrono::steady_clock::time_point deadline) const;

  std::stop_token token_;
  std::string_view label_;
};

struct JobOptions {
  /// Name in listings, graphs and messages; defaults to "job N" (or the
  /// service's or scheduler's name).
  std::string label;
  /// A failure of a critical job fails the run, stops new work and cancels
  /// running jobs. A non-critical failure is recorded and the run goes on.
  bool critical = true;
  /// Runs until the other jobs are done, then is cancelled. Nothing may
  /// require a forever job unless it is a service (then its readiness counts).
  bool forever = false;
  /// Own deadline from the job's start; stop is requested when it passes and
  /// the job ends TIMED_OUT. Stretched by time_scale() (ROADIE_TIME_SCALE),
  /// like the executors' timeouts. A huge value (`milliseconds::max()`) is no
  /// practical limit: the deadline saturates, it never overflows.
  std::optional<std::chrono::milliseconds> timeout;
};

struct SchedulerOptions {
  std::string label = "scheduler";
  /// When nested: does this scheduler's failure fail the outer one?
  bool critical = true;
  /// Deadline for the whole run, from run(); when it passes the run is
  /// aborted and its running jobs end TIMED_OUT. Stretched by time_scale()
  /// (ROADIE_TIME_SCALE). A huge value (`milliseconds::max()`) is no practical
  /// limit: the deadline saturates, it never overflows.
  std::optional<std::chrono::milliseconds> timeout;
  /// At most this many jobs running at once (0: no limit). Forever jobs run
  /// beside the window: they end only after every other job, so a slot held
  /// by one would never come back.
  std::size_t jobs_window = 0;
};

/// A cheap handle to a job inside a scheduler (copyable; valid as long as the
/// scheduler is, including after the scheduler is moved).
///
/// A default-constructed handle is empty: valid() is false, and every other
/// member (but ==) throws roadie::Error saying so.
///
/// Thread-safety: require() and require_allowing_failure() change the graph:
/// call them before run(), from the thread that builds the scheduler. The
/// accessors of the run's outcome (state(), result(), error(), reason(),
/// duration()) take the scheduler's lock and may be called from any thread at
/// any time, jobs and stop callbacks included; the others read what does not
/// change once the job is added.
class Job {
 public:
  Job() = default;
  /// This job starts only after `other` is done (or, for a service, ready).
  /// Duplicates are ignored. Requiring an empty handle or a job of another
  /// scheduler is reported by validate().
  Job& require(Job other);
  /// Same, but this job still runs if `other` fails.
  Job& require_allowing_failure(Job other);

  std::size_t id() const;  ///< 1-based, in insertion order
  const std::string& label() const;
  JobState state() const;
  bool critical() const;
  bool forever() const;
  /// The callable's return value (empty for void, services and failures).
  const std::any& result() const;
  template <class T>
  T result() const {
    return std::any_cast<T>(result());
  }
  /// The exception the job ended with, if any.
  std::exception_ptr error() const;
  /// Why it failed, was skipped, cancelled or timed out; empty otherwise. A
  /// skipped job names the requirement that did not succeed and, when that one
  /// was skipped too, the failure at the root: "requires 'b' which was
  /// skipped: requires 'a' which failed: boom".
  std::string reason() const;
  /// Start to finish (a service: start to ready).
  std::chrono::nanoseconds duration() const;
  /// For a service job, its executor; nullptr otherwise.
  Executor* service() const;

  bool valid() const noexcept { return scheduler_ != nullptr; }
  friend bool operator==(const Job& a, const Job& b) = default;

 private:
  friend class Scheduler;
  friend class Sequence;
  Job(detail::SchedulerImpl* scheduler, std::size_t index) : scheduler_(scheduler), index_(index) {}
  detail::SchedulerImpl* scheduler_ = nullptr;
  std::size_t index_ = 0;
};

/// Chains jobs: each requires the one before. `Sequence{a, b, c}`. An empty
/// list throws SchedulerError.
class Sequence {
 public:
  Sequence(std::initializer_list<Job> jobs);
  Job first() const { return first_; }
  Job last() const { return last_; }

 private:
  Job first_;
  Job last_;
};

/// What one stop at teardown gave.
struct StopOutcome {
  std::string label;
  std::optional<ExitStatus> status;
  std::string error;  ///< the stop's exception message, if it threw
};

/// The result of Scheduler::run().
class RunReport {
 public:
  /// True only if every critical job succeeded.
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  /// One sentence: why the run failed (empty when it did not).
  const std::string& why() const noexcept { return why_; }
  /// One line per failed, skipped, cancelled or timed-out job.
  const std::vector<std::string>& failures() const noexcept { return failures_; }
  std::chrono::nanoseconds elapsed() const noexcept { return elapsed_; }
  /// The scheduler's label (SchedulerOptions::label).
  const std::string& label() const noexcept { return label_; }
  /// Throws SchedulerError listing every failure, if the run failed.
  void throw_if_failed() const;

 private:
  friend class Scheduler;
  bool ok_ = true;
  std::string why_;
  std::vector<std::string> failures_;
  std::chrono::nanoseconds elapsed_{0};
  std::string label_;
};

/// A job required by another, as a JobView names it.
struct JobRequirement {
  std::size_t id = 0;  ///< the required job's id (same scheduler)
  std::string label;
  bool allow_failure = false;  ///< Job::require_allowing_failure()
};

/// A read-only copy of one job at one moment: what observers receive and what
/// the listings are made of. Taken under the scheduler's lock, so its fields
/// agree with each other; it does not change afterwards.
struct JobView {
  using TimePoint = std::chrono::steady_clock::time_point;

  std::size_t id = 0;  ///< 1-based, in insertion order, within its own scheduler
  /// Dotted ids from the observed scheduler down: "6" or, inside nested
  /// scheduler job 6, "6.1".
  std::string number;
  std::string label;
  /// Labels from the observed scheduler down, joined by '/': "db" for one of
  /// its own jobs, "outer/inner/job" for a job of a scheduler nested twice.
  std::string path;
  std::size_t depth = 0;  ///< 0 for the observed scheduler's own jobs
  JobKind kind = JobKind::callable;
  bool critical = true;
  bool forever = false;
  JobState state = JobState::idle;
  std::vector<JobRequirement> requirements;
  std::optional<TimePoint> start_time;  ///< when it started running
  std::optional<TimePoint> end_time;    ///< when it reached a final state (a service: ready)
  /// Start to end, or to the moment of the view while it runs; zero if it never started.
  std::chrono::nanoseconds duration{0};
  /// A service that became ready: when (its end_time).
  std::optional<TimePoint> ready_time;
  /// A service: what its readiness check waits for ("banner /ready/").
  std::string readiness;
  /// The callable's return value as text ("42", "\"ok\"", "<value>"); empty
  /// when there is none.
  std::string result;
  /// Job::reason(): why it failed, was skipped, cancelled, timed out (or how a
  /// service stopped).
  std::string reason;
  /// The message of the exception the job ended with; empty if none.
  std::string error;
};

/// Follows the runs of a scheduler. Every method is a no-op: override what you
/// need. Events, in firing order:
///   on_run_start            once, first
///   on_job_start(job)       when a job starts running (never for a job that
///                           was skipped or cancelled before it started)
///   on_job_done(job)        once per job when it reaches its final state of
///                           the run (done, ready, failed, skipped, cancelled,
///                           timed_out), always after that job's on_job_start
///   on_run_end(report)      once, last, after every job's on_job_done
/// The jobs of nested schedulers (Scheduler::add_scheduler) are reported to
/// the outer scheduler's observers too, between the start and the done of the
/// nested scheduler's own job, with their path ("inner/step"); a nested
/// scheduler's own run start and end are not. shutdown() reports nothing.
///
/// Thread-safety: for one scheduler, the observer is called by one thread at a
/// time, in the order the events happened, and never with the scheduler's lock
/// held: it may call list(), why(), debrief(), to_dot() or Job accessors of the
/// same scheduler. The calling thread is any of the run's: run()'s caller (run
/// start and end, always), a worker thread, or a thread of a nested run;
/// delivery may lag the event a little (a job can already run when its
/// on_job_start arrives). An observer added to several schedulers may be
/// called by their runs at once. An exception from an observer is caught and
/// logged (logger "roadie"); the run and the other observers go on. An
/// observer must not block for long: it holds up the run's bookkeeping thread.
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  /// `jobs`: the observed scheduler's own jobs (nested ones included), all idle.
  virtual void on_run_start(std::string_view /*scheduler*/, const std::vector<JobView>& /*jobs*/) {}
  virtual void on_job_start(const JobView& /*job*/) {}
  /// `job.state`, `job.duration`, `job.reason` / `job.error` say how it ended.
  virtual void on_job_done(const JobView& /*job*/) {}
  virtual void on_run_end(const RunReport& /*report*/) {}
};

/// Glyphs for list(): Unicode when the terminal's locale is UTF-8.
enum class Glyphs { automatic, unicode, ascii };

/// A graph of jobs, run once.
///
/// Thread-safety: build the graph (add*(), Job::require()), validate() and
/// run() from one thread; run() blocks that thread until the run is over, and
/// shutdown() comes after it (the destructor calls it). What reports on the
/// run (why(), list(), debrief(), to_dot(), to_chrome_trace(),
/// critical_path()) takes the scheduler's lock and may be called from any
/// thread, also while it runs.
class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {});
  Scheduler(Scheduler&&) noexcept;
  Scheduler& operator=(Scheduler&&) = delete;
  Scheduler(const Scheduler&) = delete;
  /// Shuts down (stops started services) and never throws.
  ~Scheduler();

  /// Adds a callable: `R()` or `R(JobContext&)`, R may be void. It runs on a
  /// worker thread; a throw fails the job.
  template <class F>
  Job add(F&& fn, JobOptions options = {}) {
    return add_callable(wrap(std::forward<F>(fn)), describer<F>(), std::move(options));
  }
  /// Adds a service: done when ready, stopped at shutdown().
  Job add_service(Executor executor, JobOptions options = {});
  /// Adds a nested scheduler as one job (its `critical` and label apply).
  Job add_scheduler(Scheduler inner, JobOptions options = {});

  /// The job with this label, if any.
  std::optional<Job> find(std::string_view label) const;
  std::vector<Job> jobs() const;
  const SchedulerOptions& options() const noexcept;

  /// Checks the graph in O(V+E) without running it: a cycle is reported with
  /// its path, a requirement on a job of another scheduler names both, a
  /// requirement on a forever job that is not a service is refused. Throws
  /// SchedulerError.
  void validate() const;

  /// Validates, then runs every job; returns when all non-forever jobs are
  /// finished (forever jobs are then cancelled and awaited). A stop requested
  /// on `cancel` cancels the run. Services stay up until shutdown().
  RunReport run(std::stop_token cancel = {});

  /// Stops the services that started, in reverse dependency order (nested
  /// schedulers included), each with its stop escalation. Idempotent.
  std::vector<StopOutcome> shutdown();

  /// One line per job: id, critical/forever marks, state, label, result or
  /// error, requirements.
  std::string list(Glyphs glyphs = Glyphs::automatic) const;
  /// list() plus counts and the failures with their reasons.
  std::string debrief(Glyphs glyphs = Glyphs::automatic) const;
  /// Why the last run failed, in one sentence (empty if it did not).
  std::string why() const;
  /// Graphviz: state colours, critical nodes bold, forever nodes dashed,
  /// nested schedulers as clusters.
  std::string to_dot() const;
  /// Chrome/Perfetto trace JSON of the last run: one span per job, service
  /// readiness waits as their own spans.
  std::string to_chrome_trace() const;
  /// "bring-up 1.23 s; critical path db -> migrate -> api (1.20 s)".
  std::string critical_path() const;
  /// A view of every job now, nested schedulers' jobs right after their own
  /// job (the order of list()). Any thread, any time.
  std::vector<JobView> views() const;

  /// Registers an observer (not null: SchedulerError) for this scheduler's
  /// runs, including a run in progress (it then sees the events from now on).
  /// The scheduler shares ownership until the returned Subscription is reset
  /// or destroyed; resetting it waits for a call in progress on another
  /// thread (not for one on the resetting thread: an observer may remove
  /// itself from its callback). The Subscription may outlive the scheduler.
  Subscription add_observer(std::shared_ptr<SchedulerObserver> observer);

 private:
  friend class Job;
  friend struct detail::SchedulerImpl;
  using Callable = std::function<std::any(JobContext&)>;
  using Describer = std::function<std::string(const std::any&)>;
  Job add_callable(Callable fn, Describer describe, JobOptions options);

  template <class F>
  static Callable wrap(F&& fn) {
    using Fn = std::decay_t<F>;
    return [f = Fn(std::forward<F>(fn))](JobContext& context) mutable -> std::any {
      if constexpr (std::is_invocable_v<Fn&, JobContext&>) {
        using R = std::invoke_result_t<Fn&, JobContext&>;
        if constexpr (std::is_void_v<R>) {
          f(context);
          return {};
        } else {
          return std::any(f(context));
        }
      } else {
        using R = std::invoke_result_t<Fn&>;
        if constexpr (std::is_void_v<R>) {
          f();
          return {};
        } else {
          return std::any(f());
        }
      }
    };
  }

  template <class F>
  static Describer describer() {
    using Fn = std::decay_t<F>;
    using R = typename std::conditional_t<std::is_invocable_v<Fn&, JobContext&>,
                                          std::invoke_result<Fn&, JobContext&>,
                                          std::invoke_result<Fn&>>::type;
    if constexpr (std::is_void_v<R>) {
      return {};
    } else if constexpr (std::is_same_v<R, bool>) {
      return
          [](const std::any& v) { return std::string(std::any_cast<bool>(v) ? "true" : "false"); };
    } else if constexpr (std::is_arithmetic_v<R>) {
      return [](const std::any& v) { return std::to_string(std::any_cast<R>(v)); };
    } else if constexpr (std::is_convertible_v<R, std::string>) {
      return [](const std::any& v) { return "\"" + std::string(std::any_cast<R>(v)) + "\""; };
    } else {
      return [](const std::any&) { return std::string("<value>"); };
    }
  }

  std::unique_ptr<detail::SchedulerImpl> impl_;
};

}  // namespace roadie
