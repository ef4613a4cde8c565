// The roadie command's exit codes, in one place (a public contract: see
// DESIGN.md, "The roadie command").
#pragma once

namespace roadie::cli {

inline constexpr int kExitOk = 0;
/// Internal trouble that is neither the user's nor the stack's (a bug, no
/// memory): never one of the contract's codes.
inline constexpr int kExitInternal = 1;
/// A usage error, or an invalid stack file (`check`, and every verb that loads one).
inline constexpr int kExitUsage = 2;
/// The stack could not be brought up.
inline constexpr int kExitBringUpFailed = 3;
/// `run`: the command could not be executed (as sh does).
inline constexpr int kExitCannotExecute = 127;
/// `run`: the command was killed by signal N: 128 + N (as sh does).
inline constexpr int kExitSignalBase = 128;

}  // namespace roadie::cli
