// roadie's stack demo: a small stack of real services brought up in parallel by
// a Scheduler (redis, a seed job that writes to it, and nginx serving a page),
// checked, listed, and torn down in reverse dependency order.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "roadie/ports.hpp"
#include "roadie/roadie.hpp"

namespace {

std::string run(roadie::Command command) {
  auto p = roadie::Process::spawn(command);
  auto status = p.wait();
  if (!status.success()) {
    throw roadie::Error("`" + command.display() + "` " + status.describe() + "\n" +
                        p.output().excerpt());
  }
  return p.output().text(roadie::Stream::out);
}

// nginx in the foreground, everything under `dir`, serving `dir`/www.
std::filesystem::path write_nginx_config(const std::filesystem::path& dir, std::uint16_t port) {
  std::filesystem::create_directories(dir / "www");
  std::ofstream(dir / "www" / "health") << "ok\n";
  auto conf = dir / "nginx.conf";
  std::ofstream(conf) << "daemon off;\nworker_processes 1;\npid " << (dir / "nginx.pid").string()
                      << ";\nerror_log stderr notice;\nevents { worker_connections 64; }\n"
                      << "http {\n  access_log off;\n  client_body_temp_path "
                      << (dir / "tmp").string() << ";\n  proxy_temp_path " << (dir / "tmp").string()
                      << ";\n  fastcgi_temp_path " << (dir / "tmp").string()
                      << ";\n  uwsgi_temp_path " << (dir / "tmp").string() << ";\n  scgi_temp_path "
                      << (dir / "tmp").string() << ";\n  server {\n    listen 127.0.0.1:" << port
                      << ";\n    root " << (dir / "www").string() << ";\n  }\n}\n";
  return conf;
}

}  // namespace

int main() {
  namespace ready = roadie::ready;
  auto dir =
      std::filesystem::temp_directory_path() / ("roadie-stack-demo-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  int rc = 1;
  try {
    const auto redis_reservation = roadie::PortReservation::reserve("redis");
    const auto redis_port = redis_reservation.port().value();
    const auto web_reservation = roadie::PortReservation::reserve("web");
    const auto web_port = web_reservation.port().value();
    const std::string rp = std::to_string(redis_port);

    roadie::Scheduler stack({.label = "demo stack", .timeout = std::chrono::seconds(60)});
    roadie::ExecutorOptions redis_options;
    redis_options.name = "redis";
    auto redis = stack.add_service(
        roadie::TcpExecutor({"redis-server", "--port", rp, "--bind", "127.0.0.1", "--save", ""},
                            "127.0.0.1", redis_port, redis_options));
    auto seed = stack.add(
        [&] {
          return run({"redis-cli", "-p", rp, "SET", "greeting", "hello from roadie"});
        },
        {.label = "seed"});
    roadie::ExecutorOptions web_options;
    web_options.name = "nginx";
    auto conf = write_nginx_config(dir, web_port);
    auto web = stack.add_service(roadie::HttpExecutor(
        {"nginx", "-c", conf.string(), "-p", dir.string()},
        "http://127.0.0.1:" + std::to_string(web_port) + "/health", web_options));
    auto check = stack.add(
        [&] {
          return run({"redis-cli", "-p", rp, "GET", "greeting"});
        },
        {.label = "check"});
    seed.require(redis);
    check.require(seed).require(web);

    std::printf("roadie stack demo: %zu jobs\n%s", stack.jobs().size(),
                stack.list(roadie::Glyphs::automatic).c_str());
    auto report = stack.run();
    std::printf("\nafter run():\n%s", stack.debrief().c_str());
    std::printf("%s\n", stack.critical_path().c_str());
    if (report) {
      std::printf("redis says: %s\n", check.result<std::string>().c_str());
      std::ofstream(dir / "trace.json") << stack.to_chrome_trace();
    }
    std::printf("\nteardown (reverse dependency order):\n");
    for (const auto& outcome : stack.shutdown()) {
      std::printf("  %-6s %s%s\n", outcome.label.c_str(),
                  outcome.status ? outcome.status->describe().c_str() : "",
                  outcome.error.empty() ? "" : (" !! " + outcome.error).c_str());
    }
    rc = report ? 0 : 3;
    if (!report) std::printf("demo failed: %s\n", report.why().c_str());
  } catch (const roadie::Error& e) {
    std::printf("demo failed: %s\n", e.what());
  }
  std::filesystem::remove_all(dir);
  return rc;
}
