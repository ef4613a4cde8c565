// Private: the `plugins:` subtree of a parsed stack file, for the library's
// hook bus. The node keeps its marks (0-based lines and columns, as yaml-cpp
// counts); read it through a const reference only (yaml-cpp's non-const
// operator[] inserts).
#pragma once

#include <yaml-cpp/yaml.h>

#include "roadie/stack.hpp"

namespace roadie::stack {

/// The `plugins:` map, or nullptr when the stack file has none.
inline const YAML::Node* plugins_node(const PluginsSpec& plugins) {
  return static_cast<const YAML::Node*>(plugins.node.get());
}

}  // namespace roadie::stack
