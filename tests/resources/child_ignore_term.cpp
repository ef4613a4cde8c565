// Plays a service that ignores the polite stop signal: only SIGKILL ends it.
#include <unistd.h>

#include <csignal>
#include <cstdio>

int main() {
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  std::puts("ignoring SIGTERM");
  std::fflush(stdout);
  for (;;) ::pause();
}
