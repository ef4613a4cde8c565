// A program outside roadie that finds it with find_package(roadie) and uses it.
#include <roadie/roadie.hpp>

int main() {
  roadie::Executor e(roadie::Command{"true"});
  auto p = roadie::Process::spawn(roadie::Command{"sh", "-c", "exit 0"});
  return p.wait().code();
}
