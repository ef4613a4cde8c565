// The stack file's parser and validator: every malformed file in
// tests/stacks/bad/ gives one exact ConfigError (file, line, column, key,
// the words that matter); the files in tests/stacks/good/ give the model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "roadie/error.hpp"
#include "roadie/stack.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using roadie::ConfigError;
using roadie::ReadySpec;
using roadie::StackSpec;

const fs::path kStacks = fs::path(__FILE__).parent_path() / "stacks";

struct BadFile {
  std::string file;  // under tests/stacks/bad/
  int line;
  int column;
  std::string key;
  std::vector<std::string> words;
};

std::ostream& operator<<(std::ostream& out, const BadFile& bad) {
  return out << bad.file;
}

// clang-format off
const BadFile kBadFiles[] = {
  {"syntax_unclosed_list.yaml", 5, 8, "", {"invalid YAML", "end of sequence flow not found"}},
  {"syntax_bad_indent.yaml", 5, 4, "", {"invalid YAML"}},
  {"empty.yaml", 1, 1, "", {"the stack file is empty", "version: 1"}},
  {"not_a_map.yaml", 1, 1, "", {"expected the stack file: a map", "found a list"}},
  {"two_documents.yaml", 5, 1, "", {"one YAML document", "second"}},
  {"version_missing.yaml", 1, 1, "version", {"missing key 'version'", "version: 1"}},
  {"version_2.yaml", 1, 10, "version", {"unsupported version '2': expected 1"}},
  {"version_typo.yaml", 1, 1, "verison", {"unknown key 'verison'; did you mean 'version'?"}},
  {"top_key_typo.yaml", 2, 1, "servics", {"unknown key 'servics'; did you mean 'services'?"}},
  {"services_list.yaml", 3, 3, "services", {"expected a map of services", "found a list"}},
  {"service_not_map.yaml", 3, 8, "services.api",
   {"expected a map describing the service", "found 'server --port 80'"}},
  {"service_key_typo.yaml", 4, 5, "services.api.comand",
   {"unknown key 'comand'; did you mean 'command'?", "a service takes: command, env"}},
  {"service_unknown_key.yaml", 5, 5, "services.api.replicas",
   {"unknown key 'replicas' (a service takes: command, env, cwd, ports, ready, requires, "
    "timeout, stop_timeout, stop_signal, critical, log_file, reset)"}},
  {"service_missing_command.yaml", 3, 3, "services.api.command",
   {"missing key 'command'", "the program and its arguments"}},
  {"command_string.yaml", 4, 14, "services.api.command",
   {"expected a list of strings", "found 'server --port 80'", "[sh, -c"}},
  {"command_empty.yaml", 4, 14, "services.api.command",
   {"empty command: expected the program and its arguments"}},
  {"command_empty_program.yaml", 4, 15, "services.api.command[0]", {"the program name is empty"}},
  {"command_nested_list.yaml", 4, 23, "services.api.command[1]",
   {"expected a string, found a list"}},
  {"command_null.yaml", 4, 5, "services.api.command",
   {"expected a list of strings", "found nothing"}},
  {"env_list.yaml", 5, 10, "services.api.env",
   {"expected a map of environment variables", "found a list"}},
  {"env_null_value.yaml", 7, 7, "services.api.env.B",
   {"expected a string value, found nothing", "write \"\" for an empty value"}},
  {"duration_bare_number.yaml", 5, 14, "services.api.timeout",
   {"no unit", "250ms, 10s, 1.5s, 2m or 1h", "found '10'"}},
  {"duration_unknown_unit.yaml", 5, 19, "services.api.stop_timeout",
   {"unknown unit 'sec'", "found '10sec'"}},
  {"duration_negative.yaml", 3, 12, "defaults.timeout", {"negative", "found '-1s'"}},
  {"duration_too_fine.yaml", 3, 36, "jobs.seed.timeout",
   {"finer than a millisecond", "found '1.5ms'"}},
  {"defaults_key_typo.yaml", 2, 26, "defaults.stop_timout",
   {"unknown key 'stop_timout'; did you mean 'stop_timeout'?",
    "defaults takes: timeout, stop_timeout, stop_signal"}},
  {"signal_unknown.yaml", 5, 18, "services.api.stop_signal",
   {"unknown signal 'SIGTREM'; did you mean 'SIGTERM'?", "a number 1 to 64"}},
  {"signal_out_of_range.yaml", 5, 18, "services.api.stop_signal",
   {"signal number out of range: expected 1 to 64, found '99'"}},
  {"critical_not_bool.yaml", 5, 15, "services.api.critical",
   {"expected true or false, found 'maybe'"}},
  {"requires_unknown.yaml", 5, 16, "services.api.requires[0]",
   {"unknown service or job 'redsi'; did you mean 'redis'?"}},
  {"requires_string.yaml", 6, 15, "services.api.requires",
   {"expected a list of service or job names", "found 'redis'"}},
  {"requires_twice.yaml", 6, 23, "services.api.requires[1]",
   {"'redis' is listed twice (first at line 6)"}},
  {"cycle.yaml", 5, 16, "services.a.requires[0]", {"dependency cycle: a -> b -> c -> a"}},
  {"cycle_self.yaml", 6, 19, "services.b.requires[1]", {"dependency cycle: b -> b"}},
  {"cycle_through_job.yaml", 5, 16, "services.db.requires[0]",
   {"dependency cycle: db -> migrate -> db"}},
  {"duplicate_service.yaml", 7, 3, "services.api", {"duplicate key 'api' (first at line 3)"}},
  {"duplicate_key_in_service.yaml", 6, 5, "services.api.command",
   {"duplicate key 'command' (first at line 4)"}},
  {"job_named_like_service.yaml", 5, 3, "jobs.redis",
   {"the name 'redis' is already taken by the service at line 3"}},
  {"port_undeclared.yaml", 4, 31, "services.api.command[2]",
   {"port 'db' is not declared", "ports: [db]"}},
  {"port_typo.yaml", 4, 32, "services.api.command[2]",
   {"port 'redsi' is not declared; did you mean 'redis'?"}},
  {"port_declared_twice.yaml", 8, 19, "services.b.ports[1]",
   {"port 'http' is already declared by service 'a' (line 5)"}},
  {"port_env_collision.yaml", 5, 25, "services.a.ports[1]",
   {"port 'admin_http' and port 'admin-http'", "would both be ROADIE_PORT_ADMIN_HTTP"}},
  {"env_undefined.yaml", 4, 15, "services.api.command[0]",
   {"environment variable 'ROADIE_STACK_TEST_UNSET' is not set",
    "${env.ROADIE_STACK_TEST_UNSET:-default}"}},
  {"substitution_unknown.yaml", 6, 17, "services.api.env.PORT",
   {"unknown substitution '${port.api}'; did you mean 'ports'?", "${stack.dir}", "$${"}},
  {"substitution_unterminated.yaml", 6, 10, "services.api.cwd",
   {"unterminated '${ports.api'", "closed by '}'"}},
  {"ready_unknown_form.yaml", 5, 13, "services.api.ready.tcpp",
   {"unknown key 'tcpp'; did you mean 'tcp'?", "ready takes: banner, tcp, http"}},
  {"ready_two_forms.yaml", 7, 7, "services.api.ready.banner",
   {"ready takes one form, found 'tcp' and 'banner'", "all: [...] or any: [...]"}},
  {"ready_bad_regex.yaml", 6, 15, "services.api.ready.banner",
   {"invalid regular expression 'listening on (port'", "missing )"}},
  {"ready_tcp_no_port.yaml", 5, 18, "services.api.ready.tcp",
   {"expected HOST:PORT", "found 'localhost'"}},
  {"ready_tcp_port_range.yaml", 5, 18, "services.api.ready.tcp",
   {"expected a port (1 to 65535, or ${ports.NAME})", "found '99999'"}},
  {"ready_http_key_typo.yaml", 9, 9, "services.api.ready.http.staus",
   {"unknown key 'staus'; did you mean 'status'?", "http takes: url, method, status"}},
  {"ready_http_bad_status.yaml", 6, 51, "services.api.ready.http.status",
   {"invalid regular expression '2(0'"}},
  {"ready_http_method.yaml", 6, 51, "services.api.ready.http.method",
   {"unknown HTTP method 'GTE'; did you mean 'GET'?"}},
  {"ready_http_no_url.yaml", 6, 13, "services.api.ready.http.url", {"missing key 'url'"}},
  {"ready_http_scheme.yaml", 5, 19, "services.api.ready.http",
   {"expected a URL starting with http:// or https://", "found '127.0.0.1:80/health'"}},
  {"ready_all_empty.yaml", 5, 18, "services.api.ready.all",
   {"expected at least one ready condition, found an empty list"}},
  {"ready_nested_typo.yaml", 9, 15, "services.api.ready.any[1].all[0].bannr",
   {"unknown key 'bannr'; did you mean 'banner'?"}},
  {"ready_exec_empty.yaml", 5, 19, "services.api.ready.exec",
   {"empty command: expected the probe command"}},
  {"ready_banner_stream.yaml", 5, 48, "services.api.ready.banner.stream",
   {"expected stdout or stderr, found 'stdin'"}},
  {"ready_list.yaml", 5, 12, "services.api.ready",
   {"expected a map with one of banner, tcp, http, pidfile, unix, exec, all, any",
    "found a list"}},
  {"plugins_list.yaml", 4, 10, "plugins", {"expected a map of plugins", "found a list"}},
  {"isolate_unknown.yaml", 2, 10, "isolate", {"unknown isolation 'host': expected 'network'"}},
  {"job_unknown_key.yaml", 5, 5, "jobs.seed.critical",
   {"unknown key 'critical' (a job takes: command, env, cwd, requires, timeout)"}},
  {"job_missing_command.yaml", 3, 3, "jobs.seed.command", {"missing key 'command'"}},
  {"service_name_invalid.yaml", 3, 3, "services.my api",
   {"invalid service name 'my api'", "letters, digits"}},
  {"reset_string.yaml", 5, 12, "services.redis.reset",
   {"expected a list of strings (the reset command and its arguments, or {tcp, send, expect}, e.g. [redis-cli",
    "found 'redis-cli flushall'"}},
  {"reset_request_typo.yaml", 6, 46, "services.redis.reset.expct",
   {"unknown key 'expct'; did you mean 'expect'?", "reset takes: tcp, send, expect, timeout"}},
  {"reset_request_no_send.yaml", 6, 12, "services.redis.reset.send",
   {"missing key 'send'", "{tcp: HOST:PORT, send: TEXT, expect: PATTERN}"}},
  {"reset_request_bad_tcp.yaml", 6, 18, "services.redis.reset.tcp", {"expected HOST:PORT"}},
  {"reset_request_bad_regex.yaml", 6, 76, "services.redis.reset.expect",
   {"invalid regular expression '(OK'"}},
  {"port_name_invalid.yaml", 5, 13, "services.api.ports[0]", {"invalid port name 'http port'"}},
  {"log_file_map.yaml", 5, 15, "services.api.log_file", {"expected a file path, found a map"}},
  // Two errors: the first in the file is reported.
  {"first_error_wins.yaml", 5, 14, "services.api.timeout", {"no unit"}},
  // A reference is judged before a later structural error.
  {"reference_before_later_error.yaml", 5, 16, "services.api.requires[0]",
   {"unknown service or job 'db'"}},
};
// clang-format on

class BadStackFile : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadStackFile, IsRejectedWithTheExactPlaceKeyAndReason) {
  ::unsetenv("ROADIE_STACK_TEST_UNSET");
  const BadFile& bad = GetParam();
  const fs::path file = kStacks / "bad" / bad.file;
  ASSERT_TRUE(fs::exists(file)) << file;
  try {
    roadie::parse_stack_file(file);
    FAIL() << bad.file << " was accepted";
  } catch (const ConfigError& e) {
    SCOPED_TRACE(e.what());
    EXPECT_EQ(e.file(), file.string());
    EXPECT_EQ(e.line(), bad.line);
    EXPECT_EQ(e.column(), bad.column);
    EXPECT_EQ(e.key(), bad.key);
    const std::string prefix = file.string() + ":" + std::to_string(bad.line) + ":" +
                               std::to_string(bad.column) + ": " +
                               (bad.key.empty() ? "" : bad.key + ": ");
    EXPECT_THAT(e.what(), ::testing::StartsWith(prefix));
    for (const auto& word : bad.words) EXPECT_THAT(e.what(), ::testing::HasSubstr(word));
  }
}

INSTANTIATE_TEST_SUITE_P(Files, BadStackFile, ::testing::ValuesIn(kBadFiles),
                         [](const ::testing::TestParamInfo<BadFile>& param) {
                           std::string name =
                               param.param.file.substr(0, param.param.file.find('.'));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(StackTest, EveryBadFileHasAnExpectation) {
  std::set<std::string> expected;
  for (const auto& bad : kBadFiles) expected.insert(bad.file);
  std::set<std::string> present;
  for (const auto& entry : fs::directory_iterator(kStacks / "bad")) {
    present.insert(entry.path().filename().string());
  }
  EXPECT_EQ(present, expected);
  EXPECT_GE(present.size(), 40u);
}

ConfigError error_of_text(std::string_view yaml, const fs::path& file = "mem/roadie.yaml") {
  try {
    roadie::parse_stack_text(yaml, file);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted:\n" << yaml;
  return ConfigError("", 0, 0, "", "");
}

TEST(StackTest, TextWithoutAFileNameIsCalledMemory) {
  const ConfigError e = error_of_text("version: 3\nservices: {a: {command: [a]}}\n", "");
  EXPECT_EQ(e.file(), "<memory>");
  EXPECT_THAT(e.what(), ::testing::StartsWith("<memory>:1:10: version: unsupported version '3'"));
}

TEST(StackTest, AnUnreadableFileIsAConfigErrorWithoutLine) {
  const fs::path missing = kStacks / "no-such-file.yaml";
  try {
    roadie::parse_stack_file(missing);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), missing.string());
    EXPECT_EQ(e.line(), 0);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("cannot read the stack file: No such file"));
  }
}

TEST(StackTest, DurationForms) {
  const auto with_timeout = [](const std::string& value) {
    return roadie::parse_stack_text(
        "version: 1\nservices: {a: {command: [a], timeout: " + value + "}}\n", "d.yaml");
  };
  EXPECT_EQ(with_timeout("250ms").services[0].timeout, 250ms);
  EXPECT_EQ(with_timeout("10s").services[0].timeout, 10s);
  EXPECT_EQ(with_timeout("1.5s").services[0].timeout, 1500ms);
  EXPECT_EQ(with_timeout("0.25m").services[0].timeout, 15s);
  EXPECT_EQ(with_timeout("2m").services[0].timeout, 2min);
  EXPECT_EQ(with_timeout("1h").services[0].timeout, 1h);
  EXPECT_EQ(with_timeout("0s").services[0].timeout, 0ms);
  for (const char* bad : {"10", "1.5", "s", "1.s", "10 s", "1e3ms", "0.0001s", "1d", "\"\""}) {
    EXPECT_THAT(error_of_text(std::string("version: 1\nservices: {a: {command: [a], timeout: ") +
                              bad + "}}\n")
                    .what(),
                ::testing::HasSubstr("expected a duration like 250ms"))
        << bad;
  }
}

TEST(StackTest, SignalForms) {
  const auto with_signal = [](const std::string& value) {
    return roadie::parse_stack_text(
               "version: 1\nservices: {a: {command: [a], stop_signal: " + value + "}}\n", "s.yaml")
        .services[0]
        .stop_signal;
  };
  EXPECT_EQ(with_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(with_signal("TERM"), SIGTERM);
  EXPECT_EQ(with_signal("sigint"), SIGINT);
  EXPECT_EQ(with_signal("KILL"), SIGKILL);
  EXPECT_EQ(with_signal("USR1"), SIGUSR1);
  EXPECT_EQ(with_signal("9"), 9);
  EXPECT_EQ(with_signal("64"), 64);
  for (const char* bad : {"0", "65", "SIGFOO", "-1", "TERM2"}) {
    EXPECT_THAT(
        error_of_text(std::string("version: 1\nservices: {a: {command: [a], stop_signal: ") + bad +
                      "}}\n")
            .key(),
        "services.a.stop_signal")
        << bad;
  }
}

TEST(StackTest, TheDesignExampleParses) {
  ::setenv("APP_BIN", "/usr/local/bin/app", 1);
  const fs::path file = kStacks / "good" / "design_example.yaml";
  const StackSpec spec = roadie::parse_stack_file(file);
  EXPECT_EQ(spec.file, file);
  EXPECT_EQ(spec.dir, (kStacks / "good").lexically_normal());
  EXPECT_TRUE(spec.templated);
  ASSERT_EQ(spec.services.size(), 2u);
  const roadie::ServiceSpec& redis = spec.services[0];
  EXPECT_EQ(redis.name, "redis");
  EXPECT_EQ(redis.where.line, 4);
  EXPECT_EQ(redis.where.column, 3);
  EXPECT_THAT(redis.command,
              ::testing::ElementsAre("redis-server", "--port", "${ports.redis}", "--save", ""));
  EXPECT_THAT(redis.ports, ::testing::ElementsAre("redis"));
  ASSERT_TRUE(redis.ready);
  EXPECT_EQ(redis.ready->kind, ReadySpec::Kind::tcp);
  EXPECT_EQ(redis.ready->host, "127.0.0.1");
  EXPECT_EQ(redis.ready->port, "${ports.redis}");
  EXPECT_EQ(redis.timeout, 30s);
  EXPECT_EQ(redis.stop_timeout, 10s);
  EXPECT_EQ(redis.stop_signal, SIGTERM);

  const roadie::ServiceSpec& api = *spec.find_service("api");
  EXPECT_THAT(api.command, ::testing::ElementsAre("/usr/local/bin/app", "--port", "${ports.api}"));
  EXPECT_THAT(api.requirements, ::testing::ElementsAre("redis"));
  EXPECT_EQ(api.stop_signal, SIGINT);
  EXPECT_EQ(api.ready->kind, ReadySpec::Kind::http);
  EXPECT_EQ(api.ready->http.url, "http://127.0.0.1:${ports.api}/health");
  EXPECT_EQ(api.ready->http.status, "2..");
  EXPECT_EQ(api.ready->http.method, "HEAD");
  EXPECT_EQ(api.env.at("REDIS_URL"), "redis://127.0.0.1:${ports.redis}");

  ASSERT_EQ(spec.jobs.size(), 1u);
  EXPECT_EQ(spec.jobs[0].name, "seed-data");
  EXPECT_THAT(spec.jobs[0].requirements, ::testing::ElementsAre("redis"));
  EXPECT_EQ(spec.jobs[0].timeout, 30s);
  EXPECT_EQ(spec.find_job("seed-data"), &spec.jobs[0]);
  EXPECT_EQ(spec.find_job("redis"), nullptr);

  EXPECT_TRUE(spec.plugins.present);
  EXPECT_EQ(spec.plugins.where.line, 18);
  EXPECT_EQ(spec.plugins.where.column, 3);
  EXPECT_THAT(spec.plugins.idents, ::testing::ElementsAre("artifacts"));
  ASSERT_TRUE(spec.plugins.document);
  EXPECT_THAT(*spec.plugins.document, ::testing::HasSubstr("plugin: artifacts"));
  EXPECT_TRUE(spec.plugins.node);
  EXPECT_EQ(spec.isolate, roadie::Isolation::none);
  EXPECT_THAT(spec.port_names(), ::testing::ElementsAre("redis", "api"));

  const StackSpec ready = roadie::substitute_ports(spec, {{"redis", 7001}, {"api", 8080}});
  EXPECT_FALSE(ready.templated);
  EXPECT_THAT(ready.services[0].command,
              ::testing::ElementsAre("redis-server", "--port", "7001", "--save", ""));
  EXPECT_EQ(ready.services[1].ready->http.url, "http://127.0.0.1:8080/health");
  EXPECT_EQ(ready.services[1].env.at("REDIS_URL"), "redis://127.0.0.1:7001");
  EXPECT_THAT(ready.jobs[0].command,
              ::testing::ElementsAre("redis-cli", "-p", "7001", "SET", "k", "v"));
  EXPECT_EQ(roadie::to_check(*ready.services[0].ready).describe(),
            roadie::ready::tcp("127.0.0.1", 7001).describe());
  const roadie::Command command = roadie::to_command(ready.services[1]);
  EXPECT_EQ(command.display(), "/usr/local/bin/app --port 8080");
  EXPECT_EQ(command.env_changes().at("REDIS_URL"), "redis://127.0.0.1:7001");
  const roadie::ExecutorOptions options = roadie::to_executor_options(ready.services[1]);
  EXPECT_EQ(options.name, "api");
  EXPECT_EQ(options.stop_signal, SIGINT);
  EXPECT_EQ(options.timeout, 30s);
}

TEST(StackTest, EveryReadyForm) {
  const fs::path dir = (kStacks / "good").lexically_normal();
  const StackSpec spec = roadie::parse_stack_file(kStacks / "good" / "every_ready.yaml");
  const auto ready_of = [&](std::string_view name) -> const ReadySpec& {
    const roadie::ServiceSpec* service = spec.find_service(name);
    EXPECT_NE(service, nullptr) << name;
    return *service->ready;
  };
  EXPECT_EQ(ready_of("banner").kind, ReadySpec::Kind::banner);
  EXPECT_EQ(ready_of("banner").pattern, "listening on port \\d+");
  EXPECT_FALSE(ready_of("banner").stream);
  EXPECT_EQ(ready_of("banner-stream").pattern, "^ready$$");  // a template: `$` doubled
  EXPECT_EQ(ready_of("banner-stream").stream, roadie::Stream::err);
  EXPECT_EQ(ready_of("tcp-literal").host, "::1");
  EXPECT_EQ(ready_of("tcp-literal").port, "6379");
  EXPECT_EQ(ready_of("http-url").http.url, "http://127.0.0.1:${ports.web}/health");
  const ReadySpec& http = ready_of("http-full");
  EXPECT_EQ(http.http.url, "https://localhost:${ports.api}/ready");
  EXPECT_EQ(http.http.method, "POST");
  EXPECT_EQ(http.http.status, "204");
  EXPECT_EQ(http.http.headers.at("Authorization"), "Bearer t0k3n");
  EXPECT_EQ(http.http.body, "{\"ping\": true}");
  EXPECT_EQ(ready_of("pidfile").kind, ReadySpec::Kind::pidfile);
  EXPECT_EQ(ready_of("pidfile").path, dir / "run/server.pid");
  EXPECT_EQ(ready_of("unix").kind, ReadySpec::Kind::unix_socket);
  EXPECT_EQ(ready_of("unix").path, "/tmp/roadie-stack-test.sock");
  EXPECT_THAT(ready_of("exec").argv,
              ::testing::ElementsAre("redis-cli", "-p", "${ports.probe}", "ping"));
  const ReadySpec& nested = ready_of("nested");
  EXPECT_EQ(nested.kind, ReadySpec::Kind::all);
  ASSERT_EQ(nested.children.size(), 2u);
  EXPECT_EQ(nested.children[0].kind, ReadySpec::Kind::banner);
  EXPECT_EQ(nested.children[1].kind, ReadySpec::Kind::any);
  EXPECT_EQ(nested.children[1].children[1].path, dir / "sockets/nested.sock");
  EXPECT_EQ(nested.children[1].children[1].where.line, 48);
  EXPECT_EQ(nested.children[1].children[1].where.column, 15);

  EXPECT_THROW(roadie::to_check(nested), roadie::Error);  // ports not filled in yet
  const StackSpec ready = roadie::substitute_ports(
      spec, {{"tcp", 7001}, {"web", 7002}, {"api", 7003}, {"probe", 7004}});
  const auto check = [&](std::string_view name) {
    return roadie::to_check(*ready.find_service(name)->ready).describe();
  };
  EXPECT_EQ(ready.find_service("banner-stream")->ready->pattern, "^ready$");
  EXPECT_EQ(check("tcp"), roadie::ready::tcp("127.0.0.1", 7001).describe());
  EXPECT_EQ(check("http-url"), roadie::ready::http("http://127.0.0.1:7002/health").describe());
  EXPECT_EQ(ready.find_service("http-full")->ready->http.headers.at("X-Port"), "7003");
  EXPECT_THAT(check("http-full"), ::testing::HasSubstr("POST https://localhost:7003/ready"));
  EXPECT_EQ(check("pidfile"), roadie::ready::pid_file(dir / "run/server.pid").describe());
  EXPECT_EQ(check("unix"), roadie::ready::unix_socket("/tmp/roadie-stack-test.sock").describe());
  EXPECT_EQ(check("exec"),
            roadie::ready::exec(roadie::Command{"redis-cli", "-p", "7004", "ping"}).describe());
  EXPECT_EQ(check("banner"), roadie::ready::banner("listening on port \\d+").describe());
  EXPECT_EQ(check("nested"),
            roadie::ready::all_of(
                {roadie::ready::banner("started"),
                 roadie::ready::any_of({roadie::ready::tcp("127.0.0.1", 7001),
                                        roadie::ready::unix_socket(dir / "sockets/nested.sock")})})
                .describe());
}

TEST(StackTest, ValuesDefaultsAndRelativePaths) {
  const fs::path dir = (kStacks / "good").lexically_normal();
  const StackSpec spec = roadie::parse_stack_file(kStacks / "good" / "values.yaml");
  EXPECT_EQ(spec.defaults.timeout, 1500ms);
  EXPECT_EQ(spec.defaults.stop_timeout, 250ms);
  EXPECT_EQ(spec.defaults.stop_signal, SIGINT);
  EXPECT_EQ(spec.isolate, roadie::Isolation::network);
  EXPECT_FALSE(spec.plugins.present);

  const roadie::ServiceSpec& plain = *spec.find_service("plain");
  EXPECT_EQ(plain.timeout, 1500ms);
  EXPECT_EQ(plain.stop_timeout, 250ms);
  EXPECT_EQ(plain.stop_signal, SIGINT);
  EXPECT_TRUE(plain.critical);
  EXPECT_FALSE(plain.cwd);
  EXPECT_FALSE(plain.log_file);
  EXPECT_FALSE(plain.ready);
  EXPECT_TRUE(plain.reset.empty());

  const roadie::ServiceSpec& minutes = *spec.find_service("minutes");
  EXPECT_EQ(minutes.timeout, 2min);
  EXPECT_EQ(minutes.stop_timeout, 1h);
  EXPECT_EQ(minutes.stop_signal, SIGQUIT);
  EXPECT_FALSE(minutes.critical);
  EXPECT_EQ(*minutes.cwd, dir / "work");
  EXPECT_EQ(*minutes.log_file, dir / "logs/minutes.log");
  EXPECT_THAT(minutes.reset, ::testing::ElementsAre("redis-cli", "flushall"));

  EXPECT_FALSE(minutes.reset_request);

  const roadie::ServiceSpec& numbered = *spec.find_service("numbered");
  EXPECT_TRUE(numbered.reset.empty());
  ASSERT_TRUE(numbered.reset_request);
  EXPECT_EQ(numbered.reset_request->host, "127.0.0.1");
  EXPECT_EQ(numbered.reset_request->port, "${ports.cache}");  // a template until substituted
  EXPECT_EQ(numbered.reset_request->send, "FLUSHALL\r\n");
  EXPECT_EQ(numbered.reset_request->expect, "^\\+OK");
  EXPECT_EQ(numbered.reset_request->timeout, 2s);
  const roadie::StackSpec ready = roadie::substitute_ports(spec, {{"cache", roadie::Port(6399)}});
  EXPECT_EQ(ready.find_service("numbered")->reset_request->port, "6399");
  EXPECT_EQ(numbered.stop_signal, 10);
  EXPECT_EQ(numbered.stop_timeout, 0ms);
  EXPECT_EQ(*numbered.cwd, "/srv/numbered");
  EXPECT_EQ(*numbered.log_file, "/var/log/numbered.log");

  const roadie::JobSpec& once = *spec.find_job("once");
  EXPECT_EQ(*once.cwd, dir.parent_path());
  EXPECT_EQ(once.env.at("LEVEL"), "3");
  EXPECT_EQ(once.timeout, 1500ms);
  EXPECT_EQ(spec.find_job("quick")->timeout, 100ms);
  EXPECT_THAT(spec.find_job("quick")->requirements, ::testing::ElementsAre("once", "plain"));
}

TEST(StackTest, SubstitutionEscapesEnvAndStackDir) {
  ::setenv("ROADIE_STACK_TEST_HOME", "/home/ro", 1);
  ::unsetenv("ROADIE_STACK_TEST_UNSET");
  ::setenv("ROADIE_STACK_TEST_EMPTY", "", 1);
  ::setenv("ROADIE_STACK_TEST_DOLLAR", "a$", 1);
  ::setenv("ROADIE_STACK_TEST_TEMPLATE", "${ports.app} $${x}", 1);
  const fs::path dir = (kStacks / "good").lexically_normal();
  const StackSpec spec = roadie::parse_stack_file(kStacks / "good" / "substitution.yaml");
  const StackSpec ready =
      roadie::substitute_ports(spec, {{"app", 8080}, {"admin-http", 9090}, {"unused", 1}});
  const roadie::ServiceSpec& app = ready.services[0];
  EXPECT_THAT(app.command,
              ::testing::ElementsAre(dir.string() + "/bin/app", "--greeting=${not.a.reference}",
                                     "--price=$5 and $$ and 8080$", "--home=/home/ro",
                                     "--mode=fast", "--empty=was empty", "--raw=a$8080"));
  EXPECT_EQ(app.env.at("ADMIN"), "127.0.0.1:9090");
  // A variable's value is text: a reference inside it is not expanded.
  EXPECT_EQ(app.env.at("LITERAL"), "${ports.app} $${x}");
  EXPECT_EQ(*app.cwd, dir / "data");
  EXPECT_EQ(app.ready->pattern, "port 8080$");
  EXPECT_EQ(roadie::substitute_ports(ready, {}).services[0].command, app.command);

  try {
    roadie::substitute_ports(spec, {{"app", 8080}});
    FAIL() << "a missing port was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.key(), "services.app");
    EXPECT_THAT(e.what(), ::testing::HasSubstr("port 'admin-http' was not reserved"));
  }
}

TEST(StackTest, StackDirOfARelativeFileIsAbsolute) {
  const StackSpec spec = roadie::parse_stack_text(
      "version: 1\nservices: {a: {command: [\"${stack.dir}/a\"], cwd: sub}}\n", "conf/roadie.yaml");
  const fs::path dir = fs::current_path() / "conf";
  EXPECT_EQ(spec.dir, dir);
  EXPECT_EQ(spec.services[0].command[0], dir.string() + "/a");
  EXPECT_EQ(*spec.services[0].cwd, dir / "sub");
}

TEST(StackTest, PortReferenceMayPrecedeItsDeclaration) {
  const StackSpec spec = roadie::parse_stack_text(
      "version: 1\nservices:\n  a: {command: [a, \"${ports.b}\"], requires: [b]}\n"
      "  b: {command: [b], ports: [b]}\n",
      "p.yaml");
  EXPECT_THAT(spec.services[0].requirements, ::testing::ElementsAre("b"));
}

TEST(StackTest, TemplatedSpecsAreRefusedByTheBuilders) {
  const StackSpec spec = roadie::parse_stack_text(
      "version: 1\nservices: {a: {command: [a], ready: {banner: x}}}\njobs: {j: {command: [j]}}\n",
      "t.yaml");
  EXPECT_THROW(roadie::to_command(spec.services[0]), roadie::Error);
  EXPECT_THROW(roadie::to_command(spec.jobs[0]), roadie::Error);
  EXPECT_THROW(roadie::to_check(*spec.services[0].ready), roadie::Error);
  const StackSpec ready = roadie::substitute_ports(spec, {});
  EXPECT_NO_THROW(roadie::to_command(ready.jobs[0]));
  EXPECT_EQ(roadie::to_check(*ready.services[0].ready).describe(),
            roadie::ready::banner("x").describe());
}

}  // namespace
