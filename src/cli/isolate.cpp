#include "isolate.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace roadie::cli {
namespace {

bool write_file(const char* path, const std::string& text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

std::size_t thread_count() {
  std::size_t count = 0;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/task", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++count;
  }
  return count;
}

// A fresh namespace has `lo` down: no loopback address answers until it is up.
std::string bring_loopback_up() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  std::string failure;
  if (::ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
    failure = std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
  } else {
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(fd, SIOCSIFFLAGS, &request) != 0) {
      failure = std::string("SIOCSIFFLAGS lo: ") + std::strerror(errno);
    }
  }
  ::close(fd);
  return failure;
}

}  // namespace

std::string enter_private_network() {
  if (const std::size_t threads = thread_count(); threads > 1) {
    // A bug of ours, not the user's: the other threads would stay outside.
    return "internal error: " + std::to_string(threads) +
           " threads exist already; the namespace must be entered before any";
  }
  std::string tried;
  if (::geteuid() == 0) {
    if (::unshare(CLONE_NEWNET) == 0) {
      const std::string failure = bring_loopback_up();
      return failure.empty() ? "" : "the loopback of the new namespace: " + failure;
    }
    tried = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + "; ";
  }
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
    tried += std::string("unshare(CLONE_NEWUSER | CLONE_NEWNET): ") + std::strerror(errno);
    return "cannot create a private network namespace (" + tried +
           "). Run roadie as root (in a container: with CAP_SYS_ADMIN, e.g. docker run "
           "--cap-add SYS_ADMIN), or allow unprivileged user namespaces (sysctl "
           "kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0); or run without "
           "--isolate (and without 'isolate: network'), giving the services reserved ports "
           "(ports: [NAME]) instead of fixed ones";
  }
  // The same ids inside as outside: files keep their owners. setgroups must
  // be denied before an unprivileged process may write gid_map.
  write_file("/proc/self/setgroups", "deny");
  if (!write_file("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1") ||
      !write_file("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1")) {
    return std::string("cannot map the user and group ids into the new user namespace: ") +
           std::strerror(errno);
  }
  const std::string failure = bring_loopback_up();
  return failure.empty() ? "" : "the loopback of the new namespace: " + failure;
}

}  // namespace roadie::cli
