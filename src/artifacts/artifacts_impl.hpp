// Private: what the built-in artifact plugins share.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "roadie/artifacts.hpp"
#include "roadie/hooks.hpp"

namespace roadie::detail {

/// The artifact_path pre callbacks of one bus: `start_test` makes the test's
/// directory and puts it in the locals; `finish_test` puts it back when the
/// firing code did not pass it (the directory of the oldest unfinished test of
/// that suite and name). One per bus, shared by the plugins that need it.
class ArtifactPaths {
 public:
  /// The bus's paths, installed on first use. A later call with another root
  /// gets the first root (one bus has one root) and a warning is logged.
  static std::shared_ptr<ArtifactPaths> of(HookBus& bus, const std::filesystem::path& root);

  const std::filesystem::path& root() const noexcept { return root_; }

  /// Makes a fresh directory for a test under the root; public for tests.
  std::filesystem::path make_test_dir(std::string_view suite, std::string_view test);

  explicit ArtifactPaths(std::filesystem::path root);

  /// The files of a finished test's directory (list_files), listed once per
  /// finish_test for every plugin that asks (junit and manifest both do, in
  /// the post phase, after the hooks wrote their files).
  std::vector<std::string> files_of(const std::filesystem::path& dir);

 private:
  void on_start(EventContext& event);
  void on_finish(EventContext& event);
  /// ensure_real_directory() once per directory for the life of the paths:
  /// the root and a suite's directory are checked for the first test, not for
  /// every one (two syscalls each, about a third of a trivial test's cost).
  void ensure_once(const std::filesystem::path& dir);

  std::filesystem::path root_;
  std::mutex mutex_;
  std::set<std::filesystem::path> ensured_;
  std::filesystem::path listed_dir_;
  std::vector<std::string> listed_files_;
  std::map<std::pair<std::string, std::string>, std::deque<std::filesystem::path>> open_;
  Subscription start_;
  Subscription finish_;
};

/// A directory that must be a real directory (not a symbolic link) inside the
/// root; created when missing. Throws roadie::Error otherwise.
void ensure_real_directory(const std::filesystem::path& dir);

/// "2026-11-28T07:50:44.123456Z".
std::string utc_timestamp(std::chrono::system_clock::time_point time);

/// Files under `dir`, relative to it, sorted; symbolic links are listed, never
/// followed.
std::vector<std::string> list_files(const std::filesystem::path& dir);

/// Writes all of `text` to `fd` (retrying short writes and EINTR); 0, or the
/// errno of the write that failed.
int write_all(int fd, const std::string& text);

/// Writes `text` to `path` through a temporary file and rename(), so a reader
/// (or a crash) never sees half a file.
void write_atomically(const std::filesystem::path& path, const std::string& text);

std::unique_ptr<Plugin> make_service_logs(std::string ident, std::filesystem::path root,
                                          std::size_t lines_before_failure);
std::unique_ptr<Plugin> make_manifest(std::string ident, std::filesystem::path root);
std::unique_ptr<Plugin> make_junit(
    std::string ident, std::filesystem::path root,
    std::function<void(const std::string&, const std::string&)> record_property,
    std::function<void(const std::string&)> print_attachment);
std::unique_ptr<Plugin> make_timeline(std::string ident, std::filesystem::path root);

}  // namespace roadie::detail
