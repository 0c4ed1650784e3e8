// Helpers shared by the tokenizer tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace dizuo::testing {

inline std::filesystem::path TokenizerData(const std::string& name) {
  return SharedDir() / "testdata" / name;
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Loads a vocab file's metadata once per test binary (parsing a 50k-token vocab takes a while).
inline const gguf::Metadata& VocabMetadata(const std::string& relative_path) {
  static std::vector<std::pair<std::string, std::unique_ptr<gguf::Metadata>>> cache;
  for (const auto& [path, md] : cache) {
    if (path == relative_path) return *md;
  }
  const gguf::File file = gguf::File::Open(TokenizerData(relative_path).string());
  cache.emplace_back(relative_path, std::make_unique<gguf::Metadata>(file.metadata()));
  return *cache.back().second;
}

inline const Tokenizer& VocabTokenizer(const std::string& relative_path) {
  static std::vector<std::pair<std::string, std::unique_ptr<Tokenizer>>> cache;
  for (const auto& [path, tok] : cache) {
    if (path == relative_path) return *tok;
  }
  cache.emplace_back(relative_path, Tokenizer::FromGguf(VocabMetadata(relative_path)));
  return *cache.back().second;
}

}  // namespace dizuo::testing
