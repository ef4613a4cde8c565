// The roadie command: argv is parsed here (CLI11) and nowhere else; each verb
// lives in its own file behind verbs.hpp.
//
// Usage errors are one line naming what was wrong plus a pointer to --help,
// exit 2: CLI11's own report (the whole help after the error) buries the one
// line that matters.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "exit_codes.hpp"
#include "verbs.hpp"

namespace roadie::cli {
namespace {

constexpr const char* kHelpPointer = "Run 'roadie --help' (or 'roadie VERB --help') for usage.";

std::string joined(const std::vector<std::string>& words, const char* separator) {
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : separator) + word;
  return out;
}

std::vector<std::string> verb_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().rfind("__", 0) == 0) continue;  // hidden (the supervisor)
    names.push_back(sub->get_name());
  }
  return names;
}

// The verb being parsed when the error happened, or null at the top level.
const CLI::App* parsed_verb(const CLI::App& app) {
  const auto chosen = app.get_subcommands();
  return chosen.empty() ? nullptr : chosen.front();
}

// One line for a usage error, in the user's words (the argument as typed).
std::string usage_reason(const CLI::ParseError& error, const CLI::App& app) {
  const CLI::App* verb = parsed_verb(app);
  const std::string where = verb != nullptr ? "roadie " + verb->get_name() : "roadie";
  const auto extras = verb != nullptr ? verb->remaining() : app.remaining();
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr && !extras.empty()) {
    const std::string& first = extras.front();
    if (verb == nullptr && first.rfind('-', 0) != 0) {
      return "roadie: unknown verb '" + first + "' (verbs: " + joined(verb_names(app), ", ") + ")";
    }
    if (first.rfind('-', 0) == 0) return where + ": unknown option '" + first + "'";
    return where + ": unexpected argument '" + first + "'";
  }
  std::string what = error.what();
  // CLI11 ends some messages with a newline or a list on its own lines.
  for (char& c : what) {
    if (c == '\n') c = ' ';
  }
  while (!what.empty() && what.back() == ' ') what.pop_back();
  return where + ": " + what;
}

// Paragraphs wrapped for an 80-column terminal (CLI11 prints descriptions as
// they are).
std::string wrapped(const std::string& text, std::size_t width = 78) {
  std::string out;
  std::size_t column = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (column > 0 && column + 1 + word.size() > width) {
      out += '\n';
      column = 0;
    } else if (column > 0) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    start = end + 1;
  }
  return out + '\n';  // a blank line before "Usage:"
}

// The verbs list of `roadie --help` shows one short line per verb; the
// paragraph is for `roadie VERB --help`.
class Formatter : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* sub) const override {
    static const std::map<std::string, std::string> summaries = {
        {"check", "Validate the stack file; start nothing"},
        {"graph", "Print the dependency graph (dot or text)"},
        {"run", "Bring the stack up, run CMD against it, tear it down"},
        {"up", "Bring the stack up, in the foreground or --detach'ed"},
        {"down", "Tear down a detached stack"},
        {"status", "States, pids, ports and uptimes of a detached stack"},
        {"logs", "A detached stack's service output"},
    };
    std::stringstream out;
    auto it = summaries.find(sub->get_name());
    CLI::detail::format_help(out, sub->get_name(), it != summaries.end() ? it->second : "",
                             get_column_width());
    return out.str();
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      wrapped(
          "roadie starts the external services a test suite needs (databases, caches, HTTP apps, "
          "any process), as described by a stack file (roadie.yaml): it waits until each is really "
          "ready, brings dependency graphs up in parallel, and stops them all without leaving a "
          "process behind."),
      "roadie"};
  app.footer(
      "Examples:\n"
      "  roadie check                      validate ./roadie.yaml\n"
      "  roadie run -- ctest -j8           bring the stack up, run the tests, tear it down\n"
      "  roadie graph --format dot | dot -Tsvg > stack.svg\n"
      "\nRun 'roadie VERB --help' for a verb's options.\n");
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.formatter(std::make_shared<Formatter>());
  app.get_formatter()->column_width(34);

  CheckOptions check_options;
  CLI::App* check_verb = app.add_subcommand(
      "check",
      wrapped(
          "Validate a stack file without starting anything: YAML syntax, keys, types, durations, "
          "signals, patterns, substitutions, requirements and cycles. Prints a one-line summary "
          "and "
          "exits 0 when the file is valid; prints the first error as FILE:LINE:COLUMN: KEY: what, "
          "and exits 2, when it is not."));
  check_verb->add_option("-f,--file", check_options.file, "The stack file")
      ->default_val("roadie.yaml");
  check_verb->footer("Example:\n  roadie check -f tests/roadie.yaml\n");

  GraphOptions graph_options;
  CLI::App* graph_verb = app.add_subcommand(
      "graph",
      wrapped(
          "Print the stack's dependency graph (services, jobs and their requirements) without "
          "starting anything: as Graphviz DOT (--format dot, the default) or as one line per job "
          "(--format text)."));
  graph_verb->add_option("-f,--file", graph_options.file, "The stack file")
      ->default_val("roadie.yaml");
  graph_verb->add_option("--format", graph_options.format, "dot or text")
      ->default_val("dot")
      ->check(CLI::IsMember({"dot", "text"}));
  graph_verb->footer(
      "Examples:\n"
      "  roadie graph --format text\n"
      "  roadie graph -f stack.yaml | dot -Tsvg > stack.svg\n");

  RunOptions run_options;
  CLI::App* run_verb = app.add_subcommand(
      "run",
      wrapped(
          "Bring the stack up (showing each service's progress), run CMD with the reserved ports "
          "in "
          "its environment (ROADIE_PORT_<NAME>) and the state directory in ROADIE_STATE, tear the "
          "stack down, and exit with CMD's exit code (128+N if a signal N killed it; 3 if the "
          "stack "
          "could not be brought up; 127 if CMD cannot be executed). SIGINT and SIGTERM are passed "
          "on to CMD; the services' logs are kept in STATE/logs. With --isolate (or 'isolate: "
          "network' in the file) the stack and CMD get a private network namespace of their own, "
          "so fixed ports never collide with another stack's."));
  run_verb->add_option("-f,--file", run_options.file, "The stack file")->default_val("roadie.yaml");
  run_verb->add_option("--state", run_options.state,
                       "The state directory (default: .roadie beside the stack file)");
  run_verb->add_flag("--isolate", run_options.isolate,
                     "A private network namespace for the stack and CMD");
  run_verb->add_option("command", run_options.command, "The command to run, after '--'")
      ->required();
  run_verb->footer(
      "Examples:\n"
      "  roadie run -- ctest --output-on-failure -j8\n"
      "  roadie run -f stack.yaml -- sh -c 'redis-cli -p $ROADIE_PORT_REDIS ping'\n"
      "  roadie run --isolate -- ctest -j8        # fixed ports (6379, 8080) side by side\n");

  StackRunOptions up_options;
  CLI::App* up_verb = app.add_subcommand(
      "up",
      wrapped(
          "Bring the stack up in the foreground, showing each service's progress, and keep it up "
          "until Ctrl-C (SIGINT) or SIGTERM; then tear it down and exit 0. Exits 3 when the stack "
          "could not be brought up. The services' logs are kept in STATE/logs. With --detach, "
          "exit 0 once everything is ready and leave a supervisor process that keeps the stack up "
          "until 'roadie down'; its state (pids, ports, logs) is in STATE/state.json. One stack "
          "at a time per state directory: a second up or run there is refused, naming the "
          "first."));
  up_verb->add_option("-f,--file", up_options.file, "The stack file")->default_val("roadie.yaml");
  up_verb->add_option("--state", up_options.state,
                      "The state directory (default: .roadie beside the stack file)");
  up_verb->add_flag("--detach", up_options.detach,
                    "Return once the stack is up, leaving a supervisor behind");
  up_verb->footer(
      "Examples:\n  roadie up -f tests/roadie.yaml   # then Ctrl-C to tear it down\n"
      "  roadie up --detach && ctest -j8 && roadie down\n");

  DownOptions down_options;
  CLI::App* down_verb = app.add_subcommand(
      "down", wrapped("Tear down the stack that 'roadie up --detach' left running: through its "
                      "supervisor, or directly from the state file when the supervisor is gone "
                      "(a recorded pid that is another process now is never signalled). Exits 0, "
                      "also when nothing is running."));
  down_verb->add_option("--state", down_options.state, "The state directory (default: ./.roadie)");
  down_verb->footer("Example:\n  roadie down --state build/.roadie\n");

  StatusOptions status_options;
  CLI::App* status_verb = app.add_subcommand(
      "status", wrapped("Print the state of a detached stack: each service's state (running, "
                        "gone, or not ours when its pid is another process now), pid, ports and "
                        "uptime; as JSON with --json."));
  status_verb->add_option("--state", status_options.state,
                          "The state directory (default: ./.roadie)");
  status_verb->add_flag("--json", status_options.json, "Print JSON");
  status_verb->footer("Example:\n  roadie status --json\n");

  LogsOptions logs_options;
  CLI::App* logs_verb = app.add_subcommand(
      "logs", wrapped("Print a detached stack's service output (its log file in the state "
                      "directory); with --follow, keep printing until the service stops or "
                      "Ctrl-C."));
  logs_verb->add_option("--state", logs_options.state, "The state directory (default: ./.roadie)");
  logs_verb->add_flag("--follow", logs_options.follow, "Keep printing new output");
  logs_verb->add_option("service", logs_options.service, "The service")->required();
  logs_verb->footer("Example:\n  roadie logs --follow redis\n");

  SuperviseOptions supervise_options;
  CLI::App* supervise_verb = app.add_subcommand("__supervise", "");
  supervise_verb->group("");
  supervise_verb->add_option("-f", supervise_options.file)->required();
  supervise_verb->add_option("--state", supervise_options.state)->required();
  supervise_verb->add_option("--notify-fd", supervise_options.notify_fd);
  supervise_verb->add_option("--lock-fd", supervise_options.lock_fd);

  for (CLI::App* verb : {check_verb, graph_verb, run_verb, up_verb, down_verb, status_verb,
                         logs_verb, supervise_verb}) {
    verb->set_help_flag("-h,--help", "Print this help and exit");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << usage_reason(e, app) << '\n' << kHelpPointer << '\n';
    return kExitUsage;
  }

  if (app.get_subcommands().empty()) {
    std::cerr << "roadie: no verb given (verbs: " << joined(verb_names(app), ", ") << ")\n"
              << kHelpPointer << '\n';
    return kExitUsage;
  }
  if (check_verb->parsed()) return check(check_options);
  if (graph_verb->parsed()) return graph(graph_options);
  if (run_verb->parsed()) return run(run_options);
  if (down_verb->parsed()) return down(down_options);
  if (status_verb->parsed()) return status(status_options);
  if (logs_verb->parsed()) return logs(logs_options);
  if (supervise_verb->parsed()) return supervise(supervise_options);
  return up(up_options);
}

}  // namespace roadie::cli

int main(int argc, char** argv) {
  try {
    return roadie::cli::main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "roadie: internal error: %s\n", e.what());
  }
  return roadie::cli::kExitInternal;
}
