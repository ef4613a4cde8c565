// A reset request (`reset: {tcp, send, expect}`): one exchange on a fresh
// connection, bounded by the request's timeout.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "../ready/pattern.hpp"
#include "../ready/sockets.hpp"
#include "roadie/error.hpp"
#include "roadie/stack.hpp"

namespace roadie {
namespace {

using Clock = std::chrono::steady_clock;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 60'000));
}

// Waits for `events` on fd until the deadline; false on timeout. (One poll
// waits at most a minute: a longer deadline takes several.)
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    const int n = ::poll(&entry, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
    if (Clock::now() >= deadline) return false;
  }
}

// What was received, for a message: printable, at most 200 bytes.
std::string shown(const std::string& received) {
  std::string text;
  for (char c : received.substr(0, 200)) {
    if (c == '\r') {
      text += "\\r";
    } else if (c == '\n') {
      text += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      text += '?';
    } else {
      text += c;
    }
  }
  if (received.size() > 200) text += "...";
  return "\"" + text + "\"";
}

}  // namespace

void run_reset_request(const ServiceSpec::ResetRequest& request, std::string_view service) {
  const std::string what = "the reset of service '" + std::string(service) + "' (tcp " +
                           request.host + ":" + request.port + ")";
  const auto pattern = detail::compile_pattern(request.expect, "reset expect");
  int port = 0;
  try {
    port = std::stoi(request.port);
  } catch (const std::exception&) {
    throw Error(what + ": the port is not a number (was the spec substituted?)");
  }
  if (port < 1 || port > 65535) throw Error(what + ": no such port");
  const auto deadline = Clock::now() + request.timeout;
  const auto endpoints = detail::resolve_tcp(request.host, static_cast<std::uint16_t>(port));
  if (endpoints.empty()) throw Error(what + ": the host resolves to nothing");
  const detail::Endpoint& endpoint = endpoints.front();
  Socket socket(::socket(endpoint.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (socket.get() < 0) throw Error(what + ": socket: " + std::strerror(errno));
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&endpoint.address),
                endpoint.length) != 0) {
    if (errno != EINPROGRESS) throw Error(what + ": cannot connect: " + std::strerror(errno));
    if (!wait_for(socket.get(), POLLOUT, deadline)) throw Error(what + ": connecting timed out");
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) throw Error(what + ": cannot connect: " + std::strerror(error));
  }
  std::size_t sent = 0;
  while (sent < request.send.size()) {
    const ssize_t n = ::send(socket.get(), request.send.data() + sent, request.send.size() - sent,
                             MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(socket.get(), POLLOUT, deadline)) throw Error(what + ": sending timed out");
    } else {
      throw Error(what + ": cannot send: " + std::strerror(errno));
    }
  }
  std::string received;
  char buffer[4096];
  for (;;) {
    if (detail::search(*pattern, received)) return;
    if (received.size() > 1024 * 1024) {
      throw Error(what + ": 1 MiB of reply and no match for " + request.expect);
    }
    if (!wait_for(socket.get(), POLLIN, deadline)) {
      throw Error(what + ": no reply matching " + request.expect + " within " +
                  std::to_string(request.timeout.count()) + " ms; received " + shown(received));
    }
    const ssize_t n = ::recv(socket.get(), buffer, sizeof buffer, 0);
    if (n > 0) {
      received.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno == ECONNRESET) {  // an end or a reset: the peer closed
      throw Error(what + ": the connection closed before a reply matching " + request.expect +
                  "; received " + shown(received));
    } else if (errno != EAGAIN && errno != EINTR) {
      throw Error(what + ": cannot receive: " + std::strerror(errno));
    }
  }
}

}  // namespace roadie
