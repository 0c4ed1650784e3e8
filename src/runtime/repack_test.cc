// Weights repacked at load (Backend::PrepareWeight) through the whole engine: a synthetic q4_0
// llama run with and without repacking (EngineOptions::repack_weights). Prompt logits must be
// bit-identical (the repacked prompt GEMM runs the file layout's operations), generation logits
// equal up to float summation order; the copies are counted, and only the selected backend makes
// them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/cpu/kernels.h"
#include "model/synthetic.h"
#include "runtime/engine.h"

namespace dizuo {
namespace {

class RepackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = (std::filesystem::temp_directory_path() /
             ("dizuo-repack-test-" + std::to_string(::getpid()) + ".gguf"))
                .string();
    SyntheticOptions o;
    o.preset = "tiny";
    o.type = "q4_0";
    o.seed = 5;
    WriteSyntheticModel(o, path_);
  }
  static void TearDownTestSuite() { std::filesystem::remove(path_); }

  static std::unique_ptr<Engine> Load(bool repack, const std::string& backend = "cpu") {
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

  static std::string path_;
};

std::string RepackTest::path_;

TEST_F(RepackTest, RepackedModelMatchesTheFileLayout) {
  const bool has_layout =
      cpu::SelectKernels().repacked[static_cast<size_t>(DType::Q4_0)].repack != nullptr;
  auto repacked = Load(true);
  auto plain = Load(false);
  // The tiny preset has 4 layers × 7 MATMUL weights and an untied output layer.
  EXPECT_EQ(repacked->summary().repacked_tensors, has_layout ? 29 : 0);
  EXPECT_EQ(repacked->summary().repacked_bytes > 0, has_layout);
  EXPECT_EQ(plain->summary().repacked_tensors, 0);
  if (!has_layout) GTEST_SKIP() << "the " << cpu::SelectKernels().isa << " kernels repack nothing";

  const auto a = Run(*repacked), b = Run(*plain);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a[0], b[0]) << "prompt logits differ";
  for (size_t i = 1; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    double err = 0, ref = 0;
    for (size_t j = 0; j < a[i].size(); ++j) {
      err += (a[i][j] - b[i][j]) * double(a[i][j] - b[i][j]);
      ref += double(b[i][j]) * b[i][j];
    }
    EXPECT_LT(err / ref, 1e-9) << "generated token " << i;
    EXPECT_GT(ref, 0.0);
  }
}

TEST_F(RepackTest, OnlyTheSelectedBackendRepacks) {
  // The reference backend keeps weights as they are; the CPU fallback it would use makes no
  // copies either.
  EXPECT_EQ(Load(true, "reference")->summary().repacked_tensors, 0);
}

}  // namespace
}  // namespace dizuo
