// Private: the regular expressions of banners, Output::wait_for and HTTP
// status checks. RE2 matches in time linear in the text and never recurses, so
// no pattern and no line (up to max_line_bytes) can exhaust a thread's stack or
// stall the event loop; std::regex did both.
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string_view>

namespace roadie::detail {

/// Compiles `pattern` (RE2 syntax, UTF-8). Throws roadie::Error naming `what`
/// and the pattern when it is not a valid RE2 pattern (a syntax error, a
/// back-reference or look-around, or a pattern too large to compile).
std::shared_ptr<const re2::RE2> compile_pattern(std::string_view pattern, std::string_view what);

/// True when `pattern` matches somewhere in `text`.
inline bool search(const re2::RE2& pattern, std::string_view text) {
  return re2::RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), pattern);
}

/// True when `pattern` matches the whole of `text`.
inline bool full_match(const re2::RE2& pattern, std::string_view text) {
  return re2::RE2::FullMatch(re2::StringPiece(text.data(), text.size()), pattern);
}

}  // namespace roadie::detail
