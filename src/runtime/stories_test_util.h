// Test helpers: stories260K through the Engine with greedy decoding, against llama.cpp's goldens
// (/work/shared/golden/stories260K-greedy.jsonl). Used by the scheduler and skeleton tests.
#pragma once

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "test_paths.h"

namespace dizuo::testing {

inline std::unique_ptr<Engine> LoadStoriesOn(const std::string& backend, bool profile = false,
                                             DType kv_type = DType::F16) {
  EngineOptions o;
  o.model_path = (SharedDir() / "models/stories260K.gguf").string();
  o.backend = backend;
  o.threads = 2;
  o.n_ctx = 256;
  o.kv_type = kv_type;
  o.profile = profile;
  return Engine::Load(o);
}

struct StoriesGolden {
  std::string prompt;
  int n_predict = 0;
  std::string continuation;
};

inline std::vector<StoriesGolden> ReadStoriesGoldens() {
  std::ifstream in(SharedDir() / "golden/stories260K-greedy.jsonl");
  std::vector<StoriesGolden> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    cases.push_back({j["prompt"], j["n_predict"], j["continuation"]});
  }
  return cases;
}

// The greedy continuation of `prompt` (after BOS), `n` tokens, as text; prompt in one batch.
inline std::string GreedyText(Engine& engine, const std::string& prompt, int n) {
  engine.RemoveSequence(0);
  const Tokenizer& tok = engine.tokenizer();
  const std::vector<TokenId> ids = tok.Encode(prompt, true, false);
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.push_back({ids[i], static_cast<int32_t>(i), 0, i + 1 == ids.size()});
  }
  std::string text;
  int32_t pos = static_cast<int32_t>(ids.size());
  for (int i = 0; i < n; ++i) {
    std::span<const float> logits = engine.Decode(batch);
    const auto next =
        static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    text += tok.TokenToPiece(next, false);
    batch = {{next, pos++, 0, true}};
  }
  return text;
}

}  // namespace dizuo::testing
