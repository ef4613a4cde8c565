// Plays a service that announces readiness with a pid file: after --delay-ms
// it writes its pid to PATH and runs until a signal ends it (removing the file
// on SIGTERM, as well-behaved daemons do). With --stamp it then prints
// "written at NS": CLOCK_MONOTONIC in nanoseconds right after the rename.
//
//   child_pidfile PATH [--delay-ms D] [--stamp]
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

static const char* pidfile = nullptr;

static void on_term(int) {
  ::unlink(pidfile);
  _exit(0);
}

static long long monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: child_pidfile PATH [--delay-ms D] [--stamp]\n");
    return 2;
  }
  pidfile = argv[1];
  long delay_ms = 0;
  bool stamp = false;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--delay-ms") && i + 1 < argc)
      delay_ms = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--stamp"))
      stamp = true;
  }
  std::signal(SIGTERM, on_term);
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  std::string tmp = std::string(pidfile) + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return 1;
  std::fprintf(f, "%d\n", ::getpid());
  std::fclose(f);
  std::rename(tmp.c_str(), pidfile);
  if (stamp) {
    const long long at = monotonic_ns();
    std::printf("written at %lld\n", at);
    std::fflush(stdout);
  }
  for (;;) ::pause();
}
