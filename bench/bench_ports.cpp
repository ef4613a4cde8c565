// PortReservation::reserve + release against the floor it replaces: a bare
// bind to 127.0.0.1:0 (what hand-written free_port() helpers did), measured
// in the same run. Also reserve_exact + release, and reserve while this
// process already holds many ports (the walk past held candidates).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "roadie/ports.hpp"

namespace {

using Clock = std::chrono::steady_clock;

int bare_bind_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

template <class F>
double micros_per(int n, F f) {
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) f();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
}

}  // namespace

int main() {
  constexpr int n = 5000;
  volatile int sink = 0;
  micros_per(200, [&] { sink = sink + bare_bind_port(); });  // warm-up
  const double bare = micros_per(n, [&] { sink = sink + bare_bind_port(); });
  const double reserve = micros_per(n, [] { roadie::PortReservation::reserve("bench").release(); });
  const auto port = roadie::PortReservation::reserve().port();  // released at once
  const double exact =
      micros_per(n, [&] { roadie::PortReservation::reserve_exact(port, "bench").release(); });
  std::vector<roadie::PortReservation> held;
  for (int i = 0; i < 1000; ++i) held.push_back(roadie::PortReservation::reserve());
  const double crowded = micros_per(1000, [] { roadie::PortReservation::reserve().release(); });
  held.clear();
  std::printf("bare bind(127.0.0.1:0)                 %8.2f us\n", bare);
  std::printf("reserve() + release()                  %8.2f us  (%.1fx the bare bind)\n", reserve,
              reserve / bare);
  std::printf("reserve_exact() + release()            %8.2f us  (%.1fx)\n", exact, exact / bare);
  std::printf("reserve() + release(), 1000 held here  %8.2f us  (%.1fx)\n", crowded,
              crowded / bare);
  return 0;
}
