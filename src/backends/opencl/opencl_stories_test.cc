// stories260K end to end on the OpenCL backend: llama.cpp's greedy goldens reproduced exactly
// (f16 and f32 KV caches), and logits of a multi-sequence batch next to the reference backend's.
// As in opencl_backend_test, a missing OpenCL device fails unless DIZUO_SKIP_OPENCL=1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "runtime/engine.h"
#include "test_paths.h"

namespace dizuo {
namespace {

std::unique_ptr<Engine> LoadStories(const std::string& backend, DType kv_type, int n_seq = 1) {
  EngineOptions o;
  o.model_path = (testing::SharedDir() / "models/stories260K.gguf").string();
  o.backend = backend;
  o.threads = 2;
  o.n_ctx = 512;
  o.n_seq_max = n_seq;
  o.kv_type = kv_type;
  return Engine::Load(o);
}

TokenId Argmax(std::span<const float> logits) {
  return static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// The OpenCL engine, or a skip / failure saying why there is none.
class OpenclStoriesTest : public ::testing::TestWithParam<DType> {
 protected:
  std::unique_ptr<Engine> LoadOpencl(int n_seq = 1) {
    try {
      return LoadStories("opencl", GetParam(), n_seq);
    } catch (const Error& e) {
      const char* skip = std::getenv("DIZUO_SKIP_OPENCL");
      if (skip == nullptr || std::string(skip) != "1") throw;
      return nullptr;
    }
  }
};

TEST_P(OpenclStoriesTest, ReproducesLlamaCppGreedyContinuations) {
  auto engine = LoadOpencl();
  if (engine == nullptr) GTEST_SKIP() << "DIZUO_SKIP_OPENCL=1 and no OpenCL device";
  std::ifstream in(testing::SharedDir() / "golden/stories260K-greedy.jsonl");
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto golden = nlohmann::json::parse(line);
    const std::string prompt_text = golden["prompt"];
    std::vector<TokenId> prompt = engine->tokenizer().Encode(prompt_text, true, false);
    engine->RemoveSequence(0);
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < prompt.size(); ++i) {
      batch.push_back({prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size()});
    }
    std::string text;
    auto pos = static_cast<int32_t>(prompt.size());
    for (int i = 0; i < golden["n_predict"].get<int>(); ++i) {
      const TokenId next = Argmax(engine->Decode(batch));
      text += engine->tokenizer().TokenToPiece(next, false);
      batch = {{next, pos++, 0, true}};
    }
    EXPECT_EQ(text, golden["continuation"].get<std::string>()) << "prompt: " << prompt_text;
    ++cases;
  }
  EXPECT_GT(cases, 0);
}

// Three sequences prompted in one interleaved batch, then decoded together: every logit is close
// to the reference backend's. With f32 caches only summation order differs (measured 8e-6; bound
// 1e-4). With f16 caches a K/V value computed a few f32 ulps away from the reference's can round
// to the neighbouring f16 value, and such flips add up over 12 steps and 5 layers: measured 5.6e-3
// here and 3.0e-3 for the cpu backend against the reference on the same batches; bound 2e-2 (a
// real kernel bug moves logits by whole units, and the goldens above must match exactly).
TEST_P(OpenclStoriesTest, BatchedLogitsMatchReference) {
  auto engine = LoadOpencl(3);
  if (engine == nullptr) GTEST_SKIP() << "DIZUO_SKIP_OPENCL=1 and no OpenCL device";
  auto reference = LoadStories("reference", GetParam(), 3);
  const Tokenizer& tok = engine->tokenizer();
  const std::vector<std::vector<TokenId>> prompts = {tok.Encode("Once upon a time", true, false),
                                                     tok.Encode("The little dog ran", true, false),
                                                     tok.Encode("Tom", true, false)};
  std::vector<BatchToken> batch;
  std::vector<int32_t> next_pos(3, 0);
  for (size_t i = 0; i < 8; ++i) {
    for (int32_t s = 0; s < 3; ++s) {
      const auto& p = prompts[static_cast<size_t>(s)];
      if (i < p.size()) batch.push_back({p[i], next_pos[s]++, s, i + 1 == p.size()});
    }
  }
  float max_diff = 0;
  for (int step = 0; step < 12; ++step) {
    const std::span<const float> got = engine->Decode(batch);
    const std::span<const float> want = reference->Decode(batch);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "logit " << i << " at step " << step;
      max_diff = std::max(max_diff, std::abs(got[i] - want[i]));
    }
    // Next batch: each sequence's greedy token (by the reference), in sequence order.
    std::vector<BatchToken> next;
    size_t row = 0;
    const auto n_vocab = static_cast<size_t>(engine->n_vocab());
    for (const BatchToken& t : batch) {
      if (!t.logits) continue;
      const TokenId id = Argmax(want.subspan(n_vocab * row++, n_vocab));
      next.push_back({id, next_pos[t.seq]++, t.seq, true});
    }
    batch = next;
  }
  std::printf("  %s cache: max |logit difference| vs reference %g\n",
              std::string(Name(GetParam())).c_str(), max_diff);
  EXPECT_LT(max_diff, GetParam() == DType::F32 ? 1e-4f : 2e-2f);
}

INSTANTIATE_TEST_SUITE_P(KvCache, OpenclStoriesTest, ::testing::Values(DType::F16, DType::F32),
                         [](const auto& info) { return std::string(Name(info.param)); });

}  // namespace
}  // namespace dizuo
