// Deadlines that stretch on slow machines, and duration arithmetic that
// saturates instead of overflowing.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace roadie {

/// The factor that stretches deadlines (executor start timeouts and the waits
/// of tests that ask for scaled()): the value of the environment variable ROADIE_TIME_SCALE
/// (a positive number such as "3" or "1.5") or 1. Use it under valgrind,
/// sanitizers or on a loaded CI machine. Read once per process.
double time_scale() noexcept;

/// `d` converted to nanoseconds, clamped to what nanoseconds can hold (a
/// negative duration is zero): `milliseconds::max()` means "no practical
/// limit", never an overflow into the past.
template <class Rep, class Period>
constexpr std::chrono::nanoseconds saturated_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using std::chrono::nanoseconds;
  if (d <= std::chrono::duration<Rep, Period>::zero()) return nanoseconds::zero();
  // Compare in long double: exact enough at these magnitudes, never overflows.
  const long double ns = static_cast<long double>(d.count()) * Period::num * 1e9L / Period::den;
  if (ns >= static_cast<long double>(std::numeric_limits<nanoseconds::rep>::max())) {
    return nanoseconds::max();
  }
  return nanoseconds(static_cast<nanoseconds::rep>(ns));
}

/// `d` multiplied by time_scale(), saturated (see saturated_ns()).
template <class Rep, class Period>
std::chrono::nanoseconds scaled(std::chrono::duration<Rep, Period> d) noexcept {
  const auto ns = saturated_ns(d);
  const long double stretched = static_cast<long double>(ns.count()) * time_scale();
  if (stretched >= static_cast<long double>(std::numeric_limits<std::int64_t>::max())) {
    return std::chrono::nanoseconds::max();
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(stretched));
}

/// `from + d` without overflow: a deadline past what the clock can hold is
/// time_point::max() (wait for ever). A negative `d` is `from`.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(
    std::chrono::duration<Rep, Period> d,
    std::chrono::steady_clock::time_point from = std::chrono::steady_clock::now()) noexcept {
  using Clock = std::chrono::steady_clock;
  const auto ns = saturated_ns(d);
  const auto room = Clock::time_point::max() - from;
  if (ns >= room) return Clock::time_point::max();
  return from + std::chrono::duration_cast<Clock::duration>(ns);
}

}  // namespace roadie
