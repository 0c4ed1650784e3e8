// Weights repacked at load (Backend::PrepareWeight) through the whole engine: synthetic q4_0, q8_0,
// q4_K, q6_K and f16 llamas, and a q8_0 Gemma 3 whose tied embedding table GET_ROWS reads from the
// copy too, run with and without repacking (EngineOptions::repack_weights). Prompt logits must be
// bit-identical where the layout has a prompt GEMM of its own (it runs the file layout's
// operations), other logits equal up to float summation order (bounds below); the copies are
// counted, and only the selected backend makes them (one test per model: ctest runs each test in a
// process of its own, and the 125m model takes seconds to write).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cpu/kernels.h"
#include "model/synthetic.h"
#include "runtime/engine.h"

namespace dizuo {
namespace {

struct RepackCase {
  const char* name;
  const char* arch;
  const char* type;
  const char* preset;
  DType weight_type;
  int layers;  // the preset's shape: layers, n_embd and n_ff
  int64_t embd, ff;
  double generation;  // largest NMSE of generated logits against the file layout's (0: equal)
  double prompt;      // the same for the prompt's logits (0: bit-identical, the layout's GEMM)
};

// tiny q4_0, q8_0, q6_K and f16, 125m q4_K (a 512-token vocabulary to keep the file small): each
// layer has 7 MATMUL weights, 6 with rows of n_embd and ffn_down with rows of n_ff, and there is an
// untied output layer (rows of n_embd). A layout takes the weights whose row length it accepts
// (row_bytes(k) > 0): AVX-512's q4_Kx16 takes rows of an even number of super-blocks, so only the
// 12 ffn_down weights of 125m (3072 long), while the AVX2 table's file-layout copies take all 85.
// Layouts without a prompt GEMM of their own (q6_K) run the prompt on their dot tiles, in
// another float summation order.
// A summation-order difference far below 1e-9 can still flip the rounding of an activation
// quantized to 8 bits in a later layer, which moves the logits by 1e-5 - 1e-3 NMSE: the CPU
// backend's logits differ from the reference backend's by that much on these models with the
// file's layout too (tiny q6_K: 2.5e-5 on the prompt, 2e-4 - 3e-4 on generated tokens; 125m q4_K:
// 3e-4 - 7e-4). Where that happens the bound is 2e-3; the layouts' products themselves are held
// to 1e-11 against exact sums in kernels_test (RepackedWeightsMatchReferenceOnEveryPath).
// The bounds below are the AVX-512 layouts'. The AVX2 table's layouts (q4_0x8, q4_Kx8, q6_Kx8) sum
// a block per lane where the file layout's AVX2 tile sums element groups per lane, on the prompt
// and in generation, so they take 2e-3 for both (measured 1.3e-4 - 2.0e-4 on tiny q4_0).
double Bound(const cpu::RepackFns& fns, double avx512_bound) {
  const std::string_view name = fns.name;
  return name.ends_with("x8") ? 2e-3 : avx512_bound;
}

class RepackTest : public ::testing::TestWithParam<RepackCase> {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("dizuo-repack-test-" + std::to_string(::getpid()) + "-" + GetParam().name + ".gguf"))
                .string();
    SyntheticOptions o;
    o.arch = GetParam().arch;
    o.preset = GetParam().preset;
    o.type = GetParam().type;
    o.seed = 5;
    o.n_vocab = 512;
    WriteSyntheticModel(o, path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<Engine> Load(bool repack, const std::string& backend = "cpu") {
    EngineOptions o;
    o.model_path = path_;
    o.backend = backend;
    o.threads = 2;
    o.n_ctx = 64;
    o.repack_weights = repack;
    return Engine::Load(o);
  }

  // Logits of a 12-token prompt (all of them), then of 4 generated tokens one at a time.
  static std::vector<std::vector<float>> Run(Engine& engine) {
    std::vector<BatchToken> prompt;
    for (int i = 0; i < 12; ++i) prompt.push_back({(7 * i + 3) % 200, i, 0, true});
    std::vector<std::vector<float>> out;
    const std::span<const float> p = engine.Decode(prompt);
    out.emplace_back(p.begin(), p.end());
    for (int i = 0; i < 4; ++i) {
      const BatchToken t{(11 * i + 5) % 200, 12 + i, 0, true};
      const std::span<const float> g = engine.Decode({&t, 1});
      out.emplace_back(g.begin(), g.end());
    }
    return out;
  }

  std::string path_;
};

TEST_P(RepackTest, RepackedModelMatchesTheFileLayout) {
  const RepackCase& c = GetParam();
  const cpu::RepackFns& fns = cpu::SelectKernels().repacked[static_cast<size_t>(c.weight_type)];
  const bool has_layout = fns.repack != nullptr;
  const auto takes = [&](int64_t k) { return has_layout && fns.row_bytes(k) > 0 ? 1 : 0; };
  // Gemma 3's output layer is its embedding table (tied), which GET_ROWS reads too: copied where
  // the layout can give GET_ROWS its rows back (unpack_row).
  const bool tied = std::string_view(c.arch) == "gemma3";
  const int output = tied && fns.unpack_row == nullptr ? 0 : takes(c.embd);
  const int expected = c.layers * (6 * takes(c.embd) + takes(c.ff)) + output;
  // The reference backend keeps weights as they are; the CPU fallback it would use makes no
  // copies either.
  EXPECT_EQ(Load(true, "reference")->summary().repacked_tensors, 0);
  auto repacked = Load(true);
  repacked->WaitForRepackedWeights();  // the copies are made in the background
  auto plain = Load(false);
  EXPECT_EQ(repacked->summary().repacked_tensors, expected) << fns.name;
  EXPECT_EQ(repacked->summary().repacked_bytes > 0, expected > 0);
  EXPECT_EQ(plain->summary().repacked_tensors, 0);
  if (!has_layout) GTEST_SKIP() << "the " << cpu::SelectKernels().isa << " kernels repack nothing";

  const auto a = Run(*repacked), b = Run(*plain);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string what = i == 0 ? "prompt" : "generated token " + std::to_string(i);
    const double bound = Bound(fns, i == 0 ? c.prompt : c.generation);
    ASSERT_EQ(a[i].size(), b[i].size());
    if (bound == 0) {
      EXPECT_EQ(a[i], b[i]) << what << ": logits differ";
      continue;
    }
    double err = 0, ref = 0;
    for (size_t j = 0; j < a[i].size(); ++j) {
      err += (a[i][j] - b[i][j]) * double(a[i][j] - b[i][j]);
      ref += double(b[i][j]) * b[i][j];
    }
    EXPECT_LT(err / ref, bound) << what;
    EXPECT_GT(ref, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, RepackTest,
    ::testing::Values(
        RepackCase{"q4_0", "llama", "q4_0", "tiny", DType::Q4_0, 4, 256, 768, 1e-9, 0},
        RepackCase{"q8_0", "llama", "q8_0", "tiny", DType::Q8_0, 4, 256, 768, 1e-9, 0},
        RepackCase{"q4_k", "llama", "q4_k", "125m", DType::Q4_K, 12, 768, 3072, 2e-3, 0},
        RepackCase{"q6_k", "llama", "q6_k", "tiny", DType::Q6_K, 4, 256, 768, 2e-3, 2e-3},
        RepackCase{"f16", "llama", "f16", "tiny", DType::F16, 4, 256, 768, 0, 0},
        RepackCase{"gemma3_q8_0", "gemma3", "q8_0", "tiny", DType::Q8_0, 6, 256, 768, 1e-9, 0}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dizuo
