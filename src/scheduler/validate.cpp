// Checking the graph before a run.
#include <algorithm>

#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"

namespace roadie {

using detail::Node;

void Scheduler::validate() const {
  const auto& nodes = impl_->nodes;
  std::vector<std::string> problems;
  for (const auto& n : nodes) {
    for (const auto& f : n->foreign) {
      problems.push_back("job '" + n->label + "' requires '" + f +
                         "', which is not in scheduler '" + impl_->options.label + "'");
    }
    for (const auto& r : n->requires_) {
      const Node& required = *nodes[r.index];
      if (required.options.forever && required.kind != JobKind::service) {
        problems.push_back("job '" + n->label + "' requires forever job '" + required.label +
                           "', which never finishes (only a service's readiness can be required)");
      }
    }
  }
  // Cycle search: iterative depth-first, O(V+E), reporting the first cycle's path.
  enum : char { white, grey, black };
  std::vector<char> colour(nodes.size(), white);
  std::vector<std::pair<std::size_t, std::size_t>> stack;  // (node, next requirement)
  for (std::size_t root = 0; root < nodes.size() && problems.empty(); ++root) {
    if (colour[root] != white) continue;
    stack.push_back({root, 0});
    colour[root] = grey;
    while (!stack.empty()) {
      auto& [index, next] = stack.back();
      const auto& reqs = nodes[index]->requires_;
      if (next == reqs.size()) {
        colour[index] = black;
        stack.pop_back();
        continue;
      }
      std::size_t to = reqs[next++].index;
      if (colour[to] == grey) {
        std::string path;
        auto from =
            std::find_if(stack.begin(), stack.end(), [&](auto& e) { return e.first == to; });
        for (auto it = from; it != stack.end(); ++it) path += nodes[it->first]->label + " -> ";
        path += nodes[to]->label;
        problems.push_back("requirement cycle: " + path + " (each requires the next)");
        break;
      }
      if (colour[to] == white) {
        colour[to] = grey;
        stack.push_back({to, 0});
      }
    }
    stack.clear();
  }
  if (!problems.empty()) {
    std::string message = "scheduler '" + impl_->options.label + "' is invalid:";
    for (const auto& p : problems) message += "\n  " + p;
    throw SchedulerError(message);
  }
}
}  // namespace roadie
