#include "test_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
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

}  // namespace roadie::testing
