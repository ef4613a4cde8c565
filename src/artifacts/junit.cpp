// junit: every file of a finished test becomes a property of the test (the
// GoogleTest layer records it in the XML report) and an
// "[[ATTACHMENT|/abs/path]]" line, the form Jenkins' JUnit attachments read.
#include <cstdio>

#include "artifacts_impl.hpp"

namespace roadie::detail {
namespace {

namespace fs = std::filesystem;

class Junit final : public Plugin {
 public:
  Junit(std::string ident, fs::path root,
        std::function<void(const std::string&, const std::string&)> record_property,
        std::function<void(const std::string&)> print_attachment)
      : Plugin(std::move(ident)),
        root_(std::move(root)),
        record_property_(std::move(record_property)),
        print_attachment_(std::move(print_attachment)) {}

  void initialize() override {
    paths_ = ArtifactPaths::of(bus(), root_);
    // After the hooks wrote their files, before the manifest lists them.
    finish_ = bus().add_post(
        std::string(events::finish_test), [this](EventContext& e) { on_finish(e); }, 900,
        ident() + " (junit)");
  }

  void finish() override { finish_.reset(); }

 private:
  void on_finish(EventContext& event) {
    const Value* value = event.find("artifact_path");
    if (value == nullptr || value->get_if<fs::path>() == nullptr) return;
    const fs::path& dir = *value->get_if<fs::path>();
    for (const std::string& file : paths_->files_of(dir)) {
      const std::string path = (dir / file).string();
      if (record_property_) record_property_("roadie_artifact:" + file, path);
      const std::string line = "[[ATTACHMENT|" + path + "]]";
      if (print_attachment_) {
        print_attachment_(line);
      } else {
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
      }
    }
  }

  fs::path root_;
  std::function<void(const std::string&, const std::string&)> record_property_;
  std::function<void(const std::string&)> print_attachment_;
  std::shared_ptr<ArtifactPaths> paths_;
  Subscription finish_;
};

}  // namespace

std::unique_ptr<Plugin> make_junit(
    std::string ident, fs::path root,
    std::function<void(const std::string&, const std::string&)> record_property,
    std::function<void(const std::string&)> print_attachment) {
  return std::make_unique<Junit>(std::move(ident), std::move(root), std::move(record_property),
                                 std::move(print_attachment));
}

}  // namespace roadie::detail
