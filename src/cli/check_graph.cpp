// `roadie check` and `roadie graph`: read the stack file, start nothing.
#include <cstdio>
#include <iostream>
#include <string>

#include "exit_codes.hpp"
#include "roadie/error.hpp"
#include "roadie/scheduler.hpp"
#include "roadie/stack.hpp"
#include "verbs.hpp"

namespace roadie::cli {
namespace {

std::string count(std::size_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// One line per job, in file order: name, kind, requirements, readiness.
std::string text_graph(const Scheduler& scheduler) {
  const auto views = scheduler.views();
  std::size_t width = 0;
  for (const auto& view : views) width = std::max(width, view.label.size());
  std::string out;
  for (const auto& view : views) {
    std::string line = view.label + std::string(width - view.label.size() + 2, ' ');
    line += view.kind == JobKind::service ? "service" : "job    ";
    if (!view.requirements.empty()) {
      line += "  requires ";
      for (std::size_t i = 0; i < view.requirements.size(); ++i) {
        line += (i == 0 ? "" : ", ") + view.requirements[i].label;
      }
    }
    if (!view.readiness.empty()) line += "  ready when " + view.readiness;
    out += line + "\n";
  }
  return out;
}

}  // namespace

int check(const CheckOptions& options) {
  try {
    const StackSpec spec = parse_stack_file(options.file);
    std::cout << options.file.string() << ": " << count(spec.services.size(), "service") << ", "
              << count(spec.jobs.size(), "job") << ", " << count(spec.port_names().size(), "port")
              << '\n';
    return kExitOk;
  } catch (const ConfigError& e) {
    std::cerr << e.what() << '\n';
    return kExitUsage;
  }
}

int graph(const GraphOptions& options) {
  try {
    // load() reserves the ports (the graph shows them in readiness checks) and
    // starts nothing.
    Stack stack = Stack::load(options.file);
    std::cout << (options.format == "text" ? text_graph(stack.scheduler())
                                           : stack.scheduler().to_dot());
    return kExitOk;
  } catch (const ConfigError& e) {
    std::cerr << e.what() << '\n';
    return kExitUsage;
  } catch (const Error& e) {
    std::cerr << "roadie graph: " << e.what() << '\n';
    return kExitInternal;
  }
}

}  // namespace roadie::cli
