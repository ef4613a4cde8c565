#include "values.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <csignal>
#include <cstdint>
#include <limits>

namespace roadie::stack {
namespace {

constexpr std::string_view kDurationForms = "250ms, 10s, 1.5s, 2m or 1h (units ms, s, m, h)";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

struct SignalName {
  std::string_view name;
  int number;
};

constexpr std::array kSignals{
    SignalName{"HUP", SIGHUP},       SignalName{"INT", SIGINT},   SignalName{"QUIT", SIGQUIT},
    SignalName{"ILL", SIGILL},       SignalName{"TRAP", SIGTRAP}, SignalName{"ABRT", SIGABRT},
    SignalName{"BUS", SIGBUS},       SignalName{"FPE", SIGFPE},   SignalName{"KILL", SIGKILL},
    SignalName{"USR1", SIGUSR1},     SignalName{"SEGV", SIGSEGV}, SignalName{"USR2", SIGUSR2},
    SignalName{"PIPE", SIGPIPE},     SignalName{"ALRM", SIGALRM}, SignalName{"TERM", SIGTERM},
    SignalName{"CHLD", SIGCHLD},     SignalName{"CONT", SIGCONT}, SignalName{"STOP", SIGSTOP},
    SignalName{"TSTP", SIGTSTP},     SignalName{"TTIN", SIGTTIN}, SignalName{"TTOU", SIGTTOU},
    SignalName{"URG", SIGURG},       SignalName{"XCPU", SIGXCPU}, SignalName{"XFSZ", SIGXFSZ},
    SignalName{"VTALRM", SIGVTALRM}, SignalName{"PROF", SIGPROF}, SignalName{"WINCH", SIGWINCH},
    SignalName{"IO", SIGIO},         SignalName{"PWR", SIGPWR},   SignalName{"SYS", SIGSYS},
};

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  auto refuse = [&](std::string_view why) -> std::chrono::milliseconds {
    throw ValueError(std::string(why) + ": expected a duration like " +
                     std::string(kDurationForms) + ", found " + in_quotes(text));
  };
  std::size_t i = 0;
  std::uint64_t whole = 0;
  std::size_t digits = 0;
  while (i < text.size() && is_digit(text[i])) {
    if (whole > 1'000'000'000'000ULL) return refuse("too long");
    whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
    ++i;
    ++digits;
  }
  std::uint64_t fraction = 0;  // in 1/1000 of the unit
  std::size_t fraction_digits = 0;
  bool fraction_nonzero_beyond = false;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && is_digit(text[i])) {
      if (fraction_digits < 3) {
        fraction = fraction * 10 + static_cast<std::uint64_t>(text[i] - '0');
      } else if (text[i] != '0') {
        fraction_nonzero_beyond = true;
      }
      ++fraction_digits;
      ++i;
    }
    if (fraction_digits == 0) return refuse("a digit must follow the decimal point");
    for (std::size_t k = std::min<std::size_t>(fraction_digits, 3); k < 3; ++k) fraction *= 10;
  }
  if (digits == 0) {
    return refuse(text.empty() ? "empty" : (text.front() == '-' ? "negative" : "not a number"));
  }
  const std::string_view unit = text.substr(i);
  std::uint64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1000;
  } else if (unit == "m") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else if (unit.empty()) {
    return refuse("no unit");
  } else {
    return refuse("unknown unit " + in_quotes(unit));
  }
  // fraction is in thousandths of the unit: thousandths * unit_ms / 1000 ms.
  if (fraction_nonzero_beyond || (fraction * unit_ms) % 1000 != 0) {
    return refuse("finer than a millisecond");
  }
  const std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (whole > limit / unit_ms) return refuse("too long");
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(whole * unit_ms + fraction * unit_ms / 1000));
}

int parse_signal(std::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), is_digit)) {
    if (text.size() <= 2) {
      const int number = std::stoi(std::string(text));
      if (number >= 1 && number <= 64) return number;
    }
    throw ValueError("signal number out of range: expected 1 to 64, found " + in_quotes(text));
  }
  std::string name(text);
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string bare = name.rfind("SIG", 0) == 0 ? name.substr(3) : name;
  std::vector<std::string> names;
  for (const auto& signal : kSignals) {
    if (signal.name == bare) return signal.number;
    names.push_back("SIG" + std::string(signal.name));
  }
  throw ValueError("unknown signal " + in_quotes(text) + did_you_mean("SIG" + bare, names) +
                   " (expected a name like SIGTERM, TERM or SIGINT, or a number 1 to 64)");
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: a swap of two neighbours ("TREM" / "TERM")
  // costs one edit, the commonest typo.
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    // A distance as long as the word itself is a different word ("x" / "env").
    if (distance < best_distance && distance < std::max(word.size(), candidate.size())) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string best = nearest(word, candidates);
  return best.empty() ? std::string() : "; did you mean " + in_quotes(best) + "?";
}

namespace {

constexpr std::string_view kForms =
    "${ports.NAME}, ${env.VAR}, ${env.VAR:-default} or ${stack.dir}";

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
}
bool is_env_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

struct Reference {
  enum class Kind { port, env, stack_dir } kind;
  std::string name;
  std::optional<std::string> fallback;
};

// Reads the reference in `body` (what is between `${` and `}`).
Reference read_reference(std::string_view body) {
  const std::string shown = "${" + std::string(body) + "}";
  if (body == "stack.dir") return {Reference::Kind::stack_dir, {}, {}};
  if (body.rfind("ports.", 0) == 0) {
    const std::string_view name = body.substr(6);
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_name_char)) {
      throw ValueError("invalid port name in " + in_quotes(shown) +
                       ": expected letters, digits, '_' or '-'");
    }
    return {Reference::Kind::port, std::string(name), {}};
  }
  if (body.rfind("env.", 0) == 0) {
    std::string_view name = body.substr(4);
    std::optional<std::string> fallback;
    if (const auto dash = name.find(":-"); dash != std::string_view::npos) {
      fallback = std::string(name.substr(dash + 2));
      name = name.substr(0, dash);
    }
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_env_char)) {
      throw ValueError("invalid variable name in " + in_quotes(shown) +
                       ": expected letters, digits or '_'");
    }
    return {Reference::Kind::env, std::string(name), std::move(fallback)};
  }
  const std::string head(body.substr(0, body.find('.')));
  throw ValueError("unknown substitution " + in_quotes(shown) +
                   did_you_mean(head, {"ports", "env", "stack"}) + " (expected " +
                   std::string(kForms) + "; write $${ for a literal ${)");
}

// Walks the text of the file: literal pieces go to `literal` (`$${` is a
// literal `${`), references to `reference`.
template <class Literal, class Ref>
void walk(std::string_view text, Literal&& literal, Ref&& reference) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      literal(std::string_view("${"));
      i += 3;
    } else if (text.compare(i, 2, "${") == 0) {
      const std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        throw ValueError("unterminated " + in_quotes(text.substr(i)) + ": expected " +
                         std::string(kForms) + " closed by '}' (write $${ for a literal ${)");
      }
      reference(read_reference(text.substr(i + 2, close - i - 2)));
      i = close + 1;
    } else {
      const std::size_t next = text.find('$', i + 1);
      const std::size_t end = next == std::string_view::npos ? text.size() : next;
      literal(text.substr(i, end - i));
      i = end;
    }
  }
}

// The template form: every literal `$` doubled, so `$$` is a dollar and `${`
// always starts a port reference (a `$` that ends an expanded value cannot
// join the next reference).
void append_escaped(std::string& out, std::string_view literal) {
  for (const char c : literal) {
    if (c == '$') out.push_back('$');
    out.push_back(c);
  }
}

template <class Literal, class Ref>
void walk_template(std::string_view text, Literal&& literal, Ref&& reference) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "$$") == 0) {
      literal(std::string_view("$"));
      i += 2;
    } else if (text.compare(i, 2, "${") == 0) {
      const std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) throw ValueError("broken template " + in_quotes(text));
      reference(read_reference(text.substr(i + 2, close - i - 2)));
      i = close + 1;
    } else {
      const std::size_t next = text.find('$', i + 1);
      const std::size_t end = next == std::string_view::npos ? text.size() : next;
      literal(text.substr(i, end - i));
      i = end;
    }
  }
}

}  // namespace

std::string expand_load(std::string_view text, const ExpandContext& context,
                        std::vector<std::string>& ports) {
  std::string out;
  std::string pending;
  auto flush = [&] {
    append_escaped(out, pending);
    pending.clear();
  };
  walk(
      text, [&](std::string_view literal) { pending.append(literal); },
      [&](const Reference& ref) {
        switch (ref.kind) {
          case Reference::Kind::stack_dir:
            pending.append(context.stack_dir);
            break;
          case Reference::Kind::env: {
            std::optional<std::string> value = context.getenv(ref.name);
            if (ref.fallback && (!value || value->empty())) value = ref.fallback;
            if (!value) {
              throw ValueError("environment variable '" + ref.name + "' is not set (write ${env." +
                               ref.name + ":-default} to give a default)");
            }
            pending.append(*value);
            break;
          }
          case Reference::Kind::port:
            flush();
            out.append("${ports." + ref.name + "}");
            ports.push_back(ref.name);
            break;
        }
      });
  flush();
  return out;
}

std::string expand_ports(std::string_view text, const std::map<std::string, Port>& ports) {
  std::string out;
  walk_template(
      text, [&](std::string_view literal) { out.append(literal); },
      [&](const Reference& ref) {
        // Only ports remain in a template (expand_load wrote the rest).
        const auto found = ports.find(ref.name);
        if (ref.kind != Reference::Kind::port || found == ports.end()) {
          throw ValueError("port '" + ref.name + "' was not reserved");
        }
        out.append(std::to_string(found->second.value()));
      });
  return out;
}

std::vector<std::string> ports_in(std::string_view text) {
  std::vector<std::string> names;
  walk_template(
      text, [](std::string_view) {},
      [&](const Reference& ref) {
        if (ref.kind == Reference::Kind::port) names.push_back(ref.name);
      });
  return names;
}

}  // namespace roadie::stack
