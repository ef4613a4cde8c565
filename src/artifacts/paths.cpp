// The artifacts root, safe names, and each test's directory.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

#include "artifacts_impl.hpp"
#include "../log.hpp"
#include "roadie/error.hpp"

namespace roadie {

namespace fs = std::filesystem;

fs::path default_artifacts_root() {
  for (const char* variable : {"ROADIE_ARTIFACTS_DIR", "TEST_UNDECLARED_OUTPUTS_DIR"}) {
    const char* value = std::getenv(variable);
    if (value != nullptr && *value != '\0') return fs::path(value);
  }
  return fs::current_path() / "roadie-artifacts";
}

namespace {

// Length of the UTF-8 sequence that starts with `lead` (1 for a stray byte).
std::size_t utf8_length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ULL;
  return hash;
}

}  // namespace

std::string sanitize_path_component(std::string_view name, std::size_t max_bytes) {
  if (max_bytes < 24) max_bytes = 24;  // room for the hash of a cut name
  std::string safe;
  safe.reserve(name.size());
  for (unsigned char c : name) {
    safe += (c < 0x20 || c == 0x7F || c == '/' || c == '\\') ? '_' : static_cast<char>(c);
  }
  if (safe.empty() || safe == "." || safe == "..") safe = "_" + safe;
  if (safe.size() > max_bytes) {
    char tail[24];
    std::snprintf(tail, sizeof tail, "~%016llx", static_cast<unsigned long long>(fnv1a(name)));
    std::size_t keep = max_bytes - std::strlen(tail);
    std::size_t cut = 0;
    while (cut < keep) {
      std::size_t next = cut + utf8_length(static_cast<unsigned char>(safe[cut]));
      if (next > keep) break;
      cut = next;
    }
    safe = safe.substr(0, cut) + tail;
  }
  return safe;
}

namespace detail {

void ensure_real_directory(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw Error("cannot create the artifacts directory " + dir.string() + ": " +
                std::strerror(errno));
  }
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0) {
    throw Error("cannot inspect the artifacts directory " + dir.string() + ": " +
                std::strerror(errno));
  }
  if (!S_ISDIR(info.st_mode)) {
    throw Error("refusing to write artifacts into " + dir.string() +
                ": it is not a directory (a symbolic link or a file is never followed)");
  }
}

std::string utc_timestamp(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  auto micros = duration_cast<microseconds>(time.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm parts{};
  ::gmtime_r(&seconds, &parts);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", parts.tm_year + 1900,
                parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                static_cast<long long>(micros % 1'000'000));
  return text;
}

namespace {
// readdir below `dir` (d_type, no stat unless the filesystem leaves the type
// unknown); links are listed, never followed. `prefix` is the relative path.
void list_into(int dir_fd, const std::string& prefix, std::vector<std::string>& files, int depth) {
  DIR* dir = ::fdopendir(dir_fd);
  if (dir == nullptr) {
    ::close(dir_fd);
    return;
  }
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    unsigned char type = entry->d_type;
    if (type == DT_UNKNOWN) {
      struct stat info {};
      if (::fstatat(::dirfd(dir), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(info.st_mode) ? DT_DIR : DT_REG;
    }
    std::string relative = prefix.empty() ? std::string(name) : prefix + "/" + std::string(name);
    if (type != DT_DIR) {
      files.push_back(std::move(relative));
      continue;
    }
    if (depth >= 32) continue;  // deeper than any test writes: not followed
    const int child = ::openat(::dirfd(dir), entry->d_name,
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child >= 0) list_into(child, relative, files, depth + 1);
  }
  ::closedir(dir);
}
}  // namespace

std::vector<std::string> list_files(const fs::path& dir) {
  std::vector<std::string> files;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) list_into(fd, "", files, 0);
  std::sort(files.begin(), files.end());
  return files;
}

int write_all(int fd, const std::string& text) {
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    written += static_cast<std::size_t>(n);
  }
  return 0;
}

void write_atomically(const fs::path& path, const std::string& text) {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  fs::path temporary = path;
  temporary += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(random());
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw Error("cannot write " + temporary.string() + ": " + std::strerror(errno));
  if (int error = write_all(fd, text); error != 0) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw Error("cannot write " + temporary.string() + ": " + std::strerror(error));
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(temporary.c_str());
    throw Error("cannot rename " + temporary.string() + " to " + path.string() + ": " +
                std::strerror(saved));
  }
}

ArtifactPaths::ArtifactPaths(fs::path root) : root_(std::move(root)) {}

std::shared_ptr<ArtifactPaths> ArtifactPaths::of(HookBus& bus, const fs::path& wanted) {
  static std::mutex registry_mutex;
  static std::map<const HookBus*, std::weak_ptr<ArtifactPaths>> registry;
  std::lock_guard lock(registry_mutex);
  for (auto it = registry.begin(); it != registry.end();) {
    it = it->second.expired() ? registry.erase(it) : std::next(it);
  }
  fs::path root = wanted.empty() ? default_artifacts_root() : wanted;
  if (auto found = registry[&bus].lock()) {
    if (fs::absolute(root) != found->root()) {
      log().warn("artifacts: this bus already writes into {}; ignoring the root {}",
                 found->root().string(), root.string());
    }
    return found;
  }
  std::error_code error;
  fs::create_directories(root, error);
  if (error) throw Error("cannot create the artifacts root " + root.string() + ": " + error.message());
  auto paths = std::make_shared<ArtifactPaths>(fs::absolute(root));
  // The pre callbacks run first among pre callbacks, so a user's own pre
  // callback can already read artifact_path... in the next phase: updates of
  // one phase are never visible inside it. They hold the paths weakly: the
  // plugins own the paths, the bus owns the plugins.
  std::weak_ptr<ArtifactPaths> weak = paths;
  paths->start_ = bus.add_pre(
      std::string(events::start_test),
      [weak](EventContext& event) {
        if (auto self = weak.lock()) self->on_start(event);
      },
      std::numeric_limits<int>::min(), "artifact_path");
  paths->finish_ = bus.add_pre(
      std::string(events::finish_test),
      [weak](EventContext& event) {
        if (auto self = weak.lock()) self->on_finish(event);
      },
      std::numeric_limits<int>::min(), "artifact_path");
  registry[&bus] = paths;
  return paths;
}

void ArtifactPaths::ensure_once(const fs::path& dir) {
  {
    std::lock_guard lock(mutex_);
    if (ensured_.contains(dir)) return;
  }
  ensure_real_directory(dir);
  std::lock_guard lock(mutex_);
  ensured_.insert(dir);
}

std::vector<std::string> ArtifactPaths::files_of(const fs::path& dir) {
  {
    std::lock_guard lock(mutex_);
    if (listed_dir_ == dir) return listed_files_;
  }
  std::vector<std::string> files = list_files(dir);
  std::lock_guard lock(mutex_);
  listed_dir_ = dir;
  listed_files_ = files;
  return files;
}

fs::path ArtifactPaths::make_test_dir(std::string_view suite, std::string_view test) {
  ensure_once(root_);
  fs::path suite_dir = root_ / sanitize_path_component(suite);
  ensure_once(suite_dir);
  const std::string base = sanitize_path_component(test);
  for (unsigned attempt = 1;; ++attempt) {
    fs::path dir = suite_dir / (attempt == 1 ? base : base + "-" + std::to_string(attempt));
    // mkdir is atomic across processes: whoever creates the directory owns it.
    if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST || attempt == 100'000) {
      throw Error("cannot create the artifact directory " + dir.string() + ": " +
                  std::strerror(errno));
    }
  }
}

void ArtifactPaths::on_start(EventContext& event) {
  std::string suite = event.get_or<std::string>("suite_name", "");
  std::string test = event.get_or<std::string>("test_name", "");
  fs::path dir = make_test_dir(suite, test);
  {
    std::lock_guard lock(mutex_);
    open_[{suite, test}].push_back(dir);
  }
  event.set_local("artifact_path", dir);
}

void ArtifactPaths::on_finish(EventContext& event) {
  std::string suite = event.get_or<std::string>("suite_name", "");
  std::string test = event.get_or<std::string>("test_name", "");
  std::lock_guard lock(mutex_);
  listed_dir_.clear();  // the hooks of this event may write files: list again
  auto it = open_.find({suite, test});
  if (it == open_.end()) return;
  fs::path dir = it->second.front();
  it->second.pop_front();
  if (it->second.empty()) open_.erase(it);
  // A path the firing code passed wins; else the one start_test made.
  if (!event.has("artifact_path")) event.set_local("artifact_path", dir);
}

}  // namespace detail
}  // namespace roadie
