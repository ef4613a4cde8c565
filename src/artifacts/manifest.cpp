// manifest: <root>/manifest.json lists every test of every process that wrote
// into the root. Each process appends its entries to its own part file (one
// JSON object per line, O_APPEND); manifest.json is rebuilt from all parts
// under an flock and replaced by rename(), so a reader, a parallel shard or a
// killed binary never sees it half-written, and no process's entries are lost.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "artifacts_impl.hpp"
#include "../log.hpp"

namespace roadie::detail {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// How often a busy run rebuilds manifest.json (always at session_finish and
// when the plugin ends).
constexpr auto kRebuildEvery = std::chrono::milliseconds(250);

class UniqueFile {
 public:
  UniqueFile() = default;
  explicit UniqueFile(int fd) : fd_(fd) {}
  UniqueFile(UniqueFile&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFile& operator=(UniqueFile&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~UniqueFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

class Manifest final : public Plugin {
 public:
  Manifest(std::string ident, fs::path root) : Plugin(std::move(ident)), root_(std::move(root)) {}

  void initialize() override {
    paths_ = ArtifactPaths::of(bus(), root_);
    parts_ = paths_->root() / ".roadie-manifest";
    // After every hook wrote its files: a post callback, late among them.
    finish_ = bus().add_post(
        std::string(events::finish_test), [this](EventContext& e) { on_finish(e); }, 1000,
        ident() + " (manifest)");
    register_hook(std::string(events::session_finish), [this](EventContext&) { rebuild(); });
  }

  void finish() override {
    finish_.reset();
    std::lock_guard lock(mutex_);
    if (wrote_) rebuild_locked();
  }

 private:
  void on_finish(EventContext& event) {
    json entry;
    entry["suite"] = event.get_or<std::string>("suite_name", "");
    entry["name"] = event.get_or<std::string>("test_name", "");
    entry["result"] = event.get_or<std::string>("test_result", "");
    entry["duration"] = event.get_or<double>("test_duration", 0.0);
    entry["failure"] = event.get_or<std::string>("failure_text", "");
    entry["pid"] = ::getpid();
    if (const Value* dir = event.find("artifact_path"); dir && dir->get_if<fs::path>()) {
      const fs::path& path = *dir->get_if<fs::path>();
      entry["dir"] = path.lexically_relative(paths_->root()).generic_string();
      json files = json::array();
      for (const std::string& file : paths_->files_of(path)) {
        files.push_back((fs::path(entry["dir"].get<std::string>()) / file).generic_string());
      }
      entry["files"] = std::move(files);
    }
    std::string line = entry.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::lock_guard lock(mutex_);
    append_locked(line);
    if (std::chrono::steady_clock::now() - last_rebuild_ >= rebuild_every_) rebuild_locked();
  }

  void rebuild() {
    std::lock_guard lock(mutex_);
    rebuild_locked();
  }

  void append_locked(const std::string& line) {
    if (part_.get() < 0) {
      ensure_real_directory(parts_);
      std::random_device random;
      part_path_ = parts_ / (std::to_string(::getpid()) + "-" + std::to_string(random()) + ".jsonl");
      part_ = UniqueFile(::open(part_path_.c_str(),
                                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
      if (part_.get() < 0) {
        throw Error("manifest: cannot create " + part_path_.string() + ": " + std::strerror(errno));
      }
    }
    // One write per entry: O_APPEND keeps whole lines; a crash can only cut
    // the last one, and the rebuild skips a line that does not parse.
    if (::write(part_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw Error("manifest: cannot append to " + part_path_.string() + ": " + std::strerror(errno));
    }
    wrote_ = true;
  }

  void rebuild_locked() {
    last_rebuild_ = std::chrono::steady_clock::now();
    ensure_real_directory(parts_);
    UniqueFile lock(::open((parts_ / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX) != 0) {
      throw Error("manifest: cannot lock " + (parts_ / "lock").string() + ": " + std::strerror(errno));
    }
    std::vector<fs::path> parts;
    for (const auto& item : fs::directory_iterator(parts_)) {
      if (item.path().extension() == ".jsonl" && item.is_regular_file()) parts.push_back(item.path());
    }
    std::sort(parts.begin(), parts.end());
    // The entries are compact JSON objects already: each line is checked
    // (json::accept builds nothing) and copied as it is, one per line. A
    // rebuild re-reads every part, so its cost grows with the run: parsing
    // each entry into a document and printing it again made it a quarter of
    // a 3,000-test run.
    std::string text = "{\n\"version\": 1,\n\"root\": " +
                       json(paths_->root().string()).dump(-1, ' ', false,
                                                          json::error_handler_t::replace) +
                       ",\n\"tests\": [";
    bool first = true;
    for (const fs::path& part : parts) {
      std::ifstream in(part);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line.front() != '{' || !json::accept(line)) continue;
        text += first ? "\n" : ",\n";
        text += line;
        first = false;
      }
    }
    text += "\n]\n}\n";
    write_atomically(paths_->root() / "manifest.json", text);
    // Mid-run rebuilds take at most a twentieth of the time.
    rebuild_every_ = std::max<std::chrono::steady_clock::duration>(
        kRebuildEvery, 20 * (std::chrono::steady_clock::now() - last_rebuild_));
  }

  fs::path root_;
  std::shared_ptr<ArtifactPaths> paths_;
  fs::path parts_;
  fs::path part_path_;
  std::mutex mutex_;
  UniqueFile part_;
  bool wrote_ = false;
  std::chrono::steady_clock::time_point last_rebuild_{};
  std::chrono::steady_clock::duration rebuild_every_ = kRebuildEvery;
  Subscription finish_;
};

}  // namespace

std::unique_ptr<Plugin> make_manifest(std::string ident, fs::path root) {
  return std::make_unique<Manifest>(std::move(ident), std::move(root));
}

}  // namespace roadie::detail
