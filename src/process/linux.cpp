#include "linux.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace roadie::detail {

namespace {

[[noreturn]] void throw_shortage(int error, const std::string& what) {
  throw std::system_error(error, std::system_category(), what);
}

// Reads a /proc file whole. No value when the process (or the file) is gone;
// a shortage of descriptors or memory is thrown, never taken for "gone".
std::optional<std::string> read_proc_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (is_resource_shortage(errno)) throw_shortage(errno, "cannot read " + path);
    return std::nullopt;
  }
  UniqueFd owned(fd);
  std::string data;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return data;
    } else if (errno != EINTR) {
      if (is_resource_shortage(errno)) throw_shortage(errno, "cannot read " + path);
      return data.empty() ? std::nullopt : std::optional<std::string>(std::move(data));
    }
  }
}

std::string proc_path(pid_t pid, const char* file) {
  return "/proc/" + std::to_string(pid) + "/" + file;
}

// The all-digit names of a /proc directory.
std::vector<pid_t> numeric_entries(const char* path) {
  std::vector<pid_t> numbers;
  DIR* dir = ::opendir(path);
  if (dir == nullptr) {
    if (is_resource_shortage(errno)) throw_shortage(errno, std::string("cannot list ") + path);
    return numbers;
  }
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long n = std::strtol(e->d_name, &end, 10);
    if (*end == '\0' && n > 0) numbers.push_back(static_cast<pid_t>(n));
  }
  ::closedir(dir);
  return numbers;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

bool is_resource_shortage(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOMEM || error == ENOBUFS;
}

UniqueFd open_pidfd(pid_t pid, std::error_code& ec) noexcept {
  // Direct system call: glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
  if (fd < 0) {
    ec = std::error_code(errno, std::system_category());
    return UniqueFd();
  }
  ec.clear();
  return UniqueFd(fd);
}

int waitid_retry(idtype_t type, id_t id, siginfo_t& info, int flags) noexcept {
  info = siginfo_t{};
  while (::waitid(type, id, &info, flags) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

std::error_code send_signal(int pidfd, int signal) noexcept {
  if (::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0U) == 0) return {};
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
  siginfo_t info;
  if (waitid_retry(kPidFdIdType, static_cast<id_t>(pidfd), info, WEXITED | WNOWAIT | WNOHANG) !=
      0) {
    return {ChildState::not_ours};
  }
  auto status = to_status(info);
  if (!status) return {ChildState::running};
  return {ChildState::exited, *status};
}

std::optional<ExitStatus> reap_pidfd(int pidfd, bool block) noexcept {
  siginfo_t info;
  if (waitid_retry(kPidFdIdType, static_cast<id_t>(pidfd), info, WEXITED | (block ? 0 : WNOHANG)) !=
      0) {
    return std::nullopt;
  }
  return to_status(info);
}

std::optional<ExitStatus> reap(pid_t pid, bool block) noexcept {
  siginfo_t info;
  if (waitid_retry(P_PID, static_cast<id_t>(pid), info, WEXITED | (block ? 0 : WNOHANG)) != 0) {
    return std::nullopt;
  }
  return to_status(info);
}

bool parse_stat(const char* data, std::size_t size, ProcStat& stat) noexcept {
  // The command name may hold spaces and parentheses: fields start after the
  // last ')'. Then: state (3), ppid (4), pgrp (5), session (6), ..., starttime (22).
  std::size_t at = size;
  while (at > 0 && data[at - 1] != ')') --at;
  if (at == 0) return false;
  int field = 2;
  unsigned long long value = 0;
  bool in_field = false;
  for (std::size_t i = at; i < size; ++i) {
    const char c = data[i];
    if (c == ' ' || c == '\n') {
      if (in_field) {
        switch (field) {
          case 4: stat.ppid = static_cast<pid_t>(value); break;
          case 5: stat.pgrp = static_cast<pid_t>(value); break;
          case 6: stat.session = static_cast<pid_t>(value); break;
          case 22: stat.start = value; return true;
          default: break;
        }
      }
      in_field = false;
      continue;
    }
    if (!in_field) {
      in_field = true;
      ++field;
      value = 0;
      if (field == 3) stat.state = c;
    }
    if (c >= '0' && c <= '9') value = value * 10 + static_cast<unsigned long long>(c - '0');
  }
  return false;
}

std::optional<ProcStat> proc_stat(pid_t pid) {
  auto data = read_proc_file(proc_path(pid, "stat"));
  ProcStat stat;
  if (!data || !parse_stat(data->data(), data->size(), stat)) return std::nullopt;
  return stat;
}

unsigned long long ticks_now() noexcept {
  static const auto hz = static_cast<unsigned long long>(::sysconf(_SC_CLK_TCK));
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<unsigned long long>(now.tv_sec) * hz +
         static_cast<unsigned long long>(now.tv_nsec) / (1'000'000'000ULL / hz);
}

bool EntryPrefixMatcher::feed(const char* data, std::size_t size) noexcept {
  for (std::size_t i = 0; i < size && !found_; ++i) {
    const char c = data[i];
    if (c == '\0') {  // the next entry starts
      matched_ = 0;
      in_entry_ = false;
      continue;
    }
    if (in_entry_) continue;
    if (c == needle_[matched_]) {
      if (++matched_ == size_) found_ = true;
    } else {
      in_entry_ = true;  // this entry does not start with the needle
    }
  }
  return found_;
}

std::string environ_value(pid_t pid, std::string_view variable) {
  auto data = read_proc_file(proc_path(pid, "environ"));
  if (!data) return {};
  std::string value;
  for_each_entry(*data, [&](std::string_view entry) {
    if (entry.size() > variable.size() && entry.substr(0, variable.size()) == variable &&
        entry[variable.size()] == '=') {
      value = entry.substr(variable.size() + 1);
      return true;
    }
    return false;
  });
  return value;
}

std::vector<pid_t> all_pids() {
  return numeric_entries("/proc");
}

std::vector<pid_t> own_children() {
  std::vector<pid_t> children;
  for (pid_t task : numeric_entries("/proc/self/task")) {
    auto data = read_proc_file("/proc/self/task/" + std::to_string(task) + "/children");
    if (!data) continue;  // the thread ended
    const char* p = data->c_str();
    char* end = nullptr;
    for (long pid = std::strtol(p, &end, 10); end != p; pid = std::strtol(p, &end, 10)) {
      children.push_back(static_cast<pid_t>(pid));
      p = end;
    }
  }
  std::sort(children.begin(), children.end());
  children.erase(std::unique(children.begin(), children.end()), children.end());
  return children;
}

bool is_attributed(pid_t pid, pid_t pgid, std::string_view marker_entry) {
  auto stat = proc_stat(pid);
  if (!stat) return false;
  if (stat->pgrp == pgid) return true;
  const auto eq = marker_entry.find('=');
  if (eq == std::string_view::npos) return false;
  return environ_value(pid, marker_entry.substr(0, eq)) == marker_entry.substr(eq + 1);
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

std::string process_name(pid_t pid) {
  std::string name = read_proc_file(proc_path(pid, "comm")).value_or("");
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
