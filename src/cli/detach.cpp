// `roadie up --detach`, the supervisor it leaves behind, and the verbs that
// reach a detached stack through its state directory: `down`, `status`,
// `logs` (see state.hpp for the state directory).
//
// up --detach: takes STATE/lock (flock; held means a supervisor runs there:
// refused, naming it), truncates STATE/supervisor.log, forks; the child
// leaves the session (setsid), drops the invoker's ROADIE_SUPERVISOR marker
// (a detached stack is not the invoker's child: a test runner's cleanup must
// not take it), points stdin at /dev/null and stdout/stderr at
// supervisor.log, and becomes the supervisor (supervise(), as the hidden verb
// `__supervise` would), keeping the lock and a notification pipe. The supervisor
// loads the stack (its runtime's watchdog guards the services if the
// supervisor is killed), brings it up with the progress display, writes the
// state file, serves the status endpoint, and writes one byte on the pipe:
// '0' up, or the exit code of the failure. The invoking process copies
// supervisor.log to its stderr meanwhile and exits with that code (end of
// file without a byte: the supervisor died, 3).
//
// The supervisor's endpoint: 127.0.0.1 only, on a PortReservation port, every
// request needs `Authorization: Bearer TOKEN` (401 otherwise): GET /status,
// GET /services/NAME/logs, POST /down (tears down and exits).
#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <thread>

#include "exit_codes.hpp"
#include "progress.hpp"
#include "roadie/error.hpp"
#include "roadie/ports.hpp"
#include "roadie/runtime.hpp"
#include "roadie/stack.hpp"
#include "roadie/state.hpp"
#include "state_lock.hpp"
#include "verbs.hpp"

namespace roadie::cli {

using namespace roadie::state;

void print_bring_up_failure(Stack& stack, const RunReport& report,
                            const std::filesystem::path& logs);
void print_teardown(const std::vector<StopOutcome>& outcomes);

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

fs::path state_dir_of(const std::optional<fs::path>& state, const fs::path& file) {
  if (state) return fs::absolute(*state);
  return fs::absolute(file).parent_path() / ".roadie";
}

// The state directory for the verbs that have no -f: --state, else
// ./.roadie (beside ./roadie.yaml).
fs::path state_dir_of(const std::optional<fs::path>& state) {
  return state_dir_of(state, "roadie.yaml");
}

void copy_new_bytes(int from, std::FILE* to) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n <= 0) break;
    std::fwrite(buffer, 1, static_cast<std::size_t>(n), to);
  }
  std::fflush(to);
}

// ---- the supervisor's signals --------------------------------------------

// SIGINT, SIGTERM, SIGHUP (and SIGUSR1: the endpoint's POST /down) are
// blocked in every thread (before any exists) and taken by one thread.
struct Signals {
  std::mutex mutex;
  std::condition_variable changed;
  std::stop_source cancel;
  int signal = 0;
  std::thread thread;

  static sigset_t set() {
    sigset_t set;
    ::sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) ::sigaddset(&set, s);
    return set;
  }
  Signals() {
    const sigset_t blocked = set();
    ::pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
    thread = std::thread([this] {
      const sigset_t waited = set();
      int number = 0;
      while (::sigwait(&waited, &number) != 0) {
      }
      {
        std::lock_guard lock(mutex);
        signal = number;
      }
      cancel.request_stop();
      changed.notify_all();
    });
  }
  ~Signals() {
    if (received() == 0) ::kill(::getpid(), SIGUSR1);
    thread.join();
  }
  int received() {
    std::lock_guard lock(mutex);
    return signal;
  }
  void wait() {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return signal != 0; });
  }
};

void notify(int fd, char code) {
  if (fd < 0) return;
  while (::write(fd, &code, 1) < 0 && errno == EINTR) {
  }
  ::close(fd);
}

bool authorised(const httplib::Request& request, const std::string& token) {
  const std::string expected = "Bearer " + token;
  const std::string given = request.get_header_value("Authorization");
  if (given.size() != expected.size()) return false;
  unsigned char difference = 0;
  for (std::size_t i = 0; i < given.size(); ++i)
    difference = static_cast<unsigned char>(difference | (given[i] ^ expected[i]));
  return difference == 0;
}

std::string read_whole(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const ServiceState* find(const StateFile& state, const std::string& name) {
  for (const auto& service : state.services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

std::string names_of(const StateFile& state) {
  std::string names;
  for (const auto& service : state.services) names += (names.empty() ? "" : ", ") + service.name;
  return names;
}

// Signals a recorded process (its group when it leads one) only when it is
// still the one recorded; waits up to `grace` for it to go, then SIGKILLs.
// Returns what it found.
Ownership stop_recorded(pid_t pid, std::uint64_t start_time, int signal,
                        std::chrono::milliseconds grace) {
  const Ownership owned = ownership(pid, start_time);
  if (owned != Ownership::ours) return owned;
  const bool leader = ::getpgid(pid) == pid;
  auto send = [&](int s) { leader ? ::kill(-pid, s) : ::kill(pid, s); };
  send(signal);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (ownership(pid, start_time) == Ownership::ours) {
    if (std::chrono::steady_clock::now() > deadline) {
      if (ownership(pid, start_time) == Ownership::ours) send(SIGKILL);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  return Ownership::ours;
}

// Woken by the process's pidfd when there is one (readable at its exit, also
// for a process that is not our child), so `down` returns as the supervisor
// ends, not at the next 10 ms poll.
bool wait_gone(pid_t pid, std::uint64_t start_time, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const int pid_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool gone = false;
  // The pidfd is opened before the ownership check: a pid reused after that
  // check is then not the process the pidfd refers to.
  while (!(gone = ownership(pid, start_time) != Ownership::ours)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (pid_fd >= 0) {
      pollfd fd{pid_fd, POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
    } else {
      std::this_thread::sleep_for(10ms);
    }
  }
  if (pid_fd >= 0) ::close(pid_fd);
  return gone;
}

}  // namespace

// ---- the state file ---------------------------------------------------------

StateFile stack_state(Stack& stack, const fs::path& file) {
  StateFile state;
  state.stack_file = fs::absolute(file).string();
  state.stack_hash = file_hash(file);
  state.supervisor_pid = ::getpid();
  state.supervisor_start_time = process_start_time(::getpid()).value_or(0);
  state.started_at = now_seconds();
  for (const std::string& name : stack.service_names()) {
    const StackService service = stack.service(name);
    ServiceState entry;
    entry.name = name;
    entry.pid = service.pid;
    entry.start_time = process_start_time(service.pid).value_or(0);
    entry.started_at = state.started_at;
    for (const auto& [port_name, port] : service.ports) entry.ports[port_name] = port.value();
    entry.log = service.log_file.string();
    if (const ServiceSpec* spec = stack.spec().find_service(name)) {
      entry.stop_timeout_ms = spec->stop_timeout.count();
      entry.stop_signal = spec->stop_signal;
    }
    state.services.push_back(std::move(entry));
  }
  return state;
}

// ---- up --detach -----------------------------------------------------------

int up_detached(const StackRunOptions& options) {
  const fs::path state_dir = state_dir_of(options.state, options.file);
  std::optional<StateLock> held = StateLock::take(state_dir, "up", options.file);
  if (!held) return kExitBringUpFailed;
  std::error_code error;
  fs::create_directories(state_dir / "logs", error);
  if (error) {
    std::cerr << "roadie up: cannot create " << (state_dir / "logs").string() << ": "
              << error.message() << '\n';
    return kExitBringUpFailed;
  }
  // A state file without a live supervisor is a killed one's: its services
  // were stopped by its watchdog; what is left is stopped like `down` does.
  if (fs::exists(StateFile::path_in(state_dir))) {
    DownOptions stale;
    stale.state = state_dir;
    stale.quiet = true;
    down(stale);
  }
  const fs::path log_path = state_dir / "supervisor.log";
  const int log = ::open(log_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int reader = ::open(log_path.c_str(), O_RDONLY | O_CLOEXEC);
  int pipe_fds[2];
  if (log < 0 || reader < 0 || ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::cerr << "roadie up: cannot prepare " << state_dir.string() << ": " << std::strerror(errno)
              << '\n';
    return kExitBringUpFailed;
  }
  SuperviseOptions supervisor;
  supervisor.file = fs::absolute(options.file);
  supervisor.state = state_dir;
  supervisor.notify_fd = pipe_fds[1];
  supervisor.lock_fd = held->fd();
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) {
    std::cerr << "roadie up: fork: " << std::strerror(errno) << '\n';
    return kExitBringUpFailed;
  }
  if (child == 0) {
    // The supervisor is this fork, not a new executable: no thread exists yet
    // in this process (no runtime, no signal thread), so the child is as clean
    // as an exec'd one, and starting roadie again (its shared libraries:
    // 4-10 ms here) is saved. It keeps the lock's descriptor (`held` is never
    // destroyed here: std::exit does not unwind) and the pipe's write end.
    ::setsid();
    ::unsetenv("ROADIE_SUPERVISOR");
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    for (int fd : {null, log, reader, pipe_fds[0]}) ::close(fd);
    int code = kExitInternal;
    try {
      code = supervise(supervisor);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "roadie: internal error: %s\n", e.what());
    }
    std::fflush(nullptr);
    std::exit(code);
  }
  ::close(pipe_fds[1]);
  ::close(log);
  held->record(child, "__supervise", options.file);
  held.reset();  // the supervisor holds the lock now
  char code = 0;
  bool got = false;
  for (;;) {
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ready = ::poll(&fd, 1, 20);
    copy_new_bytes(reader, stderr);
    if (ready < 0 && errno == EINTR) continue;
    if (ready > 0) {
      const ssize_t n = ::read(pipe_fds[0], &code, 1);
      if (n < 0 && errno == EINTR) continue;
      got = n == 1;
      break;
    }
  }
  ::close(pipe_fds[0]);
  if (!got || code != '0') {
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    copy_new_bytes(reader, stderr);
    ::close(reader);
    if (!got) {
      std::cerr << "roadie up: the supervisor exited before the stack was up; see "
                << log_path.string() << '\n';
      return kExitBringUpFailed;
    }
    return code - '0';
  }
  copy_new_bytes(reader, stderr);
  ::close(reader);
  const auto state = StateFile::read(state_dir);
  if (state) {
    std::map<std::string, int> ports;
    for (const auto& service : state->services)
      ports.insert(service.ports.begin(), service.ports.end());
    for (const auto& [name, port] : ports) {
      std::cout << PortReservation::env_name(name) << '=' << port << '\n';
    }
  }
  std::cout << "ROADIE_STATE=" << state_dir.string() << std::endl;
  std::cerr << "roadie: the stack is up, supervised by pid " << child << "; 'roadie down --state "
            << state_dir.string() << "' tears it down\n";
  return kExitOk;
}

// ---- the supervisor (hidden verb __supervise) ------------------------------

int supervise(const SuperviseOptions& options) {
  const int notify_fd = options.notify_fd;
  if (options.lock_fd >= 0) ::fcntl(options.lock_fd, F_SETFD, FD_CLOEXEC);
  if (notify_fd >= 0) ::fcntl(notify_fd, F_SETFD, FD_CLOEXEC);
  Signals signals;
  const fs::path state_dir = fs::absolute(options.state);
  std::optional<Stack> loaded;
  try {
    StackOptions stack_options;
    stack_options.log_dir = state_dir / "logs";
    loaded.emplace(Stack::load(options.file, stack_options));
  } catch (const ConfigError& e) {
    std::cerr << e.what() << std::endl;
    notify(notify_fd, '0' + kExitUsage);
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "roadie up: " << e.what() << std::endl;
    notify(notify_fd, '0' + kExitBringUpFailed);
    return kExitBringUpFailed;
  }
  Stack& stack = *loaded;
  if (stack.spec().isolate == Isolation::network) {
    std::cerr << "roadie up: note: 'isolate: network' applies to 'roadie run' only (a stack in "
                 "a namespace of its own would be out of everyone's reach); this one runs in "
                 "the host's network"
              << std::endl;
  }
  {
    auto progress = std::make_shared<Progress>(stderr, Progress::Style{}, stack.scheduler());
    Subscription observing = stack.scheduler().add_observer(progress);
    const RunReport report = stack.up(signals.cancel.get_token());
    observing.reset();
    if (!report.ok()) {
      if (int signal = signals.received(); signal != 0) {
        std::cerr << "roadie: signal " << signal << " during the bring-up; the stack is down\n";
      } else {
        print_bring_up_failure(stack, report, state_dir / "logs");
      }
      std::cerr.flush();
      notify(notify_fd, '0' + kExitBringUpFailed);
      return kExitBringUpFailed;
    }
  }

  StateFile state;
  std::optional<PortReservation> http_port;
  httplib::Server server;
  std::thread serving;
  try {
    state = stack_state(stack, options.file);
    state.token = random_token();
    http_port.emplace(PortReservation::reserve("roadie-supervisor"));
    state.http_port = http_port->port().value();
    const std::string token = state.token;
    server.set_pre_routing_handler(
        [token](const httplib::Request& request, httplib::Response& response) {
          if (authorised(request, token)) return httplib::Server::HandlerResponse::Unhandled;
          response.status = 401;
          response.set_header("WWW-Authenticate", "Bearer");
          response.set_content("a token is required (see the state file)\n", "text/plain");
          return httplib::Server::HandlerResponse::Handled;
        });
    server.Get("/status", [&](const httplib::Request&, httplib::Response& response) {
      response.set_content(state.status_json(state_dir), "application/json");
    });
    server.Get(R"(/services/([^/]+)/logs)",
               [&](const httplib::Request& request, httplib::Response& response) {
                 const ServiceState* service = find(state, request.matches[1]);
                 if (service == nullptr) {
                   response.status = 404;
                   response.set_content("no such service\n", "text/plain");
                   return;
                 }
                 response.set_content(read_whole(service->log), "text/plain");
               });
    server.Post("/down", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("tearing down\n", "text/plain");
      ::kill(::getpid(), SIGUSR1);
    });
    if (!server.bind_to_port("127.0.0.1", state.http_port)) {
      throw std::runtime_error("cannot serve the status endpoint on 127.0.0.1:" +
                               std::to_string(state.http_port));
    }
    serving = std::thread([&] { server.listen_after_bind(); });
    state.write(state_dir);
  } catch (const std::exception& e) {
    std::cerr << "roadie up: " << e.what() << "; tearing down\n";
    if (serving.joinable()) {
      server.stop();
      serving.join();
    }
    print_teardown(stack.down());
    std::cerr.flush();
    notify(notify_fd, '0' + kExitBringUpFailed);
    return kExitBringUpFailed;
  }
  std::cerr << "roadie: the stack is up; status on 127.0.0.1:" << state.http_port << std::endl;
  notify(notify_fd, '0');

  signals.wait();
  std::cerr << "roadie: tearing down (signal " << signals.received() << ")" << std::endl;
  server.stop();
  serving.join();
  print_teardown(stack.down());
  std::error_code ignored;
  fs::remove(StateFile::path_in(state_dir), ignored);
  std::cerr << "roadie: down" << std::endl;
  return kExitOk;
}

// ---- down ------------------------------------------------------------------

int down(const DownOptions& options) {
  const fs::path state_dir = state_dir_of(options.state);
  std::optional<StateFile> state;
  try {
    state = StateFile::read(state_dir);
  } catch (const std::exception& e) {
    std::cerr << "roadie down: " << e.what() << '\n';
    return kExitBringUpFailed;
  }
  if (!state) {
    if (!options.quiet)
      std::cerr << "roadie down: nothing is running in " << state_dir.string() << '\n';
    return kExitOk;
  }
  if (!options.quiet) warn_if_stack_file_changed("down", state->stack_file, state->stack_hash);
  const Ownership supervisor = ownership(state->supervisor_pid, state->supervisor_start_time);
  if (supervisor == Ownership::ours) {
    // Through the supervisor: it tears down in dependency order. A foreground
    // `up` or `run` (no endpoint: port 0) tears down on SIGTERM.
    bool asked = false;
    if (state->http_port > 0) {
      httplib::Client client("127.0.0.1", state->http_port);
      client.set_connection_timeout(5);
      client.set_read_timeout(10);
      auto result =
          client.Post("/down", {{"Authorization", "Bearer " + state->token}}, "", "text/plain");
      asked = result && result->status == 200;
    }
    if (!asked) ::kill(state->supervisor_pid, SIGTERM);  // the endpoint does not answer
    std::chrono::milliseconds grace{10'000};
    for (const auto& service : state->services)
      grace += std::chrono::milliseconds(service.stop_timeout_ms);
    if (!wait_gone(state->supervisor_pid, state->supervisor_start_time, grace)) {
      std::cerr << "roadie down: the supervisor (pid " << state->supervisor_pid
                << ") did not stop; stopping the services directly\n";
      ::kill(state->supervisor_pid, SIGKILL);
    }
  } else if (!options.quiet) {
    std::cerr << "roadie down: the supervisor (pid " << state->supervisor_pid << ") is gone; "
              << "stopping what is left from the state file\n";
  }
  // Directly from the state file, in reverse order: what the supervisor (or
  // its watchdog) left behind. A pid that is another process now is left alone.
  for (auto it = state->services.rbegin(); it != state->services.rend(); ++it) {
    const Ownership found = stop_recorded(it->pid, it->start_time, it->stop_signal,
                                          std::chrono::milliseconds(it->stop_timeout_ms));
    if (found == Ownership::not_ours) {
      std::cerr << "roadie down: " << it->name << ": pid " << it->pid
                << " is another process now (start time differs); left alone\n";
    } else if (found == Ownership::ours) {
      std::cerr << "roadie down: stopped " << it->name << " (pid " << it->pid << ")\n";
    }
  }
  std::error_code ignored;
  fs::remove(StateFile::path_in(state_dir), ignored);
  if (!options.quiet) std::cerr << "roadie down: " << state_dir.string() << " is down\n";
  return kExitOk;
}

// ---- status ----------------------------------------------------------------

int status(const StatusOptions& options) {
  const fs::path state_dir = state_dir_of(options.state);
  std::optional<StateFile> state;
  try {
    state = StateFile::read(state_dir);
  } catch (const std::exception& e) {
    std::cerr << "roadie status: " << e.what() << '\n';
    return kExitBringUpFailed;
  }
  if (!state) {
    if (options.json) {
      std::cout << StateFile::nothing_running_json(state_dir);
    } else {
      std::cout << "nothing is running in " << state_dir.string() << '\n';
    }
    return kExitOk;
  }
  warn_if_stack_file_changed("status", state->stack_file, state->stack_hash);
  if (options.json) {
    std::cout << state->status_json(state_dir);
    return kExitOk;
  }
  const std::int64_t now = now_seconds();
  const Ownership supervisor = ownership(state->supervisor_pid, state->supervisor_start_time);
  std::cout << state->stack_file << ": supervisor pid " << state->supervisor_pid << " "
            << to_string(supervisor);
  if (supervisor == Ownership::ours && state->http_port > 0)
    std::cout << ", status on 127.0.0.1:" << state->http_port;
  std::cout << '\n';
  std::size_t width = 0;
  for (const auto& service : state->services) width = std::max(width, service.name.size());
  for (const auto& service : state->services) {
    const Ownership owned = ownership(service.pid, service.start_time);
    std::string line = service.name + std::string(width - service.name.size() + 2, ' ');
    line += std::string(to_string(owned)) + "  pid " + std::to_string(service.pid);
    if (owned == Ownership::ours) line += "  up " + std::to_string(now - service.started_at) + " s";
    for (const auto& [name, port] : service.ports) line += "  " + name + "=" + std::to_string(port);
    std::cout << line << '\n';
  }
  return kExitOk;
}

// ---- logs ------------------------------------------------------------------

int logs(const LogsOptions& options) {
  const fs::path state_dir = state_dir_of(options.state);
  std::optional<StateFile> state;
  try {
    state = StateFile::read(state_dir);
  } catch (const std::exception& e) {
    std::cerr << "roadie logs: " << e.what() << '\n';
    return kExitBringUpFailed;
  }
  fs::path log = state_dir / "logs" / (options.service + ".log");
  const ServiceState* service = state ? find(*state, options.service) : nullptr;
  if (service != nullptr && !service->log.empty()) log = service->log;
  if (state && service == nullptr) {
    std::cerr << "roadie logs: no service '" << options.service
              << "' (services: " << names_of(*state) << ")\n";
    return kExitUsage;
  }
  const int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::cerr << "roadie logs: cannot read " << log.string() << ": " << std::strerror(errno)
              << '\n';
    return kExitUsage;
  }
  copy_new_bytes(fd, stdout);
  if (options.follow && service != nullptr) {
    const int watch = ::inotify_init1(IN_CLOEXEC);
    if (watch >= 0) ::inotify_add_watch(watch, log.c_str(), IN_MODIFY);
    while (ownership(service->pid, service->start_time) == Ownership::ours) {
      pollfd fds{watch, POLLIN, 0};
      if (::poll(&fds, 1, 250) > 0) {
        char events[4096];
        [[maybe_unused]] auto n = ::read(watch, events, sizeof events);
      }
      copy_new_bytes(fd, stdout);
    }
    copy_new_bytes(fd, stdout);
    if (watch >= 0) ::close(watch);
  }
  ::close(fd);
  return kExitOk;
}

}  // namespace roadie::cli
