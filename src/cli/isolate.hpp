// `roadie run --isolate` (and `isolate: network` in the stack file): this
// process, and so the stack and CMD it starts, moves into a private network
// namespace whose loopback is up, so that services on fixed ports run side by
// side with other stacks.
//
// unshare(2) moves the calling thread only, and CLONE_NEWUSER refuses a
// multi-threaded process: call this before any thread exists (before the
// signal thread, the runtime's event loop, the scheduler's workers).
#pragma once

#include <string>

namespace roadie::cli {

/// Enters a new network namespace with `lo` up. As root: CLONE_NEWNET. Else
/// (or when root lacks CAP_SYS_ADMIN, in a container) CLONE_NEWUSER |
/// CLONE_NEWNET with this user's uid and gid mapped to themselves. Returns ""
/// on success, else a message saying what failed and what to do.
std::string enter_private_network();

}  // namespace roadie::cli
