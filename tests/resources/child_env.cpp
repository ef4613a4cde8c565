// Prints its working directory ("cwd=...") and, for each NAME argument,
// "NAME=value" or "NAME unset".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) != nullptr) std::printf("cwd=%s\n", cwd);
  for (int i = 1; i < argc; ++i) {
    const char* value = std::getenv(argv[i]);
    if (value != nullptr) {
      std::printf("%s=%s\n", argv[i], value);
    } else {
      std::printf("%s unset\n", argv[i]);
    }
  }
  return 0;
}
