// Plays a chatty service: writes MEGABYTES of output in lines of --line-bytes
// (default 100, newline included) to stdout (or --stderr), as fast as the pipe
// takes it, then prints "flood done" and exits 0.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::exit(3);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: child_flood MEGABYTES [--line-bytes N] [--stderr]\n");
    return 2;
  }
  long long total = std::atoll(argv[1]) * 1024 * 1024;
  size_t line_bytes = 100;
  int fd = 1;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--line-bytes") && i + 1 < argc)
      line_bytes = std::strtoul(argv[++i], nullptr, 10);
    if (!std::strcmp(argv[i], "--stderr")) fd = 2;
  }
  if (line_bytes < 2) line_bytes = 2;
  // One 64 KiB block of whole lines, written again and again.
  std::string line(line_bytes - 1, 'x');
  line += '\n';
  std::string block;
  while (block.size() + line.size() <= 64 * 1024) block += line;
  long long written = 0;
  while (written + static_cast<long long>(block.size()) <= total) {
    write_all(fd, block.data(), block.size());
    written += static_cast<long long>(block.size());
  }
  // The rest, ending on a line boundary.
  std::string rest = block.substr(0, static_cast<size_t>(total - written));
  if (!rest.empty()) rest.back() = '\n';
  write_all(fd, rest.data(), rest.size());
  const char done[] = "flood done\n";
  write_all(fd, done, sizeof done - 1);
  return 0;
}
