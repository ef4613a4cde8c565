#include "roadie/ports.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "roadie/error.hpp"

namespace roadie {
namespace {

constexpr const char* kDefaultDir = "/tmp/roadie-ports";
// Below this, the well-known and registered ports where developers' own
// services (databases, dev servers) live by default.
constexpr int kLowestCandidate = 20000;
// Fewer candidates than this outside the ephemeral range (a host whose
// ip_local_port_range spans nearly everything): ask the kernel instead.
constexpr int kMinimumCandidates = 512;
constexpr int kKernelAttempts = 1000;

std::string errno_text(int error) {
  return std::strerror(error);
}

std::string describe(int port, const std::string& name) {
  std::string text = "port " + std::to_string(port);
  if (!name.empty()) text += " ('" + name + "')";
  return text;
}

class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string ports_dir() {
  const char* dir = std::getenv("ROADIE_PORTS_DIR");
  return dir != nullptr && *dir != '\0' ? dir : kDefaultDir;
}

// The shared lock directory, created like /tmp (1777) when missing. A symlink
// is refused (somebody else would choose where our locks live), and so is a
// directory anyone may write without the sticky bit (anyone could replace a
// lock file under a holder, and two processes would lock different files).
Fd open_dir(const std::string& path) {
  auto open = [&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); };
  int fd = open();
  if (fd < 0 && errno == ENOENT) {
    if (::mkdir(path.c_str(), 01777) == 0) {
      Fd created(open());
      // mkdir() honours the umask; the directory is for every user.
      if (created.get() < 0 || ::fchmod(created.get(), 01777) != 0) {
        throw Error("cannot reserve a port: cannot make the port lock directory " + path +
                    " mode 1777: " + errno_text(errno));
      }
      return created;
    }
    if (errno != EEXIST) {
      throw Error("cannot reserve a port: cannot create the port lock directory " + path + ": " +
                  errno_text(errno) +
                  " (set ROADIE_PORTS_DIR to a directory every user can write)");
    }
    fd = open();
  }
  if (fd < 0) {
    const int error = errno;
    throw Error("cannot reserve a port: cannot open the port lock directory " + path + ": " +
                (error == ELOOP || error == ENOTDIR ? "it is a symlink or not a directory, refused"
                                                    : errno_text(error)));
  }
  Fd dir(fd);
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0) {
    throw Error("cannot reserve a port: cannot stat the port lock directory " + path + ": " +
                errno_text(errno));
  }
  if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
    throw Error("cannot reserve a port: the port lock directory " + path +
                " is writable by anyone but not sticky (chmod 1777 it), refused");
  }
  return dir;
}

// Opens (creating, 0666 whatever the umask) the lock file of `port`. Never
// follows a symlink, never blocks on a planted FIFO, takes only regular files.
Fd open_lock(int dir, const std::string& dir_path, int port) {
  const std::string file = std::to_string(port) + ".lock";
  const int flags = O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  int fd = ::openat(dir, file.c_str(), O_RDWR | O_CREAT | O_EXCL | flags, 0666);
  if (fd >= 0) {
    if (::fchmod(fd, 0666) != 0) {
      const int error = errno;
      ::close(fd);
      throw Error("cannot reserve " + describe(port, {}) + ": cannot make the lock file " +
                  dir_path + "/" + file + " mode 0666: " + errno_text(error));
    }
  } else if (errno == EEXIST) {
    // Opened without O_CREAT: fs.protected_regular refuses O_CREAT on another
    // user's file in a sticky directory. A file we may not write (made by a
    // stricter umask elsewhere) can still be locked read-only: flock does not
    // care about the access mode.
    fd = ::openat(dir, file.c_str(), O_RDWR | flags);
    if (fd < 0 && errno == EACCES) fd = ::openat(dir, file.c_str(), O_RDONLY | flags);
  }
  if (fd < 0) {
    const int error = errno;
    throw Error("cannot reserve " + describe(port, {}) + ": cannot open the lock file " + dir_path +
                "/" + file + ": " +
                (error == ELOOP ? std::string("it is a symlink, refused") : errno_text(error)));
  }
  Fd lock(fd);
  struct stat st {};
  if (::fstat(lock.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw Error("cannot reserve " + describe(port, {}) + ": the lock file " + dir_path + "/" +
                file + " is not a regular file, refused");
  }
  return lock;
}

// Non-blocking exclusive lock on the open file description: other
// descriptions conflict, in this process too (threads), and the kernel drops
// it when the last descriptor of the description closes (the owner died).
bool try_lock(int fd, int port) {
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return false;
    if (errno != EINTR) {
      throw Error("cannot reserve " + describe(port, {}) +
                  ": flock on its lock file failed: " + errno_text(errno));
    }
  }
  return true;
}

// Who holds the lock on `fd`'s file: the pid /proc/locks gives for it (the
// files stay empty: a holder record would cost every port ever used a 4 KiB
// block). 0 when unknown (another pid namespace, /proc unreadable).
pid_t holder_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  char id[64];
  std::snprintf(id, sizeof id, "%02x:%02x:%llu", ::major(st.st_dev), ::minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF"
    std::istringstream fields(line);
    std::string number, kind, mode, access, device;
    long pid = 0;
    if (fields >> number >> kind >> mode >> access >> pid >> device && kind == "FLOCK" &&
        device == id) {
      return static_cast<pid_t>(pid);
    }
  }
  return 0;
}

// Binds `address` (SO_REUSEADDR: a TIME_WAIT left by an earlier user does not
// count, the service binds through it too). Returns 0 when free, else errno;
// a missing address family (no IPv6) reads as free.
int bind_error(int family, const sockaddr* address, socklen_t length) {
  Fd s(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) return errno == EAFNOSUPPORT ? 0 : errno;
  const int on = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (family == AF_INET6) ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  if (::bind(s.get(), address, length) == 0) return 0;
  return errno == EADDRNOTAVAIL && family == AF_INET6 ? 0 : errno;
}

// Empty when nobody serves `port` on 127.0.0.1 (nor ::1), else what was seen.
std::string served(int port) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  v4.sin_port = htons(static_cast<std::uint16_t>(port));
  int error = bind_error(AF_INET, reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
  std::string where = "127.0.0.1";
  if (error == 0) {
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_addr = in6addr_loopback;
    v6.sin6_port = htons(static_cast<std::uint16_t>(port));
    error = bind_error(AF_INET6, reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
    where = "[::1]";
  }
  if (error == 0) return {};
  if (error == EADDRINUSE) return where + ":" + std::to_string(port) + " is in use";
  if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
    throw Error("cannot reserve " + describe(port, {}) +
                ": cannot check it is free: socket: " + errno_text(error));
  }
  return "binding " + where + ":" + std::to_string(port) + " failed: " + errno_text(error);
}

struct Range {
  int low;
  int high;  // inclusive
  int size() const { return high - low + 1; }
};

std::string to_string(const std::vector<Range>& ranges) {
  std::string text;
  for (const auto& r : ranges) {
    if (!text.empty()) text += ", ";
    text += std::to_string(r.low) + "-" + std::to_string(r.high);
  }
  return text;
}

std::optional<Range> parse_range(const std::string& text) {
  const auto dash = text.find_first_of("- \t");
  if (dash == std::string::npos) return std::nullopt;
  try {
    std::size_t used = 0;
    const int low = std::stoi(text.substr(0, dash), &used);
    const auto rest = text.find_first_not_of("- \t", dash);
    if (rest == std::string::npos) return std::nullopt;
    const int high = std::stoi(text.substr(rest), &used);
    if (low < 1 || high > 65535 || low > high) return std::nullopt;
    return Range{low, high};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The kernel's ephemeral range, read once (it rarely changes while tests run).
Range ephemeral_range() {
  static const Range range = [] {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    int low = 0;
    int high = 0;
    if (in >> low >> high && low >= 1 && high <= 65535 && low <= high) return Range{low, high};
    return Range{32768, 60999};  // Linux's default
  }();
  return range;
}

// Where reserve() looks: $ROADIE_PORTS_RANGE, else everything from 20000 up
// that is outside the ephemeral range. Empty: ask the kernel.
std::vector<Range> candidate_ranges() {
  if (const char* env = std::getenv("ROADIE_PORTS_RANGE"); env != nullptr && *env != '\0') {
    auto range = parse_range(env);
    if (!range) {
      throw Error(std::string("cannot reserve a port: ROADIE_PORTS_RANGE='") + env +
                  "' is not LOW-HIGH with 1 <= LOW <= HIGH <= 65535");
    }
    return {*range};
  }
  const Range eph = ephemeral_range();
  std::vector<Range> ranges;
  if (eph.low - 1 >= kLowestCandidate) ranges.push_back({kLowestCandidate, eph.low - 1});
  const int above = std::max(eph.high + 1, kLowestCandidate);
  if (above <= 65535) ranges.push_back({above, 65535});
  int total = 0;
  for (const auto& r : ranges) total += r.size();
  if (total < kMinimumCandidates) ranges.clear();
  return ranges;
}

unsigned random_offset() {
  thread_local std::minstd_rand engine = [] {
    std::random_device device;
    return std::minstd_rand(
        device() ^ static_cast<unsigned>(::getpid()) ^
        static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  }();
  return static_cast<unsigned>(engine());
}

// The kernel's choice of a free loopback port (used when no range is left
// outside the ephemeral one).
int kernel_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (s.get() < 0 || ::bind(s.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw Error("cannot reserve a port: the kernel gave no free loopback port: " +
                errno_text(errno));
  }
  return ntohs(address.sin_port);
}

enum class Attempt { reserved, locked, served };

// Takes `port`'s lock and checks the port is free; the lock descriptor in
// `out` on success.
Attempt attempt(int dir, const std::string& dir_path, int port, Fd& out, std::string* why) {
  Fd lock = open_lock(dir, dir_path, port);
  if (!try_lock(lock.get(), port)) {
    if (why != nullptr) *why = std::to_string(holder_of(lock.get()));
    return Attempt::locked;
  }
  if (auto seen = served(port); !seen.empty()) {
    if (why != nullptr) *why = std::move(seen);
    ::flock(lock.get(), LOCK_UN);
    return Attempt::served;
  }
  out = Fd(lock.release());
  return Attempt::reserved;
}

}  // namespace

PortReservation PortReservation::reserve(std::string name) {
  const std::string dir_path = ports_dir();
  const Fd dir = open_dir(dir_path);
  const auto ranges = candidate_ranges();
  int locked = 0;
  int in_use = 0;
  auto take = [&](int port) -> std::optional<PortReservation> {
    Fd lock;
    switch (attempt(dir.get(), dir_path, port, lock, nullptr)) {
      case Attempt::reserved:
        return PortReservation(Port(port), std::move(name), lock.release());
      case Attempt::locked:
        ++locked;
        break;
      case Attempt::served:
        ++in_use;
        break;
    }
    return std::nullopt;
  };
  std::string looked;
  if (ranges.empty()) {
    for (int i = 0; i < kKernelAttempts; ++i) {
      if (auto r = take(kernel_port())) return std::move(*r);
    }
    looked = std::to_string(kKernelAttempts) + " ports chosen by the kernel";
  } else {
    int total = 0;
    for (const auto& r : ranges) total += r.size();
    // From a random place, then in order: parallel reservers spread out, and
    // every candidate is tried once.
    const int start = static_cast<int>(random_offset() % static_cast<unsigned>(total));
    for (int i = 0; i < total; ++i) {
      int index = (start + i) % total;
      int port = 0;
      for (const auto& r : ranges) {
        if (index < r.size()) {
          port = r.low + index;
          break;
        }
        index -= r.size();
      }
      if (auto r = take(port)) return std::move(*r);
    }
    const Range eph = ephemeral_range();
    looked = "ports " + to_string(ranges) +
             (std::getenv("ROADIE_PORTS_RANGE") != nullptr
                  ? " (ROADIE_PORTS_RANGE)"
                  : " (the ephemeral range " + std::to_string(eph.low) + "-" +
                        std::to_string(eph.high) + " left out)");
  }
  throw Error("cannot reserve a port" + (name.empty() ? "" : " for '" + name + "'") +
              ": no free loopback port among " + looked + ": " + std::to_string(locked) +
              " reserved by roadie processes (lock files in " + dir_path + "), " +
              std::to_string(in_use) + " in use");
}

PortReservation PortReservation::reserve_exact(Port port, std::string name) {
  const std::string dir_path = ports_dir();
  const Fd dir = open_dir(dir_path);
  Fd lock;
  std::string why;
  const int number = port.value();
  switch (attempt(dir.get(), dir_path, number, lock, &why)) {
    case Attempt::reserved:
      return PortReservation(port, std::move(name), lock.release());
    case Attempt::locked: {
      std::string holder = "another roadie process";
      if (why == std::to_string(::getpid())) {
        holder = "another reservation of this process";
      } else if (why != "0") {
        holder = "roadie process " + why;
      }
      throw AlreadyRunning("cannot reserve " + describe(number, name) + ": it is reserved by " +
                           holder + " (lock file " + dir_path + "/" + std::to_string(number) +
                           ".lock)");
    }
    case Attempt::served:
      break;
  }
  throw AlreadyRunning("cannot reserve " + describe(number, name) +
                       ": it is already served by another process (" + why + ")");
}

PortReservation::PortReservation(PortReservation&& other) noexcept
    : port_(other.port_), name_(std::move(other.name_)), fd_(std::exchange(other.fd_, -1)) {}

PortReservation& PortReservation::operator=(PortReservation&& other) noexcept {
  if (this != &other) {
    release();
    port_ = other.port_;
    name_ = std::move(other.name_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

PortReservation::~PortReservation() {
  release();
}

void PortReservation::release() noexcept {
  if (fd_ < 0) return;
  // Unlock before closing: a child forked without exec shares the open file
  // description, and closing our descriptor alone would leave it locked.
  ::flock(fd_, LOCK_UN);
  ::close(std::exchange(fd_, -1));
}

std::string PortReservation::env_name(std::string_view name) {
  std::string variable = "ROADIE_PORT_";
  variable.reserve(variable.size() + name.size());
  for (const char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    variable += !alnum ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  return variable;
}

}  // namespace roadie
