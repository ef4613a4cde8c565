#include "watchdog.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "../log.hpp"
#include "linux.hpp"

namespace roadie::detail {

namespace {

// What the runtime tells the watchdog, one record per write (16 bytes: a
// stream socket delivers them whole and in order).
enum Op : int { kGuard = 1, kGuardLeader = 2, kForget = 3, kBye = 4 };
struct Record {
  int op;
  pid_t pid;
  unsigned long long start;
};
static_assert(sizeof(Record) == 16);

// All the memory the watchdog uses, allocated before the fork: the child of a
// multi-threaded process must not allocate.
struct ChildMemory {
  static constexpr std::size_t kEntries = 16384;
  struct Entry {
    pid_t pid;
    bool leader;  // of its process group: the group is killed too
    unsigned long long start;
  } entries[kEntries];
  std::size_t count = 0;
  pid_t parent = 0;
  char needle[256] = {};  // "ROADIE_SUPERVISOR=<marker>/"
  std::size_t needle_size = 0;
  char environ[64 * 1024];  // environments are read in pieces of this size
  char dirents[32 * 1024];
};

// Raw system calls: the watchdog runs in the child of a multi-threaded fork,
// where only async-signal-safe calls are allowed; these also bypass sanitizer
// interceptors.
long sys_read(int fd, void* buffer, std::size_t size) {
  return ::syscall(SYS_read, fd, buffer, size);
}
int sys_open(const char* path, int flags) {
  return static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC));
}
void sys_close(int fd) {
  ::syscall(SYS_close, fd);
}
void sys_kill(pid_t pid, int sig) {
  ::syscall(SYS_kill, pid, sig);
}
void sys_write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    long n = ::syscall(SYS_write, fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Writes `value` in decimal at `out`; returns the number of characters.
std::size_t put_number(char* out, unsigned long long value) {
  char digits[24];
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  return n;
}

std::size_t put_text(char* out, const char* text) {
  std::size_t n = 0;
  while (text[n] != '\0') {
    out[n] = text[n];
    ++n;
  }
  return n;
}

// "/proc/<pid>/<file>" into `out` (at least 64 bytes).
void proc_path(char* out, pid_t pid, const char* file) {
  std::size_t n = put_text(out, "/proc/");
  n += put_number(out + n, static_cast<unsigned long long>(pid));
  out[n++] = '/';
  n += put_text(out + n, file);
  out[n] = '\0';
}

// Calls `f(number, directory_fd)` for each all-digit name in directory
// `path` (/proc, /proc/self/fd), read with getdents64 into m.dirents.
template <class F>
void for_each_number(const char* path, ChildMemory& m, F&& f) {
  int dir = sys_open(path, O_RDONLY | O_DIRECTORY);
  if (dir < 0) return;
  for (;;) {
    long got = ::syscall(SYS_getdents64, dir, m.dirents, sizeof m.dirents);
    if (got <= 0) break;
    for (long at = 0; at < got;) {
      // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
      const char* record = m.dirents + at;
      unsigned short reclen;
      std::memcpy(&reclen, record + 16, sizeof reclen);
      at += reclen;
      const char* name = record + 19;
      long number = 0;
      bool numeric = name[0] != '\0';
      for (const char* c = name; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9') {
          numeric = false;
          break;
        }
        number = number * 10 + (*c - '0');
      }
      if (numeric) f(number, dir);
    }
  }
  sys_close(dir);
}

// Kills every process whose environment carries the runtime's marker.
unsigned kill_marked(ChildMemory& m) {
  unsigned killed = 0;
  const pid_t self = static_cast<pid_t>(::syscall(SYS_getpid));
  for_each_number("/proc", m, [&](long number, int) {
    const auto pid = static_cast<pid_t>(number);
    if (pid == self) return;
    char path[64];
    proc_path(path, pid, "environ");
    int fd = sys_open(path, O_RDONLY);
    if (fd < 0) return;
    // In pieces, the whole environment: a marker is found wherever it is,
    // behind any amount of other variables.
    EntryPrefixMatcher matcher(m.needle, m.needle_size);
    for (;;) {
      long n = sys_read(fd, m.environ, sizeof m.environ);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || matcher.feed(m.environ, static_cast<std::size_t>(n))) break;
    }
    sys_close(fd);
    if (matcher.found()) {
      sys_kill(pid, SIGKILL);
      ++killed;
    }
  });
  return killed;
}

[[noreturn]] void exit_now(int code) {
  ::syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

// The watchdog process. Leaves the test binary's session (its group's signals
// and terminal do not reach it), keeps only the socket and stderr, follows
// the records, and acts on end of file without a goodbye.
// Closes every descriptor but `keep` and stderr: close_range, or one by one
// from /proc/self/fd where the kernel lacks it.
void close_others(int keep, ChildMemory& m) {
  auto closes = [keep](int fd) { return fd != keep && fd != 2; };
  bool done = true;
  if (keep > 3) done = ::syscall(SYS_close_range, 3U, static_cast<unsigned>(keep - 1), 0U) == 0;
  done = done &&
         ::syscall(SYS_close_range, static_cast<unsigned>(std::max(keep + 1, 3)), ~0U, 0U) == 0;
  for (int fd = 0; fd < 3; ++fd) {
    if (closes(fd)) sys_close(fd);
  }
  if (done) return;
  for_each_number("/proc/self/fd", m, [&](long number, int dir) {
    const int fd = static_cast<int>(number);
    if (fd != dir && closes(fd)) sys_close(fd);
  });
}

[[noreturn]] void watch(int socket, int peer, ChildMemory& m) {
  // The test binary's handlers must not run here (SIGPIPE ignored: stderr
  // may be gone).
  reset_signals_in_child(SIGPIPE);
  ::syscall(SYS_setsid);
  ::syscall(SYS_prctl, PR_SET_NAME, "roadie-watchdog", 0, 0, 0);
  sys_close(peer);  // else we would never see end of file
  close_others(socket, m);

  char buffer[4096];
  std::size_t have = 0;
  for (;;) {
    long n = sys_read(socket, buffer + have, sizeof buffer - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
    std::size_t used = 0;
    while (have - used >= sizeof(Record)) {
      Record r;
      std::memcpy(&r, buffer + used, sizeof r);
      used += sizeof r;
      if (r.op == kBye) exit_now(0);
      if ((r.op == kGuard || r.op == kGuardLeader) && m.count < ChildMemory::kEntries) {
        m.entries[m.count++] = {r.pid, r.op == kGuardLeader, r.start};
      } else if (r.op == kForget) {
        for (std::size_t i = 0; i < m.count; ++i) {
          if (m.entries[i].pid == r.pid) {
            m.entries[i] = m.entries[--m.count];
            break;
          }
        }
      }
    }
    std::memmove(buffer, buffer + used, have - used);
    have -= used;
  }

  // The runtime is gone without a goodbye: its process was killed.
  unsigned killed = 0;
  for (std::size_t i = 0; i < m.count; ++i) {
    const auto& entry = m.entries[i];
    unsigned long long start = 0;
    pid_t pgrp = 0;
    char state = 0;
    const bool found = start_time_of(entry.pid, start, pgrp, state);
    if (found && start != entry.start) continue;  // a stranger has the pid now
    // A group outlives its leader: its members are ours too. The group id
    // cannot have been recycled, as the leader was ours until just now.
    if (entry.leader) sys_kill(-entry.pid, SIGKILL);
    if (found && state != 'Z') {
      sys_kill(entry.pid, SIGKILL);
      ++killed;
    }
  }
  // Descendants never guarded (they kept the marker): twice, for any that a
  // dying parent forked meanwhile.
  killed += kill_marked(m);
  killed += kill_marked(m);
  if (killed > 0) {
    char line[256];
    std::size_t n = put_text(line, "roadie watchdog: process ");
    n += put_number(line + n, static_cast<unsigned long long>(m.parent));
    n += put_text(line + n, " ended without stopping its services; killed ");
    n += put_number(line + n, killed);
    n += put_text(line + n, " process(es) it left\n");
    sys_write_all(2, line, n);
  }
  exit_now(0);
}

// The watchdogs of every runtime in this process: they are our children, but
// no runtime may take one for an orphan of its services.
std::mutex registry_mutex;
std::vector<pid_t>& registry() {
  static std::vector<pid_t> pids;
  return pids;
}

}  // namespace

bool is_watchdog(pid_t pid) {
  std::lock_guard lock(registry_mutex);
  return std::find(registry().begin(), registry().end(), pid) != registry().end();
}

bool start_time_of(pid_t pid, unsigned long long& ticks, pid_t& pgrp, char& state) noexcept {
  char path[64];
  proc_path(path, pid, "stat");
  int fd = sys_open(path, O_RDONLY);
  if (fd < 0) return false;
  char data[1024];
  long size = 0;
  for (;;) {
    long n = sys_read(fd, data + size, sizeof data - 1 - static_cast<std::size_t>(size));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size += n;
    if (size == static_cast<long>(sizeof data - 1)) break;
  }
  sys_close(fd);
  ProcStat stat;
  if (!parse_stat(data, static_cast<std::size_t>(size), stat)) return false;
  ticks = stat.start;
  pgrp = stat.pgrp;
  state = stat.state;
  return true;
}

std::unique_ptr<Watchdog> Watchdog::start(const std::string& marker) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    log().warn("no watchdog (socketpair: {}): a killed test binary may leave daemons running",
               std::strerror(errno));
    return nullptr;
  }
  auto memory = std::make_unique<ChildMemory>();
  const std::string needle = "ROADIE_SUPERVISOR=" + marker + "/";
  memory->needle_size = std::min(needle.size(), sizeof memory->needle);
  std::memcpy(memory->needle, needle.data(), memory->needle_size);
  memory->parent = ::getpid();
  // No signal handler of ours may run in the child before it resets them.
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) watch(fds[1], fds[0], *memory);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(fds[1]);
  if (pid < 0) {
    log().warn("no watchdog (fork: {}): a killed test binary may leave daemons running",
               std::strerror(fork_error));
    ::close(fds[0]);
    return nullptr;
  }
  // Held by a pidfd, so that the final wait can never reap a stranger.
  std::error_code ec;
  const int pidfd = open_pidfd(pid, ec).release();
  {
    std::lock_guard lock(registry_mutex);
    registry().push_back(pid);
  }
  return std::unique_ptr<Watchdog>(new Watchdog(pid, pidfd, fds[0]));
}

Watchdog::~Watchdog() {
  send(kBye, 0, 0);
  ::close(socket_);
  // It exits as soon as it reads the goodbye.
  if (pidfd_ >= 0) {
    siginfo_t info;
    waitid_retry(kPidFdIdType, static_cast<id_t>(pidfd_), info, WEXITED);
    ::close(pidfd_);
  }
  std::lock_guard lock(registry_mutex);
  std::erase(registry(), pid_);
}

void Watchdog::guard(pid_t pid) noexcept {
  unsigned long long start = 0;
  pid_t pgrp = 0;
  char state = 0;
  if (start_time_of(pid, start, pgrp, state)) send(pgrp == pid ? kGuardLeader : kGuard, pid, start);
}

void Watchdog::forget(pid_t pid) noexcept {
  send(kForget, pid, 0);
}

void Watchdog::send(int op, pid_t pid, unsigned long long start) noexcept {
  const Record record{op, pid, start};
  // MSG_NOSIGNAL: a watchdog that was killed is an error here, not SIGPIPE.
  while (::send(socket_, &record, sizeof record, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

}  // namespace roadie::detail
