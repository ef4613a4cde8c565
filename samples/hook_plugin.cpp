// A user's event-hook plugin: riggerlib's README example, done in roadie.
// On start_test it writes the test's name and start time into a file of its
// own in the test's artifact directory; on finish_test it adds the result.
// The artifacts layer computes artifact_path once, in a pre callback, so the
// plugin never builds a path itself.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <vector>

#include "roadie/artifacts.hpp"
#include "roadie/hooks.hpp"

class StampPlugin : public roadie::Plugin {
 public:
  using Plugin::Plugin;

  void initialize() override {
    register_hook("start_test", [this](roadie::EventContext& e) {
      std::ofstream(file(e)) << e.string("test_name") << "\n"
                             << std::fixed << std::setprecision(6) << seconds_now() << "\n";
    });
    register_hook("finish_test", [this](roadie::EventContext& e) {
      std::ofstream(file(e), std::ios::app) << e.string("test_result") << "\n";
    });
  }

 private:
  std::filesystem::path file(const roadie::EventContext& e) const {
    return e.path("artifact_path") / (ident() + ".log");
  }
  static double seconds_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
};

int main(int argc, char** argv) {
  try {
    const std::filesystem::path root = argc > 1 ? argv[1] : "hook-plugin-artifacts";
    roadie::HookBus bus;
    roadie::ArtifactOptions artifacts{.root = root};
    artifacts.service_logs = artifacts.junit = artifacts.timeline = false;  // paths + manifest
    roadie::install_artifacts(bus, artifacts);
    bus.emplace_plugin<StampPlugin>("stamp");

    std::vector<std::filesystem::path> dirs;
    for (const char* result : {"passed", "failed"}) {
      const std::string name = std::string("it_") + result;
      // fire() returns the event's locals: artifact_path is among them (a
      // second run of this sample gets it_passed-2, and so on).
      roadie::Values locals = bus.fire("start_test", {{"suite_name", "Sample"}, {"test_name", name}});
      dirs.push_back(*locals.at("artifact_path").get_if<std::filesystem::path>());
      bus.fire("finish_test", {{"suite_name", "Sample"}, {"test_name", name},
                               {"test_result", result}, {"test_duration", 0.01}});
    }
    bus.fire("session_finish", {{"session_result", "failed"}});

    for (const auto& dir : dirs) {
      std::ifstream in(dir / "stamp.log");
      std::string test, started, result;
      std::getline(in, test);
      std::getline(in, started);
      std::getline(in, result);
      std::cout << test << " started at " << started << " and " << result << "\n";
    }
    std::cout << "manifest: " << (root / "manifest.json").string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "hook plugin sample failed: " << e.what() << "\n";
    return 1;
  }
}
