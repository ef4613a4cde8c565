// Prints "ready", then for each SIGUSR1 (trigger T, counting from 1) prints
// LINES lines "trigger T line K", even K on stdout and odd K on stderr, and
// then "trigger T done" on both streams (a reader that saw both has every line
// of the trigger). Runs until SIGTERM. Usage: child_trigger [LINES]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const long lines = argc >= 2 ? std::atol(argv[1]) : 1;
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGUSR1);
  sigprocmask(SIG_BLOCK, &wanted, nullptr);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("ready\n");
  for (long trigger = 1;; ++trigger) {
    int signal = 0;
    if (sigwait(&wanted, &signal) != 0) return 2;
    for (long k = 0; k < lines; ++k) {
      std::fprintf(k % 2 == 0 ? stdout : stderr, "trigger %ld line %ld\n", trigger, k);
    }
    std::printf("trigger %ld done\n", trigger);
    std::fprintf(stderr, "trigger %ld done\n", trigger);
  }
}
