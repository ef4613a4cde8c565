// roadie::gtest_main's flags: --roadie_stack and --roadie_artifacts.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "services_impl.hpp"

namespace roadie::gtest {
namespace {

constexpr std::string_view kUsage =
    "roadie flags:\n"
    "  --roadie_stack=FILE      bring the stack in FILE (a roadie.yaml) up for the session\n"
    "                           (or ROADIE_STACK=FILE); with ROADIE_STATE=DIR set, attach\n"
    "                           to the stack `roadie up --detach` runs there instead\n"
    "  --roadie_artifacts=DIR   per-test artifacts under DIR (or ROADIE_ARTIFACTS_DIR)\n";

std::string from_env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

}  // namespace

int init_from_command_line(int& argc, char** argv, HookBus& bus) {
  std::string stack = from_env("ROADIE_STACK");
  std::string artifacts = from_env("ROADIE_ARTIFACTS_DIR");
  bool stack_flag = false;
  bool artifacts_flag = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg.substr(0, arg.find('='));
    const bool has_value = arg.find('=') != std::string_view::npos;
    std::string_view value = has_value ? arg.substr(arg.find('=') + 1) : std::string_view{};
    if (name == "--roadie_stack" || name == "--roadie_artifacts") {
      if (!has_value || value.empty()) {
        std::fprintf(stderr, "%.*s needs a value: %.*s=%s\n%.*s", static_cast<int>(name.size()),
                     name.data(), static_cast<int>(name.size()), name.data(),
                     name == "--roadie_stack" ? "FILE" : "DIR", static_cast<int>(kUsage.size()),
                     kUsage.data());
        return 2;
      }
      (name == "--roadie_stack" ? stack : artifacts) = std::string(value);
      (name == "--roadie_stack" ? stack_flag : artifacts_flag) = true;
      continue;
    }
    if (arg.starts_with("--roadie_") || arg.starts_with("-roadie_")) {
      std::fprintf(stderr, "unknown flag %.*s\n%.*s", static_cast<int>(name.size()), name.data(),
                   static_cast<int>(kUsage.size()), kUsage.data());
      return 2;
    }
    if (arg == "--help" || arg == "-h" || arg == "-?" || arg == "--gtest_help") {
      std::fputs(std::string(kUsage).c_str(), stdout);
    }
    argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;
  if (stack.empty() && artifacts.empty()) return 0;  // plain gtest_main
  try {
    ArtifactOptions options;
    options.root = artifacts;  // empty: default_artifacts_root()
    install(bus, std::move(options));
    if (!stack.empty()) add_stack(SessionOptions{.stack_file = stack});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "roadie: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace roadie::gtest
