// configure(): the YAML settings and plugins, validated in full before
// anything is created; the process-wide plugin factory registry.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "bus_impl.hpp"
#include "roadie/hooks.hpp"

namespace roadie {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, PluginFactory, std::less<>> factories;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the nearest candidate within 2 edits, else "".
std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  std::size_t best_distance = 3;
  for (const auto& candidate : candidates) {
    std::size_t d = edit_distance(wrong, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = &candidate;
    }
  }
  return best == nullptr ? "" : " (did you mean '" + *best + "'?)";
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "none" : text;
}

int line_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }
int column_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.column + 1; }

std::string scalar_text(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + detail::printable(node.Scalar(), 60) + "'";
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  return "nothing";
}

// "250ms", "10s", "2m", or a number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  const std::string& text = node.Scalar();
  double number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  double factor = 0;
  if (unit.empty() || unit == "s") {
    factor = 1000;
  } else if (unit == "ms") {
    factor = 1;
  } else if (unit == "m") {
    factor = 60'000;
  } else {
    return std::nullopt;
  }
  double ms = number * factor;
  if (!std::isfinite(ms) || ms < 0 || ms > 1e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

}  // namespace

// ---------------------------------------------------------------- PluginOptions

struct PluginOptions::Impl {
  struct Option {
    std::string key;
    YAML::Node value;
    YAML::Mark mark;
    bool read = false;
  };
  std::string file;
  std::string ident;
  std::string plugin;
  YAML::Mark ident_mark;
  std::vector<Option> options;
  std::vector<std::string> asked;  // every key the factory looked for

  Option* find(std::string_view key) {
    if (std::find(asked.begin(), asked.end(), key) == asked.end()) asked.emplace_back(key);
    for (auto& option : options) {
      if (option.key == key) {
        option.read = true;
        return &option;
      }
    }
    return nullptr;
  }

  std::string path(std::string_view key) const { return "plugins." + ident + "." + std::string(key); }

  [[noreturn]] void fail_at(const Option& option, const std::string& what) const {
    throw ConfigError(file, line_of(option.value.Mark().is_null() ? option.mark : option.value.Mark()),
                      column_of(option.value.Mark().is_null() ? option.mark : option.value.Mark()),
                      path(option.key), what);
  }

  template <class T>
  T typed(std::string_view key, T fallback, std::string_view wanted) {
    Option* option = find(key);
    if (option == nullptr) return fallback;
    T value{};
    if (!option->value.IsScalar() || !YAML::convert<T>::decode(option->value, value)) {
      fail_at(*option, "expected " + std::string(wanted) + ", got " + scalar_text(option->value));
    }
    return value;
  }
};

PluginOptions::PluginOptions(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
PluginOptions::~PluginOptions() = default;

const std::string& PluginOptions::ident() const noexcept { return impl_->ident; }

bool PluginOptions::has(std::string_view key) const {
  // Asking counts as reading: a factory that checks for a key knows it.
  return impl_->find(key) != nullptr;
}

std::string PluginOptions::string(std::string_view key, std::string fallback) const {
  auto* option = impl_->find(key);
  if (option == nullptr) return fallback;
  if (!option->value.IsScalar()) {
    impl_->fail_at(*option, "expected a string, got " + scalar_text(option->value));
  }
  return option->value.Scalar();
}

std::int64_t PluginOptions::integer(std::string_view key, std::int64_t fallback) const {
  return impl_->typed<std::int64_t>(key, fallback, "an integer");
}

double PluginOptions::floating(std::string_view key, double fallback) const {
  return impl_->typed<double>(key, fallback, "a number");
}

bool PluginOptions::boolean(std::string_view key, bool fallback) const {
  return impl_->typed<bool>(key, fallback, "a bool (true or false)");
}

std::filesystem::path PluginOptions::path(std::string_view key,
                                          std::filesystem::path fallback) const {
  auto* option = impl_->find(key);
  if (option == nullptr) return fallback;
  if (!option->value.IsScalar() || option->value.Scalar().empty()) {
    impl_->fail_at(*option, "expected a path, got " + scalar_text(option->value));
  }
  return option->value.Scalar();
}

std::vector<std::string> PluginOptions::strings(std::string_view key,
                                                std::vector<std::string> fallback) const {
  auto* option = impl_->find(key);
  if (option == nullptr) return fallback;
  std::vector<std::string> values;
  bool ok = option->value.IsSequence();
  if (ok) {
    for (const auto& item : option->value) {
      if (!item.IsScalar()) {
        ok = false;
        break;
      }
      values.push_back(item.Scalar());
    }
  }
  if (!ok) impl_->fail_at(*option, "expected a list of strings, got " + scalar_text(option->value));
  return values;
}

std::chrono::milliseconds PluginOptions::duration(std::string_view key,
                                                  std::chrono::milliseconds fallback) const {
  auto* option = impl_->find(key);
  if (option == nullptr) return fallback;
  auto parsed = parse_duration(option->value);
  if (!parsed) {
    impl_->fail_at(*option, "expected a duration (\"250ms\", \"10s\", \"2m\" or seconds), got " +
                                scalar_text(option->value));
  }
  return *parsed;
}

void PluginOptions::fail(std::string_view key, const std::string& what) const {
  for (const auto& option : impl_->options) {
    if (option.key == key) impl_->fail_at(option, what);
  }
  throw ConfigError(impl_->file, line_of(impl_->ident_mark), column_of(impl_->ident_mark),
                    key.empty() ? "plugins." + impl_->ident : impl_->path(key), what);
}

// ---------------------------------------------------------------- registry

void register_plugin_factory(std::string name, PluginFactory factory) {
  if (name.empty()) throw HookError("a plugin factory needs a name");
  if (!factory) throw HookError("plugin factory '" + detail::printable(name) + "' is empty");
  auto& r = registry();
  std::lock_guard lock(r.mu);
  r.factories.insert_or_assign(std::move(name), std::move(factory));
}

std::vector<std::string> plugin_factory_names() {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------- configure

void HookBus::configure(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw ConfigError(file.string(), 0, 0, "", std::string("cannot read: ") + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  configure_text(text.str(), file.string());
}

namespace {

YAML::Node load_document(std::string_view yaml, const std::string& file) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw ConfigError(file, line_of(e.mark), column_of(e.mark), "", e.msg);
  }
}

void configure_root(HookBus& bus, HookBus::Impl& impl, const YAML::Node& root, const std::string& file) {
  auto error_at = [&](const YAML::Node& node, const std::string& key, const std::string& what) {
    return ConfigError(file, line_of(node.Mark()), column_of(node.Mark()), key, what);
  };

  HookBusOptions next;
  {
    std::lock_guard lock(impl.mu);
    next = impl.options;
  }
  struct Pending {
    std::string ident;
    YAML::Node ident_node;
    std::string plugin;
    YAML::Node plugin_node;
    bool enabled = true;
    PluginFactory factory;
    std::shared_ptr<PluginOptions::Impl> options;
  };
  std::vector<Pending> pending;

  if (root.IsNull() || !root.IsDefined()) return;  // an empty document
  if (!root.IsMap()) {
    throw error_at(root, "", "expected a map of settings (squash_exceptions, threaded, watchdog, plugins), got " +
                                 scalar_text(root));
  }
  static const std::vector<std::string> top_keys = {"plugins", "squash_exceptions", "threaded",
                                                    "watchdog"};
  auto read_bool = [&](const YAML::Node& value, const std::string& key) {
    bool result = false;
    if (!value.IsScalar() || !YAML::convert<bool>::decode(value, result)) {
      throw error_at(value, key, "expected a bool (true or false), got " + scalar_text(value));
    }
    return result;
  };
  auto key_text = [&](const YAML::Node& key, const std::string& where) {
    if (!key.IsScalar()) throw error_at(key, where, "a key must be a plain name, got " + scalar_text(key));
    return key.Scalar();
  };

  std::set<std::string> seen;
  for (const auto& item : root) {
    const std::string key = key_text(item.first, "");
    const YAML::Node& value = item.second;
    if (!seen.insert(key).second) throw error_at(item.first, key, "duplicate key");
    if (key == "squash_exceptions") {
      next.squash_exceptions = read_bool(value, key);
    } else if (key == "threaded") {
      next.threaded = read_bool(value, key);
    } else if (key == "watchdog") {
      auto parsed = parse_duration(value);
      if (!parsed) {
        throw error_at(value, key,
                       "expected a duration (\"250ms\", \"10s\", \"2m\" or seconds), got " +
                           scalar_text(value));
      }
      next.watchdog = *parsed;
    } else if (key == "plugins") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) {
        throw error_at(value, key, "expected a map of plugins (IDENT: {plugin: NAME}), got " +
                                       scalar_text(value));
      }
      std::set<std::string> idents;
      for (const auto& entry : value) {
        const std::string ident = key_text(entry.first, "plugins");
        const std::string where = "plugins." + ident;
        if (!idents.insert(ident).second) throw error_at(entry.first, where, "duplicate plugin ident");
        try {
          HookBus::Impl::check_ident(ident);
        } catch (const HookError& e) {
          throw error_at(entry.first, where, e.what());
        }
        if (bus.find_plugin(ident) != nullptr) {
          throw error_at(entry.first, where, "a plugin with this ident is already on the bus");
        }
        const YAML::Node& body = entry.second;
        if (!body.IsMap()) {
          throw error_at(body.IsNull() ? entry.first : body, where,
                         "expected a map with 'plugin: NAME', got " + scalar_text(body));
        }
        Pending p;
        p.ident = ident;
        p.ident_node = entry.first;
        p.options = std::make_shared<PluginOptions::Impl>();
        p.options->file = file;
        p.options->ident = ident;
        p.options->ident_mark = entry.first.Mark();
        std::set<std::string> option_keys;
        bool named = false;
        for (const auto& option : body) {
          const std::string name = key_text(option.first, where);
          if (!option_keys.insert(name).second) {
            throw error_at(option.first, where + "." + name, "duplicate key");
          }
          if (name == "plugin") {
            if (!option.second.IsScalar() || option.second.Scalar().empty()) {
              throw error_at(option.second.IsNull() ? option.first : option.second, where + ".plugin",
                             "expected a plugin name, got " + scalar_text(option.second));
            }
            p.plugin = option.second.Scalar();
            p.plugin_node = option.second;
            named = true;
          } else if (name == "enabled") {
            p.enabled = read_bool(option.second, where + ".enabled");
          } else {
            p.options->options.push_back({name, option.second, option.first.Mark(), false});
          }
        }
        if (!named) throw error_at(entry.first, where + ".plugin", "missing 'plugin: NAME'");
        p.options->plugin = p.plugin;
        {
          auto& r = registry();
          std::lock_guard lock(r.mu);
          if (auto it = r.factories.find(p.plugin); it != r.factories.end()) p.factory = it->second;
        }
        if (!p.factory) {
          auto known = plugin_factory_names();
          throw error_at(p.plugin_node, where + ".plugin",
                         "unknown plugin '" + detail::printable(p.plugin) + "'" +
                             suggestion(p.plugin, known) + "; known: " + joined(known));
        }
        pending.push_back(std::move(p));
      }
    } else {
      throw error_at(item.first, key,
                     "unknown key" + suggestion(key, top_keys) + "; known: " + joined(top_keys));
    }
  }

  // Every setting is valid: make the enabled plugins, all before adding any.
  std::vector<std::shared_ptr<Plugin>> created;
  std::vector<const Pending*> made_from;
  for (const auto& p : pending) {
    if (!p.enabled) continue;
    const std::string where = "plugins." + p.ident;
    std::unique_ptr<Plugin> plugin;
    try {
      plugin = p.factory(PluginOptions(p.options));
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw error_at(p.ident_node, where, "plugin " + detail::printable(p.plugin) + ": " + e.what());
    }
    if (!plugin) throw error_at(p.ident_node, where, "plugin " + detail::printable(p.plugin) + ": the factory made nothing");
    if (plugin->ident() != p.ident) {
      throw error_at(p.ident_node, where,
                     "plugin " + detail::printable(p.plugin) + ": the factory named it '" +
                         detail::printable(plugin->ident()) + "', not its ident (PluginOptions::ident())");
    }
    for (const auto& option : p.options->options) {
      if (!option.read) {
        throw ConfigError(file, line_of(option.mark), column_of(option.mark), where + "." + option.key,
                          "unknown option '" + detail::printable(option.key) + "' for plugin " +
                              detail::printable(p.plugin) + suggestion(option.key, p.options->asked));
      }
    }
    created.push_back(std::shared_ptr<Plugin>(std::move(plugin)));
    made_from.push_back(&p);
  }
  std::size_t failed = 0;
  try {
    impl.add_plugins(std::move(created), &failed);
  } catch (const std::exception& e) {
    const Pending& p = *made_from.at(failed);
    throw error_at(p.ident_node, "plugins." + p.ident, e.what());
  }
  impl.set_options(next);
}

}  // namespace

void HookBus::configure_text(std::string_view yaml, std::string file) {
  configure_root(*this, *impl_, load_document(yaml, file), file);
}

void HookBus::configure_plugins_text(std::string_view yaml, std::string file) {
  YAML::Node document = load_document(yaml, file);
  if (!document.IsMap()) return;
  const YAML::Node plugins = document["plugins"];
  if (!plugins.IsDefined()) return;
  // Only the plugins map: the document's other keys belong to the caller.
  YAML::Node root(YAML::NodeType::Map);
  root["plugins"] = plugins;
  configure_root(*this, *impl_, root, file);
}

}  // namespace roadie
