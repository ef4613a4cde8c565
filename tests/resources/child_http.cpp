// Plays an HTTP service with cpp-httplib.
//
//   child_http PORT [--delay-ms D] [--status CODE] [--require-header NAME:VALUE] [--hang]
//              [--stamp]
//
// After --delay-ms it listens on 127.0.0.1:PORT. GET and HEAD on any path
// answer --status (default 200); POST answers --status when the body is
// "ping", 400 otherwise. With --require-header, requests without that header
// get 401. With --hang it accepts connections but never answers. With --stamp
// it prints "serving at NS" (CLOCK_MONOTONIC in nanoseconds) once its socket
// listens, right before its serving loop starts.
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
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
    std::fprintf(
        stderr,
        "usage: child_http PORT [--delay-ms D] [--status CODE] [--require-header N:V] [--hang]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  long delay_ms = 0;
  int status = 200;
  bool hang = false;
  bool stamp = false;
  std::string header_name, header_value;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--delay-ms") && i + 1 < argc)
      delay_ms = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--status") && i + 1 < argc)
      status = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--hang"))
      hang = true;
    else if (!std::strcmp(argv[i], "--stamp"))
      stamp = true;
    else if (!std::strcmp(argv[i], "--require-header") && i + 1 < argc) {
      std::string spec = argv[++i];
      auto colon = spec.find(':');
      header_name = spec.substr(0, colon);
      header_value = spec.substr(colon + 1);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  if (hang) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
      std::perror("listen");
      return 1;
    }
    std::puts("hanging");
    std::fflush(stdout);
    for (;;) ::accept(fd, nullptr, nullptr);  // accepted, never answered, never closed
  }
  httplib::Server server;
  auto authorised = [&](const httplib::Request& req, httplib::Response& res) {
    if (header_name.empty() || req.get_header_value(header_name) == header_value) return true;
    res.status = 401;
    return false;
  };
  auto answer = [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) return;
    res.status = status;
    res.set_content("hello\n", "text/plain");
  };
  server.Get(".*", answer);
  server.Post(".*", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) return;
    res.status = req.body == "ping" ? status : 400;
  });
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  if (!stamp) {
    if (!server.listen("127.0.0.1", port)) {
      std::perror("listen");
      return 1;
    }
    return 0;
  }
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::perror("bind");
    return 1;
  }
  std::printf("serving at %lld\n", monotonic_ns());
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}
