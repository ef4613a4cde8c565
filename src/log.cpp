#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace roadie::detail {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("roadie")) return existing;
    auto created = spdlog::stderr_color_mt("roadie");
    created->set_pattern("[roadie] [%l] %v");
    return created;
  }();
  return *logger;
}

}  // namespace roadie::detail
