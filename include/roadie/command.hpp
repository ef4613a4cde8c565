// What to run: an argv vector, its environment and its working directory.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace roadie {

/// A command line to run, without a shell unless `Command::shell()` asks for one.
///
///     Command redis{"redis-server", "--port", "7001"};
///     redis.set_env("LC_ALL", "C").set_cwd("/tmp");
///
/// A program name without a slash is looked up in the PATH of the environment
/// the child will get (so a PATH set here is honoured).
///
/// Thread-safety: a plain value. Const use from many threads is safe; a
/// Command being changed must not be read elsewhere at the same time.
class Command {
 public:
  /// Throws roadie::Error when argv is empty, or naming the argument when one
  /// contains a NUL byte (the system would cut it there).
  Command(std::initializer_list<std::string> argv);
  explicit Command(std::vector<std::string> argv);

  /// `/bin/sh -c script`. Use only when shell syntax is the point.
  static Command shell(std::string script);

  const std::vector<std::string>& argv() const noexcept { return argv_; }
  const std::string& program() const noexcept { return argv_.front(); }

  /// Sets a variable over the inherited environment. Throws roadie::Error
  /// naming the variable when the name is empty or holds '=' or a NUL byte, or
  /// when the value holds a NUL byte.
  Command& set_env(std::string name, std::string value);
  /// Removes a variable from the child's environment. Throws roadie::Error for
  /// the names set_env() refuses.
  Command& unset_env(std::string name);
  /// The child starts from an empty environment instead of the parent's; the
  /// variables set with set_env() are then all it gets.
  Command& clear_env();
  /// Throws roadie::Error when the path holds a NUL byte.
  Command& set_cwd(std::filesystem::path dir);

  /// Variables set (a value) or removed (no value) over the base environment.
  const std::map<std::string, std::optional<std::string>>& env_changes() const noexcept {
    return env_;
  }
  bool inherits_env() const noexcept { return inherit_env_; }
  const std::optional<std::filesystem::path>& cwd() const noexcept { return cwd_; }

  /// The environment the child gets, given the parent's.
  std::vector<std::string> environment(const char* const* parent_environ) const;

  /// The command line as a person would type it, each argument shell-quoted.
  std::string display() const;

 private:
  std::vector<std::string> argv_;
  std::map<std::string, std::optional<std::string>> env_;
  bool inherit_env_ = true;
  std::optional<std::filesystem::path> cwd_;
};

/// Quotes one argument for a POSIX shell when it needs quoting.
std::string shell_quote(const std::string& arg);

}  // namespace roadie
