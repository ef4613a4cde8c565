// The one callback registry (src/callback_list.hpp) behind output subscribers,
// exit callbacks and executor listeners.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "callback_list.hpp"

using namespace std::chrono_literals;
using roadie::Subscription;
using roadie::detail::CallbackList;

namespace {

using Strings = std::vector<std::string>;

// A recorded list of events, safe from any thread.
struct Events {
  void add(std::string e) {
    std::lock_guard lock(mutex);
    list.push_back(std::move(e));
  }
  Strings get() {
    std::lock_guard lock(mutex);
    return list;
  }
  std::mutex mutex;
  Strings list;
};

}  // namespace

TEST(CallbackList, CallsInPriorityThenRegistrationOrder) {
  CallbackList<int> list;
  Events events;
  std::vector<Subscription> subs;
  subs.push_back(list.add([&](int v) { events.add("a0 " + std::to_string(v)); }));
  subs.push_back(list.add([&](int v) { events.add("b5 " + std::to_string(v)); }, 5));
  subs.push_back(list.add([&](int v) { events.add("c-1 " + std::to_string(v)); }, -1));
  subs.push_back(list.add([&](int v) { events.add("d0 " + std::to_string(v)); }));
  subs.push_back(list.add([&](int v) { events.add("e5 " + std::to_string(v)); }, 5));
  list.call(7);
  EXPECT_EQ(events.get(), (Strings{"c-1 7", "a0 7", "d0 7", "b5 7", "e5 7"}));

  auto snapshot = list.snapshot();
  ASSERT_EQ(snapshot.size(), 5u);
  EXPECT_EQ(snapshot[0].priority(), -1);
  EXPECT_EQ(snapshot[0].order(), 2u);
  EXPECT_EQ(snapshot[1].order(), 0u);
  EXPECT_EQ(snapshot[2].order(), 3u);
  EXPECT_EQ(snapshot[3].order(), 1u);
  EXPECT_EQ(snapshot[4].order(), 4u);
}

TEST(CallbackList, EmptyUntilAddedAndAfterEveryReset) {
  CallbackList<> list;
  EXPECT_TRUE(list.empty());
  auto a = list.add([] {});
  auto b = list.add([] {});
  EXPECT_FALSE(list.empty());
  a.reset();
  EXPECT_FALSE(list.empty());
  b.reset();
  EXPECT_TRUE(list.empty());
  b.reset();  // twice: no effect
  EXPECT_TRUE(list.empty());
}

TEST(CallbackList, AThrowingCallbackNeverStopsTheOthers) {
  CallbackList<int> list;
  Events events;
  auto a = list.add([&](int) { events.add("a"); });
  auto b = list.add([](int) { throw std::runtime_error("boom"); });
  auto c = list.add([](int) { throw 42; });
  auto d = list.add([&](int) { events.add("d"); });
  std::vector<std::string> errors;
  list.call(1, [&](std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    } catch (...) {
      errors.push_back("other");
    }
  });
  EXPECT_EQ(events.get(), (Strings{"a", "d"}));
  EXPECT_EQ(errors, (Strings{"boom", "other"}));
  list.call(2);  // without a handler: logged, the others still run
  EXPECT_EQ(events.get(), (Strings{"a", "d", "a", "d"}));
}

TEST(CallbackList, HandleInvokeReportsARemovedCallback) {
  CallbackList<int> list;
  int sum = 0;
  auto sub = list.add([&](int v) { sum += v; });
  auto handles = list.snapshot();
  ASSERT_EQ(handles.size(), 1u);
  EXPECT_TRUE(handles[0].invoke(3));
  sub.reset();
  EXPECT_FALSE(handles[0].invoke(4));
  EXPECT_EQ(sum, 3);
  EXPECT_THROW(
      {
        auto s = list.add([](int) { throw std::runtime_error("x"); });
        list.snapshot()[0].invoke(1);
      },
      std::runtime_error);
}

TEST(CallbackList, ACallbackMayRemoveItselfAndOthersDuringACall) {
  CallbackList<> list;
  Events events;
  Subscription self, other;
  self = list.add([&] {
    events.add("self");
    self.reset();   // from inside itself: no deadlock
    other.reset();  // another callback of the same list: not called any more
  });
  other = list.add([&] { events.add("other"); });
  list.call();
  list.call();
  EXPECT_EQ(events.get(), Strings{"self"});
  EXPECT_TRUE(list.empty());
}

TEST(CallbackList, ACallbackAddedDuringACallRunsFromTheNextCall) {
  CallbackList<> list;
  Events events;
  Subscription late;
  auto first = list.add([&] {
    events.add("first");
    if (!late) late = list.add([&] { events.add("late"); }, -10);
  });
  list.call();
  EXPECT_EQ(events.get(), Strings{"first"});
  list.call();
  EXPECT_EQ(events.get(), (Strings{"first", "late", "first"}));
}

TEST(CallbackList, ResetWaitsForACallOnAnotherThreadThenTheCapturesMayGo) {
  CallbackList<> list;
  // A heap object the callback uses after a pause: ASan reports a use after
  // free if reset() returns while the call still runs.
  auto data = std::make_unique<std::vector<int>>(1000, 1);
  std::promise<void> entered;
  std::atomic<bool> finished{false};
  auto sub = list.add([&entered, &finished, p = data.get()] {
    entered.set_value();
    std::this_thread::sleep_for(100ms);
    long sum = 0;
    for (int v : *p) sum += v;
    EXPECT_EQ(sum, 1000);
    finished = true;
  });
  std::thread caller([&] { list.call(); });
  entered.get_future().wait();
  sub.reset();
  EXPECT_TRUE(finished.load()) << "reset() returned while the callback ran";
  data.reset();
  caller.join();
}

TEST(CallbackList, ResetDestroysTheFunctionAndItsCaptures) {
  CallbackList<> list;
  auto token = std::make_shared<int>(1);
  auto sub = list.add([token] {});
  EXPECT_EQ(token.use_count(), 2);
  auto handles = list.snapshot();  // a snapshot does not keep the captures
  sub.reset();
  EXPECT_EQ(token.use_count(), 1);
}

TEST(CallbackList, TwoThreadsInsideCallbacksResettingEachOtherNeverDeadlock) {
  CallbackList<int> list;
  Subscription a, b;
  std::atomic<int> inside{0};
  auto body = [&](Subscription& other) {
    ++inside;
    while (inside.load() < 2) std::this_thread::yield();  // both are inside
    other.reset();
  };
  a = list.add([&](int) { body(b); });
  b = list.add([&](int) { body(a); });
  auto handles = list.snapshot();
  auto done = std::async(std::launch::async, [&] {
    std::thread t1([&] { handles[0].invoke(1); });
    std::thread t2([&] { handles[1].invoke(2); });
    t1.join();
    t2.join();
  });
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready) << "deadlock";
  EXPECT_TRUE(list.empty());
}

TEST(CallbackList, ConcurrentCallAddAndRemoveFromEightThreads) {
  CallbackList<int> list;
  std::atomic<long> calls{0};
  auto keep = list.add([&](int) { ++calls; });
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        auto owned = std::make_unique<int>(i);
        auto sub = list.add([&calls, p = owned.get()](int v) { calls += *p >= 0 ? v : 0; }, i % 3);
        list.call(1);
        if (i % 2 == 0) {
          for (auto& h : list.snapshot()) h.invoke(1);
        }
        sub.reset();
        owned.reset();  // the callback may not run any more
        if (t % 2 == 0) {
          EXPECT_FALSE(list.empty());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(calls.load(), 8 * 300);
  keep.reset();
  EXPECT_TRUE(list.empty());
}

TEST(CallbackList, SubscriptionsOutliveTheList) {
  Subscription sub;
  {
    CallbackList<> list;
    sub = list.add([] {});
  }
  sub.reset();  // no effect, no crash
  SUCCEED();
}
