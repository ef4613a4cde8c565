// The HTTP readiness check: the only translation unit with cpp-httplib.
#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <limits>

#include "pattern.hpp"
#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/ready.hpp"
#include "sockets.hpp"

namespace roadie::ready {
namespace {

using Clock = std::chrono::steady_clock;

struct Url {
  std::string scheme_host_port;  // "http://127.0.0.1:8080"
  std::string host;
  std::uint16_t port = 0;
  std::string path;  // "/health?x=1"
};

// What poll() (inside cpp-httplib) can wait, in milliseconds, as an int.
constexpr std::chrono::microseconds kLongestAttempt =
    std::chrono::milliseconds(std::numeric_limits<int>::max());

Url parse_url(const std::string& url) {
  // RE2, like every pattern here: a long URL cannot exhaust the stack.
  static const auto pattern =
      detail::compile_pattern(R"((https?)://(\[[^\]]+\]|[^/:?#]+)(?::([0-9]+))?([/?].*)?)", "URL");
  std::string scheme, host, port_text, path;
  if (!re2::RE2::FullMatch(url, *pattern, &scheme, &host, &port_text, &path)) {
    throw Error("not an http(s) URL: '" + url + "' (expected http://HOST[:PORT][/PATH])");
  }
  Url parsed;
  parsed.host = host;
  unsigned long port = scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    const auto [end, error] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      throw Error("bad port " + port_text + " in URL '" + url + "' (expected 1 to 65535)");
    }
  }
  parsed.port = static_cast<std::uint16_t>(port);
  parsed.path = path.empty() ? "/" : path;
  parsed.scheme_host_port = scheme + "://" + parsed.host + ":" + std::to_string(port);
  if (parsed.host.front() == '[') parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  return parsed;
}

class HttpProbe final : public Probe {
 public:
  HttpProbe(const HttpCheck& request, const Url& url, std::shared_ptr<const re2::RE2> status)
      : request_(request),
        url_(url),
        status_(std::move(status)),
        endpoints_(detail::resolve_tcp(url.host, url.port)) {}

  bool attempt(Clock::time_point deadline) override {
    // A refused connection is the common case while a service starts: see it
    // with a bare connect, without building a request.
    bool accepting = false;
    for (const auto& e : endpoints_) {
      if (detail::try_connect(e, deadline, failure_)) {
        accepting = true;
        break;
      }
    }
    if (!accepting) return false;

    auto limit = std::min(deadline, deadline_after(scaled(request_.attempt_timeout)));
    auto budget = std::clamp(std::chrono::ceil<std::chrono::microseconds>(limit - Clock::now()),
                             std::chrono::microseconds(10'000), kLongestAttempt);
    httplib::Client client(url_.scheme_host_port);
    client.set_connection_timeout(budget);
    client.set_read_timeout(budget);
    client.set_write_timeout(budget);
    client.set_keep_alive(false);
    httplib::Request req;
    req.method = request_.method;
    req.path = url_.path;
    for (const auto& [name, value] : request_.headers) req.set_header(name, value);
    if (!request_.body.empty()) {
      req.body = request_.body;
      req.set_header("Content-Type", request_.content_type);
    }
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    if (!client.send(req, res, error)) {
      if (error == httplib::Error::Read) {
        failure_ = "no answer within " + std::to_string(budget.count() / 1000) + " ms";
      } else {
        failure_ = "request failed: " + httplib::to_string(error);
      }
      return false;
    }
    if (detail::full_match(*status_, std::to_string(res.status))) return true;
    failure_ = "status " + std::to_string(res.status) + " does not match /" + request_.status + "/";
    return false;
  }

  std::string last_failure() const override { return failure_; }

 private:
  HttpCheck request_;
  Url url_;
  std::shared_ptr<const re2::RE2> status_;
  std::vector<detail::Endpoint> endpoints_;
  std::string failure_;
};

class HttpReadiness final : public Check {
 public:
  explicit HttpReadiness(HttpCheck request)
      : request_(std::move(request)),
        url_(parse_url(request_.url)),
        status_(
            detail::compile_pattern(request_.status, "http check " + request_.url + " status")) {
    if (request_.attempt_timeout.count() <= 0) {
      throw Error("http check " + request_.url + ": attempt_timeout must be positive");
    }
  }
  std::string describe() const override {
    return "http " + request_.method + " " + request_.url + " -> /" + request_.status + "/";
  }
  void ensure_free() const override {
    for (const auto& e : detail::resolve_tcp(url_.host, url_.port)) {
      std::string failure;
      if (detail::try_connect(e, deadline_after(scaled(std::chrono::milliseconds(200))), failure)) {
        throw AlreadyRunning("http " + url_.scheme_host_port +
                             " is already served by another process");
      }
    }
  }
  std::unique_ptr<Probe> arm(ProbeContext&) const override {
    return std::make_unique<HttpProbe>(request_, url_, status_);
  }

 private:
  HttpCheck request_;
  Url url_;
  std::shared_ptr<const re2::RE2> status_;
};

}  // namespace

ReadinessCheck http(HttpCheck request) {
  return ReadinessCheck(std::make_shared<HttpReadiness>(std::move(request)));
}

ReadinessCheck http(std::string url) {
  HttpCheck request;
  request.url = std::move(url);
  return http(std::move(request));
}

}  // namespace roadie::ready
