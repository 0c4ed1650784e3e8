// The CUDA backend against the reference backend (the oracle), op by op, on operands shaped as
// real models use them (stories260K, Gemma 3 270M, the synthetic llama / qwen2 presets), and
// stories260K's llama.cpp greedy goldens through the Engine. NMSE = Σ(cuda − ref)² / Σ ref².
// Thresholds and why:
//   - kExactNmse 0 for GET_ROWS, ADD, MUL, SCALE, STORE_KV: the same f32 operations in the same
//     order (cuda_rows.cu is built without fused multiply-adds), f16 conversions round to nearest
//     even as the reference's.
//   - kMatMulNmse 1e-10 for MATMUL: activations are quantized on the device with the reference's
//     arithmetic (same scale formula, correctly rounded division, same rounding), block sums are
//     exact integers, so only f32 (device) vs f64 (reference) accumulation differs, ~1e-14; a
//     product that skipped the activation quantization would be off by ~1e-6. The cuBLAS path
//     (float weights, M >= 16) is held to the same bound: f16/bf16 products are exact and
//     accumulate in f32.
//   - kFloatNmse 1e-10 for RMS_NORM, ROPE, GLU, ATTENTION: f32 vs f64 sums and the device's
//     exp/tanh/sin/cos (a few ulp), ~1e-13.
// The backend is created through the registry, which loads it from libdizuo_cuda_backend.so as
// dizuo does. Without a CUDA device (as on the build machines) these tests skip with "no CUDA
// device: ..."; RegistryTest.CudaIsListedAndFailsClearlyWithoutADevice always runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/backend.h"
#include "backends/reference/reference_backend.h"
#include "backends/testing/op_harness.h"
#include "core/error.h"
#include "core/quant.h"
#include "runtime/engine.h"
#include "runtime/executor.h"
#include "test_paths.h"

namespace dizuo {
namespace {

using harness::OpSpec;

constexpr double kExactNmse = 0;
constexpr double kMatMulNmse = 1e-10;
constexpr double kFloatNmse = 1e-10;

// Whether a CUDA device is usable here, and if not, why.
struct Availability {
  bool usable = false;
  std::string reason;
};

const Availability& CudaAvailability() {
  static const Availability availability = [] {
    Availability a;
    try {
      CreateBackend("cuda", {});
      a.usable = true;
    } catch (const Error& e) {
      a.reason = e.what();
    }
    return a;
  }();
  return availability;
}

TEST(RegistryTest, CudaIsListedAndFailsClearlyWithoutADevice) {
  const std::vector<std::string> names = BackendNames();
  ASSERT_NE(std::find(names.begin(), names.end(), "cuda"), names.end());
  if (CudaAvailability().usable) {
    EXPECT_EQ(CreateBackend("cuda", {})->device().name, "cuda");
    return;
  }
  try {
    CreateBackend("cuda", {});
    FAIL() << "creating the cuda backend without a device did not fail";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("backend 'cuda' cannot be used: CUDA backend: no usable GPU "
                           "(cudaGetDeviceCount: "),
              std::string::npos)
        << message;
    // The backends that are there are named.
    EXPECT_NE(message.find("available: "), std::string::npos) << message;
    EXPECT_NE(message.find("reference"), std::string::npos) << message;
    std::printf("  %s\n", message.c_str());
  }
}

class CudaVsReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (CudaAvailability().usable) cuda_ = CreateBackend("cuda", {}).release();
  }
  static void TearDownTestSuite() {
    delete cuda_;
    cuda_ = nullptr;
  }
  // DIZUO_REQUIRE_CUDA=1 (scripts/gpu-check.sh) turns the skip into a failure.
  void SetUp() override {
    if (cuda_ != nullptr) return;
    const char* require = std::getenv("DIZUO_REQUIRE_CUDA");
    if (require != nullptr && std::string(require) == "1") {
      FAIL() << "DIZUO_REQUIRE_CUDA=1 but no CUDA device: " << CudaAvailability().reason;
    }
    GTEST_SKIP() << "no CUDA device: " << CudaAvailability().reason;
  }

  void Check(const OpSpec& spec, double max_nmse) {
    const harness::Operands operands = harness::MakeOperands(spec);
    const harness::OpRun ref = harness::RunOp(*reference_, spec, operands);
    ASSERT_TRUE(ref.supported) << spec.Describe();
    const harness::OpRun run = harness::RunOp(*cuda_, spec, operands);
    ASSERT_TRUE(run.supported) << spec.Describe() << " is not supported by cuda";
    ASSERT_EQ(run.values.size(), ref.values.size()) << spec.Describe();
    const auto n = static_cast<int64_t>(ref.values.size());
    EXPECT_EQ(harness::CountNonFinite(run.values.data(), n), 0) << spec.Describe();
    const double nmse = harness::Nmse(run.values.data(), ref.values.data(), n);
    EXPECT_LE(nmse, max_nmse) << spec.Describe();
    std::printf("  %-58s nmse %.2e  (%.3f ms)\n", spec.Describe().c_str(), nmse, run.seconds * 1e3);
  }

  static inline Backend* cuda_ = nullptr;
  std::unique_ptr<Backend> reference_ = CreateReferenceBackend({});
};

constexpr DType kAllWeightTypes[] = {
    DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
    DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

bool IsKQuant(DType t) { return Traits(t).block_size == kQK_K; }

TEST_F(CudaVsReference, DeviceInfo) {
  const DeviceInfo& info = cuda_->device();
  EXPECT_EQ(info.name, "cuda");
  EXPECT_FALSE(info.host_memory);
  EXPECT_FALSE(info.description.empty());
  EXPECT_GT(info.memory_bytes, 0u);
  EXPECT_GT(info.peak_flops_f32, 0);
  EXPECT_GT(info.peak_flops_f16, 0);
  EXPECT_GT(info.memory_bandwidth, 0);
  std::printf("  device: %s, ~%.0f GFLOP/s f32, ~%.0f GFLOP/s f16, ~%.0f GB/s\n",
              info.description.c_str(), info.peak_flops_f32 / 1e9, info.peak_flops_f16 / 1e9,
              info.memory_bandwidth / 1e9);
}

TEST_F(CudaVsReference, BuffersAreDeviceMemoryAddressedByOffset) {
  auto buffer = cuda_->Allocate(256);
  EXPECT_EQ(buffer->size(), 256u);
  EXPECT_EQ(buffer->host_data(), nullptr);
  Tensor t = MakeTensor(DType::F32, {8}, "t");
  t.buffer = buffer.get();
  t.offset = 64;
  std::vector<float> zeros(8, -1.0f);
  cuda_->Download(t, zeros.data(), 0, 32);
  EXPECT_EQ(zeros, std::vector<float>(8, 0.0f));  // buffers start zeroed
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  cuda_->Upload(t, values.data(), 0, 32);
  std::vector<float> back(4);
  cuda_->Download(t, back.data(), 16, 16);  // elements 4..7
  EXPECT_EQ(back, (std::vector<float>{5, 6, 7, 8}));

  EXPECT_THROW(cuda_->Upload(t, values.data(), 200, 32), Error);  // past the buffer's end
  Tensor host = MakeTensor(DType::F32, {8}, "host");
  host.data = zeros.data();
  EXPECT_THROW(cuda_->Upload(host, values.data(), 0, 32), Error);  // not device memory
  try {
    cuda_->Allocate(uint64_t{1} << 62);
    ADD_FAILURE() << "a 4 EiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory"), std::string::npos) << e.what();
  }
  // The backend still works after a failed allocation.
  cuda_->Download(t, back.data(), 0, 16);
  EXPECT_EQ(back, (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(CudaVsReference, SupportsRejectsWhatItDoesNotImplement) {
  Graph g;
  Tensor* x = g.NewInput(DType::F32, {64, 2}, "x");
  Tensor* q8k = g.NewInput(DType::Q8_K, {256, 4}, "w");
  Tensor* x256 = g.NewInput(DType::F32, {256, 2}, "x256");
  g.MatMul(x256, q8k);  // Q8_K is an activation type, not a weight type
  EXPECT_FALSE(cuda_->Supports(g.nodes().back()));
  EXPECT_NE(cuda_->WhyUnsupported(g.nodes().back()).find("q8_K"), std::string::npos);

  Tensor* w = g.NewInput(DType::F32, {64, 4}, "w");
  g.MatMul(x, w);
  EXPECT_TRUE(cuda_->Supports(g.nodes().back()));
  Node strided = g.nodes().back();
  Tensor column = *x;  // every other element of each row: rows are not packed
  column.ne[0] = 32;
  column.nb[0] = 8;
  strided.src[0] = &column;
  EXPECT_FALSE(cuda_->Supports(strided));

  Tensor* q = g.NewInput(DType::F32, {1024, 1, 1}, "q");  // head size 1024 > 512
  Tensor* k = g.NewInput(DType::F16, {1024, 1, 4}, "k");
  Tensor* v = g.NewInput(DType::F16, {1024, 1, 4}, "v");
  g.Attention(q, k, v, g.NewInput(DType::I32, {2, 1}, "tok"), g.NewInput(DType::I32, {2, 4}, "c"),
              {});
  EXPECT_FALSE(cuda_->Supports(g.nodes().back()));
  EXPECT_NE(cuda_->WhyUnsupported(g.nodes().back()).find("head size 1024"), std::string::npos);
}

TEST_F(CudaVsReference, MatMulStories260K) {
  Check(harness::MatMulSpec(DType::F32, 64, 64, 1), kMatMulNmse);    // wq, generation
  Check(harness::MatMulSpec(DType::F32, 64, 32, 7), kMatMulNmse);    // wk (4 kv heads of 8)
  Check(harness::MatMulSpec(DType::F32, 64, 172, 7), kMatMulNmse);   // ffn up
  Check(harness::MatMulSpec(DType::F32, 172, 64, 7), kMatMulNmse);   // ffn down: K % 32 != 0
  Check(harness::MatMulSpec(DType::F32, 64, 512, 3), kMatMulNmse);   // output
  Check(harness::MatMulSpec(DType::F32, 64, 172, 40), kMatMulNmse);  // prompt: cuBLAS
}

TEST_F(CudaVsReference, MatMulGemma3Shapes) {
  for (const OpSpec& spec : harness::Gemma3MatMulSpecs()) Check(spec, kMatMulNmse);
  // Prompt rows, M % 8 != 0 (K-quants only where K is a whole number of super-blocks).
  Check(harness::MatMulSpec(DType::Q5_0, 640, 2048, 37), kMatMulNmse);  // ffn gate / up
  Check(harness::MatMulSpec(DType::Q4_K, 2048, 640, 37), kMatMulNmse);  // ffn_down
}

// Float weights with few rows take a kernel that reads 16 bytes per lane when K is a multiple of
// 8 (f16, bf16) or 4 (f32) and rows are 16-byte aligned, and one element per lane otherwise.
TEST_F(CudaVsReference, MatMulFloatVectorAndScalarPaths) {
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    Check(harness::MatMulSpec(t, 2048, 64, 1), kMatMulNmse);  // 16-byte loads, generation
    Check(harness::MatMulSpec(t, 1024, 40, 9), kMatMulNmse);  // 16-byte loads, two row tiles
    Check(harness::MatMulSpec(t, 102, 17, 3), kMatMulNmse);   // K % 4 != 0: one element per lane
  }
}

TEST_F(CudaVsReference, MatMulEveryWeightTypeLlamaShapes) {
  for (DType t : kAllWeightTypes) {
    Check(harness::MatMulSpec(t, 768, 256, 1), kMatMulNmse);    // llama 125m, generation
    Check(harness::MatMulSpec(t, 2048, 96, 9), kMatMulNmse);    // llama 1b, prompt
    Check(harness::MatMulSpec(t, 1024, 130, 64), kMatMulNmse);  // longer prompt (cuBLAS for floats)
    if (!IsKQuant(t)) Check(harness::MatMulSpec(t, 96, 33, 4), kMatMulNmse);  // tiny, odd N
  }
}

TEST_F(CudaVsReference, GetRowsEveryTableType) {
  Check(harness::GetRowsSpec(DType::F32, 64, 512, 9), kExactNmse);     // stories260K
  Check(harness::GetRowsSpec(DType::Q8_0, 640, 4096, 5), kExactNmse);  // Gemma 3 (part of vocab)
  for (DType t : kAllWeightTypes) Check(harness::GetRowsSpec(t, 768, 300, 4), kExactNmse);
}

TEST_F(CudaVsReference, ElementwiseOps) {
  for (Op op : {Op::kAdd, Op::kMul}) {
    Check(harness::BinarySpec(op, 64, 7, false), kExactNmse);
    Check(harness::BinarySpec(op, 640, 5, true), kExactNmse);  // broadcast row
    Check(harness::BinarySpec(op, 2048, 3, false), kExactNmse);
  }
  Check(harness::ScaleSpec(640, 5, 25.3f), kExactNmse);  // Gemma's sqrt(n_embd) embedding scale
  Check(harness::ScaleSpec(64, 3, -0.125f), kExactNmse);
  Check(harness::GluSpec(172, 7, Activation::kSilu), kFloatNmse);       // stories260K
  Check(harness::GluSpec(2048, 3, Activation::kGeluTanh), kFloatNmse);  // Gemma 3
  Check(harness::GluSpec(8192, 2, Activation::kSilu), kFloatNmse);      // llama 1b
  Check(harness::GluSpec(8192, 2, Activation::kSilu, /*in_place=*/true), kFloatNmse);
}

TEST_F(CudaVsReference, RmsNorm) {
  Check(harness::RmsNormSpec(64, 7, true, 1e-5f), kFloatNmse);     // stories260K
  Check(harness::RmsNormSpec(640, 5, true, 1e-6f), kFloatNmse);    // Gemma 3
  Check(harness::RmsNormSpec(256, 12, true, 1e-6f), kFloatNmse);   // Gemma 3 QK-norm per head
  Check(harness::RmsNormSpec(2048, 3, false, 1e-5f), kFloatNmse);  // llama 1b, no weight
  Check(harness::RmsNormSpec(100, 2, true, 1e-5f), kFloatNmse);    // width not a power of two
}

TEST_F(CudaVsReference, Rope) {
  RopeParams normal;
  normal.n_rot = 8;
  Check(harness::RopeSpec(8, 8, 9, normal, false), kFloatNmse);  // stories260K
  RopeParams neox;
  neox.n_rot = 256;
  neox.mode = RopeMode::kNeox;
  neox.freq_base = 1e6f;
  Check(harness::RopeSpec(256, 4, 5, neox, false), kFloatNmse);  // Gemma 3 global layers
  neox.freq_base = 1e4f;
  Check(harness::RopeSpec(256, 1, 5, neox, false), kFloatNmse);  // Gemma 3 local layers (K)
  RopeParams llama3;
  llama3.n_rot = 64;
  llama3.freq_base = 500000.0f;
  Check(harness::RopeSpec(64, 32, 3, llama3, true), kFloatNmse);  // llama 3 frequency factors
  RopeParams yarn;
  yarn.n_rot = 128;
  yarn.mode = RopeMode::kNeox;
  yarn.freq_base = 1e6f;
  yarn.freq_scale = 0.25f;
  yarn.ext_factor = 1.0f;
  yarn.attn_factor = 1.0f;
  yarn.n_ctx_orig = 4096;
  Check(harness::RopeSpec(128, 16, 4, yarn, false), kFloatNmse);  // qwen2 1b heads, YaRN
  RopeParams partial;
  partial.n_rot = 32;
  Check(harness::RopeSpec(64, 4, 3, partial, false), kFloatNmse);  // partial rotary dims
}

TEST_F(CudaVsReference, Attention) {
  for (DType cache : {DType::F16, DType::F32}) {
    AttentionParams p;
    p.scale = 1 / std::sqrt(8.0f);
    Check(harness::AttentionSpec(8, 8, 4, 5, 40, 1, cache, p), kFloatNmse);  // stories260K
    Check(harness::AttentionSpec(8, 8, 4, 1, 40, 1, cache, p), kFloatNmse);  // generation
    p.scale = 1 / 16.0f;
    Check(harness::AttentionSpec(256, 4, 1, 3, 300, 2, cache, p), kFloatNmse);  // Gemma 3
    AttentionParams window = p;
    window.window = 16;
    Check(harness::AttentionSpec(256, 4, 1, 4, 200, 1, cache, window), kFloatNmse);
    AttentionParams capped = p;
    capped.softcap = 50.0f;
    Check(harness::AttentionSpec(256, 4, 1, 2, 64, 1, cache, capped), kFloatNmse);
    AttentionParams llama;
    llama.scale = 0.125f;
    Check(harness::AttentionSpec(64, 32, 8, 6, 150, 3, cache, llama), kFloatNmse);  // 1b
    AttentionParams qwen;
    qwen.scale = 1 / std::sqrt(128.0f);
    Check(harness::AttentionSpec(128, 16, 2, 2, 90, 1, cache, qwen), kFloatNmse);
    Check(harness::AttentionSpec(512, 2, 1, 3, 70, 1, cache, qwen), kFloatNmse);  // widest head
  }
}

TEST_F(CudaVsReference, StoreKV) {
  for (DType cache : {DType::F16, DType::F32}) {
    Check(harness::StoreKVSpec(8, 4, 5, 64, cache), kExactNmse);    // stories260K
    Check(harness::StoreKVSpec(256, 1, 3, 40, cache), kExactNmse);  // Gemma 3
    Check(harness::StoreKVSpec(64, 8, 7, 100, cache), kExactNmse);  // llama 1b
  }
}

// MATMULs of the same activations (Q, K, V) quantize them once. A tensor placed later at the same
// address with the same shape (the arena reuses the slot) must be quantized anew.
TEST_F(CudaVsReference, QuantizedActivationsAreReusedOnlyWhileUnchanged) {
  Graph g;
  Tensor* x = g.NewInput(DType::F32, {256, 3}, "x");
  Tensor* w[3];
  for (int i = 0; i < 3; ++i) w[i] = g.NewInput(DType::Q4_0, {256, 64}, fmt::format("w{}", i));
  Tensor* u = g.Scale(x, 0.5f);
  Tensor* a = g.MatMul(u, w[0]);
  Tensor* b = g.MatMul(u, w[1]);  // u's last reader
  Tensor* v = g.Scale(x, -1.5f);  // takes u's slot
  Tensor* c = g.MatMul(v, w[2]);
  for (Tensor* t : {a, b, c}) g.MarkOutput(t);

  std::vector<float> in(256 * 3);
  for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.37f * static_cast<float>(i));
  std::vector<std::vector<uint8_t>> weights;
  for (int i = 0; i < 3; ++i) {
    std::vector<float> values(256 * 64);
    for (size_t j = 0; j < values.size(); ++j) {
      values[j] = std::cos(0.11f * static_cast<float>(j) + static_cast<float>(i));
    }
    weights.push_back(Quantize(DType::Q4_0, values));
  }
  std::vector<float> results[2];
  for (int run = 0; run < 2; ++run) {
    Backend& backend = run == 0 ? *reference_ : *cuda_;
    for (Tensor* t : {x, w[0], w[1], w[2], u, a, b, v, c}) {
      t->buffer = nullptr;  // storage in this backend's arena
      t->data = nullptr;
      t->offset = 0;
    }
    Executor executor(backend);
    executor.Allocate(g);
    ASSERT_EQ(v->offset, u->offset) << "the test needs v in u's slot";
    backend.Upload(*x, in.data(), 0, x->bytes());
    for (int i = 0; i < 3; ++i) backend.Upload(*w[i], weights[i].data(), 0, weights[i].size());
    executor.Compute(g);
    for (Tensor* t : {a, b, c}) {
      std::vector<float> out(static_cast<size_t>(t->elements()));
      backend.Download(*t, out.data(), 0, t->bytes());
      results[run].insert(results[run].end(), out.begin(), out.end());
    }
  }
  const auto n = static_cast<int64_t>(results[0].size());
  EXPECT_LE(harness::Nmse(results[1].data(), results[0].data(), n), kMatMulNmse);
}

// An id outside the table is reported at Synchronize, not read out of bounds.
TEST_F(CudaVsReference, BadRowIdIsAnError) {
  OpSpec spec = harness::GetRowsSpec(DType::F32, 64, 16, 2);
  spec.src[1]->values = {3, 99};
  try {
    harness::RunOp(*cuda_, spec);
    ADD_FAILURE() << "no error for row id 99 of 16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row id outside"), std::string::npos) << e.what();
  }
  Check(harness::GetRowsSpec(DType::F32, 64, 16, 2), kExactNmse);  // and the backend recovers
}

// stories260K through the Engine on the CUDA backend reproduces llama.cpp's greedy continuations,
// with an f16 and an f32 KV cache, and no node falls back to the CPU.
TEST_F(CudaVsReference, StoriesGreedyGoldens) {
  for (DType kv_type : {DType::F16, DType::F32}) {
    SCOPED_TRACE(std::string(Name(kv_type)));
    EngineOptions o;
    o.model_path = (testing::SharedDir() / "models/stories260K.gguf").string();
    o.backend = "cuda";
    o.n_ctx = 512;
    o.kv_type = kv_type;
    auto engine = Engine::Load(o);
    std::ifstream in(testing::SharedDir() / "golden/stories260K-greedy.jsonl");
    std::string line;
    int cases = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line);
      const std::string prompt = j["prompt"], continuation = j["continuation"];
      const int n_predict = j["n_predict"];
      std::vector<TokenId> ids = engine->tokenizer().Encode(prompt, true, false);
      engine->RemoveSequence(0);
      std::vector<BatchToken> batch;
      for (size_t i = 0; i < ids.size(); ++i) {
        batch.push_back({ids[i], static_cast<int32_t>(i), 0, i + 1 == ids.size()});
      }
      std::string text;
      auto pos = static_cast<int32_t>(ids.size());
      for (int i = 0; i < n_predict; ++i) {
        std::span<const float> logits = engine->Decode(batch);
        const auto next =
            static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        text += engine->tokenizer().TokenToPiece(next, false);
        batch = {{next, pos++, 0, true}};
      }
      EXPECT_EQ(text, continuation) << "prompt: " << prompt;
      ++cases;
    }
    EXPECT_GT(cases, 0);
    // Every node ran on the GPU: nothing fell back to the CPU.
    EXPECT_EQ(engine->profile().fallback_nodes, 0) << engine->profile().Report();
    EXPECT_GT(engine->profile().nodes, 0);
  }
}

}  // namespace
}  // namespace dizuo
