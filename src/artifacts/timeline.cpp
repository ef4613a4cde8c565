// timeline: a Chrome/Perfetto trace of the run in the artifacts root: each
// service's bring-up and life, each job, each test as a span coloured by its
// result. Written at session_finish and when the plugin ends, through a
// temporary file and rename().
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "artifacts_impl.hpp"

namespace roadie::detail {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Trace rows ("threads" of the one trace process).
enum Row : int { kServices = 1, kJobs = 2, kTests = 3 };

class Timeline final : public Plugin {
 public:
  Timeline(std::string ident, fs::path root)
      : Plugin(std::move(ident)), root_(std::move(root)), origin_(Clock::now()) {}

  void initialize() override {
    paths_ = ArtifactPaths::of(bus(), root_);
    file_ = paths_->root() / ("timeline-" + std::to_string(::getpid()) + ".json");
    auto hook = [this](std::string_view event, void (Timeline::*fn)(EventContext&)) {
      register_hook(std::string(event), [this, fn](EventContext& e) { (this->*fn)(e); });
    };
    hook(events::service_starting, &Timeline::on_service_starting);
    hook(events::service_ready, &Timeline::on_service_ready);
    hook(events::service_start_failed, &Timeline::on_service_failed);
    hook(events::service_exited, &Timeline::on_service_end);
    hook(events::service_stopped, &Timeline::on_service_end);
    hook(events::job_start, &Timeline::on_job_start);
    hook(events::job_done, &Timeline::on_job_done);
    hook(events::start_test, &Timeline::on_test_start);
    hook(events::finish_test, &Timeline::on_test_finish);
    hook(events::session_finish, &Timeline::on_session_finish);
  }

  void finish() override {
    std::lock_guard lock(mutex_);
    if (!trace_.empty()) write_locked();
  }

  const fs::path& file() const noexcept { return file_; }

 private:
  double now_us() const {
    return std::chrono::duration<double, std::micro>(Clock::now() - origin_).count();
  }

  void span(Row row, std::string name, double begin, std::string_view colour, json args) {
    json event{{"name", std::move(name)}, {"ph", "X"},   {"ts", begin},
               {"dur", now_us() - begin},  {"pid", 1},   {"tid", static_cast<int>(row)}};
    if (!colour.empty()) event["cname"] = std::string(colour);
    if (!args.is_null()) event["args"] = std::move(args);
    trace_.push_back(event.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void instant(Row row, std::string name, json args) {
    trace_.push_back(json{{"name", std::move(name)}, {"ph", "i"}, {"s", "t"}, {"ts", now_us()},
                          {"pid", 1}, {"tid", static_cast<int>(row)}, {"args", std::move(args)}}
                         .dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void on_service_starting(EventContext& e) {
    std::lock_guard lock(mutex_);
    starting_[e.string("service_name")] = now_us();
  }
  void on_service_ready(EventContext& e) {
    const std::string& name = e.string("service_name");
    std::lock_guard lock(mutex_);
    auto it = starting_.find(name);
    double begin = it != starting_.end() ? it->second : now_us();
    span(kServices, name + " bring-up", begin, "thread_state_runnable",
         json{{"time_to_ready_s", e.get_or<double>("time_to_ready", 0.0)}});
    if (it != starting_.end()) starting_.erase(it);
    running_[name] = now_us();
  }
  void on_service_failed(EventContext& e) {
    const std::string& name = e.string("service_name");
    std::lock_guard lock(mutex_);
    auto it = starting_.find(name);
    double begin = it != starting_.end() ? it->second : now_us();
    span(kServices, name + " failed to start", begin, "terrible",
         json{{"error", e.get_or<std::string>("error", "")}});
    if (it != starting_.end()) starting_.erase(it);
  }
  void on_service_end(EventContext& e) {
    const std::string& name = e.string("service_name");
    std::lock_guard lock(mutex_);
    auto it = running_.find(name);
    json args{{"exit_status", e.get_or<std::string>("exit_status", "")}, {"event", e.event()}};
    if (it == running_.end()) {
      instant(kServices, name + " " + e.event(), std::move(args));
      return;
    }
    span(kServices, name, it->second, e.event() == events::service_exited ? "terrible" : "good",
         std::move(args));
    running_.erase(it);
  }
  void on_job_start(EventContext& e) {
    std::lock_guard lock(mutex_);
    jobs_[e.get_or<std::string>("job_path", e.string("job_label"))] = now_us();
  }
  void on_job_done(EventContext& e) {
    std::string key = e.get_or<std::string>("job_path", e.string("job_label"));
    std::string state = e.get_or<std::string>("job_state", "");
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(key);
    double begin = it != jobs_.end() ? it->second : now_us();
    span(kJobs, key, begin, state == "done" ? "good" : "bad",
         json{{"state", state}, {"reason", e.get_or<std::string>("job_reason", "")}});
    if (it != jobs_.end()) jobs_.erase(it);
  }
  void on_test_start(EventContext& e) {
    std::lock_guard lock(mutex_);
    tests_[test_key(e)].push_back(now_us());
  }
  void on_test_finish(EventContext& e) {
    std::string key = test_key(e);
    std::string result = e.get_or<std::string>("test_result", "");
    std::lock_guard lock(mutex_);
    auto it = tests_.find(key);
    double begin = now_us();
    if (it != tests_.end() && !it->second.empty()) {
      begin = it->second.front();
      it->second.erase(it->second.begin());
      if (it->second.empty()) tests_.erase(it);
    }
    const std::string_view colour = result == "passed"   ? "good"
                                    : result == "failed" ? "terrible"
                                                         : "grey";
    span(kTests, key, begin, colour,
         json{{"result", result}, {"failure", e.get_or<std::string>("failure_text", "")}});
  }
  void on_session_finish(EventContext&) {
    std::lock_guard lock(mutex_);
    write_locked();
  }

  static std::string test_key(EventContext& e) {
    return e.get_or<std::string>("suite_name", "") + "." + e.get_or<std::string>("test_name", "");
  }

  void write_locked() {
    json events = json::array();
    events.push_back(json{{"name", "process_name"}, {"ph", "M"}, {"pid", 1},
                          {"args", {{"name", "roadie (pid " + std::to_string(::getpid()) + ")"}}}});
    for (auto [row, label] : {std::pair{kServices, "services"}, std::pair{kJobs, "jobs"},
                              std::pair{kTests, "tests"}}) {
      events.push_back(json{{"name", "thread_name"}, {"ph", "M"}, {"pid", 1},
                            {"tid", static_cast<int>(row)}, {"args", {{"name", label}}}});
    }
    // The events are kept as their JSON text (made once, when they happen):
    // the file is their concatenation, not a document built again and
    // printed at every write.
    std::string text = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[";
    bool first = true;
    for (const json& event : events) {
      text += first ? "\n" : ",\n";
      text += event.dump(-1, ' ', false, json::error_handler_t::replace);
      first = false;
    }
    for (const std::string& event : trace_) {
      text += first ? "\n" : ",\n";
      text += event;
      first = false;
    }
    text += "\n]}\n";
    write_atomically(file_, text);
  }

  fs::path root_;
  Clock::time_point origin_;
  std::shared_ptr<ArtifactPaths> paths_;
  fs::path file_;
  std::mutex mutex_;
  std::vector<std::string> trace_;  // each event's JSON text
  std::map<std::string, double> starting_;
  std::map<std::string, double> running_;
  std::map<std::string, double> jobs_;
  std::map<std::string, std::vector<double>> tests_;
};

}  // namespace

std::unique_ptr<Plugin> make_timeline(std::string ident, fs::path root) {
  return std::make_unique<Timeline>(std::move(ident), std::move(root));
}

}  // namespace roadie::detail
