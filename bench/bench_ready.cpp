// Readiness benchmark. For a child that becomes ready at a known moment (it
// prints its clock at the event: the banner, bind, rename of the pid file,
// its HTTP serving loop starting), the delay from that moment to
// Executor::start() returning, per check kind, as median and p95; next to the
// floor measured in the same run: the same child under a bare fork/exec,
// detected by a tight loop (connect, stat, HTTP GET) or a blocking read. On
// two cores a tight HTTP loop competes with the starting server, so roadie's
// backed-off probes can come out level with that floor.
// Also: Executor::stop() of a cooperative service.
//
// Usage: bench_ready [--quick]
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "roadie/executor.hpp"
#include "roadie/ports.hpp"

namespace {

std::string child() {
  return std::string(ROADIE_BENCH_DIR) + "/bench_ready_child";
}

long long now_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<long long>(t.tv_sec) * 1'000'000'000LL + t.tv_nsec;
}

struct Stats {
  double median, p95;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[static_cast<std::size_t>(q * double(v.size() - 1))]; };
  return {at(0.5), at(0.95)};
}

long long parse_stamp(const std::string& text) {
  auto pos = text.find("T=");
  return pos == std::string::npos ? 0 : std::atoll(text.c_str() + pos + 2);
}

// The bare floor: fork/exec the child with stdout on a pipe, wait with
// `detect` (a tight loop), take the clock, read the child's stamp, kill it.
// `detect` may read the child's stdout (it gets the descriptor and the text
// read so far).
double bare(const std::vector<std::string>& args,
            const std::function<void(int fd, std::string& text)>& detect) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) std::abort();
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(out[1]);
  std::string text;
  detect(out[0], text);
  long long detected = now_ns();
  char buf[256];
  while (text.find('\n', text.find("T=")) == std::string::npos) {
    auto n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(out[0]);
  return double(detected - parse_stamp(text)) / 1000.0;
}

double ours(const std::vector<std::string>& args, roadie::ReadinessCheck check) {
  roadie::Executor e(roadie::Command(args), std::move(check));
  e.start();
  long long ready = now_ns();
  auto line = e.output().wait_for("T=\\d+", std::chrono::seconds(10));
  double delay = double(ready - parse_stamp(line ? line->text : "")) / 1000.0;
  e.kill();
  return delay;
}

bool connect_once(const sockaddr* addr, socklen_t len, int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = ::connect(fd, addr, len) == 0;
  ::close(fd);
  return ok;
}

void report(const char* kind, std::vector<double> floor, std::vector<double> mine) {
  auto f = stats(std::move(floor)), m = stats(std::move(mine));
  std::printf(
      "%-8s floor median %6.0f us p95 %6.0f us | roadie median %6.0f us p95 %6.0f us"
      " | over floor %+6.0f us (targets: median <= 2000, p95 <= 5000)\n",
      kind, f.median, f.p95, m.median, m.p95, m.median - f.median);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int runs = quick ? 20 : 100;
  std::printf(
      "roadie readiness benchmark (%s run, %d runs per kind); floors measured in this run\n",
      quick ? "quick" : "full", runs);
  auto dir =
      std::filesystem::temp_directory_path() / ("roadie-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);

  {  // banner: blocking read of the pipe
    std::vector<double> floor, mine;
    for (int i = 0; i < runs; ++i) {
      floor.push_back(bare({child(), "banner"}, [](int fd, std::string& text) {
        char buf[256];
        while (text.find('\n') == std::string::npos) {  // blocking read of the banner
          auto n = ::read(fd, buf, sizeof buf);
          if (n <= 0) break;
          text.append(buf, static_cast<std::size_t>(n));
        }
      }));
      mine.push_back(ours({child(), "banner"}, roadie::ready::banner("^ready T=")));
    }
    report("banner", floor, mine);
  }
  {  // tcp
    std::vector<double> floor, mine;
    for (int i = 0; i < runs; ++i) {
      auto reserved = roadie::PortReservation::reserve("bench");
      auto port = reserved.port().value();
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      floor.push_back(bare({child(), "tcp", std::to_string(port)}, [&](int, std::string&) {
        while (!connect_once(reinterpret_cast<sockaddr*>(&a), sizeof a, AF_INET)) {
        }
      }));
      reserved = roadie::PortReservation::reserve("bench");
      port = reserved.port().value();
      mine.push_back(
          ours({child(), "tcp", std::to_string(port)}, roadie::ready::tcp("127.0.0.1", port)));
    }
    report("tcp", floor, mine);
  }
  {  // unix socket
    std::vector<double> floor, mine;
    for (int i = 0; i < runs; ++i) {
      auto path = (dir / ("s" + std::to_string(i))).string();
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
      floor.push_back(bare({child(), "unix", path}, [&](int, std::string&) {
        while (!connect_once(reinterpret_cast<sockaddr*>(&a), sizeof a, AF_UNIX)) {
        }
      }));
      std::filesystem::remove(path);
      mine.push_back(ours({child(), "unix", path}, roadie::ready::unix_socket(path)));
      std::filesystem::remove(path);
    }
    report("unix", floor, mine);
  }
  {  // pid file
    std::vector<double> floor, mine;
    for (int i = 0; i < runs; ++i) {
      auto path = (dir / ("p" + std::to_string(i) + ".pid")).string();
      floor.push_back(bare({child(), "pidfile", path}, [&](int, std::string&) {
        struct stat st {};
        while (::stat(path.c_str(), &st) != 0) {
        }
      }));
      std::filesystem::remove(path);
      mine.push_back(ours({child(), "pidfile", path}, roadie::ready::pid_file(path)));
      std::filesystem::remove(path);
    }
    report("pidfile", floor, mine);
  }
  {  // http
    std::vector<double> floor, mine;
    for (int i = 0; i < runs; ++i) {
      auto reserved = roadie::PortReservation::reserve("bench");
      auto port = reserved.port().value();
      floor.push_back(bare({child(), "http", std::to_string(port)}, [&](int, std::string&) {
        httplib::Client client("127.0.0.1", port);
        client.set_connection_timeout(std::chrono::milliseconds(100));
        for (;;) {
          auto res = client.Get("/");
          if (res && res->status == 200) break;
        }
      }));
      reserved = roadie::PortReservation::reserve("bench");
      port = reserved.port().value();
      mine.push_back(ours({child(), "http", std::to_string(port)},
                          roadie::ready::http("http://127.0.0.1:" + std::to_string(port) + "/")));
    }
    report("http", floor, mine);
  }
  {  // cooperative stop
    std::vector<double> stops;
    for (int i = 0; i < runs; ++i) {
      roadie::Executor e(roadie::Command{child(), "banner", "--delay-ms", "0"},
                         roadie::ready::banner("ready"));
      e.start();
      auto t0 = std::chrono::steady_clock::now();
      e.stop();
      stops.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    auto s = stats(stops);
    std::printf(
        "stop     cooperative service (SIGTERM)      median %7.0f us p95 %7.0f us (target <= "
        "5000)\n",
        s.median, s.p95);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
