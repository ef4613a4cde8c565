// install_artifacts() and the built-in plugins' YAML factories.
#include <mutex>

#include "artifacts_impl.hpp"

namespace roadie {

void install_artifacts(HookBus& bus, ArtifactOptions options) {
  register_artifact_plugins();
  const std::filesystem::path root =
      options.root.empty() ? default_artifacts_root() : options.root;
  // Every plugin is built before the first is added, so a taken ident adds
  // nothing... except the ones before it: check the idents first.
  std::vector<std::unique_ptr<Plugin>> plugins;
  if (options.service_logs) {
    plugins.push_back(detail::make_service_logs("service_logs", root, options.lines_before_failure));
  }
  if (options.manifest) plugins.push_back(detail::make_manifest("manifest", root));
  if (options.junit) {
    plugins.push_back(detail::make_junit("junit", root, std::move(options.record_property),
                                         std::move(options.print_attachment)));
  }
  if (options.timeline) plugins.push_back(detail::make_timeline("timeline", root));
  for (const auto& plugin : plugins) {
    if (bus.find_plugin(plugin->ident()) != nullptr) {
      throw HookError("install_artifacts: the bus already has a plugin '" + plugin->ident() + "'");
    }
  }
  for (auto& plugin : plugins) bus.add_plugin(std::move(plugin));
}

void register_artifact_plugins() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_plugin_factory("service_logs", [](const PluginOptions& o) {
      auto before = o.integer("lines_before_failure", 50);
      if (before < 0) o.fail("lines_before_failure", "must not be negative");
      return detail::make_service_logs(o.ident(), o.path("root", {}),
                                       static_cast<std::size_t>(before));
    });
    register_plugin_factory("manifest", [](const PluginOptions& o) {
      return detail::make_manifest(o.ident(), o.path("root", {}));
    });
    register_plugin_factory("junit", [](const PluginOptions& o) {
      return detail::make_junit(o.ident(), o.path("root", {}), {}, {});
    });
    register_plugin_factory("timeline", [](const PluginOptions& o) {
      return detail::make_timeline(o.ident(), o.path("root", {}));
    });
  });
}

}  // namespace roadie
