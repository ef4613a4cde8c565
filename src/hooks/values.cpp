// Values, their descriptions, and what a callback sees (EventContext).
#include <charconv>
#include <cstdio>
#include <string>

#include "bus_impl.hpp"
#include "roadie/hooks.hpp"

namespace roadie {

namespace detail {

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max) + 2);
  std::size_t shown = 0;
  for (char c : text) {
    if (shown == max) {
      out += "...";
      break;
    }
    ++shown;
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02x", u);
          out += hex;
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace detail

std::string_view to_string(Value::Type type) noexcept {
  switch (type) {
    case Value::Type::string: return "string";
    case Value::Type::integer: return "integer";
    case Value::Type::floating: return "float";
    case Value::Type::boolean: return "bool";
    case Value::Type::path: return "path";
    case Value::Type::strings: return "list of strings";
  }
  return "unknown";
}

void Value::out_of_range() {
  throw HookError("an integer above 9223372036854775807 (INT64_MAX) cannot be a Value");
}

std::string Value::describe() const {
  switch (type()) {
    case Type::string:
      return "string \"" + detail::printable(*get_if<std::string>(), 60) + "\"";
    case Type::integer:
      return "integer " + std::to_string(*get_if<std::int64_t>());
    case Type::floating: {
      char text[64];
      auto [end, ec] = std::to_chars(text, text + sizeof text, *get_if<double>());
      return "float " + std::string(text, ec == std::errc() ? end : text);
    }
    case Type::boolean:
      return *get_if<bool>() ? "bool true" : "bool false";
    case Type::path:
      return "path \"" + detail::printable(get_if<std::filesystem::path>()->native(), 60) + "\"";
    case Type::strings: {
      auto n = get_if<std::vector<std::string>>()->size();
      return "list of " + std::to_string(n) + (n == 1 ? " string" : " strings");
    }
  }
  return "value";
}

const Value* EventContext::find(std::string_view name) const {
  if (auto it = locals_->find(name); it != locals_->end()) return &it->second;
  if (auto it = globals_->find(name); it != globals_->end()) return &it->second;
  return nullptr;
}

void EventContext::wrong(std::string_view name, std::string_view wanted) const {
  std::string message = "event '" + detail::printable(*event_) + "': '" + detail::printable(name) + "' is ";
  const Value* value = find(name);
  if (value == nullptr) {
    message += "not set";
  } else {
    std::string what = value->describe();
    message += (what.front() == 'i' ? "an " : "a ") + what + ", not " + std::string(wanted);
  }
  throw HookError(message);
}

Values EventContext::visible() const {
  Values all = *globals_;
  for (const auto& [name, value] : *locals_) all.insert_or_assign(name, value);
  return all;
}

void EventContext::set_local(std::string name, Value value) {
  local_updates_->insert_or_assign(std::move(name), std::move(value));
}

void EventContext::set_global(std::string name, Value value) {
  global_updates_->insert_or_assign(std::move(name), std::move(value));
}

}  // namespace roadie
