// `roadie run` and `roadie up`: bring a stack up in this process, keep it up
// while a command runs (or until a signal), and tear it down whatever happens.
//
// Signals: SIGINT, SIGTERM and SIGHUP are blocked in every thread (the mask is
// set before the runtime starts its threads, which inherit it) and read from a
// signalfd by one thread of ours. So no handler ever runs in the middle of
// the library, and a signal during the bring-up cancels it (Stack::up's stop
// token) instead of killing roadie with services running. The library resets
// the mask in every service it spawns; CMD gets the same through
// posix_spawn's attributes.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>

#include "exit_codes.hpp"
#include "isolate.hpp"
#include "progress.hpp"
#include "roadie/error.hpp"
#include "roadie/exit_status.hpp"
#include "roadie/runtime.hpp"
#include "roadie/scheduler.hpp"
#include "roadie/stack.hpp"
#include "roadie/state.hpp"
#include "state_lock.hpp"
#include "verbs.hpp"

extern char** environ;

namespace roadie::cli {
namespace {

namespace fs = std::filesystem;

sigset_t watched_signals() {
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, SIGINT);
  ::sigaddset(&set, SIGTERM);
  ::sigaddset(&set, SIGHUP);
  return set;
}

// Reads SIGINT/SIGTERM/SIGHUP on a thread of its own and hands each to
// `on_signal` (signal number, and whether the terminal sent it to the whole
// foreground process group: the kernel's SI_KERNEL, where CMD, in our group,
// got it too). Construct before any other thread exists.
class SignalWatch {
 public:
  explicit SignalWatch(std::function<void(int, bool)> on_signal)
      : on_signal_(std::move(on_signal)) {
    const sigset_t set = watched_signals();
    if (int error = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); error != 0) {
      throw std::system_error(error, std::generic_category(), "blocking signals");
    }
    signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (signal_fd_ < 0 || wake_fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "watching signals");
    }
    thread_ = std::thread([this] { watch(); });
  }
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;
  ~SignalWatch() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
    ::close(signal_fd_);
    ::close(wake_fd_);
  }

 private:
  void watch() {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (;;) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      signalfd_siginfo info{};
      if (::read(signal_fd_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
      on_signal_(static_cast<int>(info.ssi_signo), info.ssi_code == SI_KERNEL);
    }
  }

  std::function<void(int, bool)> on_signal_;
  int signal_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
};

// What the signal thread and the verb's thread share.
struct Interruption {
  std::mutex mutex;
  std::stop_source cancel_bring_up;
  pid_t command = -1;  // CMD's pid while it runs
  int signal = 0;      // the last signal received
  bool forwarded = false;

  void on_signal(int number, bool from_terminal) {
    std::lock_guard lock(mutex);
    signal = number;
    forwarded = false;
    if (command > 0) {
      // The terminal's Ctrl-C reached CMD already (same process group).
      if (!from_terminal) ::kill(command, number);
      forwarded = true;
    }
    cancel_bring_up.request_stop();
  }
  int received() {
    std::lock_guard lock(mutex);
    return signal;
  }
};

fs::path state_dir(const StackRunOptions& options) {
  if (options.state) return fs::absolute(*options.state);
  return fs::absolute(options.file).parent_path() / ".roadie";
}

}  // namespace

// Which job failed and why (its message carries the exit status and the last
// output lines), then what did not run because of it.
state::StateFile stack_state(Stack& stack, const fs::path& file);  // detach.cpp

namespace {

// STATE/state.json for a stack this process keeps up (foreground `up`, `run`):
// the same file a detached supervisor writes, with this process as the
// supervisor and no endpoint (port 0), so that `status`, `logs` and `down`
// (SIGTERM to us) reach it and a GoogleTest binary run as CMD attaches to it
// through ROADIE_STATE. Removed when the stack is down.
class RecordedState {
 public:
  RecordedState(Stack& stack, const fs::path& file, fs::path state_dir, const char* verb)
      : state_dir_(std::move(state_dir)) {
    try {
      stack_state(stack, file).write(state_dir_);
      written_ = true;
    } catch (const std::exception& e) {
      std::cerr << "roadie " << verb << ": " << e.what()
                << "; status, logs and down will not see this stack\n";
    }
  }
  RecordedState(const RecordedState&) = delete;
  RecordedState& operator=(const RecordedState&) = delete;
  ~RecordedState() {
    std::error_code ignored;
    if (written_) fs::remove(state::StateFile::path_in(state_dir_), ignored);
  }

 private:
  fs::path state_dir_;
  bool written_ = false;
};

}  // namespace

void print_bring_up_failure(Stack& stack, const RunReport& report, const fs::path& logs) {
  std::string failed;
  std::string skipped;
  std::string cancelled;
  for (const JobView& job : stack.scheduler().views()) {
    if (job.state == JobState::failed || job.state == JobState::timed_out) {
      std::string why = job.error.empty() ? job.reason : job.error;
      while (!why.empty() && why.back() == '\n') why.pop_back();
      std::string indented;
      for (char c : why) indented += c == '\n' ? std::string("\n    ") : std::string(1, c);
      failed += "  " + job.label + " " + std::string(to_string(job.state)) + ": " + indented + "\n";
    } else if (job.state == JobState::skipped) {
      skipped += (skipped.empty() ? "" : ", ") + job.label;
    } else if (job.state == JobState::cancelled) {
      cancelled += (cancelled.empty() ? "" : ", ") + job.label;
    }
  }
  std::cerr << "roadie: the stack could not be brought up";
  if (failed.empty()) {
    std::cerr << ": " << report.why() << '\n';
  } else {
    std::cerr << ":\n" << failed;
  }
  if (!skipped.empty()) std::cerr << "  skipped (a requirement failed): " << skipped << '\n';
  if (!cancelled.empty())
    std::cerr << "  cancelled (stopped at the failure): " << cancelled << '\n';
  std::cerr << "roadie: service logs are in " << logs.string() << '\n';
}

// One line per service stopped (what a CI log needs to show the stack went
// down before roadie exited), and any stop that went wrong.
void print_teardown(const std::vector<StopOutcome>& outcomes) {
  for (const StopOutcome& outcome : outcomes) {
    std::cerr << "roadie: stopped " << outcome.label;
    if (outcome.status) std::cerr << " (" << outcome.status->describe() << ")";
    if (!outcome.error.empty()) std::cerr << ": " << outcome.error;
    std::cerr << '\n';
  }
}

namespace {

// Spawns CMD (PATH lookup, our stdin/stdout/stderr and process group, the
// default disposition and an empty mask for the signals we block). Returns the
// pid, or the errno of a failed exec.
//
// CMD carries this process's runtime marker (first in its environment, as the
// runtime gives its own children): if roadie dies without tearing down
// (SIGKILL, a crash), the runtime's watchdog ends CMD and whatever CMD started
// that kept its environment, together with the services. No service's stop()
// takes it: their markers end in their own serial numbers.
pid_t spawn_command(const std::vector<std::string>& argv,
                    const std::map<std::string, std::string>& extra, int& error) {
  const std::string marker_name(Runtime::marker_variable);
  std::vector<std::string> environment;
  environment.push_back(marker_name + "=" + Runtime::global().marker() + "/command");
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    if (extra.count(name) == 0 && name != marker_name) environment.push_back(text);
  }
  for (const auto& [name, value] : extra) {
    if (name != marker_name) environment.push_back(name + "=" + value);
  }
  std::vector<char*> env_pointers;
  for (auto& entry : environment) env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> arg_pointers;
  for (auto& arg : args) arg_pointers.push_back(arg.data());
  arg_pointers.push_back(nullptr);

  posix_spawnattr_t attributes;
  ::posix_spawnattr_init(&attributes);
  sigset_t empty;
  ::sigemptyset(&empty);
  sigset_t defaults = watched_signals();
  ::sigaddset(&defaults, SIGPIPE);
  ::posix_spawnattr_setsigmask(&attributes, &empty);
  ::posix_spawnattr_setsigdefault(&attributes, &defaults);
  ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  error = ::posix_spawnp(&pid, arg_pointers[0], nullptr, &attributes, arg_pointers.data(),
                         env_pointers.data());
  ::posix_spawnattr_destroy(&attributes);
  return error == 0 ? pid : -1;
}

int wait_command(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waiting for CMD");
  }
  if (WIFSIGNALED(status)) return kExitSignalBase + WTERMSIG(status);
  return WEXITSTATUS(status);
}

// The stack file, parsed; nullopt (after saying why) when it is wrong.
std::optional<StackSpec> parse(const StackRunOptions& options, int& exit_code) {
  try {
    return parse_stack_file(options.file);
  } catch (const ConfigError& e) {
    std::cerr << e.what() << '\n';
    exit_code = kExitUsage;
  }
  return std::nullopt;
}

// Loads the stack with its logs in STATE/logs; nullopt (after saying why) when
// its ports cannot be reserved or its plugins made.
struct Loaded {
  std::optional<Stack> stack;
  int exit_code = kExitOk;
};
Loaded load(const char* verb, StackSpec spec, const fs::path& state) {
  Loaded loaded;
  try {
    fs::create_directories(state / "logs");
    StackOptions stack_options;
    stack_options.log_dir = state / "logs";
    loaded.stack.emplace(Stack::from_spec(std::move(spec), stack_options));
  } catch (const ConfigError& e) {
    std::cerr << e.what() << '\n';
    loaded.exit_code = kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "roadie " << verb << ": " << e.what() << '\n';
    loaded.exit_code = kExitBringUpFailed;
  }
  return loaded;
}

// Brings the stack up with the progress display; false (after saying why)
// when it failed or a signal cancelled it (the stack is then down).
bool bring_up(Stack& stack, Interruption& interruption, const fs::path& state) {
  auto progress =
      std::make_shared<Progress>(stderr, Progress::style_for(stderr), stack.scheduler());
  Subscription observing = stack.scheduler().add_observer(progress);
  const RunReport report = stack.up(interruption.cancel_bring_up.get_token());
  observing.reset();
  if (report.ok()) return true;
  if (int signal = interruption.received(); signal != 0) {
    std::cerr << "roadie: " << signal_name(signal) << " during the bring-up; the stack is down\n";
  } else {
    print_bring_up_failure(stack, report, state / "logs");
  }
  return false;
}


// An empty stack (no service, no job) has nothing to supervise: CMD runs
// alone, on this thread. No runtime (no watchdog process, no event loop), no
// signal thread, no scheduler, no bus: what `roadie run -- true` costs over
// `true` is then little more than loading roadie (bench_cli).
//
// Signals are read from a signalfd beside CMD's pidfd, and passed on as in
// the full run. CMD gets PR_SET_PDEATHSIG(SIGKILL), so a roadie killed
// without a chance to forward (SIGKILL, a crash) takes CMD with it; what CMD
// itself started is CMD's to end, as without roadie (a stack with services
// gives CMD the runtime's marker instead, and its watchdog ends them too).
int run_alone(const RunOptions& options, const fs::path& state) {
  const sigset_t watched = watched_signals();
  if (int error = ::pthread_sigmask(SIG_BLOCK, &watched, nullptr); error != 0) {
    throw std::system_error(error, std::generic_category(), "blocking signals");
  }
  const int signal_fd = ::signalfd(-1, &watched, SFD_CLOEXEC);
  if (signal_fd < 0) throw std::system_error(errno, std::generic_category(), "watching signals");

  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "ROADIE_STATE=", 13) != 0) environment.emplace_back(*entry);
  }
  environment.push_back("ROADIE_STATE=" + state.string());
  std::vector<char*> env_pointers;
  for (auto& entry : environment) env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);
  std::vector<std::string> args = options.command;
  std::vector<char*> arg_pointers;
  for (auto& arg : args) arg_pointers.push_back(arg.data());
  arg_pointers.push_back(nullptr);

  sigset_t empty;
  ::sigemptyset(&empty);
  const pid_t parent = ::getpid();
  // vfork: the parent waits until CMD is executed (or failed to be); the
  // child only makes system calls. A failed exec's errno comes back through
  // a close-on-exec pipe (nothing on it: the exec happened), not through
  // shared memory: ThreadSanitizer turns vfork into fork, where a variable
  // the child writes is never seen by the parent (the message was empty).
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "starting CMD");
  }
  const pid_t pid = ::vfork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(kExitCannotExecute);  // roadie died meanwhile
    for (int number : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(number, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    ::execvpe(arg_pointers[0], arg_pointers.data(), env_pointers.data());
    const int failure = errno;
    (void)!::write(report[1], &failure, sizeof failure);
    ::_exit(kExitCannotExecute);
  }
  const int spawn_errno = errno;
  ::close(report[1]);
  int error = 0;
  if (pid >= 0) {
    ssize_t n;
    while ((n = ::read(report[0], &error, sizeof error)) < 0 && errno == EINTR) {
    }
    if (n != static_cast<ssize_t>(sizeof error)) error = 0;
  }
  ::close(report[0]);
  if (pid < 0) throw std::system_error(spawn_errno, std::generic_category(), "starting CMD");
  if (error != 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::close(signal_fd);
    std::cerr << "roadie run: cannot execute '" << options.command.front()
              << "': " << std::generic_category().message(error) << '\n';
    return kExitCannotExecute;
  }
  const int pid_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {pid_fd, POLLIN, 0}};
    if (::poll(fds, pid_fd >= 0 ? 2 : 1, pid_fd >= 0 ? -1 : 10) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "waiting for CMD");
    }
    if (fds[0].revents != 0) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info) &&
          info.ssi_code != SI_KERNEL) {
        ::kill(pid, static_cast<int>(info.ssi_signo));  // the terminal's reached CMD already
      }
    }
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (pid_fd >= 0) ::close(pid_fd);
      ::close(signal_fd);
      if (WIFSIGNALED(status)) return kExitSignalBase + WTERMSIG(status);
      return WEXITSTATUS(status);
    }
    if (done < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "waiting for CMD");
    }
  }
}

}  // namespace

int run(const RunOptions& options) {
  int parse_error = kExitOk;
  std::optional<StackSpec> spec = parse(options, parse_error);
  if (!spec) return parse_error;
  // First, while this process has one thread: unshare() moves only the
  // calling thread, and every thread started later (signals, the runtime's
  // event loop that spawns the services, the scheduler's workers) inherits
  // the namespace from it.
  if (options.isolate || spec->isolate == Isolation::network) {
    if (const std::string failure = enter_private_network(); !failure.empty()) {
      std::cerr << "roadie run: "
                << (options.isolate ? "--isolate" : "isolate: network (" + options.file.string() + ")")
                << ": " << failure << '\n';
      return kExitBringUpFailed;
    }
  }
  if (spec->services.empty() && spec->jobs.empty() && !spec->plugins.present) {
    const fs::path state = state_dir(options);
    const std::optional<StateLock> owner = StateLock::take(state, "run", options.file);
    if (!owner) return kExitBringUpFailed;
    return run_alone(options, state);
  }
  Interruption interruption;
  SignalWatch signals(
      [&](int number, bool from_terminal) { interruption.on_signal(number, from_terminal); });
  const fs::path state = state_dir(options);
  const std::optional<StateLock> owner = StateLock::take(state, "run", options.file);
  if (!owner) return kExitBringUpFailed;
  Loaded loaded = load("run", std::move(*spec), state);
  if (!loaded.stack) return loaded.exit_code;
  Stack& stack = *loaded.stack;
  if (!bring_up(stack, interruption, state)) {
    const int signal = interruption.received();
    return signal != 0 ? kExitSignalBase + signal : kExitBringUpFailed;
  }

  std::optional<RecordedState> recorded;
  recorded.emplace(stack, options.file, state, "run");
  auto environment = stack.environment();
  environment["ROADIE_STATE"] = state.string();
  int error = 0;
  int exit_code = kExitCannotExecute;
  {
    std::unique_lock lock(interruption.mutex);
    // A signal that came after the bring-up and before CMD exists stops here:
    // nothing to forward it to, so CMD is not started.
    if (interruption.signal == 0) {
      interruption.command = spawn_command(options.command, environment, error);
    }
  }
  if (interruption.command > 0) {
    exit_code = wait_command(interruption.command);
    std::lock_guard lock(interruption.mutex);
    interruption.command = -1;
  } else if (int signal = interruption.received(); signal != 0) {
    exit_code = kExitSignalBase + signal;
  } else {
    std::cerr << "roadie run: cannot execute '" << options.command.front()
              << "': " << std::generic_category().message(error) << '\n';
  }
  print_teardown(stack.down());
  recorded.reset();
  return exit_code;
}

int up(const StackRunOptions& options) {
  if (options.detach) return up_detached(options);
  int parse_error = kExitOk;
  std::optional<StackSpec> spec = parse(options, parse_error);
  if (!spec) return parse_error;
  if (spec->isolate == Isolation::network) {
    std::cerr << "roadie up: note: 'isolate: network' applies to 'roadie run' only (a stack in "
                 "a namespace of its own would be out of everyone's reach); this one runs in "
                 "the host's network\n";
  }
  std::condition_variable signalled;
  Interruption interruption;
  SignalWatch signals([&](int number, bool from_terminal) {
    interruption.on_signal(number, from_terminal);
    signalled.notify_all();
  });
  const fs::path state = state_dir(options);
  const std::optional<StateLock> owner = StateLock::take(state, "up", options.file);
  if (!owner) return kExitBringUpFailed;
  Loaded loaded = load("up", std::move(*spec), state);
  if (!loaded.stack) return loaded.exit_code;
  Stack& stack = *loaded.stack;
  if (!bring_up(stack, interruption, state)) {
    const int signal = interruption.received();
    return signal != 0 ? kExitSignalBase + signal : kExitBringUpFailed;
  }
  std::optional<RecordedState> recorded;
  recorded.emplace(stack, options.file, state, "up");
  for (const auto& [name, value] : stack.environment()) std::cout << name << '=' << value << '\n';
  std::cout << "ROADIE_STATE=" << state.string() << std::endl;
  std::cerr << "roadie: the stack is up; Ctrl-C (SIGINT) or SIGTERM tears it down\n";
  {
    std::unique_lock lock(interruption.mutex);
    signalled.wait(lock, [&] { return interruption.signal != 0; });
  }
  std::cerr << "roadie: tearing down\n";
  print_teardown(stack.down());
  recorded.reset();
  return kExitOk;
}

}  // namespace roadie::cli
