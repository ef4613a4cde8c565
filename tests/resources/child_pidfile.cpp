// Plays a service that announces readiness with a pid file: after --delay-ms
// it writes its pid to PATH and runs until a signal ends it (removing the file
// on SIGTERM, as well-behaved daemons do).
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

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: child_pidfile PATH [--delay-ms D]\n");
    return 2;
  }
  pidfile = argv[1];
  long delay_ms = argc >= 4 && !std::strcmp(argv[2], "--delay-ms") ? std::atol(argv[3]) : 0;
  std::signal(SIGTERM, on_term);
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  std::string tmp = std::string(pidfile) + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return 1;
  std::fprintf(f, "%d\n", ::getpid());
  std::fclose(f);
  std::rename(tmp.c_str(), pidfile);
  for (;;) ::pause();
}
