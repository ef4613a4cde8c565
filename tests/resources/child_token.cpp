// Writes COUNT numbered lines carrying TOKEN on stdout ("TOKEN 0" ...), then
// "TOKEN err" on stderr, then exits 0 at once: the exit races the reading of
// the last writes. With distinct tokens, output routed to the wrong process
// shows.
//
//   child_token TOKEN COUNT
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

static void write_all(int fd, const std::string& text) {
  const char* data = text.data();
  size_t size = text.size();
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(3);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: child_token TOKEN COUNT\n");
    return 2;
  }
  const std::string token = argv[1];
  const long count = std::atol(argv[2]);
  // Several writes of up to 16 KiB: the reader sees the data in pieces.
  std::string block;
  for (long i = 0; i < count; ++i) {
    block += token + " " + std::to_string(i) + "\n";
    if (block.size() >= 16 * 1024) {
      write_all(1, block);
      block.clear();
    }
  }
  write_all(1, block);
  write_all(2, token + " err\n");
  _exit(0);
}
