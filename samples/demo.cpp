// roadie's demo: start a real Redis server under supervision, wait until it is
// really ready (its port accepts and `redis-cli ping` answers), talk to it,
// stop it for a moment and bring it back, stop it, and show what roadie saw.

#include <chrono>
#include <cstdio>
#include <string>

#include "roadie/ports.hpp"
#include "roadie/roadie.hpp"

namespace {

std::string ask(std::uint16_t port, const std::string& command) {
  auto cli =
      roadie::Process::spawn(roadie::Command{"redis-cli", "-p", std::to_string(port), command});
  cli.wait();
  return cli.output().text(roadie::Stream::out);
}

double ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

int main() {
  try {
    const auto reserved = roadie::PortReservation::reserve("redis");
    const auto port = reserved.port().value();
    const std::string p = std::to_string(port);
    roadie::ExecutorOptions options;
    options.name = "redis";
    roadie::Executor redis(
        roadie::Command{"redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no"},
        roadie::ready::all_of({roadie::ready::tcp("127.0.0.1", port),
                               roadie::ready::exec(roadie::Command{"redis-cli", "-p", p, "ping"})}),
        options);

    std::printf("roadie demo: starting %s\n  ready when: %s\n", redis.describe().c_str(),
                redis.check().describe().c_str());
    redis.start();
    std::printf("  ready in %.1f ms (pid %d)\n", ms(redis.time_to_ready()), redis.pid());
    std::printf("  redis answered: %s\n", ask(port, "PING").c_str());

    {
      auto down = redis.stopped();
      std::printf("  inside stopped(): running=%s, redis-cli says: %s\n",
                  redis.running() ? "yes" : "no",
                  ask(port, "PING").empty() ? "(nothing, connection refused)" : "something?");
    }
    std::printf("  back after stopped(): ready again in %.1f ms (pid %d), answers %s\n",
                ms(redis.time_to_ready()), redis.pid(), ask(port, "PING").c_str());

    auto t0 = std::chrono::steady_clock::now();
    redis.stop();
    std::printf("  stopped in %.1f ms: %s\n", ms(std::chrono::steady_clock::now() - t0),
                redis.exit_status()->describe().c_str());
    std::printf("  its last lines:\n%s", redis.output().excerpt(3).c_str());
    return 0;
  } catch (const roadie::Error& e) {
    std::printf("demo failed: %s\n", e.what());
    return 1;
  }
}
