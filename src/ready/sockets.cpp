#include "sockets.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "roadie/error.hpp"

namespace roadie::detail {

namespace {
constexpr std::chrono::milliseconds kMinimumAttempt{10};
// poll() takes an int of milliseconds: a farther deadline (a huge start
// timeout) waits this long per call instead of wrapping to a negative timeout.
constexpr std::chrono::milliseconds kLongestPoll{std::numeric_limits<int>::max()};
}  // namespace

std::vector<Endpoint> resolve_tcp(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rc != 0) throw Error("cannot resolve host '" + host + "': " + ::gai_strerror(rc));
  std::vector<Endpoint> endpoints;
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    Endpoint e;
    std::memcpy(&e.address, a->ai_addr, a->ai_addrlen);
    e.length = a->ai_addrlen;
    e.family = a->ai_family;
    endpoints.push_back(e);
  }
  ::freeaddrinfo(list);
  return endpoints;
}

Endpoint unix_endpoint(const std::string& path) {
  Endpoint e;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    throw Error("unix socket path too long (" + std::to_string(path.size()) + " bytes): " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  std::memcpy(&e.address, &addr, sizeof addr);
  e.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  e.family = AF_UNIX;
  return e;
}

bool try_connect(const Endpoint& endpoint, std::chrono::steady_clock::time_point deadline,
                 std::string& failure) {
  int fd = ::socket(endpoint.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    failure = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  bool connected = false;
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.length);
  if (rc == 0) {
    connected = true;
  } else if (errno == EINPROGRESS || errno == EAGAIN) {
    for (;;) {
      // Even a refused loopback connection completes asynchronously: give every
      // attempt a little time, even one made at the deadline.
      auto left = std::clamp(
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()),
          kMinimumAttempt, kLongestPoll);
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failure = "timed out connecting";
        break;
      }
      int error = 0;
      socklen_t len = sizeof error;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
      if (error == 0) {
        connected = true;
      } else {
        failure = std::strerror(error);
      }
      break;
    }
  } else {
    failure = std::strerror(errno);
  }
  ::close(fd);
  if (connected) failure.clear();
  return connected;
}

}  // namespace roadie::detail
