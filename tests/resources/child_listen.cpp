// Plays a socket service: after --delay-ms it binds ADDRESS, and after a
// further --listen-after-ms it listens and accepts (closing each connection).
//
//   child_listen tcp:PORT | unix:PATH [--delay-ms D] [--listen-after-ms L] [--stamp]
//
// Prints "bound" once bound and "listening" once listening; with --stamp,
// "listening at NS": CLOCK_MONOTONIC in nanoseconds right after listen().
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

static long long monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: child_listen tcp:PORT|unix:PATH [--delay-ms D] [--listen-after-ms L]\n");
    return 2;
  }
  std::string address = argv[1];
  long delay_ms = 0;
  long listen_after_ms = 0;
  bool stamp = false;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--stamp")) stamp = true;
  }
  for (int i = 2; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--delay-ms"))
      delay_ms = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--listen-after-ms"))
      listen_after_ms = std::atol(argv[++i]);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  int fd = -1;
  if (address.rfind("tcp:", 0) == 0) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + 4)));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::perror("bind");
      return 1;
    }
  } else if (address.rfind("unix:", 0) == 0) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, address.c_str() + 5, sizeof addr.sun_path - 1);
    ::unlink(addr.sun_path);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::perror("bind");
      return 1;
    }
  } else {
    std::fprintf(stderr, "bad address %s\n", address.c_str());
    return 2;
  }
  std::puts("bound");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(listen_after_ms));
  if (::listen(fd, 64) != 0) {
    std::perror("listen");
    return 1;
  }
  if (stamp) {
    std::printf("listening at %lld\n", monotonic_ns());
  } else {
    std::puts("listening");
  }
  std::fflush(stdout);
  for (;;) {
    int client = ::accept(fd, nullptr, nullptr);
    if (client >= 0) ::close(client);
  }
}
