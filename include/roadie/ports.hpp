// Loopback TCP ports reserved machine-wide: what `ports: [NAME]` in a stack
// file gives each name, and what tests use instead of "bind to port 0 and
// hope".
//
// A reservation is a lock, not a socket: the service binds the port itself.
// Every roadie process on the machine (parallel `ctest -j`, several users)
// respects the lock, so two live reservations never share a port, and a
// reserved port is never one another process serves when it is handed out.
//
// How (see ARCHITECTURE.md, "Ports"): one lock file per port in a shared
// directory, `$ROADIE_PORTS_DIR` or else `/tmp/roadie-ports` (created mode
// 1777 when missing; files 0666 whatever the umask, so every user can lock
// them; symlinks refused), held with flock(2) for the life of the object. The
// kernel drops the lock when its owner dies, SIGKILL included, so a crashed
// owner's ports come back at once. The descriptor is close-on-exec: services
// and other children never inherit a reservation, and a reservation ends with
// the process that made it (a detached supervisor reserves its stack's ports
// itself, after it has detached).
//
// Candidate ports come from outside the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): the kernel gives ephemeral ports
// to every outgoing connection and every bind to port 0 on the machine, so a
// port taken from that range can be taken by a client socket between the
// reservation and the service's bind. `$ROADIE_PORTS_RANGE` ("LO-HI") narrows
// the choice (e.g. disjoint blocks for CTest resource groups). After the lock
// is taken the port is checked free (bind on 127.0.0.1 with SO_REUSEADDR, and
// on ::1 when the host has it); a served port is skipped.
//
// Thread-safety: `reserve()` and `reserve_exact()` may be called from any
// number of threads at once (two threads of one process never get the same
// port either). One PortReservation object is a value: one thread at a time.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "roadie/ready.hpp"

namespace roadie {

/// A TCP port on 127.0.0.1 reserved machine-wide for as long as this object
/// lives (or until release()). Move-only; holds one descriptor.
class PortReservation {
 public:
  /// Finds a port that is free now and not reserved by any roadie process.
  /// `name` is the caller's (the stack file's port name), for messages and
  /// env_name(); lock files stay empty. Throws roadie::Error when no port can
  /// be found (every candidate reserved or served, the lock directory
  /// unusable, no descriptor left); the message names what failed.
  static PortReservation reserve(std::string name = {});

  /// Reserves this exact port (for fixed ports). Throws roadie::AlreadyRunning
  /// when it is served by any process or reserved by another reservation (of
  /// any process, this one included), naming the holder's pid when
  /// /proc/locks shows it; other failures (the lock directory) are
  /// roadie::Error.
  static PortReservation reserve_exact(Port port, std::string name = {});

  PortReservation(PortReservation&& other) noexcept;
  PortReservation& operator=(PortReservation&& other) noexcept;
  PortReservation(const PortReservation&) = delete;
  PortReservation& operator=(const PortReservation&) = delete;
  /// Releases (see release()).
  ~PortReservation();

  /// The reserved port (still readable after release(); held() says whether
  /// it is still reserved).
  Port port() const noexcept { return port_; }
  const std::string& name() const noexcept { return name_; }
  /// True until release() (or a move away).
  bool held() const noexcept { return fd_ >= 0; }

  /// "ROADIE_PORT_" + the upper-cased name with every byte that is not an
  /// ASCII letter or digit as '_': "redis-main.1" -> "ROADIE_PORT_REDIS_MAIN_1".
  static std::string env_name(std::string_view name);

  /// Unlocks and closes the lock file: the port may be handed out again at
  /// once. Idempotent; never throws.
  void release() noexcept;

 private:
  PortReservation(Port port, std::string name, int fd) noexcept
      : port_(port), name_(std::move(name)), fd_(fd) {}

  Port port_;
  std::string name_;
  int fd_ = -1;
};

}  // namespace roadie
