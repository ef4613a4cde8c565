// The sample stack's client: what `roadie run -f samples/roadie.yaml -- CLIENT`
// runs once redis, the app and nginx are ready and the seed job is done.
// It finds nginx through ROADIE_PORT_WEB (roadie puts every reserved port in
// the command's environment as ROADIE_PORT_<NAME>), talks to the app through
// nginx, prints what happened, and exits 0 when every answer was right.
#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int failures = 0;

void check(bool ok, const std::string& what, const std::string& got) {
  std::printf("  %s %s: %s\n", ok ? "ok  " : "FAIL", what.c_str(), got.c_str());
  if (!ok) ++failures;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// "200 body" or the transport error.
std::string shown(const httplib::Result& result) {
  if (!result) return "no answer (" + httplib::to_string(result.error()) + ")";
  return std::to_string(result->status) + " \"" + trimmed(result->body) + "\"";
}

}  // namespace

int main() {
  const char* port = std::getenv("ROADIE_PORT_WEB");
  if (port == nullptr || *port == '\0') {
    std::fprintf(stderr,
                 "sample client: ROADIE_PORT_WEB is not set; run me under roadie:\n"
                 "  roadie run -f samples/roadie.yaml -- %s\n",
                 "build/dev/samples/roadie_sample_client");
    return 2;
  }
  const std::string base = std::string("http://127.0.0.1:") + port;
  std::printf("sample client: talking to nginx at %s (ROADIE_PORT_WEB)\n", base.c_str());
  if (const char* redis = std::getenv("ROADIE_PORT_REDIS")) {
    std::printf("sample client: redis is on port %s (ROADIE_PORT_REDIS)\n", redis);
  }

  httplib::Client web(base);
  web.set_connection_timeout(5);
  web.set_read_timeout(5);

  // The seed job wrote it into redis before this command started.
  auto seeded = web.Get("/items/greeting");
  check(seeded && seeded->status == 200 && seeded->body == "hello from roadie",
        "GET /items/greeting (seeded)", shown(seeded));

  auto put = web.Put("/items/visitor", "roadie sample client", "text/plain");
  check(put && put->status == 201, "PUT /items/visitor", shown(put));

  auto got = web.Get("/items/visitor");
  check(got && got->status == 200 && got->body == "roadie sample client", "GET /items/visitor",
        shown(got));

  auto missing = web.Get("/items/nobody");
  check(missing && missing->status == 404, "GET /items/nobody", shown(missing));

  auto first = web.Get("/hits");
  auto second = web.Get("/hits");
  const bool counted = first && second && first->status == 200 && second->status == 200 &&
                       std::atol(second->body.c_str()) == std::atol(first->body.c_str()) + 1;
  check(counted, "GET /hits twice", shown(first) + " then " + shown(second));

  if (failures != 0) {
    std::printf("sample client failed: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("sample client: all checks passed (nginx -> app -> redis)\n");
  return 0;
}
