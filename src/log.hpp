// Private: roadie's own diagnostics (what cannot be thrown, e.g. from
// destructors or the event loop) go to the spdlog logger named "roadie".
#pragma once

#include <spdlog/logger.h>

#include <memory>

namespace roadie::detail {

/// The "roadie" logger: registered with spdlog (so an application can adjust
/// its level or sinks), writing to stderr by default.
spdlog::logger& log();

}  // namespace roadie::detail
