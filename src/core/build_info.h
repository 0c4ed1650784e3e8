// What the binary was built from, for --version and benchmark records.
#pragma once

#include <string_view>

namespace dizuo {

// The git commit the binary was built from (its short hash), followed by "-dirty" when tracked
// files had uncommitted changes at build time; "unknown" when it was not built from a checkout.
// Generated on every build (cmake/BuildInfo.cmake), so it follows the last build, not the last
// configure.
std::string_view BuildCommit();

// The project version (CMake's project(VERSION)).
std::string_view BuildVersion();

}  // namespace dizuo
