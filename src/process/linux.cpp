#include "linux.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace roadie::detail {

namespace {

// Direct system calls: glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
int sys_pidfd_open(pid_t pid, unsigned flags) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}
int sys_pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Reads a small /proc file whole; empty if it cannot be read.
std::string read_proc_file(const std::string& path) {
  std::string data;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return data;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fd);
  return data;
}

bool environ_has(pid_t pid, std::string_view entry) {
  std::string data = read_proc_file("/proc/" + std::to_string(pid) + "/environ");
  std::string_view rest = data;
  while (!rest.empty()) {
    auto nul = rest.find('\0');
    if (rest.substr(0, nul) == entry) return true;
    if (nul == std::string_view::npos) break;
    rest.remove_prefix(nul + 1);
  }
  return false;
}

}  // namespace

std::optional<ProcStat> proc_stat(pid_t pid) {
  std::string data = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
  // The command name may hold spaces and parentheses: fields start after the
  // last ')'. Then: state (3), ppid, pgrp, session, ..., starttime (22).
  auto close_paren = data.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= data.size()) return std::nullopt;
  ProcStat stat;
  const char* p = data.c_str() + close_paren + 2;
  stat.state = *p++;
  unsigned long long fields[19] = {};  // fields 4 to 22
  for (auto& field : fields) {
    char* end = nullptr;
    field = std::strtoull(p, &end, 10);
    if (end == p) return std::nullopt;
    p = end;
  }
  stat.ppid = static_cast<pid_t>(fields[0]);
  stat.pgrp = static_cast<pid_t>(fields[1]);
  stat.session = static_cast<pid_t>(fields[2]);
  stat.start = fields[18];
  return stat;
}

unsigned long long ticks_now() noexcept {
  static const long hz = ::sysconf(_SC_CLK_TCK);
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<unsigned long long>(now.tv_sec) * static_cast<unsigned long long>(hz) +
         static_cast<unsigned long long>(now.tv_nsec) / (1'000'000'000ULL / static_cast<unsigned long long>(hz));
}

PidFd& PidFd::operator=(PidFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

PidFd::~PidFd() {
  if (fd_ >= 0) ::close(fd_);
}

PidFd PidFd::open(pid_t pid, std::error_code& ec) noexcept {
  int fd = sys_pidfd_open(pid, 0);
  if (fd < 0) {
    ec = std::error_code(errno, std::system_category());
    return PidFd();
  }
  ec.clear();
  return PidFd(fd);
}

std::error_code send_signal(int pidfd, int signal) noexcept {
  if (sys_pidfd_send_signal(pidfd, signal) == 0) return {};
  return std::error_code(errno, std::system_category());
}

bool has_exited(int pidfd) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

void wait_any_exit(const std::vector<int>& pidfds, std::chrono::steady_clock::time_point deadline) {
  std::vector<pollfd> polls;
  polls.reserve(pidfds.size());
  for (int fd : pidfds) polls.push_back(pollfd{fd, POLLIN, 0});
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return;
    int rc =
        ::poll(polls.data(), polls.size(), static_cast<int>(std::min<long>(left.count(), 60'000)));
    if (rc > 0) return;
    if (rc < 0 && errno != EINTR) return;
  }
}

namespace {
std::optional<ExitStatus> to_status(const siginfo_t& info) {
  if (info.si_pid == 0) return std::nullopt;
  if (info.si_code == CLD_EXITED) return ExitStatus::exited(info.si_status);
  if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
    return ExitStatus::killed(info.si_status);
  }
  return std::nullopt;
}
}  // namespace

ChildPeek peek_child(int pidfd) noexcept {
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                  WEXITED | WNOWAIT | WNOHANG) != 0) {
    if (errno != EINTR) return {ChildState::not_ours};
  }
  auto status = to_status(info);
  if (!status) return {ChildState::running};
  return {ChildState::exited, *status};
}

std::optional<ExitStatus> reap_pidfd(int pidfd, bool block) noexcept {
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                  WEXITED | (block ? 0 : WNOHANG)) != 0) {
    if (errno != EINTR) return std::nullopt;
  }
  return to_status(info);
}

std::optional<ExitStatus> reap(pid_t pid, bool block) noexcept {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | (block ? 0 : WNOHANG)) != 0) {
    if (errno != EINTR) return std::nullopt;
  }
  return to_status(info);
}

std::string environ_value(pid_t pid, std::string_view variable) {
  std::string data = read_proc_file("/proc/" + std::to_string(pid) + "/environ");
  std::string prefix = std::string(variable) + "=";
  std::string_view rest = data;
  while (!rest.empty()) {
    auto nul = rest.find('\0');
    auto entry = rest.substr(0, nul);
    if (entry.substr(0, prefix.size()) == prefix) return std::string(entry.substr(prefix.size()));
    if (nul == std::string_view::npos) break;
    rest.remove_prefix(nul + 1);
  }
  return {};
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return pids;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end == '\0' && pid > 0) pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return pids;
}

std::vector<pid_t> own_children() {
  std::vector<pid_t> children;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return children;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::string data = read_proc_file(std::string("/proc/self/task/") + e->d_name + "/children");
    const char* p = data.c_str();
    char* end = nullptr;
    for (long pid = std::strtol(p, &end, 10); end != p; pid = std::strtol(p, &end, 10)) {
      children.push_back(static_cast<pid_t>(pid));
      p = end;
    }
  }
  ::closedir(dir);
  std::sort(children.begin(), children.end());
  children.erase(std::unique(children.begin(), children.end()), children.end());
  return children;
}

bool is_attributed(pid_t pid, pid_t pgid, std::string_view marker_entry) {
  auto stat = proc_stat(pid);
  if (!stat) return false;
  if (stat->pgrp == pgid) return true;
  return environ_has(pid, marker_entry);
}

std::vector<pid_t> attributed_among(const std::vector<pid_t>& candidates, pid_t pgid,
                                    std::string_view marker_entry) {
  std::vector<pid_t> found;
  const pid_t self = ::getpid();
  for (pid_t pid : candidates) {
    if (pid == pgid || pid == self) continue;
    if (is_attributed(pid, pgid, marker_entry)) found.push_back(pid);
  }
  return found;
}

std::vector<pid_t> attributed_processes(pid_t pgid, std::string_view marker_entry,
                                        bool children_only) {
  return attributed_among(children_only ? own_children() : all_pids(), pgid, marker_entry);
}

std::vector<pid_t> processes_with_marker(std::string_view variable, std::string_view value) {
  std::vector<pid_t> found;
  std::string prefix = std::string(variable) + "=" + std::string(value);
  for (pid_t pid : all_pids()) {
    std::string data = read_proc_file("/proc/" + std::to_string(pid) + "/environ");
    std::string_view rest = data;
    while (!rest.empty()) {
      auto nul = rest.find('\0');
      auto entry = rest.substr(0, nul);
      if (entry == prefix ||
          (entry.size() > prefix.size() && entry.substr(0, prefix.size()) == prefix &&
           entry[prefix.size()] == '/')) {
        found.push_back(pid);
        break;
      }
      if (nul == std::string_view::npos) break;
      rest.remove_prefix(nul + 1);
    }
  }
  return found;
}

std::string process_name(pid_t pid) {
  std::string name = read_proc_file("/proc/" + std::to_string(pid) + "/comm");
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

pid_t process_group(pid_t pid) {
  auto stat = proc_stat(pid);
  return stat ? stat->pgrp : 0;
}

char process_state(pid_t pid) {
  auto stat = proc_stat(pid);
  return stat ? stat->state : 0;
}

void reset_signals_in_child(int ignored) noexcept {
  struct KernelSigaction {
    void* handler;
    unsigned long flags;
    void* restorer;
    unsigned long mask;
  };
  for (int sig = 1; sig < 65; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    KernelSigaction action{reinterpret_cast<void*>(sig == ignored ? SIG_IGN : SIG_DFL), 0, nullptr,
                           0};
    ::syscall(SYS_rt_sigaction, sig, &action, nullptr, sizeof action.mask);
  }
  unsigned long none = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
}

bool make_child_subreaper() noexcept {
  return ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
}

}  // namespace roadie::detail
