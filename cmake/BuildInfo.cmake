# Writes OUT, a C++ file defining dizuo::BuildCommit() and dizuo::BuildVersion(), from the git
# checkout at SRC: the commit's short hash, with "-dirty" when tracked files differ from it, or
# "unknown" outside a checkout. Run in script mode (cmake -P) on every build; OUT is rewritten only
# when its content changes, so an unchanged commit recompiles nothing.
find_package(Git QUIET)
set(commit "unknown")
if(GIT_EXECUTABLE)
  # Only SRC's own checkout counts: a source tarball unpacked inside another repository must not
  # take that repository's commit.
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} rev-parse --show-toplevel
                  OUTPUT_VARIABLE top RESULT_VARIABLE top_rc ERROR_QUIET
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE head RESULT_VARIABLE rc ERROR_QUIET
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  file(REAL_PATH "${SRC}" src_real)
  if(top_rc EQUAL 0 AND NOT top STREQUAL "")
    file(REAL_PATH "${top}" top)
  endif()
  if(rc EQUAL 0 AND NOT head STREQUAL "" AND top STREQUAL src_real)
    set(commit "${head}")
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 0 AND NOT changes STREQUAL "")
      string(APPEND commit "-dirty")
    endif()
  endif()
endif()
set(content "// Generated at build time by cmake/BuildInfo.cmake; do not edit.
#include \"core/build_info.h\"

namespace dizuo {
std::string_view BuildCommit() { return \"${commit}\"; }
std::string_view BuildVersion() { return \"${VERSION}\"; }
}  // namespace dizuo
")
file(WRITE "${OUT}.tmp" "${content}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
