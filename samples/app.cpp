// The sample stack's HTTP app (samples/roadie.yaml): a cpp-httplib server that
// keeps its data in redis. It talks to redis over a plain TCP socket with a
// few lines of RESP (redis' wire protocol) written here: no client library.
//
//     roadie_sample_app --port P --redis-port R
//
//     GET /health      200 "ok" when redis answers PING, else 503
//     GET /items/KEY   the value stored under KEY (404 when there is none)
//     PUT /items/KEY   stores the request body under KEY
//     GET /hits        counts the calls (redis INCR) and returns the count
//
// One line per request on stdout (roadie captures it as the service's output).
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A redis reply, as much of RESP as this app needs.
struct Reply {
  char type = '-';                   // '+' status, '-' error, ':' integer, '$' bulk
  std::optional<std::string> value;  // none: a nil bulk string
};

// One connection to redis for one request (loopback connects are cheap, and
// there is then no connection state to share between the server's threads).
class Redis {
 public:
  explicit Redis(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    timeval timeout{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      const int error = errno;
      ::close(fd_);
      throw std::runtime_error("redis at 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(error));
    }
  }
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;
  ~Redis() { ::close(fd_); }

  // Sends one command (a RESP array of bulk strings) and reads its reply.
  Reply call(const std::vector<std::string>& args) {
    std::string request = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& arg : args) {
      request += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
    }
    for (std::size_t sent = 0; sent < request.size();) {
      const ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error(std::string("redis send: ") + std::strerror(errno));
      sent += static_cast<std::size_t>(n);
    }
    const std::string line = read_line();
    if (line.empty()) throw std::runtime_error("redis sent an empty reply");
    Reply reply{line[0], line.substr(1)};
    if (reply.type == '$') {
      const long length = std::stol(*reply.value);
      if (length < 0) {
        reply.value.reset();
      } else {
        reply.value = read_exact(static_cast<std::size_t>(length) + 2).substr(0, length);
      }
    } else if (reply.type != '+' && reply.type != '-' && reply.type != ':') {
      throw std::runtime_error("unexpected redis reply: " + line);
    }
    return reply;
  }

 private:
  void fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      throw std::runtime_error(n == 0 ? "redis closed the connection"
                                      : std::string("redis recv: ") + std::strerror(errno));
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
  std::string read_line() {
    std::size_t end;
    while ((end = buffer_.find("\r\n")) == std::string::npos) fill();
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    return line;
  }
  std::string read_exact(std::size_t size) {
    while (buffer_.size() < size) fill();
    std::string data = buffer_.substr(0, size);
    buffer_.erase(0, size);
    return data;
  }

  int fd_ = -1;
  std::string buffer_;
};

int usage(const char* self) {
  std::fprintf(stderr, "usage: %s --port PORT --redis-port PORT\n", self);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int redis_port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (flag == "--redis-port") {
      redis_port = std::atoi(argv[i + 1]);
    } else {
      return usage(argv[0]);
    }
  }
  if (argc % 2 == 0 || port <= 0 || port > 65535 || redis_port <= 0 || redis_port > 65535) {
    return usage(argv[0]);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line per request, as it happens

  httplib::Server server;
  // Any redis failure becomes a 503 that says why.
  auto with_redis = [redis_port](httplib::Response& res, auto&& body) {
    try {
      Redis redis(redis_port);
      body(redis);
    } catch (const std::exception& e) {
      res.status = 503;
      res.set_content(std::string("redis unavailable: ") + e.what() + "\n", "text/plain");
    }
  };
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    with_redis(res, [&](Redis& redis) {
      const Reply pong = redis.call({"PING"});
      const bool ok = pong.type == '+' && pong.value == "PONG";
      res.status = ok ? 200 : 503;
      res.set_content(ok ? "ok\n" : "redis did not answer PONG\n", "text/plain");
    });
  });
  server.Get(R"(/items/([A-Za-z0-9_.:-]+))",
             [&](const httplib::Request& req, httplib::Response& res) {
               with_redis(res, [&](Redis& redis) {
                 const Reply value = redis.call({"GET", req.matches[1]});
                 if (value.type == '$' && value.value) {
                   res.set_content(*value.value, "text/plain");
                 } else if (value.type == '$') {
                   res.status = 404;
                   res.set_content("no item '" + std::string(req.matches[1]) + "'\n", "text/plain");
                 } else {
                   res.status = 502;
                   res.set_content("redis: " + value.value.value_or("") + "\n", "text/plain");
                 }
               });
             });
  server.Put(R"(/items/([A-Za-z0-9_.:-]+))",
             [&](const httplib::Request& req, httplib::Response& res) {
               with_redis(res, [&](Redis& redis) {
                 const Reply stored = redis.call({"SET", req.matches[1], req.body});
                 res.status = stored.type == '+' ? 201 : 502;
                 res.set_content(stored.type == '+' ? "stored\n" : "redis: " + *stored.value + "\n",
                                 "text/plain");
               });
             });
  server.Get("/hits", [&](const httplib::Request&, httplib::Response& res) {
    with_redis(res, [&](Redis& redis) {
      const Reply hits = redis.call({"INCR", "hits"});
      res.status = hits.type == ':' ? 200 : 502;
      res.set_content(*hits.value + "\n", "text/plain");
    });
  });
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    std::printf("app: %s %s -> %d (%zu bytes)\n", req.method.c_str(), req.path.c_str(), res.status,
                res.body.size());
  });

  std::printf("app: listening on 127.0.0.1:%d, redis at 127.0.0.1:%d\n", port, redis_port);
  if (!server.listen("127.0.0.1", port)) {
    std::fprintf(stderr, "app: cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  return 0;
}
