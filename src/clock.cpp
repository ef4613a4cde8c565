#include "roadie/clock.hpp"

#include <cmath>
#include <cstdlib>

namespace roadie {

double time_scale() noexcept {
  static const double scale = [] {
    const char* value = std::getenv("ROADIE_TIME_SCALE");
    if (value == nullptr || *value == '\0') return 1.0;
    char* end = nullptr;
    double parsed = std::strtod(value, &end);
    // A malformed or non-positive value is ignored rather than allowed to turn
    // every deadline into zero.
    if (end == value || *end != '\0' || !std::isfinite(parsed) || parsed <= 0) return 1.0;
    return parsed;
  }();
  return scale;
}

}  // namespace roadie
