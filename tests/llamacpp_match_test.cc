// dizuo against llama.cpp's own outputs (tests/golden/models, made by scripts/gen-model-goldens.py
// through llama-cpp-python):
//   * synthetic tiny llama / qwen2 / gemma3 models in Q8_0, Q4_0, Q4_K, regenerated here with
//     make-model's library (sha256 must equal the golden's): logits for every position of a
//     128-token sequence, and tokenization of a few strings;
//   * Gemma 3 270M Q4_K_M: greedy continuations and perplexity on wiki.test.raw.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "core/gelu.h"
#include "core/quant.h"
#include "gguf/gguf.h"
#include "model/synthetic.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace dizuo {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path GoldenDir() { return testing::SourceDir() / "tests" / "golden" / "models"; }

json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return json::parse(in);
}

std::vector<float> ReadFloats(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// A scratch directory removed at the end of the test.
struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("dizuo-llamacpp-match-{}", ::getpid());
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

std::unique_ptr<Engine> LoadEngine(const std::string& path, const std::string& backend, int n_ctx) {
  EngineOptions o;
  o.model_path = path;
  o.backend = backend;
  o.threads = 2;
  o.n_ctx = n_ctx;
  o.kv_type = DType::F16;  // as the goldens (llama.cpp's default)
  // The file's layout: weights read from the copies in the AVX2 table's layouts sum in another
  // float order, and whether a weight was read from its copy depended on how far the background
  // copying had got, which moved Gemma 3's near-ties (three-way ones included) from run to run.
  // The layouts are held to exact sums in kernels_test and to the file layout in repack_test.
  o.repack_weights = false;
  return Engine::Load(o);
}

// ---- Synthetic models ---------------------------------------------------------------------------

// Bounds. Logits have a standard deviation of ~4 and the models are peaked like trained ones
// (mean top-1 probability 0.69-0.77; docs/SYNTHETIC.md). With the op semantics of core/graph.h
// (f16 q and softmax weights for f16 caches, ggml's gelu table) most positions agree with llama.cpp
// to ~1e-6. Now and then a value computed in another order (f32 dot products, ggml's SIMD exp)
// lands on the other side of an f16 or Q8 rounding boundary; 8-bit activations turn that one flip
// into a jump of 0.1-0.4 in the logits of that position and, through the KV cache, of later ones.
// llama.cpp does the same to itself (golden "llama_cpp_noise", same files and tokens): flash
// attention on vs off agrees on top-1 at 884/896 positions with max |diff| 0.43; an F32 KV cache
// 885/896, 0.46; one token per batch 891/896, 0.38. Measured for dizuo (2 cores): cpu 890/896, max
// 0.35; reference 891/896, max 0.42. So the bound is 0.5, just above llama.cpp's own spread; a
// missing rounding (the old gelu: 0.31 at position 0 on gemma3) shows up at every position.
constexpr double kMaxAbsLogitDiff = 0.5;
constexpr double kMinTop1Agreement = 0.99;

class SyntheticMatchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SyntheticMatchTest, LogitsMatchLlamaCpp) {
  const std::string backend = GetParam();
  const json golden = ReadJson(GoldenDir() / "synthetic.json");
  TempDir tmp;
  int64_t agree_all = 0, positions_all = 0;
  for (const json& m : golden["models"]) {
    SCOPED_TRACE(m["name"].get<std::string>());
    SyntheticOptions o;
    o.arch = m["arch"];
    o.preset = m["preset"];
    o.type = m["type"];
    o.seed = m["seed"];
    o.n_vocab = m["n_vocab"];
    const std::string path = (tmp.path / (m["name"].get<std::string>() + ".gguf")).string();
    WriteSyntheticModel(o, path);
    ASSERT_EQ(FileSha256Hex(path), m["sha256"].get<std::string>())
        << "make-model's output changed; the llama.cpp goldens no longer describe it. If the "
           "change is intended, regenerate them with scripts/gen-model-goldens.py";

    const std::vector<int32_t> tokens = m["tokens"];
    const int n_vocab = m["n_vocab"];
    const std::vector<float> expected =
        ReadFloats(GoldenDir() / m["logits_file"].get<std::string>());
    ASSERT_EQ(expected.size(), tokens.size() * n_vocab);

    auto engine = LoadEngine(path, backend, static_cast<int>(tokens.size()));
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < tokens.size(); ++i) {
      batch.push_back({tokens[i], static_cast<int32_t>(i), 0, true});
    }
    const std::span<const float> logits = engine->Decode(batch);
    ASSERT_EQ(logits.size(), expected.size());

    double max_abs = 0, sum_sq = 0, max_abs_first = 0;
    int agree = 0;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const float* a = logits.data() + t * n_vocab;
      const float* b = expected.data() + t * n_vocab;
      for (int v = 0; v < n_vocab; ++v) {
        max_abs = std::max(max_abs, std::fabs(double{a[v]} - b[v]));
        if (t == 0) max_abs_first = max_abs;
        sum_sq += double{b[v]} * b[v];
      }
      agree += std::max_element(a, a + n_vocab) - a == std::max_element(b, b + n_vocab) - b;
    }
    const double rms = std::sqrt(sum_sq / expected.size());
    // llama.cpp against itself with flash attention on (golden metadata), for scale.
    const json& self = m["llama_cpp_noise"]["flash_attn"];
    std::printf(
        "[%s] %-18s top-1 agreement %d/%zu, max |diff| %.2e (position 0: %.2e; logit rms %.2f); "
        "llama.cpp flash-attn vs not: %d/%d, %.2e\n",
        backend.c_str(), m["name"].get<std::string>().c_str(), agree, tokens.size(), max_abs,
        max_abs_first, rms, self["top1_agree"].get<int>(), self["positions"].get<int>(),
        self["max_abs"].get<double>());
    EXPECT_LE(max_abs, kMaxAbsLogitDiff);
    agree_all += agree;
    positions_all += static_cast<int64_t>(tokens.size());
  }
  std::printf("[%s] pooled top-1 agreement %lld/%lld\n", backend.c_str(),
              static_cast<long long>(agree_all), static_cast<long long>(positions_all));
  EXPECT_GE(static_cast<double>(agree_all) / positions_all, kMinTop1Agreement);
}

INSTANTIATE_TEST_SUITE_P(Backends, SyntheticMatchTest, ::testing::Values("cpu", "reference"));

TEST(SyntheticTokenizerTest, TokenizesAsLlamaCpp) {
  const json golden = ReadJson(GoldenDir() / "synthetic.json");
  TempDir tmp;
  for (const json& m : golden["models"]) {
    SCOPED_TRACE(m["name"].get<std::string>());
    SyntheticOptions o;
    o.arch = m["arch"];
    o.preset = m["preset"];
    o.type = m["type"];
    o.seed = m["seed"];
    o.n_vocab = m["n_vocab"];
    // The tokenizer lives in the metadata; the weights do not matter here.
    const gguf::Writer writer = BuildSyntheticModel(o);
    const std::vector<uint8_t> bytes = writer.Serialize();
    const gguf::File file = gguf::File::Parse(bytes);
    const auto tokenizer = Tokenizer::FromGguf(file.metadata());
    for (const json& t : m["tokenizations"]) {
      const std::string text = t["text"];
      const std::vector<TokenId> expected = t["ids"];
      EXPECT_EQ(tokenizer->Encode(text, t["add_special"], t["parse_special"]), expected)
          << "text '" << text << "' parse_special " << t["parse_special"];
    }
  }
}

// core/gelu.h against llama.cpp's own table (scripts/extract-ggml-gelu-table.py), on every input
// the table is used for (|x| < 10).
TEST(GeluTableTest, MatchesLlamaCppTable) {
  const std::vector<float> raw = ReadFloats(GoldenDir() / "ggml-gelu-f16-table.u16");
  ASSERT_EQ(raw.size() * sizeof(float), 65536 * sizeof(uint16_t));
  std::vector<uint16_t> table(65536);
  std::memcpy(table.data(), raw.data(), table.size() * sizeof(uint16_t));
  int used = 0, mismatches = 0;
  for (uint32_t h = 0; h < table.size(); ++h) {
    const float x = F16ToF32(static_cast<uint16_t>(h));
    if (!(std::fabs(x) < 10.0f)) continue;
    ++used;
    const uint16_t ours = GeluTanhF16(static_cast<uint16_t>(h));
    mismatches += ours != table[h];
    EXPECT_EQ(ours, table[h]) << "x = " << x;
    if (mismatches > 10) break;
  }
  EXPECT_EQ(used, 37376);
}

// ---- Gemma 3 270M -------------------------------------------------------------------------------

class Gemma3MatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    golden_ = ReadJson(GoldenDir() / "gemma3-270m.json");
    path_ = testing::FindGemma3();
    ASSERT_FALSE(path_.empty()) << "Gemma 3 270M not found: run scripts/get-default-model.sh or "
                                   "set DIZUO_GEMMA3 to the .gguf";
    ASSERT_EQ(FileSha256Hex(path_), golden_["sha256"].get<std::string>())
        << path_ << " is not the file the goldens were made from";
  }
  void CheckPerplexity(int n_windows);

  json golden_;
  std::string path_;
};

// Greedy decoding amplifies any difference at a near-tie: once the top two logits are closer than
// the noise of the arithmetic, which token wins depends on summation order, and the continuations
// part for good. llama.cpp disagrees with itself there: the golden records, at every step, its
// top-2 logits evaluated incrementally (as generated) and with the same tokens in one batch, and
// its own top-2 gap moves by up to `gap_noise` (0.69 over 384 steps; median 0.10;
// docs/SYNTHETIC.md) between the two. So a prompt passes when dizuo reproduces kMinIdenticalTokens
// tokens, or when the first differing token is a swap of llama.cpp's top two at a genuine near-tie:
// llama.cpp's gap and dizuo's gap between the same two tokens both below gap_noise. kMinFullMatches
// prompts of the 8 must match fully (measured: 4 with the avx512 kernels, 3 with avx2, 2 with the
// generic ones). The largest |dizuo's gap − llama.cpp's| over identical steps is printed, not
// bounded: it reaches 0.9-1.1 on one prompt, where llama.cpp's own logits move by up to 2.5
// between batch and incremental evaluation (max |Δ| per step, recorded in the golden).
constexpr size_t kMinIdenticalTokens = 32;
constexpr int kMinFullMatches = 3;

double Gap(const json& pair) { return pair[0].get<double>() - pair[1].get<double>(); }

TEST_F(Gemma3MatchTest, GreedyMatchesLlamaCpp) {
  double gap_noise = 0;  // llama.cpp's own: batch vs incremental
  for (const json& c : golden_["greedy"]["cases"]) {
    for (const json& step : c["steps"]) {
      gap_noise =
          std::max(gap_noise, std::fabs(Gap(step["top2_logits"]) - Gap(step["batch_top2_logits"])));
    }
  }
  std::printf("llama.cpp's own top-2 gap noise (batch vs incremental): %.4f\n", gap_noise);
  auto engine = LoadEngine(path_, "cpu", 256);
  const Tokenizer& tok = engine->tokenizer();
  int full_matches = 0;
  for (const json& c : golden_["greedy"]["cases"]) {
    const std::string prompt = c["prompt"];
    SCOPED_TRACE(prompt);
    const std::vector<TokenId> prompt_ids = c["prompt_ids"];
    EXPECT_EQ(tok.Encode(prompt, true, false), prompt_ids);
    const std::vector<TokenId> expected = c["ids"];
    const json& steps = c["steps"];
    ASSERT_EQ(steps.size(), expected.size());

    engine->RemoveSequence(0);
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < prompt_ids.size(); ++i) {
      batch.push_back({prompt_ids[i], static_cast<int32_t>(i), 0, i + 1 == prompt_ids.size()});
    }
    std::vector<TokenId> got;
    double our_gap = 0, gap_diff = 0;  // at the last step; largest |ours − theirs| so far
    for (size_t i = 0; i < expected.size(); ++i) {
      const std::span<const float> logits = engine->Decode(batch);
      const auto next =
          static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      got.push_back(next);
      const std::vector<TokenId> top2 = steps[i]["top2_ids"];
      our_gap = double{logits[top2[0]]} - logits[top2[1]];
      if (next != expected[i]) break;  // the contexts differ from here on
      gap_diff = std::max(gap_diff, std::fabs(our_gap - Gap(steps[i]["top2_logits"])));
      batch = {{next, static_cast<int32_t>(prompt_ids.size() + i), 0, true}};
    }
    const size_t same = got.back() == expected[got.size() - 1] ? got.size() : got.size() - 1;
    if (same >= kMinIdenticalTokens) {
      ++full_matches;
      std::printf(
          "'%s': %zu of %zu greedy tokens identical to llama.cpp's (top-2 gap |diff| up "
          "to %.4f)\n",
          prompt.c_str(), same, expected.size(), gap_diff);
      continue;
    }
    const json& step = steps[same];
    const std::vector<TokenId> top2 = step["top2_ids"];
    const double their_gap = Gap(step["top2_logits"]);
    std::printf(
        "'%s': %zu of %zu greedy tokens identical (top-2 gap |diff| up to %.4f), then dizuo picks "
        "%d where llama.cpp picks %d (top-2 %d, %d): top-2 gap llama.cpp %.4f, dizuo %.4f\n",
        prompt.c_str(), same, expected.size(), gap_diff, got[same], expected[same], top2[0],
        top2[1], their_gap, our_gap);
    const std::string texts = "dizuo: '" + tok.Decode(got, false) + "'\nllama.cpp: '" +
                              c["text"].get<std::string>() + "'";
    EXPECT_EQ(got[same], top2[1]) << "dizuo's token is not llama.cpp's runner-up\n" << texts;
    EXPECT_LT(their_gap, gap_noise) << "llama.cpp's choice was clear\n" << texts;
    EXPECT_LT(std::fabs(our_gap), gap_noise) << "dizuo's choice was clear\n" << texts;
  }
  std::printf("%d of %zu prompts identical to llama.cpp for >= %zu tokens\n", full_matches,
              golden_["greedy"]["cases"].size(), kMinIdenticalTokens);
  EXPECT_GE(full_matches, kMinFullMatches);
}

void Gemma3MatchTest::CheckPerplexity(int n_windows) {
  const json& g = golden_["perplexity"];
  const int n_ctx = g["n_ctx"];
  ASSERT_LE(n_windows, g["windows"].get<int>());
  // llama.cpp's PPL over the same windows (every window scores the same number of tokens).
  const std::vector<double> window_nll = g["window_mean_nll"];
  double nll = 0;
  for (int w = 0; w < n_windows; ++w) nll += window_nll[w] / n_windows;
  const double expected = std::exp(nll);

  std::ifstream in(testing::SharedDir() / "testdata" / "text" / "wiki.test.raw", std::ios::binary);
  ASSERT_TRUE(in.good());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto engine = LoadEngine(path_, "cpu", n_ctx);
  const std::vector<TokenId> tokens = engine->tokenizer().Encode(text, true, false);
  EXPECT_EQ(static_cast<int64_t>(tokens.size()), g["n_tokens_file"].get<int64_t>());
  const PerplexityResult r = Perplexity(*engine, tokens, n_ctx, n_windows);
  std::printf(
      "Gemma 3 270M wiki.test.raw n_ctx %d, %d windows: PPL dizuo %.4f, llama.cpp %.4f "
      "(%+.3f%%)\n",
      n_ctx, n_windows, r.ppl, expected, 100 * (r.ppl / expected - 1));
  EXPECT_NEAR(r.ppl / expected, 1.0, 0.01);
}

// The first 4 windows (~15-40 s on 2 busy cores) in the default suite, against llama.cpp's NLL of
// the same windows. All 20 (the check, 55-210 s) are a disabled gtest case that CTest runs
// as `llamacpp_match_slow`, labelled `slow`: `ctest -L slow` runs it; scripts/test.sh (and
// `ctest -LE slow`) leave it out.
TEST_F(Gemma3MatchTest, PerplexityMatchesLlamaCpp) { CheckPerplexity(4); }

TEST_F(Gemma3MatchTest, DISABLED_PerplexityAllWindowsMatchesLlamaCpp) {
  CheckPerplexity(golden_["perplexity"]["windows"]);
}

}  // namespace
}  // namespace dizuo
