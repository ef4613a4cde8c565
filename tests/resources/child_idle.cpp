// The most trivial service: does nothing until a signal ends it.
#include <unistd.h>

int main() {
  for (;;) ::pause();
}
