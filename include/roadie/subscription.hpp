// A move-only handle that ends a callback registration when it goes away.
#pragma once

#include <functional>
#include <utility>

namespace roadie {

/// Returned by every `subscribe`/`on_*` call. The callback stays registered as
/// long as the handle lives; `reset()` or the destructor unregisters it and
/// waits for a call in progress on another thread to finish, so the callback's
/// captures may be destroyed right after.
///
/// Thread-safety: one handle is used by one thread at a time (it is a value);
/// resetting it while its callback runs on another thread is safe (it waits).
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      reset();
      cancel_ = std::exchange(other.cancel_, nullptr);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }

  void reset() noexcept {
    if (auto cancel = std::exchange(cancel_, nullptr)) cancel();
  }
  explicit operator bool() const noexcept { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

}  // namespace roadie
