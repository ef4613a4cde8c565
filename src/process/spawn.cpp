// Boost.Process builds its vfork launcher only when the X/Open feature level
// is below 700, which g++ (always _GNU_SOURCE) never is; it has to be asked
// for before any Boost header. vfork shares the parent's page tables instead
// of copying them, the largest single cost of a spawn from a big test binary.
#define BOOST_POSIX_HAS_VFORK 1

#include "spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>
#include <boost/process/search_path.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <string_view>

#include "linux.hpp"
#include "roadie/error.hpp"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace bp = boost::process;

namespace roadie::detail {

namespace {

// What the child reports through the status pipe when a step fails: the
// step and errno, written with one write(2) before _exit.
enum class Step : int { setup = 1, chdir = 2, exec = 3 };
struct Failure {
  Step step;
  int error;
};

struct Pipe {
  int read = -1;
  int write = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::system_category(), "pipe2");
    read = fds[0];
    write = fds[1];
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
};

// What Boost.Process does not do for us, done in the child between vfork and
// exec (Boost's own start_dir ignores a failed chdir, so the directory change
// is ours too). A failed step or exec is reported through our own
// close-on-exec status pipe rather than Boost's shared-memory error, because
// sanitizers may turn vfork into fork, where shared memory is not shared.
// The child shares the parent's memory: it writes nothing but its own stack,
// and makes only async-signal-safe calls.
struct ChildSetup : bp::extend::handler {
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  int status_fd;    // write end of the status pipe
  const char* cwd;  // nullptr: keep the parent's
  char** envp;

  void report(Step step) const {
    const Failure failure{step, errno};
    while (::write(status_fd, &failure, sizeof failure) < 0 && errno == EINTR) {
    }
  }

  template <class Executor>
  void on_setup(Executor& exec) const {
    exec.env = envp;
  }

  template <class Executor>
  void on_exec_setup(Executor&) const {
    auto fail = [this](Step step) {
      report(step);
      ::_exit(127);
    };
    if (::setpgid(0, 0) != 0) fail(Step::setup);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(Step::setup);
    // dup2 onto itself does nothing and would leave close-on-exec set (when
    // the test binary runs with 0, 1 or 2 closed, a pipe can get that number).
    auto wire = [](int from, int to) {
      return from == to ? ::fcntl(to, F_SETFD, 0) : ::dup2(from, to);
    };
    if (wire(stdin_fd, 0) < 0 || wire(stdout_fd, 1) < 0 || wire(stderr_fd, 2) < 0) {
      fail(Step::setup);
    }
    // Every signal to its default, then unblocked (the parent blocked them
    // all around the vfork): none of the test binary's handlers may run here,
    // on the parent's memory, and ignored signals would stay ignored across
    // exec, where a service must see the defaults.
    reset_signals_in_child(0);
    if (cwd != nullptr && ::chdir(cwd) != 0) fail(Step::chdir);
    // Nothing but stdio reaches the service (the status pipe is already
    // close-on-exec and must stay open until exec).
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  }

  template <class Executor>
  void on_exec_error(Executor&, const std::error_code&) const {
    report(Step::exec);  // Boost calls _exit next
  }
};

std::string path_of(const std::vector<std::string>& environment) {
  for (const auto& entry : environment) {
    if (entry.rfind("PATH=", 0) == 0) return entry.substr(5);
  }
  return "/usr/local/bin:/usr/bin:/bin";
}

[[noreturn]] void fail(const Command& command, std::error_code ec, const std::string& reason) {
  throw SpawnError("cannot start `" + command.display() + "`: " + reason, command.display(), ec);
}

}  // namespace

SpawnedChild spawn_child(const Command& command, const std::vector<std::string>& environment) {
  const std::string& program = command.program();
  bp::filesystem::path exe;
  if (program.find('/') != std::string::npos) {
    exe = program;
  } else {
    std::string path = path_of(environment);
    std::vector<bp::filesystem::path> dirs;
    std::string_view rest = path;
    while (true) {
      auto colon = rest.find(':');
      auto dir = rest.substr(0, colon);
      dirs.emplace_back(dir.empty() ? "." : std::string(dir));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    exe = bp::search_path(program, dirs);
    if (exe.empty()) {
      fail(command, std::make_error_code(std::errc::no_such_file_or_directory),
           "program '" + program + "' not found in PATH (" + path + ")");
    }
  }

  std::vector<char*> envp;
  envp.reserve(environment.size() + 1);
  for (const auto& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  std::string cwd = command.cwd() ? command.cwd()->string() : std::string();
  if (command.cwd()) {
    // Checked here for a precise message; the child checks again.
    struct stat st {};
    if (::stat(cwd.c_str(), &st) != 0) {
      fail(command, {errno, std::system_category()},
           "working directory '" + cwd + "': " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
      fail(command, std::make_error_code(std::errc::not_a_directory),
           "working directory '" + cwd + "' is not a directory");
    }
    if (::access(cwd.c_str(), X_OK) != 0) {
      fail(command, {errno, std::system_category()},
           "working directory '" + cwd + "': " + std::strerror(errno));
    }
  }

  std::optional<Pipe> out, err, status;
  try {
    out.emplace();
    err.emplace();
    status.emplace();
  } catch (const std::system_error& e) {
    fail(command, e.code(), std::string("cannot create its pipes: ") + e.what());
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) fail(command, {errno, std::system_category()}, "cannot open /dev/null");
  ChildSetup setup;
  setup.stdin_fd = devnull;
  setup.stdout_fd = out->write;
  setup.stderr_fd = err->write;
  setup.status_fd = status->write;
  setup.cwd = command.cwd() ? cwd.c_str() : nullptr;
  setup.envp = envp.data();

  std::vector<std::string> args(command.argv().begin() + 1, command.argv().end());
  std::error_code ec;
  // Signals stay blocked in this thread until the child has exec'd (or
  // failed): a handler of ours must never run in the vfork child.
  sigset_t all, old_mask;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  bp::child child(bp::exe = exe.string(), bp::args = args, setup, bp::posix::use_vfork, ec);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::close(devnull);
  ::close(std::exchange(status->write, -1));
  // EOF: the exec succeeded (the pipe closed with it). With a real vfork the
  // child has already exec'd or exited here; with fork this waits for it.
  Failure failure{};
  ssize_t got;
  while ((got = ::read(status->read, &failure, sizeof failure)) < 0 && errno == EINTR) {
  }
  if (ec || got > 0) {
    // When Boost saw the failure (a real vfork shares its error) it has
    // reaped the child and returned an empty handle; otherwise the child is
    // ours to reap: it failed a step of our own, or a sanitizer made the
    // vfork a fork.
    if (child.valid()) {
      const pid_t failed = child.id();
      child.detach();
      while (::waitpid(failed, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    if (got > 0) ec = std::error_code(failure.error, std::system_category());
    // The working directory was checked above, so a failure here is almost
    // always the exec itself (a vanished directory is the rare exception).
    const std::string what = got > 0 && failure.step == Step::chdir
                                 ? "cannot enter working directory '" + cwd + "'"
                             : got > 0 && failure.step == Step::setup
                                 ? "cannot prepare the child for '" + exe.string() + "'"
                                 : "cannot execute '" + exe.string() + "'";
    fail(command, ec, what + ": " + ec.message());
  }
  child.detach();  // we wait and reap ourselves; Boost must not touch the child
  SpawnedChild result;
  result.pid = child.id();
  result.stdout_fd = std::exchange(out->read, -1);
  result.stderr_fd = std::exchange(err->read, -1);
  ::fcntl(result.stdout_fd, F_SETFL, O_NONBLOCK);
  ::fcntl(result.stderr_fd, F_SETFL, O_NONBLOCK);
  return result;
}

}  // namespace roadie::detail
