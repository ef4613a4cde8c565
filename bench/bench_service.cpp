// The service the bring-up benchmark starts: waits --delay-ms, prints "ready",
// then runs until a signal ends it. Only libc calls and linked statically, so
// that its own start-up (exec, loading) is as small as this machine allows;
// the benchmark measures that start-up floor in the same run and reports it.
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long delay_ms = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (strcmp(argv[i], "--delay-ms") == 0) delay_ms = atol(argv[i + 1]);
  }
  timespec delay{delay_ms / 1000, (delay_ms % 1000) * 1'000'000L};
  while (nanosleep(&delay, &delay) != 0) {
  }
  static const char kReady[] = "ready\n";
  if (write(1, kReady, sizeof kReady - 1) < 0) return 1;
  for (;;) pause();
}
