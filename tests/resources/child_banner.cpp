// Plays a service that announces readiness: waits --delay-ms, prints --text on
// stdout (or stderr with --stderr), then runs until a signal ends it. With
// --stamp the line ends with " at NS", CLOCK_MONOTONIC in nanoseconds taken
// just before the write.
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
  long delay_ms = 0;
  std::string text = "ready";
  FILE* stream = stdout;
  bool stamp = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--delay-ms") && i + 1 < argc)
      delay_ms = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--text") && i + 1 < argc)
      text = argv[++i];
    else if (!std::strcmp(argv[i], "--stderr"))
      stream = stderr;
    else if (!std::strcmp(argv[i], "--stamp"))
      stamp = true;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  if (stamp) text += " at " + std::to_string(monotonic_ns());
  std::fprintf(stream, "%s\n", text.c_str());
  std::fflush(stream);
  for (;;) ::pause();
}
