#include "callback_list.hpp"

#include "log.hpp"

namespace roadie::detail {

void log_callback_error(std::string_view what, const std::exception_ptr& error) noexcept {
  if (!error) return;
  try {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log().error("{} threw: {}", what, e.what());
    } catch (...) {
      log().error("{} threw", what);
    }
  } catch (...) {  // logging itself failed: nothing more to do
  }
}

}  // namespace roadie::detail
