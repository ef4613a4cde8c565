// Private: the scalar languages of the stack file (durations, signals,
// `${...}` substitution) and the "did you mean" of its messages. Each parser
// throws ValueError with the reason; the YAML walk adds file, line and key.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "roadie/ready.hpp"

namespace roadie::stack {

/// A value the stack file's grammar refuses; the message says what was
/// expected and what was found.
class ValueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "250ms", "10s", "2m", "1.5s", "1h"; whole milliseconds, not negative.
std::chrono::milliseconds parse_duration(std::string_view text);

/// "SIGTERM", "TERM", "sigterm", or a number 1..64.
int parse_signal(std::string_view text);

/// Edit distance (insert, delete, replace, swap neighbours), for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b);
/// The candidate nearest to `word` within distance 2 (first on a tie), or empty.
std::string nearest(std::string_view word, const std::vector<std::string>& candidates);
/// "; did you mean 'X'?" or empty.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

/// What `${...}` looks up while the file is loaded.
struct ExpandContext {
  /// `${stack.dir}`.
  std::string stack_dir;
  /// `${env.VAR}`: the value, or none when the variable is not set.
  std::function<std::optional<std::string>(const std::string&)> getenv;
};

/// Expands `${env.VAR}`, `${env.VAR:-default}` and `${stack.dir}`; keeps each
/// `${ports.NAME}` and writes every literal `$` as `$$` (the template form
/// expand_ports() reads). Appends the port names used to `ports`. Throws
/// ValueError for an unknown or unterminated `${`, or an unset variable.
std::string expand_load(std::string_view text, const ExpandContext& context,
                        std::vector<std::string>& ports);

/// Fills in `${ports.NAME}` in a template and turns `$$` into `$`. Throws
/// ValueError naming a port missing from `ports`.
std::string expand_ports(std::string_view text, const std::map<std::string, Port>& ports);

/// The port names a template refers to, in order.
std::vector<std::string> ports_in(std::string_view text);

}  // namespace roadie::stack
