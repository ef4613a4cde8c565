#include "test_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <thread>

#include "process/linux.hpp"
#include "roadie/runtime.hpp"

namespace roadie::testing {

std::string child(const std::string& name) {
  return std::string(ROADIE_TEST_CHILDREN_DIR) + "/" + name;
}

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::path(ROADIE_TEST_TMP_DIR) /
          ("t" + std::to_string(::getpid()) + "_" + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

PortReservation free_port() {
  return PortReservation::reserve("test");
}

long long monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

pid_t read_pid(const std::filesystem::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

bool exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

bool wait_for_file(const std::filesystem::path& file, std::chrono::nanoseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!std::filesystem::exists(file)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::set<int> open_fds() {
  // The listing's own directory descriptor is left out: it takes the lowest
  // free number, which differs between two listings whenever another thread
  // held a descriptor for a moment during one of them.
  std::set<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) throw std::runtime_error("open_fds: cannot list /proc/self/fd");
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::stoi(entry->d_name);
    if (fd != own) fds.insert(fd);
  }
  ::closedir(dir);
  return fds;
}

namespace {

std::string describe(pid_t pid) {
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  for (char& c : text) {
    if (c == '\0') c = ' ';
  }
  return "pid " + std::to_string(pid) + " [" + detail::process_state(pid) + "] " + text;
}

std::string fd_target(int fd) {
  char target[512] = {};
  auto n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?";
}

}  // namespace

std::vector<pid_t> processes_with_marker(std::string_view value) {
  std::vector<pid_t> found;
  for (pid_t pid : detail::all_pids()) {
    const std::string marker = detail::environ_value(pid, Runtime::marker_variable);
    if (marker == value || (marker.size() > value.size() && marker.rfind(value, 0) == 0 &&
                            marker[value.size()] == '/')) {
      found.push_back(pid);
    }
  }
  return found;
}

void NoLeaks::SetUp() {
  fds_before_ = open_fds();
}

void NoLeaks::expect_new_descriptors_on(const std::string& target) {
  for (int fd : open_fds()) {
    if (!fds_before_.count(fd) && fd_target(fd) == target) fds_before_.insert(fd);
  }
}

void NoLeaks::TearDown() {
  std::ostringstream leaks;
  for (pid_t pid : processes_with_marker(Runtime::global().marker())) {
    leaks << "  process left running: " << describe(pid) << "\n";
    ::kill(pid, SIGKILL);
  }
  for (pid_t pid : detail::own_children()) {
    if (pid == Runtime::global().watchdog_pid()) continue;  // lives as long as the runtime
    leaks << "  child left behind: " << describe(pid) << "\n";
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  // A descriptor that is gone by the time it is named was another thread's
  // passing use (the runtime's loop thread reading /proc, a pid-file probe's
  // inotify instance being closed on a thread of its own), not a leak: new
  // descriptors get a moment to go.
  auto new_fds = [&] {
    std::vector<int> fds;
    for (int fd : open_fds()) {
      if (!fds_before_.count(fd) && ::fcntl(fd, F_GETFD) != -1) fds.push_back(fd);
    }
    return fds;
  };
  auto left = new_fds();
  for (int i = 0; i < 50 && !left.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = new_fds();
  }
  for (int fd : left) leaks << "  descriptor left open: " << fd << " -> " << fd_target(fd) << "\n";
  if (!leaks.str().empty()) ADD_FAILURE() << "the test left things behind:\n" << leaks.str();
}

PlainRun run_plain(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env,
                   const std::filesystem::path& scratch, const std::vector<std::string>& unset) {
  static std::atomic<int> serial{0};
  const std::string out = (scratch / ("plain." + std::to_string(++serial) + ".out")).string();
  const std::string err = out + ".err";
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    if (env.contains(name) || std::find(unset.begin(), unset.end(), name) != unset.end()) continue;
    environment.push_back(text);
  }
  for (const auto& [name, value] : env) environment.push_back(name + "=" + value);
  std::vector<std::string> args = argv;
  std::vector<char*> arg_ptrs;
  for (auto& arg : args) arg_ptrs.push_back(arg.data());
  arg_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  for (auto& entry : environment) env_ptrs.push_back(entry.data());
  env_ptrs.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int n = ::open("/dev/null", O_RDONLY);
    ::dup2(n, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::execve(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    ::_exit(127);
  }
  PlainRun run;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  auto slurp = [](const std::string& file) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  run.out = slurp(out);
  run.err = slurp(err);
  return run;
}

std::vector<pid_t> marked_by(pid_t owner) {
  const std::string needle = "ROADIE_SUPERVISOR=" + std::to_string(owner) + ".";
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "environ", std::ios::binary);
    std::string environ_text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (environ_text.find(needle) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

void reap_adopted(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool left = false;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = std::stoi(name);
      if (pid == Runtime::global().watchdog_pid()) continue;
      std::ifstream in(entry.path() / "stat");
      std::string stat;
      std::getline(in, stat);
      const auto close = stat.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream fields(stat.substr(close + 1));
      char state = 0;
      pid_t parent = 0;
      fields >> state >> parent;
      if (parent != ::getpid()) continue;
      if (state == 'Z') {
        ::waitpid(pid, nullptr, 0);
      } else {
        left = true;
      }
    }
    if (!left || std::chrono::steady_clock::now() > deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace roadie::testing
