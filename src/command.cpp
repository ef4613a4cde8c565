#include "roadie/command.hpp"

#include <stdexcept>
#include <string_view>

#include "roadie/error.hpp"

namespace roadie {

namespace {

// The text with each NUL shown as "\0", for messages.
std::string visible(std::string_view text) {
  std::string shown;
  for (char c : text) {
    if (c == '\0') {
      shown += "\\0";
    } else {
      shown += c;
    }
  }
  return shown;
}

bool has_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

// The system takes C strings: a NUL would silently cut the value short, and a
// name with '=' would set another variable than the one named.
void check_env_name(std::string_view call, const std::string& name) {
  if (name.empty()) throw Error("roadie::Command::" + std::string(call) + ": empty variable name");
  if (name.find('=') != std::string::npos) {
    throw Error("roadie::Command::" + std::string(call) + ": variable name '" + visible(name) +
                "' contains '='");
  }
  if (has_nul(name)) {
    throw Error("roadie::Command::" + std::string(call) + ": variable name '" + visible(name) +
                "' contains a NUL byte");
  }
}

}  // namespace

Command::Command(std::initializer_list<std::string> argv)
    : Command(std::vector<std::string>(argv)) {}

Command::Command(std::vector<std::string> argv) : argv_(std::move(argv)) {
  if (argv_.empty()) throw Error("roadie::Command: argv must not be empty (the first element is the program to run)");
  for (std::size_t i = 0; i < argv_.size(); ++i) {
    if (!has_nul(argv_[i])) continue;
    throw Error("roadie::Command: " +
                (i == 0 ? std::string("the program") : "argument " + std::to_string(i)) + " '" +
                visible(argv_[i]) + "' contains a NUL byte");
  }
}

Command Command::shell(std::string script) {
  return Command({"/bin/sh", "-c", std::move(script)});
}

Command& Command::set_env(std::string name, std::string value) {
  check_env_name("set_env", name);
  if (has_nul(value)) {
    throw Error("roadie::Command::set_env: the value of " + name + " ('" + visible(value) +
                "') contains a NUL byte");
  }
  env_[std::move(name)] = std::move(value);
  return *this;
}

Command& Command::unset_env(std::string name) {
  check_env_name("unset_env", name);
  env_[std::move(name)] = std::nullopt;
  return *this;
}

Command& Command::clear_env() {
  inherit_env_ = false;
  return *this;
}

Command& Command::set_cwd(std::filesystem::path dir) {
  if (has_nul(dir.native())) {
    throw Error("roadie::Command::set_cwd: directory '" + visible(dir.native()) +
                "' contains a NUL byte");
  }
  cwd_ = std::move(dir);
  return *this;
}

std::vector<std::string> Command::environment(const char* const* parent_environ) const {
  std::vector<std::string> result;
  auto changed = [this](std::string_view entry) {
    auto eq = entry.find('=');
    return env_.count(std::string(entry.substr(0, eq))) != 0;
  };
  if (inherit_env_ && parent_environ != nullptr) {
    for (auto e = parent_environ; *e != nullptr; ++e) {
      if (!changed(*e)) result.emplace_back(*e);
    }
  }
  for (const auto& [name, value] : env_) {
    if (value) result.push_back(name + "=" + *value);
  }
  return result;
}

std::string shell_quote(const std::string& arg) {
  if (arg.empty()) return "''";
  bool plain = true;
  for (char c : arg) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                std::string_view("@%_+=:,./-").find(c) != std::string_view::npos;
    if (!safe) {
      plain = false;
      break;
    }
  }
  if (plain) return arg;
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += '\'';
  return quoted;
}

std::string Command::display() const {
  std::string line;
  for (const auto& arg : argv_) {
    if (!line.empty()) line += ' ';
    line += shell_quote(arg);
  }
  return line;
}

}  // namespace roadie
