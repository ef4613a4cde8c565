// The stack file's reader. A first look collects the names the file declares
// (services, jobs, ports) without judging anything; then one walk over the
// document in file order checks structure, types, values and references
// against those names, and throws at the first error. Cycles come last (a
// cycle has no one place in the file).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "../ready/pattern.hpp"
#include "plugins_node.hpp"
#include "roadie/error.hpp"
#include "roadie/stack.hpp"
#include "values.hpp"

namespace roadie {
namespace {

namespace fs = std::filesystem;
using stack::ValueError;

const std::vector<std::string> kTopKeys{"version", "defaults", "services",
                                        "jobs",    "plugins",  "isolate"};
const std::vector<std::string> kDefaultsKeys{"timeout", "stop_timeout", "stop_signal"};
const std::vector<std::string> kServiceKeys{"command",     "env",      "cwd",      "ports",
                                            "ready",       "requires", "timeout",  "stop_timeout",
                                            "stop_signal", "critical", "log_file", "reset"};
const std::vector<std::string> kJobKeys{"command", "env", "cwd", "requires", "timeout"};
const std::vector<std::string> kResetKeys{"tcp", "send", "expect", "timeout"};
const std::vector<std::string> kReadyKeys{"banner", "tcp",  "http", "pidfile",
                                          "unix",   "exec", "all",  "any"};
const std::vector<std::string> kBannerKeys{"pattern", "stream"};
const std::vector<std::string> kHttpKeys{"url", "method", "status", "headers", "body"};
const std::string kCommandExample = "[redis-server, --port, \"${ports.redis}\"]";
const std::vector<std::string> kMethods{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : ", ") + word;
  return out;
}

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// What a node is, for "found ...".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return in_quotes(node.Scalar());
    default:
      return "nothing";
  }
}

bool valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
}

bool valid_port_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  });
}

std::string port_env_name(std::string_view name) {
  std::string out = "ROADIE_PORT_";
  for (const char c : name) {
    out += std::isalnum(static_cast<unsigned char>(c)) != 0
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : '_';
  }
  return out;
}

// The value of `key` in `map` (the first, when written twice), or a null
// node. (yaml-cpp's operator[] gives a node that throws when looked at.)
YAML::Node value_of(const YAML::Node& map, std::string_view key) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node(YAML::NodeType::Null);
}

SourceLocation location(const YAML::Mark& mark) {
  if (mark.line < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

// A value and where to point at it: its own mark, or its key's when it is
// empty (yaml-cpp marks an empty value at the next token, lines later).
struct Field {
  YAML::Node node;
  YAML::Mark mark;
  std::string key;

  Field(YAML::Node value, const YAML::Mark& key_mark, std::string path)
      : node(std::move(value)),
        mark(node.IsNull() ? key_mark : node.Mark()),
        key(std::move(path)) {}
};

struct Entry {
  std::string name;
  YAML::Mark key_mark;
  Field value;
};

// A node of the dependency graph.
struct GraphNode {
  std::string name;
  std::string key;  // "services.api"
  struct Edge {
    std::string target;
    YAML::Mark mark;
    std::string key;  // "services.api.requires[0]"
  };
  std::vector<Edge> edges;
};

struct Declared {
  std::string what;  // "service", "job"
  YAML::Mark mark;
};

class Loader {
 public:
  Loader(std::string label, fs::path file, fs::path dir, std::shared_ptr<const std::string> text)
      : label_(std::move(label)), text_(std::move(text)) {
    spec_.file = std::move(file);
    spec_.dir = std::move(dir);
    context_.stack_dir = spec_.dir.string();
    context_.getenv = [](const std::string& name) -> std::optional<std::string> {
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) return std::nullopt;
      return std::string(value);
    };
  }

  StackSpec load() {
    std::vector<YAML::Node> documents;
    try {
      documents = YAML::LoadAll(*text_);
    } catch (const YAML::Exception& e) {
      fail(e.mark, "", "invalid YAML: " + e.msg);
    }
    if (documents.size() > 1) {
      fail(documents[1].Mark(), "",
           "a stack file holds one YAML document; found a second one (remove the '---')");
    }
    const YAML::Mark start{};  // line 0, column 0
    if (documents.empty() || documents[0].IsNull()) {
      fail(start, "", "the stack file is empty: expected a map with 'version: 1' and 'services:'");
    }
    const Field root(documents[0], start, "");
    expect_map(root, "the stack file: a map with 'version: 1' and 'services:'");
    look_for_names(root.node);

    bool has_version = false;
    for (auto& entry : entries(root, kTopKeys, "the stack file")) {
      const Field& value = entry.value;
      if (entry.name == "version") {
        has_version = true;
        const std::string version = scalar(value, "the version, 1");
        if (version != "1")
          fail(value, "unsupported version " + in_quotes(version) + ": expected 1");
      } else if (entry.name == "defaults") {
        read_defaults(value);
      } else if (entry.name == "services") {
        expect_map(value, "a map of services (NAME: {command: [...], ...})");
        for (auto& service : entries(value, {}, "")) read_service(service);
      } else if (entry.name == "jobs") {
        expect_map(value, "a map of jobs (NAME: {command: [...], ...})");
        for (auto& job : entries(value, {}, "")) read_job(job);
      } else if (entry.name == "plugins") {
        read_plugins(value);
      } else if (entry.name == "isolate") {
        const std::string isolate = scalar(value, "'network'");
        if (isolate != "network") {
          fail(value, "unknown isolation " + in_quotes(isolate) + ": expected 'network'");
        }
        spec_.isolate = Isolation::network;
      }
    }
    if (!has_version) fail(root.mark, "version", "missing key 'version': expected 'version: 1'");
    // No service and no job is a valid, empty stack: `roadie run -f empty.yaml
    // -- CMD` runs CMD alone (the same file in every checkout, whether or not
    // this one needs services).
    apply_defaults();
    check_cycles();
    spec_.templated = true;
    return std::move(spec_);
  }

 private:
  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& key, const std::string& what) {
    const SourceLocation where = location(mark);
    throw ConfigError(label_, where.line, where.column, key, what);
  }
  [[noreturn]] void fail(const Field& field, const std::string& what) {
    fail(field.mark, field.key, what);
  }
  [[noreturn]] void expected(const Field& field, const std::string& what) {
    fail(field, "expected " + what + ", found " + describe(field.node));
  }

  void expect_map(const Field& field, const std::string& what) {
    if (!field.node.IsMap()) expected(field, what);
  }

  // The entries of a map in file order; refuses duplicate keys (yaml-cpp
  // keeps both), keys that are not strings and, when `allowed` is not empty,
  // unknown keys.
  std::vector<Entry> entries(const Field& map, const std::vector<std::string>& allowed,
                             const std::string& what) {
    std::vector<Entry> out;
    std::map<std::string, YAML::Mark> seen;
    for (auto it = map.node.begin(); it != map.node.end(); ++it) {
      const YAML::Node key = it->first;  // a copy: it-> yields a temporary
      const std::string prefix = map.key.empty() ? "" : map.key + ".";
      if (!key.IsScalar()) {
        fail(key.Mark(), map.key, "expected a name as key, found " + describe(key));
      }
      const std::string name = key.Scalar();
      const std::string path = prefix + name;
      if (const auto first = seen.find(name); first != seen.end()) {
        fail(key.Mark(), path,
             "duplicate key " + in_quotes(name) + " (first at line " +
                 std::to_string(first->second.line + 1) + ")");
      }
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        fail(key.Mark(), path,
             "unknown key " + in_quotes(name) + stack::did_you_mean(name, allowed) + " (" + what +
                 " takes: " + join(allowed) + ")");
      }
      seen.emplace(name, key.Mark());
      out.push_back(Entry{name, key.Mark(), Field(it->second, key.Mark(), path)});
    }
    return out;
  }

  // The names the file declares, however wrong the rest is: what a reference
  // written before its target is checked against.
  void look_for_names(const YAML::Node& root) {
    for (const char* name : {"services", "jobs"}) {
      const YAML::Node section = value_of(root, name);
      if (!section.IsMap()) continue;
      for (auto it = section.begin(); it != section.end(); ++it) {
        if (it->first.IsScalar()) known_names_.push_back(it->first.Scalar());
        if (std::string_view(name) != "services" || !it->second.IsMap()) continue;
        const YAML::Node ports = value_of(it->second, "ports");
        if (!ports.IsSequence()) continue;
        for (const auto& port : ports) {
          if (port.IsScalar()) known_ports_.push_back(port.Scalar());
        }
      }
    }
  }

  std::string scalar(const Field& field, const std::string& what) {
    if (!field.node.IsScalar()) expected(field, what);
    return field.node.Scalar();
  }

  // A string of the file with its substitutions made (ports kept).
  std::string text(const Field& field, const std::string& what) {
    const std::string raw = scalar(field, what);
    if (raw.find('\0') != std::string::npos) fail(field, "a NUL byte in " + in_quotes(raw));
    std::vector<std::string> ports;
    std::string out;
    try {
      out = stack::expand_load(raw, context_, ports);
    } catch (const ValueError& e) {
      fail(field, e.what());
    }
    for (const auto& port : ports) {
      if (std::find(known_ports_.begin(), known_ports_.end(), port) == known_ports_.end()) {
        fail(field, "port " + in_quotes(port) + " is not declared" +
                        stack::did_you_mean(port, known_ports_) +
                        " (declare it in a service's ports: [" + port + "])");
      }
    }
    return out;
  }

  std::vector<Field> items(const Field& list, const std::string& what) {
    if (!list.node.IsSequence()) expected(list, what);
    std::vector<Field> out;
    std::size_t index = 0;
    for (const auto& item : list.node) {
      out.emplace_back(item, item.IsNull() ? list.mark : item.Mark(),
                       list.key + "[" + std::to_string(index++) + "]");
    }
    return out;
  }

  std::vector<std::string> argv(const Field& field, const std::string& what,
                                const std::string& example) {
    const std::string form = "a list of strings (" + what + ", e.g. " + example +
                             "; no shell runs: write [sh, -c, \"...\"] for shell syntax)";
    std::vector<std::string> out;
    for (const auto& item : items(field, form)) out.push_back(text(item, "a string"));
    if (out.empty()) fail(field, "empty command: expected " + what);
    if (out.front().empty()) fail(items(field, form).front(), "the program name is empty");
    return out;
  }

  std::map<std::string, std::string> environment(const Field& field) {
    expect_map(field, "a map of environment variables (NAME: value)");
    std::map<std::string, std::string> out;
    for (auto& entry : entries(field, {}, "")) {
      if (entry.name.empty() || entry.name.find('=') != std::string::npos ||
          entry.name.find('\0') != std::string::npos) {
        fail(entry.key_mark, entry.value.key,
             "invalid environment variable name " + in_quotes(entry.name) +
                 ": expected a name without '='");
      }
      if (entry.value.node.IsNull()) {
        fail(entry.value, "expected a string value, found nothing (write \"\" for an empty value)");
      }
      out[entry.name] = text(entry.value, "a string value");
    }
    return out;
  }

  fs::path path(const Field& field, const std::string& what) {
    const std::string value = text(field, what);
    if (value.empty()) fail(field, "expected " + what + ", found an empty string");
    fs::path out(value);
    if (out.is_relative()) out = spec_.dir / out;
    out = out.lexically_normal();
    // "dir/.." normalizes to "parent/": the same directory, without the slash.
    if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
    return out;
  }

  std::chrono::milliseconds duration(const Field& field) {
    const std::string value = scalar(field, "a duration like 250ms, 10s, 1.5s, 2m or 1h");
    try {
      return stack::parse_duration(value);
    } catch (const ValueError& e) {
      fail(field, e.what());
    }
  }

  int signal(const Field& field) {
    const std::string value = scalar(field, "a signal name (SIGTERM, TERM, SIGINT...) or number");
    try {
      return stack::parse_signal(value);
    } catch (const ValueError& e) {
      fail(field, e.what());
    }
  }

  bool boolean(const Field& field) {
    const std::string value = scalar(field, "true or false");
    if (value == "true" || value == "True" || value == "TRUE") return true;
    if (value == "false" || value == "False" || value == "FALSE") return false;
    fail(field, "expected true or false, found " + in_quotes(value));
  }

  // A list of names (ports, requires): each valid, none twice.
  // Each name with its item (the item's key is "...requires[1]").
  std::vector<std::pair<std::string, Field>> names(const Field& field, const std::string& what,
                                                   bool port_names) {
    std::vector<std::pair<std::string, Field>> out;
    std::map<std::string, int> seen;
    for (const auto& item : items(field, "a list of " + what + " names, e.g. [" +
                                             (port_names ? "api, metrics" : "redis") + "]")) {
      const std::string name = scalar(item, "a " + what + " name");
      if (port_names ? !valid_port_name(name) : !valid_name(name)) {
        fail(item, "invalid " + what + " name " + in_quotes(name) +
                       ": expected letters, digits, '_'" +
                       (port_names ? " or '-'" : ", '-' or '.'"));
      }
      if (const auto first = seen.find(name); first != seen.end()) {
        fail(item, in_quotes(name) + " is listed twice (first at line " +
                       std::to_string(first->second) + ")");
      }
      seen.emplace(name, item.mark.line + 1);
      out.emplace_back(name, item);
    }
    return out;
  }

  void read_defaults(const Field& field) {
    expect_map(field, "a map of defaults (timeout, stop_timeout, stop_signal)");
    for (auto& entry : entries(field, kDefaultsKeys, "defaults")) {
      if (entry.name == "timeout") spec_.defaults.timeout = duration(entry.value);
      if (entry.name == "stop_timeout") spec_.defaults.stop_timeout = duration(entry.value);
      if (entry.name == "stop_signal") spec_.defaults.stop_signal = signal(entry.value);
    }
  }

  void declare(const Entry& entry, const std::string& what) {
    if (!valid_name(entry.name)) {
      fail(entry.key_mark, entry.value.key,
           "invalid " + what + " name " + in_quotes(entry.name) +
               ": expected letters, digits, '_', '-' or '.'");
    }
    if (const auto first = declared_.find(entry.name); first != declared_.end()) {
      fail(entry.key_mark, entry.value.key,
           "the name " + in_quotes(entry.name) + " is already taken by the " + first->second.what +
               " at line " + std::to_string(first->second.mark.line + 1) +
               " (services and jobs share one namespace)");
    }
    declared_.emplace(entry.name, Declared{what, entry.key_mark});
  }

  void read_service(const Entry& entry) {
    declare(entry, "service");
    expect_map(entry.value, "a map describing the service ({command: [...], ...})");
    ServiceSpec service;
    service.name = entry.name;
    service.where = location(entry.key_mark);
    Overrides overrides;
    GraphNode node{entry.name, entry.value.key, {}};
    bool has_command = false;
    for (auto& field : entries(entry.value, kServiceKeys, "a service")) {
      const Field& value = field.value;
      if (field.name == "command") {
        service.command = argv(value, "the program and its arguments", kCommandExample);
        has_command = true;
      } else if (field.name == "env") {
        service.env = environment(value);
      } else if (field.name == "cwd") {
        service.cwd = path(value, "a directory");
      } else if (field.name == "ports") {
        for (auto& [name, item] : names(value, "port", true)) {
          declare_port(name, item.mark, item.key, entry.name);
          service.ports.push_back(name);
        }
      } else if (field.name == "ready") {
        service.ready = ready(value);
      } else if (field.name == "requires") {
        service.requirements = requirements(value, node);
      } else if (field.name == "timeout") {
        service.timeout = duration(value);
        overrides.timeout = true;
      } else if (field.name == "stop_timeout") {
        service.stop_timeout = duration(value);
        overrides.stop_timeout = true;
      } else if (field.name == "stop_signal") {
        service.stop_signal = signal(value);
        overrides.stop_signal = true;
      } else if (field.name == "critical") {
        service.critical = boolean(value);
      } else if (field.name == "log_file") {
        service.log_file = path(value, "a file path");
      } else if (field.name == "reset") {
        if (value.node.IsMap()) {
          service.reset_request = reset_request(value);
        } else {
          service.reset = argv(value,
                               "the reset command and its arguments, or {tcp, send, expect}",
                               "[redis-cli, -p, \"${ports.redis}\", flushall]");
        }
      }
    }
    if (!has_command) {
      fail(entry.key_mark, entry.value.key + ".command",
           "missing key 'command': expected the program and its arguments, e.g. "
           "command: [redis-server, --port, \"${ports.redis}\"]");
    }
    service.templated = true;
    spec_.services.push_back(std::move(service));
    service_overrides_.push_back(overrides);
    graph_.push_back(std::move(node));
  }

  void read_job(const Entry& entry) {
    declare(entry, "job");
    expect_map(entry.value, "a map describing the job ({command: [...], ...})");
    JobSpec job;
    job.name = entry.name;
    job.where = location(entry.key_mark);
    GraphNode node{entry.name, entry.value.key, {}};
    bool has_command = false;
    bool has_timeout = false;
    for (auto& field : entries(entry.value, kJobKeys, "a job")) {
      const Field& value = field.value;
      if (field.name == "command") {
        job.command = argv(value, "the program and its arguments", kCommandExample);
        has_command = true;
      } else if (field.name == "env") {
        job.env = environment(value);
      } else if (field.name == "cwd") {
        job.cwd = path(value, "a directory");
      } else if (field.name == "requires") {
        job.requirements = requirements(value, node);
      } else if (field.name == "timeout") {
        job.timeout = duration(value);
        has_timeout = true;
      }
    }
    if (!has_command) {
      fail(entry.key_mark, entry.value.key + ".command",
           "missing key 'command': expected the program and its arguments");
    }
    job.templated = true;
    spec_.jobs.push_back(std::move(job));
    job_has_timeout_.push_back(has_timeout);
    graph_.push_back(std::move(node));
  }

  std::vector<std::string> requirements(const Field& field, GraphNode& node) {
    std::vector<std::string> out;
    for (auto& [name, item] : names(field, "service or job", false)) {
      if (std::find(known_names_.begin(), known_names_.end(), name) == known_names_.end()) {
        fail(item,
             "unknown service or job " + in_quotes(name) + stack::did_you_mean(name, known_names_));
      }
      node.edges.push_back({name, item.mark, item.key});
      out.push_back(name);
    }
    return out;
  }

  void declare_port(const std::string& name, const YAML::Mark& mark, const std::string& key,
                    const std::string& service) {
    for (const auto& [other, owner] : ports_) {
      if (other == name) {
        fail(mark, key,
             "port " + in_quotes(name) + " is already declared by service " +
                 in_quotes(owner.first) + " (line " + std::to_string(owner.second + 1) + ")");
      }
      if (port_env_name(other) == port_env_name(name)) {
        fail(mark, key,
             "port " + in_quotes(name) + " and port " + in_quotes(other) + " (service " +
                 in_quotes(owner.first) + ") would both be " + port_env_name(name));
      }
    }
    ports_.emplace_back(name, std::make_pair(service, mark.line));
  }

  ReadySpec ready(const Field& field) {
    const std::string forms = join(kReadyKeys);
    expect_map(field, "a map with one of " + forms + " (e.g. {tcp: \"127.0.0.1:${ports.api}\"})");
    const auto found = entries(field, kReadyKeys, "ready");
    if (found.empty()) fail(field, "expected one of " + forms + ", found an empty map");
    if (found.size() > 1) {
      fail(found[1].key_mark, found[1].value.key,
           "ready takes one form, found " + in_quotes(found[0].name) + " and " +
               in_quotes(found[1].name) + " (combine them with all: [...] or any: [...])");
    }
    const Entry& form = found[0];
    const Field& value = form.value;
    ReadySpec spec;
    spec.where = location(form.key_mark);
    spec.templated = true;
    if (form.name == "banner") {
      spec.kind = ReadySpec::Kind::banner;
      read_banner(value, spec);
    } else if (form.name == "tcp") {
      spec.kind = ReadySpec::Kind::tcp;
      read_tcp(value, spec);
    } else if (form.name == "http") {
      spec.kind = ReadySpec::Kind::http;
      read_http(value, spec);
    } else if (form.name == "pidfile") {
      spec.kind = ReadySpec::Kind::pidfile;
      spec.path = path(value, "the pid file's path");
    } else if (form.name == "unix") {
      spec.kind = ReadySpec::Kind::unix_socket;
      spec.path = path(value, "the unix socket's path");
    } else if (form.name == "exec") {
      spec.kind = ReadySpec::Kind::exec;
      spec.argv = argv(value, "the probe command and its arguments",
                       "[redis-cli, -p, \"${ports.redis}\", ping]");
    } else {
      spec.kind = form.name == "all" ? ReadySpec::Kind::all : ReadySpec::Kind::any;
      const auto children =
          items(value,
                "a list of ready conditions, e.g. [{tcp: \"127.0.0.1:${ports.api}\"}, "
                "{banner: started}]");
      if (children.empty())
        fail(value, "expected at least one ready condition, found an empty list");
      for (const auto& child : children) spec.children.push_back(ready(child));
    }
    return spec;
  }

  // Checks an RE2 pattern; ports stand for any number meanwhile.
  void check_pattern(const Field& field, const std::string& pattern) {
    std::map<std::string, Port> ports;
    for (const auto& name : stack::ports_in(pattern)) ports.emplace(name, Port(1));
    const std::string concrete = stack::expand_ports(pattern, ports);
    try {
      detail::compile_pattern(concrete, "pattern");
    } catch (const Error& e) {
      std::string why = e.what();
      if (const auto colon = why.rfind("/: "); colon != std::string::npos)
        why = why.substr(colon + 3);
      fail(field, "invalid regular expression " + in_quotes(concrete) + ": " + why +
                      " (expected an RE2 pattern)");
    }
  }

  void read_banner(const Field& field, ReadySpec& spec) {
    if (field.node.IsMap()) {
      bool has_pattern = false;
      for (auto& entry : entries(field, kBannerKeys, "banner")) {
        if (entry.name == "pattern") {
          spec.pattern = text(entry.value, "a regular expression");
          check_pattern(entry.value, spec.pattern);
          has_pattern = true;
        } else {
          const std::string stream = scalar(entry.value, "stdout or stderr");
          if (stream == "stdout") {
            spec.stream = Stream::out;
          } else if (stream == "stderr") {
            spec.stream = Stream::err;
          } else {
            fail(entry.value, "expected stdout or stderr, found " + in_quotes(stream) +
                                  stack::did_you_mean(stream, {"stdout", "stderr"}));
          }
        }
      }
      if (!has_pattern) fail(field.mark, field.key + ".pattern", "missing key 'pattern'");
      return;
    }
    spec.pattern = text(field, "a regular expression, or {pattern, stream}");
    if (spec.pattern.empty()) fail(field, "expected a regular expression, found an empty string");
    check_pattern(field, spec.pattern);
  }

  ServiceSpec::ResetRequest reset_request(const Field& field) {
    ServiceSpec::ResetRequest request;
    bool has_tcp = false;
    bool has_send = false;
    bool has_expect = false;
    for (auto& entry : entries(field, kResetKeys, "reset")) {
      const Field& value = entry.value;
      if (entry.name == "tcp") {
        ReadySpec address;
        read_tcp(value, address);
        request.host = address.host;
        request.port = address.port;
        has_tcp = true;
      } else if (entry.name == "send") {
        request.send = text(value, "the text to send, e.g. \"FLUSHALL\\r\\n\"");
        if (request.send.empty()) fail(value, "expected the text to send, found an empty string");
        has_send = true;
      } else if (entry.name == "expect") {
        request.expect = text(value, "a regular expression the reply must contain");
        if (request.expect.empty()) {
          fail(value, "expected a regular expression, found an empty string");
        }
        check_pattern(value, request.expect);
        has_expect = true;
      } else {
        request.timeout = duration(value);
      }
    }
    for (auto [present, key] : {std::pair{has_tcp, "tcp"}, std::pair{has_send, "send"},
                                std::pair{has_expect, "expect"}}) {
      if (!present) {
        fail(field.mark, field.key + "." + key,
             std::string("missing key '") + key +
                 "': a reset request is {tcp: HOST:PORT, send: TEXT, expect: PATTERN}, e.g. "
                 "{tcp: \"127.0.0.1:${ports.redis}\", send: \"FLUSHALL\\r\\n\", expect: "
                 "\"^\\\\+OK\"}");
      }
    }
    return request;
  }

  void read_tcp(const Field& field, ReadySpec& spec) {
    const std::string address = text(field, "HOST:PORT, e.g. \"127.0.0.1:${ports.api}\"");
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) {
      fail(field,
           "expected HOST:PORT, e.g. \"127.0.0.1:${ports.api}\", found " + in_quotes(address));
    }
    std::string host = address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    const std::string port = address.substr(colon + 1);
    if (host.empty()) fail(field, "expected HOST:PORT, found no host in " + in_quotes(address));
    const auto refs = stack::ports_in(port);
    const bool is_ref = refs.size() == 1 && port == "${ports." + refs[0] + "}";
    const bool is_number =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        std::stoi(port) >= 1 && std::stoi(port) <= 65535;
    if (!is_ref && !is_number) {
      fail(field, "expected a port (1 to 65535, or ${ports.NAME}) after the last ':', found " +
                      in_quotes(port));
    }
    spec.host = host;
    spec.port = port;
  }

  void read_url(const Field& field, std::string& url) {
    url = text(field, "a URL, e.g. \"http://127.0.0.1:${ports.api}/health\"");
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      fail(field, "expected a URL starting with http:// or https://, found " + in_quotes(url));
    }
  }

  void read_http(const Field& field, ReadySpec& spec) {
    if (!field.node.IsMap()) {
      read_url(field, spec.http.url);
      return;
    }
    bool has_url = false;
    for (auto& entry : entries(field, kHttpKeys, "http")) {
      const Field& value = entry.value;
      if (entry.name == "url") {
        read_url(value, spec.http.url);
        has_url = true;
      } else if (entry.name == "method") {
        const std::string method = scalar(value, "an HTTP method (" + join(kMethods) + ")");
        if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end()) {
          fail(value, "unknown HTTP method " + in_quotes(method) +
                          stack::did_you_mean(method, kMethods) + " (expected one of " +
                          join(kMethods) + ")");
        }
        spec.http.method = method;
      } else if (entry.name == "status") {
        spec.http.status = text(value, "a status pattern, e.g. \"2..\" or 204");
        check_pattern(value, spec.http.status);
      } else if (entry.name == "headers") {
        expect_map(value, "a map of headers (Name: value)");
        for (auto& header : entries(value, {}, "")) {
          spec.http.headers[header.name] = text(header.value, "a header value");
        }
      } else if (entry.name == "body") {
        spec.http.body = text(value, "the request body (a string)");
      }
    }
    if (!has_url) {
      fail(field.mark, field.key + ".url",
           "missing key 'url': expected e.g. url: \"http://127.0.0.1:${ports.api}/health\"");
    }
  }

  void read_plugins(const Field& field) {
    expect_map(field, "a map of plugins (IDENT: {plugin: NAME, ...})");
    for (auto& entry : entries(field, {}, "")) spec_.plugins.idents.push_back(entry.name);
    spec_.plugins.present = true;
    spec_.plugins.where = location(field.node.Mark());
    spec_.plugins.document = text_;
    spec_.plugins.node = std::make_shared<const YAML::Node>(field.node);
  }

  void apply_defaults() {
    for (std::size_t i = 0; i < spec_.services.size(); ++i) {
      auto& service = spec_.services[i];
      if (!service_overrides_[i].timeout) service.timeout = spec_.defaults.timeout;
      if (!service_overrides_[i].stop_timeout) service.stop_timeout = spec_.defaults.stop_timeout;
      if (!service_overrides_[i].stop_signal) service.stop_signal = spec_.defaults.stop_signal;
    }
    for (std::size_t i = 0; i < spec_.jobs.size(); ++i) {
      if (!job_has_timeout_[i]) spec_.jobs[i].timeout = spec_.defaults.timeout;
    }
  }

  // Iterative depth-first search; the first cycle met, starting from the
  // first node in file order, is reported at its first edge.
  void check_cycles() {
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < graph_.size(); ++i) index.emplace(graph_[i].name, i);
    enum class Color { white, grey, black };
    std::vector<Color> color(graph_.size(), Color::white);
    struct Frame {
      std::size_t node;
      std::size_t next_edge;
    };
    for (std::size_t root = 0; root < graph_.size(); ++root) {
      if (color[root] != Color::white) continue;
      std::vector<Frame> stack{{root, 0}};
      color[root] = Color::grey;
      while (!stack.empty()) {
        Frame& top = stack.back();
        const GraphNode& node = graph_[top.node];
        if (top.next_edge == node.edges.size()) {
          color[top.node] = Color::black;
          stack.pop_back();
          continue;
        }
        const std::size_t target = index.at(node.edges[top.next_edge++].target);
        if (color[target] == Color::grey) {
          std::size_t start = 0;
          while (stack[start].node != target) ++start;
          std::string path;
          for (std::size_t i = start; i < stack.size(); ++i)
            path += graph_[stack[i].node].name + " -> ";
          path += graph_[target].name;
          const GraphNode& first = graph_[stack[start].node];
          const auto& edge = first.edges[stack[start].next_edge - 1];
          fail(edge.mark, edge.key, "dependency cycle: " + path);
        }
        if (color[target] == Color::white) {
          color[target] = Color::grey;
          stack.push_back({target, 0});
        }
      }
    }
  }

  struct Overrides {
    bool timeout = false;
    bool stop_timeout = false;
    bool stop_signal = false;
  };

  std::string label_;
  std::shared_ptr<const std::string> text_;
  StackSpec spec_;
  stack::ExpandContext context_;
  std::map<std::string, Declared> declared_;
  // port name -> (service, 0-based line), in declaration order.
  std::vector<std::pair<std::string, std::pair<std::string, int>>> ports_;
  std::vector<std::string> known_names_;
  std::vector<std::string> known_ports_;
  std::vector<GraphNode> graph_;
  std::vector<Overrides> service_overrides_;
  std::vector<bool> job_has_timeout_;
};

fs::path directory_of(const fs::path& file) {
  if (file.empty()) return fs::current_path();
  return fs::absolute(file).lexically_normal().parent_path();
}

}  // namespace

StackSpec parse_stack_text(std::string_view yaml, const std::filesystem::path& file) {
  const std::string label = file.empty() ? "<memory>" : file.string();
  Loader loader(label, file, directory_of(file), std::make_shared<const std::string>(yaml));
  return loader.load();
}

StackSpec parse_stack_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw ConfigError(
        file.string(), 0, 0, "",
        "cannot read the stack file: " + std::error_code(error, std::generic_category()).message());
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw ConfigError(file.string(), 0, 0, "", "cannot read the stack file");
  }
  return parse_stack_text(text.str(), file);
}

}  // namespace roadie
