#include "roadie/exit_status.hpp"

#include <string.h>

#include <cstdlib>
#include <string>

namespace roadie {

std::string signal_name(int signal) {
  if (const char* abbrev = ::sigabbrev_np(signal)) return std::string("SIG") + abbrev;
  return "signal " + std::to_string(signal);
}

std::string ExitStatus::describe() const {
  if (is_signaled()) {
    return "killed by signal " + std::to_string(signal_) + " (" + signal_name(signal_) + ")";
  }
  return "exited with code " + std::to_string(code_);
}

}  // namespace roadie
