// Prints its working directory ("cwd=...") and, for each NAME argument,
// "NAME=value" or "NAME unset". With --stay first, it then prints "done" and
// runs until a signal ends it (a service whose banner is "done").
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

int main(int argc, char** argv) {
  const bool stay = argc > 1 && std::string_view(argv[1]) == "--stay";
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) != nullptr) std::printf("cwd=%s\n", cwd);
  for (int i = stay ? 2 : 1; i < argc; ++i) {
    const char* value = std::getenv(argv[i]);
    if (value != nullptr) {
      std::printf("%s=%s\n", argv[i], value);
    } else {
      std::printf("%s unset\n", argv[i]);
    }
  }
  if (stay) {
    std::puts("done");
    std::fflush(stdout);
    for (;;) ::pause();
  }
  return 0;
}
