// One real redis-server per test: started before each test body, stopped after it.
// Link roadie::gtest_main (gtest_main, plus --roadie_stack / --roadie_artifacts).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "roadie/gtest.hpp"

// Sends redis inline commands and QUIT, and returns every reply (redis closes
// the connection after QUIT).
std::string ask_redis(roadie::Port port, const std::string& commands) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port.value());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string replies;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = commands + "QUIT\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char chunk[512];
    for (ssize_t n; (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;) replies.append(chunk, n);
  }
  ::close(fd);
  return replies;
}

class RedisTest : public roadie::gtest::TestServices<> {
 protected:
  roadie::Port port = reserve("redis");  // free, and reserved machine-wide
  roadie::TcpExecutor& redis =
      add(roadie::TcpExecutor({"redis-server", "--port", std::to_string(port.value()), "--bind",
                               "127.0.0.1", "--save", ""},
                              "127.0.0.1", port),  // ready when the port accepts
          {.name = "redis", .ports = {{"redis", port}}});
};

TEST_F(RedisTest, GetsWhatItSet) {
  EXPECT_EQ(ask_redis(port, "SET greeting hello\r\nGET greeting\r\n"),
            "+OK\r\n$5\r\nhello\r\n+OK\r\n");
}

TEST_F(RedisTest, StartsEmpty) {  // a fresh redis: the other test's key is not here
  EXPECT_EQ(ask_redis(port, "GET greeting\r\n"), "$-1\r\n+OK\r\n");
}
