// Per-test artifacts: a directory per test, computed once by a pre callback on
// `start_test`, and the built-in plugins that fill it (each service's log
// window, a manifest of the run, JUnit properties and attachments, a
// Chrome/Perfetto timeline).
//
//     roadie::HookBus bus;
//     roadie::install_artifacts(bus);   // root: ROADIE_ARTIFACTS_DIR, ...
//     auto link = bus.connect(redis);   // its lines land in <test dir>/redis.log
//     bus.fire("start_test", {{"suite_name", "Cache"}, {"test_name", "Evicts"}});
//     ...
//     bus.fire("finish_test", {{"suite_name", "Cache"}, {"test_name", "Evicts"},
//                              {"test_result", "passed"}, {"test_duration", 0.12}});
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "roadie/hooks.hpp"

namespace roadie {

/// Where artifacts go when nothing says otherwise: ROADIE_ARTIFACTS_DIR, else
/// TEST_UNDECLARED_OUTPUTS_DIR (Bazel), else ./roadie-artifacts.
std::filesystem::path default_artifacts_root();

/// A name made safe as one path component: '/', '\\', control characters and
/// NUL become '_'; "", "." and ".." become "_", "_." and "_.."; longer than
/// `max_bytes` is cut (on a UTF-8 boundary) and given a hash of the whole name,
/// so two long names that differ only at the end stay apart.
std::string sanitize_path_component(std::string_view name, std::size_t max_bytes = 120);

/// Options of the artifacts layer.
struct ArtifactOptions {
  /// Empty: default_artifacts_root().
  std::filesystem::path root;
  /// Lines of each service written before the window of a failed test.
  std::size_t lines_before_failure = 50;
  bool service_logs = true;
  bool manifest = true;
  bool junit = true;
  bool timeline = true;
  /// Called by `junit` once per file of a finished test (the GoogleTest layer
  /// passes ::testing::Test::RecordProperty). Empty: not called.
  std::function<void(const std::string& key, const std::string& value)> record_property;
  /// Where `junit` prints "[[ATTACHMENT|/abs/path]]" lines; empty: stdout.
  std::function<void(const std::string& line)> print_attachment;
};

/// Adds the enabled built-in plugins to the bus (idents "service_logs",
/// "manifest", "junit", "timeline"; one taken already is an error). The first
/// of them installs the bus's artifact_path pre callbacks: on `start_test`,
/// `<root>/<suite>/<test>`, each part sanitized, created with mkdir (atomic
/// across processes) and suffixed "-2", "-3", ... when it exists (a repeat, a
/// parameterized name that sanitizes to the same text, another shard writing
/// into the same root); on `finish_test`, the same path again when the firing
/// code does not pass one. Nothing is written outside the root: a directory on
/// the way that is a symbolic link is refused, and files are created with
/// O_NOFOLLOW. One bus has one root. Throws roadie::Error when the root cannot
/// be created.
void install_artifacts(HookBus& bus, ArtifactOptions options = {});

/// Registers the built-in plugins' factories for YAML (`plugin: service_logs`,
/// `manifest`, `junit`, `timeline`; option `root` for all, `lines_before_failure`
/// for service_logs). A bus that creates one of them from YAML installs the
/// artifact_path pre callback once. Called by install_artifacts() and by the
/// stack file loader; idempotent and thread-safe.
void register_artifact_plugins();

}  // namespace roadie
