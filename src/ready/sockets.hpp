// Private: bounded, non-blocking connection attempts for the socket probes.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace roadie::detail {

struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
  int family = 0;
};

/// Resolves host:port (numeric hosts without a DNS query). Throws roadie::Error
/// naming the host when it cannot be resolved.
std::vector<Endpoint> resolve_tcp(const std::string& host, std::uint16_t port);
Endpoint unix_endpoint(const std::string& path);

/// Connects and closes at once. True when the peer accepted by `deadline`
/// (an attempt gets at least 10 ms, so one made at the deadline still counts);
/// otherwise `failure` says what was seen ("connection refused", "timed out").
bool try_connect(const Endpoint& endpoint, std::chrono::steady_clock::time_point deadline,
                 std::string& failure);

}  // namespace roadie::detail
