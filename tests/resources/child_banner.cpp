// Plays a service that announces readiness: waits --delay-ms, prints --text on
// stdout (or stderr with --stderr), then runs until a signal ends it.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  long delay_ms = 0;
  std::string text = "ready";
  FILE* stream = stdout;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--delay-ms") && i + 1 < argc)
      delay_ms = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--text") && i + 1 < argc)
      text = argv[++i];
    else if (!std::strcmp(argv[i], "--stderr"))
      stream = stderr;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  std::fprintf(stream, "%s\n", text.c_str());
  std::fflush(stream);
  for (;;) ::pause();
}
