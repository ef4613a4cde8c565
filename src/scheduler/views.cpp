// Read-only views of jobs: what observers receive and the listings are made of.
#include <mutex>

#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"

namespace roadie::detail {

std::string message_of(const std::exception_ptr& error) {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

JobView view_of(const SchedulerImpl& s, const Node& n) {
  JobView v;
  v.id = n.index + 1;
  v.number = std::to_string(v.id);
  v.label = n.label;
  v.path = n.label;
  v.kind = n.kind;
  v.critical = n.options.critical;
  v.forever = n.options.forever;
  v.state = n.state;
  v.requirements.reserve(n.requires_.size());
  for (const auto& r : n.requires_) {
    v.requirements.push_back({r.index + 1, s.node(r.index).label, r.allow_failure});
  }
  if (n.started) {
    v.start_time = n.start_time;
    v.duration = (n.finished ? n.finish_time : Clock::now()) - n.start_time;
  }
  if (n.finished) v.end_time = n.finish_time;
  if (n.kind == JobKind::service) {
    v.readiness = n.service->check().describe();
    if (n.state == JobState::ready || n.state == JobState::stopped) v.ready_time = n.finish_time;
  }
  if (n.result.has_value() && n.describe) v.result = n.describe(n.result);
  v.reason = n.reason;
  v.error = message_of(n.error);
  return v;
}

Snapshot snapshot_of(const SchedulerImpl& s, const std::string& number_prefix,
                     const std::string& path_prefix, std::size_t depth) {
  Snapshot snap;
  std::vector<const Scheduler*> nested;
  {
    std::lock_guard lock(s.mutex);
    snap.label = s.options.label;
    snap.has_run = s.has_run;
    snap.ok = s.ok;
    snap.why = s.abort_reason;
    snap.run_start = s.run_start;
    snap.run_end = s.run_end;
    snap.jobs.reserve(s.nodes.size());
    for (const auto& n : s.nodes) {
      JobView v = view_of(s, *n);
      v.number = number_prefix + v.number;
      v.path = path_prefix + v.path;
      v.depth = depth;
      snap.jobs.push_back(std::move(v));
      nested.push_back(n->nested.get());
    }
  }
  // One lock at a time: a nested run's bookkeeping never waits for ours.
  snap.inner.resize(nested.size());
  for (std::size_t i = 0; i < nested.size(); ++i) {
    if (nested[i] == nullptr) continue;
    const JobView& job = snap.jobs[i];
    snap.inner[i] = std::make_unique<Snapshot>(
        snapshot_of(SchedulerImpl::of(*nested[i]), job.number + ".", job.path + "/", depth + 1));
  }
  return snap;
}

namespace {
void flatten(Snapshot& snap, std::vector<JobView>& out) {
  for (std::size_t i = 0; i < snap.jobs.size(); ++i) {
    out.push_back(std::move(snap.jobs[i]));
    if (snap.inner[i]) flatten(*snap.inner[i], out);
  }
}
}  // namespace

}  // namespace roadie::detail

namespace roadie {

std::vector<JobView> Scheduler::views() const {
  detail::Snapshot snap = detail::snapshot_of(*impl_);
  std::vector<JobView> all;
  detail::flatten(snap, all);
  return all;
}

}  // namespace roadie
