// From a checked stack spec to the library's values: port substitution,
// readiness checks, commands and executor options.
#include <algorithm>

#include "roadie/error.hpp"
#include "roadie/stack.hpp"
#include "values.hpp"

namespace roadie {
namespace {

namespace fs = std::filesystem;

class Substitution {
 public:
  Substitution(const StackSpec& spec, const std::map<std::string, Port>& ports)
      : spec_(spec), ports_(ports) {}

  void service(ServiceSpec& service) {
    where_ = service.where;
    key_ = "services." + service.name;
    for (const auto& name : service.ports) {
      if (ports_.count(name) == 0) fail("port '" + name + "' was not reserved");
    }
    strings(service.command);
    strings(service.env);
    path(service.cwd);
    path(service.log_file);
    strings(service.reset);
    if (service.reset_request) {
      auto& request = *service.reset_request;
      for (std::string* text : {&request.host, &request.port, &request.send, &request.expect}) {
        string(*text);
      }
    }
    if (service.ready) ready(*service.ready);
    service.templated = false;
  }

  void job(JobSpec& job) {
    where_ = job.where;
    key_ = "jobs." + job.name;
    strings(job.command);
    strings(job.env);
    path(job.cwd);
    job.templated = false;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(spec_.file.empty() ? "<memory>" : spec_.file.string(), where_.line,
                      where_.column, key_, what);
  }

  void string(std::string& text) {
    try {
      text = stack::expand_ports(text, ports_);
    } catch (const stack::ValueError& e) {
      fail(e.what());
    }
  }
  void strings(std::vector<std::string>& texts) {
    for (auto& text : texts) string(text);
  }
  void strings(std::map<std::string, std::string>& texts) {
    for (auto& [name, text] : texts) string(text);
  }
  void path(fs::path& path) {
    std::string text = path.string();
    string(text);
    path = text;
  }
  void path(std::optional<fs::path>& path) {
    if (path) this->path(*path);
  }

  void ready(ReadySpec& spec) {
    string(spec.pattern);
    string(spec.host);
    string(spec.port);
    string(spec.http.url);
    string(spec.http.method);
    string(spec.http.status);
    strings(spec.http.headers);
    string(spec.http.body);
    path(spec.path);
    strings(spec.argv);
    for (auto& child : spec.children) ready(child);
    spec.templated = false;
  }

  const StackSpec& spec_;
  const std::map<std::string, Port>& ports_;
  SourceLocation where_;
  std::string key_;
};

Command command_of(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env,
                   const std::optional<fs::path>& cwd) {
  Command command(argv);
  for (const auto& [name, value] : env) command.set_env(name, value);
  if (cwd) command.set_cwd(*cwd);
  return command;
}

}  // namespace

std::vector<std::string> StackSpec::port_names() const {
  std::vector<std::string> names;
  for (const auto& service : services)
    names.insert(names.end(), service.ports.begin(), service.ports.end());
  return names;
}

const ServiceSpec* StackSpec::find_service(std::string_view name) const {
  const auto found = std::find_if(services.begin(), services.end(),
                                  [&](const ServiceSpec& s) { return s.name == name; });
  return found == services.end() ? nullptr : &*found;
}

const JobSpec* StackSpec::find_job(std::string_view name) const {
  const auto found =
      std::find_if(jobs.begin(), jobs.end(), [&](const JobSpec& j) { return j.name == name; });
  return found == jobs.end() ? nullptr : &*found;
}

StackSpec substitute_ports(const StackSpec& spec, const std::map<std::string, Port>& ports) {
  StackSpec out = spec;
  if (!spec.templated) return out;
  Substitution substitution(spec, ports);
  for (auto& service : out.services) substitution.service(service);
  for (auto& job : out.jobs) substitution.job(job);
  out.templated = false;
  return out;
}

ReadinessCheck to_check(const ReadySpec& spec) {
  if (spec.templated) {
    throw Error("ready condition at line " + std::to_string(spec.where.line) +
                " still holds ${ports.NAME}: call substitute_ports() first");
  }
  switch (spec.kind) {
    case ReadySpec::Kind::banner:
      return ready::banner(spec.pattern, spec.stream);
    case ReadySpec::Kind::tcp: {
      if (spec.port.empty() || spec.port.size() > 5 ||
          !std::all_of(spec.port.begin(), spec.port.end(),
                       [](char c) { return c >= '0' && c <= '9'; })) {
        throw Error("tcp ready condition: invalid port '" + spec.port + "'");
      }
      return ready::tcp(spec.host, Port(std::stoi(spec.port)));
    }
    case ReadySpec::Kind::http:
      return ready::http(spec.http);
    case ReadySpec::Kind::pidfile:
      return ready::pid_file(spec.path);
    case ReadySpec::Kind::unix_socket:
      return ready::unix_socket(spec.path);
    case ReadySpec::Kind::exec:
      return ready::exec(Command(spec.argv));
    case ReadySpec::Kind::all:
    case ReadySpec::Kind::any: {
      std::vector<ReadinessCheck> children;
      children.reserve(spec.children.size());
      for (const auto& child : spec.children) children.push_back(to_check(child));
      return spec.kind == ReadySpec::Kind::all ? ready::all_of(std::move(children))
                                               : ready::any_of(std::move(children));
    }
  }
  throw Error("unknown ready condition kind");
}

Command to_command(const ServiceSpec& service) {
  if (service.templated) {
    throw Error("service '" + service.name +
                "' still holds ${ports.NAME}: call substitute_ports() first");
  }
  return command_of(service.command, service.env, service.cwd);
}

Command to_command(const JobSpec& job) {
  if (job.templated) {
    throw Error("job '" + job.name + "' still holds ${ports.NAME}: call substitute_ports() first");
  }
  return command_of(job.command, job.env, job.cwd);
}

ExecutorOptions to_executor_options(const ServiceSpec& service) {
  ExecutorOptions options;
  options.name = service.name;
  options.timeout = service.timeout;
  options.stop_timeout = service.stop_timeout;
  options.stop_signal = service.stop_signal;
  if (service.log_file) options.log_file = *service.log_file;
  return options;
}

}  // namespace roadie
