// The roadie command's verbs: each takes its parsed options, prints what the
// user asked for, and returns the process's exit code (exit_codes.hpp).
// Usage errors never reach these functions: main.cpp reports them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace roadie::cli {

struct CheckOptions {
  std::filesystem::path file;
};
int check(const CheckOptions& options);

struct GraphOptions {
  std::filesystem::path file;
  std::string format;  ///< "dot" or "text"
};
int graph(const GraphOptions& options);

/// What `run` and `up` share.
struct StackRunOptions {
  std::filesystem::path file;
  /// --state; none means `.roadie/` beside the stack file.
  std::optional<std::filesystem::path> state;
};

struct RunOptions : StackRunOptions {
  std::vector<std::string> command;
};
int run(const RunOptions& options);

int up(const StackRunOptions& options);

}  // namespace roadie::cli
