// Deadlines that stretch on slow machines.
#pragma once

#include <chrono>

namespace roadie {

/// The factor that stretches deadlines (executor start timeouts and the waits
/// of tests that ask for scaled()): the value of the environment variable ROADIE_TIME_SCALE
/// (a positive number such as "3" or "1.5") or 1. Use it under valgrind,
/// sanitizers or on a loaded CI machine. Read once per process.
double time_scale() noexcept;

/// `d` multiplied by time_scale().
template <class Rep, class Period>
std::chrono::nanoseconds scaled(std::chrono::duration<Rep, Period> d) noexcept {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d);
  return std::chrono::nanoseconds(
      static_cast<std::chrono::nanoseconds::rep>(static_cast<double>(ns.count()) * time_scale()));
}

}  // namespace roadie
