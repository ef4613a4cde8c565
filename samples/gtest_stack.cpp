// One stack for the whole test process: samples/roadie.yaml (redis, the HTTP
// app that keeps its data in redis, nginx in front of it, a seed job) brought
// up before the first test and down after the last by roadie::gtest_main:
//
//     roadie_sample_gtest_stack --roadie_stack=samples/roadie.yaml
//
// (ROADIE_SAMPLES_BIN names the directory of roadie_sample_app; see the stack
// file.) Or attach to a stack that is already running, and start nothing:
//
//     roadie up -f samples/roadie.yaml --detach --state /tmp/stack
//     ROADIE_STATE=/tmp/stack roadie_sample_gtest_stack --roadie_stack=samples/roadie.yaml
//
// The tests talk to the app through nginx, as a user of the stack would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <string>

#include "roadie/gtest.hpp"

using ::testing::HasSubstr;

namespace {

// A client of nginx, found by service name (its only port is `web`).
httplib::Client web() {
  httplib::Client client("127.0.0.1", roadie::gtest::service("nginx").port().value());
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  return client;
}

TEST(SampleStack, StoresAnItemThroughNginx) {
  auto client = web();
  auto put = client.Put("/items/visitor", "a sample test", "text/plain");
  ASSERT_TRUE(put) << httplib::to_string(put.error());
  EXPECT_EQ(put->status, 201);

  auto got = client.Get("/items/visitor");
  ASSERT_TRUE(got) << httplib::to_string(got.error());
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "a sample test");
}

// The stack file gives redis a `reset:` (FLUSHALL on a fresh connection):
// it runs before each test, so no test sees another test's data, nor the
// seed job's greeting (written once, at bring-up).
TEST(SampleStack, EachTestStartsFromAnEmptyRedis) {
  // The ports are in the environment too, as ROADIE_PORT_<NAME>.
  const char* port = std::getenv("ROADIE_PORT_WEB");
  ASSERT_NE(port, nullptr);
  httplib::Client client(std::string("http://127.0.0.1:") + port);
  client.set_read_timeout(5);
  for (const char* key : {"visitor", "greeting"}) {
    auto got = client.Get(std::string("/items/") + key);
    ASSERT_TRUE(got) << httplib::to_string(got.error());
    EXPECT_EQ(got->status, 404) << key << ": " << got->body;
  }
}

TEST(SampleStack, AnswersServiceUnavailableWhileRedisIsDown) {
  if (roadie::gtest::service("redis").attached()) {
    GTEST_SKIP() << "redis is run by another process (ROADIE_STATE): only its owner stops it";
  }
  auto client = web();
  {
    auto down = roadie::gtest::service("redis").stopped();  // redis is stopped here
    auto health = client.Get("/health");
    ASSERT_TRUE(health) << httplib::to_string(health.error());
    EXPECT_EQ(health->status, 503);
    EXPECT_THAT(health->body, HasSubstr("redis unavailable"));

    auto put = client.Put("/items/lost", "nowhere to go", "text/plain");
    ASSERT_TRUE(put) << httplib::to_string(put.error());
    EXPECT_EQ(put->status, 503);
  }  // redis is started again here, and waited for until it accepts

  auto health = client.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  auto put = client.Put("/items/back", "redis is back", "text/plain");
  ASSERT_TRUE(put) << httplib::to_string(put.error());
  EXPECT_EQ(put->status, 201);
}

}  // namespace
