#include "pattern.hpp"

#include <string>

#include "roadie/error.hpp"

namespace roadie::detail {

std::shared_ptr<const re2::RE2> compile_pattern(std::string_view pattern, std::string_view what) {
  re2::RE2::Options options;
  // The error goes into the exception, not onto the test binary's stderr.
  options.set_log_errors(false);
  auto compiled =
      std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!compiled->ok()) {
    throw Error(std::string(what) + ": invalid pattern /" + std::string(pattern) +
                "/: " + compiled->error());
  }
  return compiled;
}

}  // namespace roadie::detail
