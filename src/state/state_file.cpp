#include "roadie/state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "roadie/error.hpp"

namespace roadie::state {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // After "pid (comm)": field 3 is the state; field 22 is the start time.
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  char state = 0;
  fields >> state;
  if (state == 'Z' || state == 'X') return std::nullopt;  // dead, not yet reaped
  for (int number = 4; number < 22; ++number) fields >> field;
  std::uint64_t start = 0;
  if (!(fields >> start)) return std::nullopt;
  return start;
}

Ownership ownership(pid_t pid, std::uint64_t start_time) {
  const auto start = process_start_time(pid);
  if (!start) return Ownership::gone;
  return *start == start_time ? Ownership::ours : Ownership::not_ours;
}

const char* to_string(Ownership ownership) {
  switch (ownership) {
    case Ownership::ours:
      return "running";
    case Ownership::not_ours:
      return "not ours";
    case Ownership::gone:
      return "gone";
  }
  return "?";
}

std::string file_hash(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  std::uint64_t hash = 14695981039346656037ULL;
  for (char c; in.get(c);) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

std::string random_token() {
  unsigned char bytes[16];
  std::ifstream random("/dev/urandom", std::ios::binary);
  if (!random.read(reinterpret_cast<char*>(bytes), sizeof bytes)) {
    throw Error("cannot read /dev/urandom");
  }
  std::string token;
  for (unsigned char b : bytes) {
    static const char* digits = "0123456789abcdef";
    token += digits[b >> 4];
    token += digits[b & 15];
  }
  return token;
}

fs::path StateFile::path_in(const fs::path& state_dir) {
  return state_dir / "state.json";
}

std::string StateFile::to_json() const {
  json services_json = json::array();
  for (const auto& service : services) {
    services_json.push_back({{"name", service.name},
                             {"pid", service.pid},
                             {"start_time", service.start_time},
                             {"started_at", service.started_at},
                             {"ports", service.ports},
                             {"log", service.log},
                             {"stop_timeout_ms", service.stop_timeout_ms},
                             {"stop_signal", service.stop_signal}});
  }
  json document = {{"version", 1},
                   {"stack_file", stack_file},
                   {"stack_hash", stack_hash},
                   {"supervisor", {{"pid", supervisor_pid}, {"start_time", supervisor_start_time}}},
                   {"started_at", started_at},
                   {"http", {{"host", "127.0.0.1"}, {"port", http_port}, {"token", token}}},
                   {"services", services_json}};
  return document.dump(2) + "\n";
}

std::optional<StateFile> StateFile::read(const fs::path& state_dir) {
  const fs::path file = path_in(state_dir);
  std::ifstream in(file);
  if (!in) {
    if (!fs::exists(file)) return std::nullopt;
    throw Error("cannot read " + file.string());
  }
  try {
    const json document = json::parse(in);
    StateFile state;
    state.stack_file = document.at("stack_file").get<std::string>();
    state.stack_hash = document.value("stack_hash", "");
    state.supervisor_pid = document.at("supervisor").at("pid").get<pid_t>();
    state.supervisor_start_time = document.at("supervisor").at("start_time").get<std::uint64_t>();
    state.started_at = document.value("started_at", std::int64_t{0});
    state.http_port = document.at("http").at("port").get<int>();
    state.token = document.at("http").at("token").get<std::string>();
    for (const auto& entry : document.at("services")) {
      ServiceState service;
      service.name = entry.at("name").get<std::string>();
      service.pid = entry.at("pid").get<pid_t>();
      service.start_time = entry.at("start_time").get<std::uint64_t>();
      service.started_at = entry.value("started_at", std::int64_t{0});
      service.ports = entry.value("ports", std::map<std::string, int>{});
      service.log = entry.value("log", "");
      service.stop_timeout_ms = entry.value("stop_timeout_ms", std::int64_t{10'000});
      service.stop_signal = entry.value("stop_signal", 15);
      state.services.push_back(std::move(service));
    }
    return state;
  } catch (const json::exception& e) {
    throw Error(file.string() + ": not a roadie state file (" + e.what() + ")");
  }
}

void StateFile::write(const fs::path& state_dir) const {
  const fs::path file = path_in(state_dir);
  const fs::path temporary = file.string() + ".tmp";
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw Error(temporary.string() + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // whatever the umask, and a file left by an older run
  const std::string text = to_json();
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw Error(temporary.string() + ": " + std::strerror(error));
    }
    written += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(temporary.c_str(), file.c_str()) != 0) {
    throw Error(file.string() + ": " + std::strerror(errno));
  }
}

std::string StateFile::status_json(const fs::path& state_dir) const {
  const std::int64_t now = now_seconds();
  json services_json = json::array();
  for (const auto& service : services) {
    const Ownership owned = ownership(service.pid, service.start_time);
    json entry = {{"name", service.name}, {"state", to_string(owned)}, {"pid", service.pid}};
    entry["uptime_s"] = owned == Ownership::ours ? json(now - service.started_at) : json(nullptr);
    entry["ports"] = service.ports;
    entry["log"] = service.log;
    services_json.push_back(std::move(entry));
  }
  const Ownership supervisor = ownership(supervisor_pid, supervisor_start_time);
  json document = {
      {"state_dir", state_dir.string()},
      {"stack_file", stack_file},
      {"supervisor",
       {{"pid", supervisor_pid},
        {"state", to_string(supervisor)},
        {"port", http_port},
        {"uptime_s", supervisor == Ownership::ours ? json(now - started_at) : json(nullptr)}}},
      {"services", services_json}};
  return document.dump(2) + "\n";
}

std::string StateFile::nothing_running_json(const fs::path& state_dir) {
  const json document = {
      {"state_dir", state_dir.string()}, {"supervisor", nullptr}, {"services", json::array()}};
  return document.dump(2) + "\n";
}

}  // namespace roadie::state
