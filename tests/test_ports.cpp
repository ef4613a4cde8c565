// PortReservation: machine-wide loopback port reservations.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "roadie/clock.hpp"
#include "roadie/command.hpp"
#include "roadie/error.hpp"
#include "roadie/ports.hpp"
#include "roadie/process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using roadie::AlreadyRunning;
using roadie::Command;
using roadie::PortReservation;
using roadie::Process;

namespace {

class PortsTest : public roadie::testing::NoLeaks {};

std::string self_exe() {
  char self[4096] = {};
  const auto n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string();
}

// This binary's helper test in a child process (optionally behind a prefix,
// e.g. setpriv); it reserves, prints "port N" per port, then "held".
Process spawn_holder(const std::map<std::string, std::string>& env,
                     std::vector<std::string> prefix = {}) {
  std::vector<std::string> argv = std::move(prefix);
  argv.push_back(self_exe());
  argv.emplace_back("--gtest_filter=PortsHelper.DISABLED_ReservesAndHolds");
  argv.emplace_back("--gtest_also_run_disabled_tests");
  Command command(argv);
  for (const auto& [name, value] : env) command.set_env(name, value);
  return Process::spawn(command);
}

std::vector<int> ports_printed(const Process& holder) {
  std::vector<int> ports;
  for (const auto& line : holder.output().lines()) {
    if (line.text.rfind("port ", 0) == 0) ports.push_back(std::stoi(line.text.substr(5)));
  }
  return ports;
}

// A process (not a reservation) listening on 127.0.0.1:port.
struct Listener {
  explicit Listener(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
         ::listen(fd, 1) == 0;
  }
  ~Listener() { ::close(fd); }
  int fd;
  bool ok;
};

// Sets an environment variable for one test (no process is spawned meanwhile).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

// Helper, run in child processes: reserves ROADIE_TEST_PORTS_COUNT ports (or
// ROADIE_TEST_PORTS_EXACT), prints them, holds them until the file
// ROADIE_TEST_RELEASE exists (or 60 s pass, or it is killed).
TEST(PortsHelper, DISABLED_ReservesAndHolds) {
  std::vector<PortReservation> held;
  try {
    if (const char* exact = std::getenv("ROADIE_TEST_PORTS_EXACT")) {
      held.push_back(PortReservation::reserve_exact(std::atoi(exact), "helper-exact"));
    } else {
      const char* count = std::getenv("ROADIE_TEST_PORTS_COUNT");
      for (int i = 0, n = count ? std::atoi(count) : 1; i < n; ++i) {
        held.push_back(PortReservation::reserve("helper-" + std::to_string(i)));
      }
    }
  } catch (const roadie::Error& e) {
    std::printf("failed: %s\n", e.what());
    std::fflush(stdout);
    FAIL() << e.what();
  }
  for (const auto& r : held) std::printf("port %d\n", r.port().value());
  if (std::getenv("ROADIE_TEST_PORTS_CHILD") != nullptr) {
    // A child that execs while the reservations are held (as a service would).
    const char* argv[] = {"sleep", "60", nullptr};
    pid_t child = 0;
    ASSERT_EQ(::posix_spawnp(&child, "sleep", nullptr, nullptr, const_cast<char**>(argv), environ),
              0);
    // posix_spawn returns once the child's exec has begun; its close-on-exec
    // descriptors are closed a moment later. Wait (bounded) for that.
    const auto fd_dir = "/proc/" + std::to_string(child) + "/fd";
    const auto until = std::chrono::steady_clock::now() + 2s;
    auto count = [&] {
      std::error_code ec;
      auto it = std::filesystem::directory_iterator(fd_dir, ec);
      return ec ? 0 : std::distance(it, std::filesystem::directory_iterator());
    };
    while (count() > 3 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(1ms);
    std::printf("child %d\n", child);
  }
  std::printf("held\n");
  std::fflush(stdout);
  const char* release = std::getenv("ROADIE_TEST_RELEASE");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline &&
         !(release && std::filesystem::exists(release))) {
    std::this_thread::sleep_for(5ms);
  }
}

TEST(PortsNames, EnvNameUpperCasesAndReplacesEveryOtherByte) {
  EXPECT_EQ(PortReservation::env_name("redis-main.1"), "ROADIE_PORT_REDIS_MAIN_1");
  EXPECT_EQ(PortReservation::env_name("api"), "ROADIE_PORT_API");
  EXPECT_EQ(PortReservation::env_name("Zz09 /\xc3\xa9"), "ROADIE_PORT_ZZ09____");
  EXPECT_EQ(PortReservation::env_name(""), "ROADIE_PORT_");
}

TEST_F(PortsTest, AReservedPortIsFreeNamedAndOutsideTheEphemeralRange) {
  auto r = PortReservation::reserve("redis");
  EXPECT_TRUE(r.held());
  EXPECT_EQ(r.name(), "redis");
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  int high = 0;
  ASSERT_TRUE(range >> low >> high);
  std::vector<PortReservation> more;
  for (int i = 0; i < 20; ++i) more.push_back(PortReservation::reserve());
  for (const auto& m : more) {
    const int p = m.port().value();
    EXPECT_TRUE(p < low || p > high) << p << " is in the ephemeral range";
  }
  const int port = r.port().value();
  EXPECT_TRUE(port < low || port > high) << port << " is in the ephemeral range";
  Listener service(port);  // the service can bind what was reserved
  EXPECT_TRUE(service.ok) << "reserved port " << port << " cannot be listened on";
}

TEST_F(PortsTest, ThreadsHoldingManyReservationsAtOnceNeverShareAPort) {
  constexpr int kThreads = 8;
  constexpr int kEach = 100;
  // 800 of 1000 candidates: without the lock, threads starting at random
  // places would meet.
  ScopedEnv range("ROADIE_PORTS_RANGE", "21000-21999");
  std::vector<std::vector<PortReservation>> held(kThreads);
  std::vector<std::string> errors(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        try {
          for (int i = 0; i < kEach; ++i) held[t].push_back(PortReservation::reserve());
        } catch (const roadie::Error& e) {
          errors[t] = e.what();
        }
      });
    }
  }
  std::map<int, int> owners;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "");
    for (const auto& r : held[t]) {
      auto [it, fresh] = owners.emplace(r.port().value(), t);
      EXPECT_TRUE(fresh) << "port " << r.port().value() << " went to threads " << it->second
                         << " and " << t;
    }
  }
  EXPECT_EQ(owners.size(), static_cast<std::size_t>(kThreads * kEach));
}

TEST_F(PortsTest, ProcessesReservingAtOnceNeverShareAPort) {
  roadie::testing::TempDir dir;
  const auto release = dir.path() / "release";
  constexpr int kProcesses = 4;
  // 250 of 400 candidates: without the lock, processes would meet.
  ScopedEnv range("ROADIE_PORTS_RANGE", "22000-22399");
  std::vector<Process> holders;
  for (int i = 0; i < kProcesses; ++i) {
    holders.push_back(spawn_holder(
        {{"ROADIE_TEST_PORTS_COUNT", "50"}, {"ROADIE_TEST_RELEASE", release.string()}}));
  }
  // This process holds 50 as well, while the others reserve.
  std::vector<PortReservation> mine;
  for (int i = 0; i < 50; ++i) mine.push_back(PortReservation::reserve("parent"));
  std::map<int, std::string> owners;
  for (const auto& r : mine) owners.emplace(r.port().value(), "this process");
  for (int i = 0; i < kProcesses; ++i) {
    ASSERT_TRUE(holders[i].output().wait_for("^held$", roadie::scaled(30s)))
        << holders[i].output().excerpt(40);
    const auto ports = ports_printed(holders[i]);
    EXPECT_EQ(ports.size(), 50u) << holders[i].output().excerpt(40);
    for (int port : ports) {
      auto [it, fresh] = owners.emplace(port, "helper " + std::to_string(i));
      EXPECT_TRUE(fresh) << "port " << port << " went to " << it->second << " and helper " << i;
    }
  }
  EXPECT_EQ(owners.size(), static_cast<std::size_t>((kProcesses + 1) * 50));
  std::ofstream(release).put('\n');
  for (auto& holder : holders) EXPECT_EQ(holder.wait_for(roadie::scaled(30s))->code(), 0);
  for (auto& holder : holders) holder.stop();
}

TEST_F(PortsTest, ReserveExactOnAPortAnotherLiveProcessReservedThrowsAlreadyRunning) {
  Process holder = spawn_holder({});
  ASSERT_TRUE(holder.output().wait_for("^held$", roadie::scaled(30s)))
      << holder.output().excerpt(40);
  const auto ports = ports_printed(holder);
  ASSERT_EQ(ports.size(), 1u);
  const std::string message = roadie::testing::error_of([&] {
    try {
      PortReservation::reserve_exact(ports[0], "mine");
    } catch (const AlreadyRunning&) {
      throw;
    } catch (const roadie::Error& e) {
      ADD_FAILURE() << "not AlreadyRunning: " << e.what();
    }
  });
  EXPECT_NE(message.find("port " + std::to_string(ports[0]) + " ('mine')"), std::string::npos)
      << message;
  EXPECT_NE(message.find("reserved by roadie process " + std::to_string(holder.pid()) + " ("),
            std::string::npos)
      << message;
  holder.kill();
}

TEST_F(PortsTest, AKilledHoldersPortCanBeReservedAgainAtOnce) {
  Process holder = spawn_holder({{"ROADIE_TEST_PORTS_COUNT", "3"}});
  ASSERT_TRUE(holder.output().wait_for("^held$", roadie::scaled(30s)))
      << holder.output().excerpt(40);
  const auto ports = ports_printed(holder);
  ASSERT_EQ(ports.size(), 3u);
  EXPECT_THROW(PortReservation::reserve_exact(ports[0]), AlreadyRunning);
  ASSERT_EQ(::kill(holder.pid(), SIGKILL), 0);
  EXPECT_EQ(holder.wait_for(roadie::scaled(30s))->code(), -SIGKILL);
  for (int port : ports) {
    EXPECT_EQ(roadie::testing::error_of([&] { PortReservation::reserve_exact(port); }), "")
        << "port " << port << " stayed reserved after its holder was killed";
  }
  holder.stop();
}

// The descriptor is close-on-exec: a child of the holder (a service) does not
// keep the reservation alive after the holder died.
TEST_F(PortsTest, AKilledHoldersChildDoesNotKeepItsReservation) {
  Process holder = spawn_holder({{"ROADIE_TEST_PORTS_CHILD", "1"}});
  ASSERT_TRUE(holder.output().wait_for("^held$", roadie::scaled(30s)))
      << holder.output().excerpt(40);
  const auto ports = ports_printed(holder);
  ASSERT_EQ(ports.size(), 1u);
  const auto child_line = holder.output().wait_for("^child [0-9]+$", 0s);
  ASSERT_TRUE(child_line);
  const pid_t child = std::stoi(child_line->text.substr(6));
  ASSERT_EQ(::kill(holder.pid(), SIGKILL), 0);
  holder.wait();
  EXPECT_EQ(roadie::testing::error_of([&] { PortReservation::reserve_exact(ports[0]); }), "")
      << "the holder's child kept port " << ports[0] << " reserved";
  ::kill(child, SIGKILL);  // re-parented to us (the runtime is a subreaper)
  ::waitpid(child, nullptr, 0);
  holder.stop();
}

TEST_F(PortsTest, ReserveExactOnAServedPortThrowsAlreadyRunning) {
  auto reserved = PortReservation::reserve("listener");
  const int port = reserved.port().value();
  reserved.release();
  Process service = Process::spawn(
      Command{roadie::testing::child("child_listen"), "tcp:" + std::to_string(port)});
  ASSERT_TRUE(service.output().wait_for("^listening$", roadie::scaled(30s)))
      << service.output().excerpt(20);
  try {
    PortReservation::reserve_exact(port, "mine");
    ADD_FAILURE() << "reserve_exact took a served port";
  } catch (const AlreadyRunning& e) {
    EXPECT_NE(std::string(e.what()).find("already served by another process"), std::string::npos)
        << e.what();
  }
  service.stop();
}

TEST_F(PortsTest, ReserveSkipsServedPortsAndNamesWhatItSaw) {
  auto reserved = PortReservation::reserve();
  const int port = reserved.port().value();
  reserved.release();
  Listener served(port);
  ASSERT_TRUE(served.ok);
  ScopedEnv range("ROADIE_PORTS_RANGE", std::to_string(port) + "-" + std::to_string(port));
  const std::string message =
      roadie::testing::error_of([] { PortReservation::reserve("only-one-candidate"); });
  EXPECT_NE(message.find("for 'only-one-candidate'"), std::string::npos) << message;
  EXPECT_NE(message.find("1 in use"), std::string::npos) << message;
}

TEST_F(PortsTest, ReserveSkipsPortsThisProcessAlreadyReserved) {
  auto first = PortReservation::reserve("first");
  const int port = first.port().value();
  ScopedEnv range("ROADIE_PORTS_RANGE", std::to_string(port) + "-" + std::to_string(port));
  const std::string message = roadie::testing::error_of([] { PortReservation::reserve(); });
  EXPECT_NE(message.find("1 reserved by roadie processes"), std::string::npos) << message;
  EXPECT_THROW(PortReservation::reserve_exact(port), AlreadyRunning);
  first.release();
  EXPECT_EQ(PortReservation::reserve().port().value(), port);
}

TEST_F(PortsTest, ReleaseFreesThePortAndItsDescriptorAndIsIdempotent) {
  const auto before = roadie::testing::open_fds();
  std::vector<PortReservation> held;
  for (int i = 0; i < 20; ++i) held.push_back(PortReservation::reserve());
  EXPECT_EQ(roadie::testing::open_fds().size(), before.size() + 20);
  const int port = held[0].port().value();
  held[0].release();
  held[0].release();
  EXPECT_FALSE(held[0].held());
  EXPECT_EQ(roadie::testing::open_fds().size(), before.size() + 19);
  auto again = PortReservation::reserve_exact(port);  // free again at once
  again.release();
  auto moved = std::move(held[1]);
  EXPECT_FALSE(held[1].held());
  held[2] = std::move(moved);  // the move-assigned-over reservation is released
  held.clear();
  EXPECT_EQ(roadie::testing::open_fds(), before);
}

TEST_F(PortsTest, TheLockDirectoryAndFilesAreForEveryUserWhateverTheUmask) {
  roadie::testing::TempDir dir;
  const auto ports_dir = dir.path() / "ports";
  ScopedEnv env("ROADIE_PORTS_DIR", ports_dir.string());
  const mode_t old_umask = ::umask(077);
  auto r = PortReservation::reserve();
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::lstat(ports_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  const auto file = ports_dir / (std::to_string(r.port().value()) + ".lock");
  ASSERT_EQ(::lstat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
}

TEST_F(PortsTest, SymlinksAreRefused) {
  roadie::testing::TempDir dir;
  std::filesystem::create_directory(dir.path() / "real");
  std::filesystem::create_directory_symlink(dir.path() / "real", dir.path() / "link");
  {
    ScopedEnv env("ROADIE_PORTS_DIR", (dir.path() / "link").string());
    const auto message = roadie::testing::error_of([] { PortReservation::reserve(); });
    EXPECT_NE(message.find("symlink"), std::string::npos) << message;
  }
  ::chmod((dir.path() / "real").c_str(), 01777);
  ScopedEnv env("ROADIE_PORTS_DIR", (dir.path() / "real").string());
  auto probe = PortReservation::reserve();
  const int port = probe.port().value();
  probe.release();
  const auto lock = dir.path() / "real" / (std::to_string(port) + ".lock");
  std::filesystem::remove(lock);
  std::filesystem::create_symlink(dir.path() / "elsewhere", lock);
  const auto message = roadie::testing::error_of([&] { PortReservation::reserve_exact(port); });
  EXPECT_NE(message.find("symlink, refused"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "elsewhere"));
}

TEST_F(PortsTest, AWorldWritableLockDirectoryWithoutTheStickyBitIsRefused) {
  roadie::testing::TempDir dir;
  ::chmod(dir.path().c_str(), 0777);
  ScopedEnv env("ROADIE_PORTS_DIR", dir.path().string());
  const auto message = roadie::testing::error_of([] { PortReservation::reserve(); });
  EXPECT_NE(message.find("not sticky"), std::string::npos) << message;
}

// Several users: a lock file made by root under umask 077 is locked by nobody.
TEST_F(PortsTest, AnotherUserLocksTheSameFiles) {
  if (::geteuid() != 0 || !std::filesystem::exists("/usr/bin/setpriv")) {
    GTEST_SKIP() << "needs root and setpriv to run a helper as another user";
  }
  roadie::testing::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  const auto ports_dir = dir.path() / "ports";
  ScopedEnv env("ROADIE_PORTS_DIR", ports_dir.string());
  const mode_t old_umask = ::umask(077);
  auto mine = PortReservation::reserve("root");
  ::umask(old_umask);
  const int port = mine.port().value();
  mine.release();
  Process holder = spawn_holder(
      {{"ROADIE_TEST_PORTS_EXACT", std::to_string(port)}, {"ROADIE_PORTS_DIR", ports_dir.string()}},
      {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  ASSERT_TRUE(holder.output().wait_for("^held$", roadie::scaled(30s)))
      << holder.output().excerpt(40);
  EXPECT_THROW(PortReservation::reserve_exact(port), AlreadyRunning);
  holder.kill();
  EXPECT_EQ(roadie::testing::error_of([&] { PortReservation::reserve_exact(port); }), "");
}

TEST_F(PortsTest, AMalformedRangeIsAnErrorNamingIt) {
  for (const char* bad : {"70000-70001", "30000", "x-y", "3000-2000"}) {
    ScopedEnv range("ROADIE_PORTS_RANGE", bad);
    const auto message = roadie::testing::error_of([] { PortReservation::reserve(); });
    EXPECT_NE(message.find(std::string("ROADIE_PORTS_RANGE='") + bad + "'"), std::string::npos)
        << message;
  }
}

TEST_F(PortsTest, ReserveExactNamesAHolderInThisProcess) {
  auto mine = PortReservation::reserve("redis-main");
  const auto message =
      roadie::testing::error_of([&] { PortReservation::reserve_exact(mine.port(), "again"); });
  EXPECT_NE(message.find("reserved by another reservation of this process"), std::string::npos)
      << message;
}
