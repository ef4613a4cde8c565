// Plays a service whose leader ignores the stop signal while a member of its
// process group handles it: tells whether a stop reaches the whole group or
// only the leader.
//
//   child_group
//
// The leader ignores SIGTERM and SIGINT and forks a member (same process
// group) that records any catchable stop signal it gets by printing
// "member got signal N" (then exits 0). Once the member's handlers are in
// place the leader prints "member PID ready"; it reaps the member and runs
// until SIGKILL ends it.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace {

void record(int sig) {
  char text[64];
  int n = std::snprintf(text, sizeof text, "member got signal %d\n", sig);
  if (n > 0 && ::write(1, text, static_cast<size_t>(n)) < 0) _exit(3);
  _exit(0);
}

}  // namespace

int main() {
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  int ready[2];
  if (::pipe(ready) != 0) return 1;
  pid_t member = ::fork();
  if (member < 0) return 1;
  if (member == 0) {
    ::close(ready[0]);
    struct sigaction action {};
    action.sa_handler = record;
    ::sigemptyset(&action.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) {
      ::sigaction(sig, &action, nullptr);
    }
    ::close(ready[1]);  // end of file: the handlers are in place
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte;
  while (::read(ready[0], &byte, 1) > 0) {
  }
  ::close(ready[0]);
  std::printf("member %d ready\n", member);
  std::fflush(stdout);
  int status = 0;
  while (::waitpid(member, &status, 0) < 0 && errno == EINTR) {
  }
  std::printf("member ended\n");
  std::fflush(stdout);
  for (;;) ::pause();
}
