// Paths to the shared reference data (../shared beside the repository) for tests.
#pragma once

#include <filesystem>
#include <string>

namespace dizuo::testing {

inline std::filesystem::path SourceDir() { return DIZUO_SOURCE_DIR; }
// ../shared, or $DIZUO_SHARED when set.
inline std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("DIZUO_SHARED")) return env;
  return SourceDir().parent_path() / "shared";
}

}  // namespace dizuo::testing
