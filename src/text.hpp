// Private: small text helpers shared by messages and listings.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "roadie/command.hpp"

namespace roadie::detail {

/// "1.23 s".
inline std::string seconds(std::chrono::nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", std::chrono::duration<double>(d).count());
  return text;
}

/// The program's file name: the default name of a process or service.
inline std::string default_name(const Command& command) {
  const std::string& program = command.program();
  auto slash = program.rfind('/');
  return slash == std::string::npos ? program : program.substr(slash + 1);
}

}  // namespace roadie::detail
