// Writes a line in two pieces with a pause between ("hel", then "lo world\n"),
// then a last line without a newline, and exits.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

static void say(const char* text, size_t size) {
  if (::write(1, text, size) < 0) std::exit(3);
}

int main(int argc, char** argv) {
  long pause_ms = argc >= 2 ? std::atol(argv[1]) : 200;
  say("hel", 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  say("lo world\n", 9);
  say("no newline at the end", 21);
  return 0;
}
