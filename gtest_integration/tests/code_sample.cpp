// A session stack made in code (StackSpec + Stack::from_spec, no file) with
// a C++ reset, through add_stack() in a main of its own. Run by
// test_gtest_scopes; SAMPLE_DIR is its scratch directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "roadie/gtest.hpp"

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

void append(const std::string& file, const std::string& line) {
  std::ofstream(env("SAMPLE_DIR") + "/" + file, std::ios::app) << line << "\n";
}

roadie::StackSpec stack_in_code() {
  roadie::ServiceSpec web;
  web.name = "web";
  web.command = {env("CHILD_LISTEN"), "tcp:${ports.web}"};
  web.ports = {"web"};
  roadie::ReadySpec ready;
  ready.kind = roadie::ReadySpec::Kind::tcp;
  ready.host = "127.0.0.1";
  ready.port = "${ports.web}";
  ready.templated = true;
  web.ready = ready;
  web.templated = true;
  roadie::StackSpec spec;
  spec.dir = env("SAMPLE_DIR");
  spec.services.push_back(web);
  spec.templated = true;
  return spec;
}

TEST(Code, First) {
  const roadie::gtest::Service web = roadie::gtest::service("web");
  EXPECT_EQ(env("ROADIE_PORT_WEB"), std::to_string(web.port().value()));
  append("code.pids", std::to_string(web.pid()));
}

TEST(Code, Second) { append("code.pids", std::to_string(roadie::gtest::service("web").pid())); }

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  static roadie::HookBus bus;
  roadie::gtest::install(bus);
  roadie::gtest::SessionOptions options;
  options.make = [](roadie::StackOptions stack) {
    return roadie::Stack::from_spec(stack_in_code(), std::move(stack));
  };
  options.resets["web"] = [](const roadie::gtest::Service& web) {
    append("code.resets", "reset " + web.name() + " " + std::to_string(web.port().value()));
  };
  roadie::gtest::add_stack(std::move(options));
  return RUN_ALL_TESTS();
}
