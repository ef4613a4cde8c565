// Writes MEGABYTES of filler lines, then a banner line, then runs until a
// signal ends it. Before the banner it prints when it started and when it had
// written everything (CLOCK_MONOTONIC, ns) as "wrote N MB from S to E", so a
// test can compare the banner's detection with the child's own writing time.
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  long long total = (argc >= 2 ? std::atoll(argv[1]) : 5) * 1024 * 1024;
  auto stamp = [] {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
  };
  long long start = stamp();
  std::string line(99, '.');
  line += '\n';
  std::string block;
  while (block.size() + line.size() <= 64 * 1024) block += line;
  long long written = 0;
  while (written < total) {
    auto n = ::write(1, block.data(), block.size());
    if (n <= 0) return 3;
    written += n;
  }
  long long end = stamp();
  std::printf("wrote %lld MB from %lld to %lld\nthe banner: ready\n", total / (1024 * 1024), start,
              end);
  std::fflush(stdout);
  for (;;) ::pause();
}
