// roadie's demo: start a real Redis server under supervision, wait until it
// says it is ready, talk to it, stop it, and show what roadie saw.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>

#include "roadie/roadie.hpp"

namespace {

// A free loopback port (the stack layer will reserve ports properly).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  try {
    const std::string port = std::to_string(free_port());
    std::printf("roadie demo: starting redis-server on 127.0.0.1:%s\n", port.c_str());
    auto t0 = std::chrono::steady_clock::now();
    roadie::ProcessOptions options;
    options.name = "redis";
    auto redis = roadie::Process::spawn(
        roadie::Command{"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no"},
        options);
    std::printf("  spawned pid %d in %.1f ms\n", redis.pid(), ms_since(t0));

    auto banner = redis.output().wait_for(std::regex("Ready to accept connections"),
                                          roadie::scaled(30s));
    if (!banner) {
      std::printf("demo failed: redis never said it was ready; it %s\n%s",
                  redis.running() ? "is still running" : redis.wait().describe().c_str(),
                  redis.output().excerpt().c_str());
      return 1;
    }
    std::printf("  ready after %.1f ms: \"%s\"\n", ms_since(t0), banner->text.c_str());

    auto ping = roadie::Process::spawn(roadie::Command{"redis-cli", "-p", port, "ping"});
    auto ping_status = ping.wait();
    std::string answer = ping.output().text(roadie::Stream::out);
    std::printf("  redis answered: %s (redis-cli %s)\n", answer.c_str(),
                ping_status.describe().c_str());

    auto t1 = std::chrono::steady_clock::now();
    auto status = redis.stop();
    std::printf("  stopped in %.1f ms: %s\n", ms_since(t1), status.describe().c_str());
    std::printf("  its last lines:\n%s", redis.output().excerpt(4).c_str());
    return answer == "PONG" ? 0 : 1;
  } catch (const roadie::Error& e) {
    std::printf("demo failed: %s\n", e.what());
    return 1;
  }
}
