// Plays a service that daemonizes: double fork and setsid, so the daemon leaves
// the process group it was started in. The daemon writes its pid to PIDFILE
// (atomically, by rename) and runs until a signal ends it.
//
//   child_daemon PIDFILE [--stay] [--keep-stdio] [--hide-env]
//
// --stay: the first process stays alive instead of exiting after the fork.
// --keep-stdio: the daemon keeps the inherited stdout/stderr (by default it
// redirects them to /dev/null, as daemons do).
// --hide-env: the daemon overwrites its environment block (as redis and nginx
// do when they set their process title), so /proc/PID/environ shows no marker.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: child_daemon PIDFILE [--stay] [--keep-stdio]\n");
    return 2;
  }
  std::string pidfile = argv[1];
  bool stay = false;
  bool keep_stdio = false;
  bool hide_env = false;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--stay")) stay = true;
    if (!std::strcmp(argv[i], "--keep-stdio")) keep_stdio = true;
    if (!std::strcmp(argv[i], "--hide-env")) hide_env = true;
  }
  pid_t first = ::fork();
  if (first < 0) return 1;
  if (first == 0) {
    ::setsid();
    pid_t second = ::fork();
    if (second < 0) _exit(1);
    if (second > 0) _exit(0);
    if (hide_env) {
      // The strings of the initial environment lie one after another.
      for (char** e = environ; *e != nullptr; ++e) std::memset(*e, 'x', std::strlen(*e));
    }
    if (!keep_stdio) {
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    std::string tmp = pidfile + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%d\n", ::getpid());
      std::fclose(f);
      std::rename(tmp.c_str(), pidfile.c_str());
    }
    std::printf("daemon %d running\n", ::getpid());
    std::fflush(stdout);
    for (;;) ::pause();
  }
  ::waitpid(first, nullptr, 0);
  std::printf("daemonized\n");
  std::fflush(stdout);
  if (stay) {
    for (;;) ::pause();
  }
  return 0;
}
