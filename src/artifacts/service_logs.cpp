// service_logs: each service's lines between a test's start_test and
// finish_test, cut by position (line sequence numbers), into
// <artifact_path>/<service>.log.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "artifacts_impl.hpp"
#include "roadie/output.hpp"

namespace roadie::detail {
namespace {

namespace fs = std::filesystem;

class ServiceLogs final : public Plugin {
 public:
  ServiceLogs(std::string ident, fs::path root, std::size_t lines_before)
      : Plugin(std::move(ident)), root_(std::move(root)), lines_before_(lines_before) {}

  void initialize() override {
    paths_ = ArtifactPaths::of(bus(), root_);
    register_hook(std::string(events::start_test), [this](EventContext& e) { on_start(e); });
    register_hook(std::string(events::finish_test), [this](EventContext& e) { on_finish(e); });
    register_hook(std::string(events::service_ready), [this](EventContext& e) { on_ready(e); });
  }

 private:
  struct Mark {
    std::string service;
    std::shared_ptr<Output> output;
    std::uint64_t first = 0;
  };
  // The tests under way (usually one), by artifact path.
  using Open = std::map<fs::path, std::vector<Mark>>;

  void on_start(EventContext& event) {
    const fs::path& dir = event.path("artifact_path");
    std::vector<Mark> marks;
    for (const ServiceEntry& service : bus().services()) {
      if (!service.output) continue;
      marks.push_back({service.name, service.output, service.output->bookmark().seq});
    }
    std::lock_guard lock(mutex_);
    open_[dir] = std::move(marks);
  }

  // A service that became ready during a test: its window starts at its
  // first line.
  void on_ready(EventContext& event) {
    const std::string& name = event.string("service_name");
    std::shared_ptr<Output> output;
    for (const ServiceEntry& service : bus().services()) {
      if (service.name == name) output = service.output;
    }
    if (!output) return;
    output->bookmark();  // starts the journal now, if it was not
    std::lock_guard lock(mutex_);
    for (auto& [dir, marks] : open_) {
      bool known = false;
      for (const Mark& mark : marks) known = known || mark.output == output;
      if (!known) marks.push_back({name, output, 0});
    }
  }

  void on_finish(EventContext& event) {
    const fs::path dir = event.path("artifact_path");
    const bool failed = event.get_or<std::string>("test_result", "") == "failed";
    std::vector<Mark> marks;
    {
      std::lock_guard lock(mutex_);
      auto it = open_.find(dir);
      if (it == open_.end()) return;
      marks = std::move(it->second);
      open_.erase(it);
    }
    std::map<std::string, int> used;
    for (const Mark& mark : marks) {
      std::string file = sanitize_path_component(mark.service, 100);
      if (int n = ++used[file]; n > 1) file += "-" + std::to_string(n);
      write_window(dir / (file + ".log"), mark, failed);
    }
  }

  void write_window(const fs::path& file, const Mark& mark, bool failed) {
    const std::uint64_t end = mark.output->next_seq();
    std::string text;
    if (failed && lines_before_ > 0 && mark.first > 0) {
      std::uint64_t from = mark.first > lines_before_ ? mark.first - lines_before_ : 0;
      auto before = mark.output->between(from, mark.first);
      text += "# roadie: " + std::to_string(before.lines.size()) +
              " lines printed before the test started\n";
      append(text, before.lines);
      text += "# roadie: the test started\n";
    }
    auto window = mark.output->between(mark.first, end);
    append(text, window.lines);
    if (window.missing > 0) {
      text += "# roadie: " + std::to_string(window.missing) +
              " lines of this window were not kept (see the service's log file)\n";
    }
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw Error("service_logs: cannot create " + file.string() + ": " + std::strerror(errno));
    if (int error = write_all(fd, text); error != 0) {
      ::close(fd);
      throw Error("service_logs: cannot write " + file.string() + ": " + std::strerror(error));
    }
    ::close(fd);
  }

  static void append(std::string& text, const std::vector<Line>& lines) {
    for (const Line& line : lines) {
      text += utc_timestamp(line.time);
      text += line.stream == Stream::out ? " [stdout] " : " [stderr] ";
      text += line.text;
      text += '\n';
    }
  }

  fs::path root_;
  std::size_t lines_before_;
  std::shared_ptr<ArtifactPaths> paths_;
  std::mutex mutex_;
  Open open_;
};

}  // namespace

std::unique_ptr<Plugin> make_service_logs(std::string ident, fs::path root,
                                          std::size_t lines_before_failure) {
  return std::make_unique<ServiceLogs>(std::move(ident), std::move(root), lines_before_failure);
}

}  // namespace roadie::detail
