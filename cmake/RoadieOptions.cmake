# One switch for warnings and sanitizers, applied through an interface target so
# that the library, its tests and its helpers are built the same way.
add_library(roadie_build_options INTERFACE)
target_compile_options(roadie_build_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                                     -Wno-sign-conversion -Wno-missing-field-initializers)
if(ROADIE_WARNINGS_AS_ERRORS)
  target_compile_options(roadie_build_options INTERFACE -Werror)
endif()

if(ROADIE_SANITIZE)
  list(JOIN ROADIE_SANITIZE "," _roadie_sanitizers)
  # Sanitizers apply to everything built here, test children included.
  add_compile_options(-fsanitize=${_roadie_sanitizers} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${_roadie_sanitizers})
  if("undefined" IN_LIST ROADIE_SANITIZE)
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()
