// Teardown: services stop in reverse dependency order.
#include <deque>
#include <mutex>

#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"

namespace roadie {

using detail::Node;
using detail::SchedulerImpl;

std::vector<StopOutcome> Scheduler::shutdown() {
  SchedulerImpl& s = *impl_;
  std::vector<StopOutcome> outcomes;
  // Reverse of a topological order (requirements first, insertion order among
  // equals), so each service stops before the ones it requires.
  const std::size_t count = s.nodes.size();
  std::vector<std::size_t> indegree(count, 0);
  std::vector<std::vector<std::size_t>> dependents(count);
  for (const auto& n : s.nodes) {
    for (const auto& r : n->requires_) {
      ++indegree[n->index];
      dependents[r.index].push_back(n->index);
    }
  }
  std::vector<std::size_t> order;
  std::deque<std::size_t> queue;
  for (std::size_t i = 0; i < count; ++i) {
    if (indegree[i] == 0) queue.push_back(i);
  }
  while (!queue.empty()) {
    std::size_t i = queue.front();
    queue.pop_front();
    order.push_back(i);
    for (std::size_t d : dependents[i]) {
      if (--indegree[d] == 0) queue.push_back(d);
    }
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& n = s.node(*it);
    if (n.kind == JobKind::scheduler) {
      auto inner = n.nested->shutdown();
      outcomes.insert(outcomes.end(), inner.begin(), inner.end());
      continue;
    }
    if (n.kind != JobKind::service) continue;
    {
      // Only services that became ready: a failed start cleaned up after itself.
      std::lock_guard lock(s.mutex);
      if (n.state != JobState::ready) continue;
    }
    StopOutcome outcome{n.label, std::nullopt, {}};
    try {
      n.service->stop();
    } catch (const std::exception& e) {
      outcome.error = e.what();
    }
    outcome.status = n.service->exit_status();
    std::lock_guard lock(s.mutex);
    n.state = JobState::stopped;
    n.reason =
        outcome.error.empty() ? (outcome.status ? outcome.status->describe() : "") : outcome.error;
    outcomes.push_back(std::move(outcome));
  }
  s.shut_down = true;
  return outcomes;
}
}  // namespace roadie
