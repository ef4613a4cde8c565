// Exits at once: `child_exit CODE` exits with CODE; `child_exit --signal N`
// kills itself with signal N. Prints "exiting" first.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  std::puts("exiting");
  std::fflush(stdout);
  if (argc >= 3 && !std::strcmp(argv[1], "--signal")) {
    int sig = std::atoi(argv[2]);
    std::signal(sig, SIG_DFL);
    ::kill(::getpid(), sig);
    for (;;) ::pause();
  }
  return argc >= 2 ? std::atoi(argv[1]) : 0;
}
