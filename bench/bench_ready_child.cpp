// A service for the readiness benchmark: after --delay-ms it becomes ready in
// one way, taking the clock (CLOCK_MONOTONIC, ns) at that moment and printing
// "T=<ns>":
//
//   bench_ready_child banner|tcp PORT|unix PATH|pidfile PATH|http PORT [--delay-ms D]
//
// For `banner` the printed line is itself the banner.
#include <httplib.h>
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

static long long now_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<long long>(t.tv_sec) * 1'000'000'000LL + t.tv_nsec;
}

static void stamp() {
  std::printf("T=%lld\n", now_ns());
  std::fflush(stdout);
}

static void serve_forever(int fd) {
  ::listen(fd, 128);
  for (;;) {
    int c = ::accept(fd, nullptr, nullptr);
    if (c >= 0) ::close(c);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string mode = argv[1];
  std::string arg = argc > 2 ? argv[2] : "";
  long delay_ms = 20;
  for (int i = 2; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--delay-ms")) delay_ms = std::atol(argv[i + 1]);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  if (mode == "banner") {
    std::printf("ready T=%lld\n", now_ns());
    std::fflush(stdout);
    for (;;) ::pause();
  }
  if (mode == "tcp") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(std::atoi(arg.c_str())));
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    stamp();
    serve_forever(fd);
  }
  if (mode == "unix") {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, arg.c_str(), sizeof a.sun_path - 1);
    ::unlink(a.sun_path);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    stamp();
    serve_forever(fd);
  }
  if (mode == "pidfile") {
    std::string tmp = arg + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    std::fprintf(f, "%d\n", ::getpid());
    std::fclose(f);
    stamp();
    std::rename(tmp.c_str(), arg.c_str());
    for (;;) ::pause();
  }
  if (mode == "http") {
    httplib::Server server;
    server.Get(".*", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
    // The moment it answers HTTP is when its serving loop starts, not when
    // its socket listens: between the two, httplib starts its worker pool
    // (8 or more threads by default, ~2.5 ms on a 2-core VM), a lag of the
    // service's own. One worker keeps that lag small, and the stamp is taken
    // when the server says it runs.
    server.new_task_queue = [] { return new httplib::ThreadPool(1); };
    if (!server.bind_to_port("127.0.0.1", std::atoi(arg.c_str()))) return 1;
    std::thread serving([&] { server.listen_after_bind(); });
    while (!server.is_running()) {
    }
    stamp();
    serving.join();
  }
  return 2;
}
