// Hook bus benchmark: the cost of fire() per event.
//   0 listeners  an event nobody listens to (other events have listeners),
//                next to the floor: a call of an empty std::function; and the
//                heap allocations it makes (operator new counted).
//   1, 3, 10     plugins, each one hook setting nothing (watchdog 0), next to
//                the same number of std::function calls in a loop.
//   3 + updates  3 hooks each setting a local.
//   watchdog     3 plugins with a 1 s watchdog (each hook handed to a worker).
//
// Usage: bench_hooks [--quick]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "roadie/hooks.hpp"

namespace {

std::atomic<std::uint64_t> g_allocations{0};

}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median over `rounds` of the nanoseconds per call of `body` run `n` times.
template <class F>
double ns_per(int rounds, int n, F&& body) {
  std::vector<double> samples;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) body();
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n);
  }
  return median(samples);
}

class Hooks : public roadie::Plugin {
 public:
  Hooks(std::string ident, bool update) : Plugin(std::move(ident)), update_(update) {}
  void initialize() override {
    register_hook("event", [this](roadie::EventContext& e) {
      if (update_) e.set_local("x", 1);
    });
  }

 private:
  bool update_;
};

std::unique_ptr<roadie::HookBus> bus_with(int plugins, bool update, std::chrono::milliseconds watchdog) {
  auto bus = std::make_unique<roadie::HookBus>(roadie::HookBusOptions{.watchdog = watchdog});
  for (int i = 0; i < plugins; ++i) {
    std::string ident = "p";  // not "p" + ...: g++ 12 -O2 warns falsely (-Wrestrict)
    ident += std::to_string(i);
    bus->emplace_plugin<Hooks>(std::move(ident), update);
  }
  return bus;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int rounds = quick ? 5 : 21;
  const int n = quick ? 20'000 : 200'000;

  std::function<void(int)> empty = [](int) {};
  volatile int sink = 0;
  const double floor_call = ns_per(rounds, n, [&] { empty(sink); });

  std::printf("%-28s %10s %12s %12s\n", "case", "ns/event", "floor ns", "ratio");

  {
    auto bus = bus_with(3, false, std::chrono::milliseconds(0));
    const double unheard = ns_per(rounds, n, [&] { bus->fire("nobody_listens"); });
    std::printf("%-28s %10.1f %12.1f %12.2f\n", "0 listeners", unheard, floor_call,
                unheard / floor_call);
    const double listens = ns_per(rounds, n, [&] { sink = bus->listens("nobody_listens") ? 1 : 0; });
    std::printf("%-28s %10.1f %12.1f %12.2f\n", "listens() (no)", listens, floor_call,
                listens / floor_call);
    auto before = g_allocations.load();
    for (int i = 0; i < 100'000; ++i) bus->fire("nobody_listens");
    auto allocations = g_allocations.load() - before;
    std::printf("%-28s %10llu allocations in 100000 fires\n", "0 listeners",
                static_cast<unsigned long long>(allocations));
  }
  {
    roadie::HookBus empty_bus;
    const double none = ns_per(rounds, n, [&] { empty_bus.fire("event"); });
    std::printf("%-28s %10.1f %12.1f %12.2f\n", "0 listeners, empty bus", none, floor_call,
                none / floor_call);
  }

  for (int plugins : {1, 3, 10}) {
    auto bus = bus_with(plugins, false, std::chrono::milliseconds(0));
    const double fired = ns_per(rounds, n, [&] { bus->fire("event"); });
    const double floor = floor_call * plugins;
    std::string label = std::to_string(plugins);
    label += " plugins";
    std::printf("%-28s %10.1f %12.1f %12.2f\n", label.c_str(), fired, floor, fired / floor);
    if (plugins == 3) {
      auto before = g_allocations.load();
      for (int i = 0; i < 10'000; ++i) bus->fire("event");
      std::printf("%-28s %10.2f allocations per event\n", "3 plugins",
                  static_cast<double>(g_allocations.load() - before) / 10'000);
    }
  }
  {
    auto bus = bus_with(3, true, std::chrono::milliseconds(0));
    const double fired = ns_per(rounds, n, [&] { bus->fire("event"); });
    std::printf("%-28s %10.1f %12.1f %12.2f\n", "3 plugins + set_local", fired, floor_call * 3,
                fired / (floor_call * 3));
  }
  {
    auto bus = bus_with(3, false, std::chrono::milliseconds(1000));
    const int wn = quick ? 500 : 5'000;
    const double fired = ns_per(quick ? 3 : 7, wn, [&] { bus->fire("event"); });
    std::printf("%-28s %10.1f %12.1f %12.2f\n", "3 plugins, watchdog 1 s", fired, floor_call * 3,
                fired / (floor_call * 3));
  }
  return 0;
}
