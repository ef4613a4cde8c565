// The readiness checks that need no HTTP (see http.cpp for that one).
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "../text.hpp"
#include "pattern.hpp"
#include "roadie/clock.hpp"
#include "roadie/error.hpp"
#include "roadie/process.hpp"
#include "roadie/ready.hpp"
#include "sockets.hpp"

namespace roadie {

std::uint16_t Port::reject(const std::string& value) {
  throw Error("invalid TCP port " + value + " (expected 1 to 65535)");
}

ReadinessCheck::ReadinessCheck(std::shared_ptr<const ready::Check> check)
    : check_(std::move(check)) {
  if (!check_) throw Error("roadie::ReadinessCheck: null check");
}

namespace ready {
namespace {

using Clock = std::chrono::steady_clock;
// Event-driven probes still get a slow safety-net attempt.
constexpr auto kEventSafetyNet = std::chrono::milliseconds(500);

// --- spawned -------------------------------------------------------------

class SpawnedCheck final : public Check {
 public:
  std::string describe() const override { return "spawned"; }
  std::unique_ptr<Probe> arm(ProbeContext&) const override {
    struct Always final : Probe {
      bool attempt(Clock::time_point) override { return true; }
    };
    return std::make_unique<Always>();
  }
};

// --- banner ---------------------------------------------------------------

// A pattern without regex syntax is searched as plain text (much faster on
// chatty services); anything else goes through RE2 (see pattern.hpp).
bool is_literal(const std::string& pattern) {
  return pattern.find_first_of("\\^$.|?*+()[]{}") == std::string::npos;
}

class BannerCheck final : public Check {
 public:
  BannerCheck(std::string pattern, std::optional<Stream> stream)
      : pattern_(std::move(pattern)), literal_(is_literal(pattern_)), stream_(stream) {
    if (!literal_) regex_ = detail::compile_pattern(pattern_, "ready::banner");
  }

  std::string describe() const override {
    return "banner /" + pattern_ + "/" + (stream_ ? " on " + std::string(to_string(*stream_)) : "");
  }

  bool matches(const Line& line) const {
    if (stream_ && line.stream != *stream_) return false;
    if (literal_) return line.text.find(pattern_) != std::string::npos;
    return detail::search(*regex_, line.text);
  }

  std::unique_ptr<Probe> arm(ProbeContext& context) const override {
    auto probe = std::make_unique<BannerProbe>();
    BannerProbe* raw = probe.get();
    Output& output = context.process().output();
    // Subscribe first, then look at what already arrived: no line is missed.
    probe->process = &context.process();
    probe->subscription = output.subscribe([this, raw, &context](const Line& line) {
      if (!raw->found.load(std::memory_order_relaxed) && matches(line)) {
        raw->seq.store(line.seq);
        raw->found.store(true);
        context.wake();
      }
    });
    for (const auto& line : output.lines()) {
      if (matches(line)) {
        raw->seq.store(line.seq);
        raw->found.store(true);
        break;
      }
    }
    return probe;
  }

 private:
  struct BannerProbe final : Probe {
    std::atomic<bool> found{false};
    std::atomic<std::uint64_t> seq{0};  // of the matching line
    Process* process = nullptr;
    Subscription subscription;
    bool attempt(Clock::time_point) override { return found.load(); }
    std::chrono::microseconds max_interval() const override { return kEventSafetyNet; }
    // A leader's last lines are drained before its exit is published: a line
    // before the exit's position was written while it ran.
    bool seen_before_exit() const override { return found.load() && seq.load() < process->exit_seq(); }
  };

  std::string pattern_;
  bool literal_;
  std::shared_ptr<const re2::RE2> regex_;
  std::optional<Stream> stream_;
};

// --- sockets ----------------------------------------------------------------

class SocketProbe final : public Probe {
 public:
  explicit SocketProbe(std::vector<detail::Endpoint> endpoints)
      : endpoints_(std::move(endpoints)) {}
  bool attempt(Clock::time_point deadline) override {
    for (const auto& e : endpoints_) {
      if (detail::try_connect(e, deadline, failure_)) return true;
    }
    return false;
  }
  std::string last_failure() const override { return failure_; }

 private:
  std::vector<detail::Endpoint> endpoints_;
  std::string failure_;
};

// Before a start: is somebody already accepting there?
void ensure_not_served(const std::vector<detail::Endpoint>& endpoints, const std::string& what) {
  for (const auto& e : endpoints) {
    std::string failure;
    if (detail::try_connect(e, deadline_after(scaled(std::chrono::milliseconds(200))), failure)) {
      throw AlreadyRunning(what + " is already served by another process");
    }
  }
}

class TcpCheck final : public Check {
 public:
  TcpCheck(std::string host, Port port) : host_(std::move(host)), port_(port) {}
  std::string describe() const override {
    bool v6 = host_.find(':') != std::string::npos;
    return "tcp " + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_.value());
  }
  void ensure_free() const override {
    ensure_not_served(detail::resolve_tcp(host_, port_.value()), describe());
  }
  std::unique_ptr<Probe> arm(ProbeContext&) const override {
    return std::make_unique<SocketProbe>(detail::resolve_tcp(host_, port_.value()));
  }

 private:
  std::string host_;
  Port port_;
};

class UnixSocketCheck final : public Check {
 public:
  explicit UnixSocketCheck(std::filesystem::path path) : path_(std::move(path)) {}
  std::string describe() const override { return "unix socket " + path_.string(); }
  void ensure_free() const override {
    ensure_not_served({detail::unix_endpoint(path_.string())}, describe());
  }
  std::unique_ptr<Probe> arm(ProbeContext&) const override {
    return std::make_unique<SocketProbe>(
        std::vector<detail::Endpoint>{detail::unix_endpoint(path_.string())});
  }

 private:
  std::filesystem::path path_;
};

// --- pid file ---------------------------------------------------------------

class PidFileCheck final : public Check {
 public:
  explicit PidFileCheck(std::filesystem::path path) : path_(std::move(path)) {}
  std::string describe() const override { return "pid file " + path_.string(); }
  void ensure_free() const override {
    if (std::filesystem::exists(path_)) {
      throw AlreadyRunning(describe() +
                           " already exists (another process holds it, or it is stale)");
    }
  }
  std::unique_ptr<Probe> arm(ProbeContext&) const override {
    return std::make_unique<PidFileProbe>(path_);
  }

 private:
  class PidFileProbe final : public Probe {
   public:
    explicit PidFileProbe(std::filesystem::path path) : path_(std::move(path)) {
      auto dir = path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
      fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      if (fd_ >= 0 &&
          ::inotify_add_watch(fd_, dir.c_str(),
                              IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB) < 0) {
        // No such directory yet (or no inotify): fall back to probing.
        ::close(fd_);
        fd_ = -1;
      }
    }
    ~PidFileProbe() override {
      if (fd_ < 0) return;
      // Closing an inotify instance waits for an SRCU grace period: 5-20 ms
      // on a 2-core VM, which start() would add to every pid-file readiness.
      // The descriptor leaves the table at once; the wait happens on a
      // short-lived thread of its own.
      const int fd = fd_;
      try {
        std::thread([fd] { ::close(fd); }).detach();
      } catch (const std::system_error&) {
        ::close(fd);
      }
    }
    bool attempt(Clock::time_point) override {
      if (fd_ >= 0) {
        char events[4096];
        while (::read(fd_, events, sizeof events) > 0) {
        }
      }
      struct stat st {};
      return ::stat(path_.c_str(), &st) == 0;
    }
    std::vector<int> wake_fds() const override {
      return fd_ >= 0 ? std::vector<int>{fd_} : std::vector<int>{};
    }
    std::chrono::microseconds max_interval() const override {
      return fd_ >= 0 ? std::chrono::microseconds(kEventSafetyNet) : std::chrono::milliseconds(2);
    }
    std::string last_failure() const override { return "no such file yet"; }

   private:
    std::filesystem::path path_;
    int fd_ = -1;
  };

  std::filesystem::path path_;
};

// --- exec -------------------------------------------------------------------

class ExecCheck final : public Check {
 public:
  ExecCheck(Command probe, std::chrono::milliseconds attempt_timeout)
      : probe_(std::move(probe)), attempt_timeout_(attempt_timeout) {}
  std::string describe() const override { return "exec `" + probe_.display() + "`"; }
  std::unique_ptr<Probe> arm(ProbeContext&) const override {
    return std::make_unique<ExecProbe>(probe_, attempt_timeout_);
  }

 private:
  class ExecProbe final : public Probe {
   public:
    ExecProbe(const Command& command, std::chrono::milliseconds timeout)
        : command_(command), timeout_(timeout) {}
    bool attempt(Clock::time_point deadline) override {
      ProcessOptions options;
      options.name = "readiness probe";
      options.stop.grace = std::chrono::milliseconds(100);
      auto process = Process::spawn(command_, options);
      auto limit = std::min(deadline, deadline_after(scaled(timeout_)));
      auto status = process.wait_for(limit - Clock::now());
      if (!status) {
        process.kill();
        failure_ = "the probe did not finish within " + detail::seconds(scaled(timeout_));
        return false;
      }
      process.stop();
      if (status->success()) return true;
      auto last = process.output().tail(1);
      failure_ = "the probe " + status->describe() + (last.empty() ? "" : ": " + last.back().text);
      return false;
    }
    // Probes cost a fork each: back off further than socket probes.
    std::chrono::microseconds max_interval() const override {
      return std::chrono::milliseconds(10);
    }
    std::string last_failure() const override { return failure_; }

   private:
    Command command_;
    std::chrono::milliseconds timeout_;
    std::string failure_;
  };

  Command probe_;
  std::chrono::milliseconds attempt_timeout_;
};

// --- composition --------------------------------------------------------------

class CompositeCheck final : public Check {
 public:
  CompositeCheck(std::vector<ReadinessCheck> checks, bool all)
      : checks_(std::move(checks)), all_(all) {
    if (checks_.empty())
      throw Error(std::string("roadie::ready::") + (all_ ? "all_of" : "any_of") +
                  ": no checks (give at least one)");
  }
  std::string describe() const override {
    std::string text = all_ ? "all of (" : "any of (";
    for (std::size_t i = 0; i < checks_.size(); ++i) {
      text += (i ? ", " : "") + checks_[i].describe();
    }
    return text + ")";
  }
  void ensure_free() const override {
    for (const auto& c : checks_) c.check().ensure_free();
  }
  std::unique_ptr<Probe> arm(ProbeContext& context) const override {
    auto probe = std::make_unique<CompositeProbe>(all_, context.process());
    for (const auto& c : checks_) {
      probe->parts.push_back({c.describe(), c.check().arm(context), false, false});
    }
    return probe;
  }

 private:
  struct Part {
    std::string description;
    std::unique_ptr<Probe> probe;
    bool satisfied;    // latched: a satisfied part is not asked again
    bool before_exit;  // it was satisfied while the process ran
  };
  struct CompositeProbe final : Probe {
    CompositeProbe(bool all_, Process& process_) : all(all_), process(process_) {}
    bool all;
    Process& process;
    std::vector<Part> parts;
    bool attempt(Clock::time_point deadline) override {
      const bool running = !process.exited_now();
      bool every = true;
      for (auto& part : parts) {
        if (!part.satisfied && part.probe->attempt(deadline)) {
          part.satisfied = true;
          part.before_exit = running || part.probe->seen_before_exit();
        }
        if (part.satisfied && !all) return true;
        every = every && part.satisfied;
      }
      return all && every;
    }
    bool seen_before_exit() const override {
      bool every = true;
      for (const auto& part : parts) {
        if (part.satisfied && part.before_exit && !all) return true;
        every = every && part.satisfied && part.before_exit;
      }
      return all && every;
    }
    std::vector<int> wake_fds() const override {
      std::vector<int> fds;
      for (const auto& part : parts) {
        auto more = part.probe->wake_fds();
        fds.insert(fds.end(), more.begin(), more.end());
      }
      return fds;
    }
    std::chrono::microseconds max_interval() const override {
      auto interval = std::chrono::microseconds::max();
      for (const auto& part : parts) {
        if (!part.satisfied) interval = std::min(interval, part.probe->max_interval());
      }
      return interval == std::chrono::microseconds::max() ? std::chrono::milliseconds(2) : interval;
    }
    std::string last_failure() const override {
      std::string text;
      for (const auto& part : parts) {
        if (part.satisfied) continue;
        auto failure = part.probe->last_failure();
        text +=
            (text.empty() ? "" : "; ") + part.description + (failure.empty() ? "" : ": " + failure);
      }
      return text;
    }
  };

  std::vector<ReadinessCheck> checks_;
  bool all_;
};

}  // namespace

ReadinessCheck spawned() {
  return ReadinessCheck(std::make_shared<SpawnedCheck>());
}
ReadinessCheck banner(std::string pattern, std::optional<Stream> stream) {
  return ReadinessCheck(std::make_shared<BannerCheck>(std::move(pattern), stream));
}
ReadinessCheck tcp(std::string host, Port port) {
  return ReadinessCheck(std::make_shared<TcpCheck>(std::move(host), port));
}
ReadinessCheck pid_file(std::filesystem::path path) {
  return ReadinessCheck(std::make_shared<PidFileCheck>(std::move(path)));
}
ReadinessCheck unix_socket(std::filesystem::path path) {
  return ReadinessCheck(std::make_shared<UnixSocketCheck>(std::move(path)));
}
ReadinessCheck exec(Command probe, std::chrono::milliseconds attempt_timeout) {
  return ReadinessCheck(std::make_shared<ExecCheck>(std::move(probe), attempt_timeout));
}
ReadinessCheck all_of(std::vector<ReadinessCheck> checks) {
  return ReadinessCheck(std::make_shared<CompositeCheck>(std::move(checks), true));
}
ReadinessCheck any_of(std::vector<ReadinessCheck> checks) {
  return ReadinessCheck(std::make_shared<CompositeCheck>(std::move(checks), false));
}

}  // namespace ready
}  // namespace roadie
