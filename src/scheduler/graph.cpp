// Building the graph: adding jobs, finding them, observers.
#include <memory>

#include "../log.hpp"
#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"

namespace roadie {

using detail::Node;
using detail::SchedulerImpl;

Scheduler::Scheduler(SchedulerOptions options)
    : impl_(std::make_unique<SchedulerImpl>(std::move(options))) {}

Scheduler::Scheduler(Scheduler&&) noexcept = default;

Scheduler::~Scheduler() {
  if (!impl_) return;
  try {
    shutdown();
  } catch (const std::exception& e) {
    detail::log().error("scheduler '{}': shutdown failed: {}", impl_->options.label, e.what());
  }
}

const SchedulerOptions& Scheduler::options() const noexcept {
  return impl_->options;
}

Job Scheduler::add_callable(Callable fn, Describer describe, JobOptions options) {
  auto n = std::make_unique<Node>();
  n->index = impl_->nodes.size();
  n->label = options.label.empty() ? "job " + std::to_string(n->index + 1) : options.label;
  n->options = std::move(options);
  n->kind = JobKind::callable;
  n->fn = std::move(fn);
  n->describe = std::move(describe);
  impl_->nodes.push_back(std::move(n));
  return Job(impl_.get(), impl_->nodes.size() - 1);
}

Job Scheduler::add_service(Executor executor, JobOptions options) {
  auto n = std::make_unique<Node>();
  n->index = impl_->nodes.size();
  n->label = options.label.empty() ? executor.name() : options.label;
  n->options = std::move(options);
  n->kind = JobKind::service;
  n->service = std::make_unique<Executor>(std::move(executor));
  impl_->nodes.push_back(std::move(n));
  return Job(impl_.get(), impl_->nodes.size() - 1);
}

Job Scheduler::add_scheduler(Scheduler inner, JobOptions options) {
  auto n = std::make_unique<Node>();
  n->index = impl_->nodes.size();
  n->label = options.label.empty() ? inner.options().label : options.label;
  options.critical = options.critical && inner.options().critical;
  n->options = std::move(options);
  n->kind = JobKind::scheduler;
  n->nested = std::make_unique<Scheduler>(std::move(inner));
  // Its job events reach this scheduler's observers too, named from here.
  SchedulerImpl::of(*n->nested).bus->nest_in(impl_->bus, std::to_string(n->index + 1), n->label);
  impl_->nodes.push_back(std::move(n));
  return Job(impl_.get(), impl_->nodes.size() - 1);
}

std::optional<Job> Scheduler::find(std::string_view label) const {
  for (const auto& n : impl_->nodes) {
    if (n->label == label) return Job(impl_.get(), n->index);
  }
  return std::nullopt;
}

std::vector<Job> Scheduler::jobs() const {
  std::vector<Job> all;
  for (const auto& n : impl_->nodes) all.push_back(Job(impl_.get(), n->index));
  return all;
}

Subscription Scheduler::add_observer(std::shared_ptr<SchedulerObserver> observer) {
  if (!observer) {
    throw SchedulerError("roadie::Scheduler::add_observer(): null observer (scheduler '" +
                         impl_->options.label + "')");
  }
  return impl_->bus->add(std::move(observer));
}

}  // namespace roadie
