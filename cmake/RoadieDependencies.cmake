# Every dependency comes from Debian 12's packages (see scripts/install-deps).
find_package(Threads REQUIRED)

# Boost 1.81: its Asio prefixes the names that collide with standalone Asio.
# Only Boost.Process (v1) is used, and only to spawn (see ARCHITECTURE.md).
find_package(Boost 1.81...<1.82 REQUIRED CONFIG COMPONENTS filesystem)

# Standalone Asio ships neither a CMake nor a pkg-config file.
find_path(ROADIE_ASIO_INCLUDE_DIR asio.hpp REQUIRED)
if(NOT TARGET roadie_asio)
  add_library(roadie_asio INTERFACE)
  target_include_directories(roadie_asio SYSTEM INTERFACE ${ROADIE_ASIO_INCLUDE_DIR})
  target_compile_definitions(roadie_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
  target_link_libraries(roadie_asio INTERFACE Threads::Threads)
  if("thread" IN_LIST ROADIE_SANITIZE)
    # TSan does not model the fences in Asio's fenced blocks (g++ refuses them
    # under -Werror=tsan); handlers are ordered by Asio's mutex-guarded queues.
    target_compile_definitions(roadie_asio INTERFACE ASIO_DISABLE_FENCED_BLOCK)
  endif()
endif()

find_package(spdlog REQUIRED CONFIG)

# cpp-httplib is a shared library built with OpenSSL, zlib and brotli; only its
# pkg-config file carries the CPPHTTPLIB_* flags that keep the ABI in step.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

# RE2 matches banners, wait_for patterns and HTTP status patterns in linear
# time without recursion (std::regex overflowed the stack on long lines).
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

# JSON for traces (Chrome/Perfetto) and machine-readable status.
find_package(nlohmann_json 3 REQUIRED CONFIG)

# YAML: the hook bus's `plugins:` section and the stack file.
find_package(yaml-cpp REQUIRED CONFIG)

# Command line of the `roadie` executable (subcommands, --help on every verb).
find_package(CLI11 2 REQUIRED CONFIG)
