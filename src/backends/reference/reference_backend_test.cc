#include "backends/reference/reference_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "backends/reference/reference_kernels.h"
#include "backends/testing/op_harness.h"
#include "core/error.h"
#include "core/quant.h"

namespace dizuo {
namespace {

using harness::OperandSpec;
using harness::OpSpec;

OperandSpec Values(DType type, std::array<int64_t, kMaxDims> ne, std::vector<float> values) {
  OperandSpec s;
  s.type = type;
  s.ne = ne;
  s.values = std::move(values);
  return s;
}
OperandSpec F32(std::array<int64_t, kMaxDims> ne, std::vector<float> values) {
  return Values(DType::F32, ne, std::move(values));
}
OperandSpec I32(std::array<int64_t, kMaxDims> ne, std::vector<float> values) {
  return Values(DType::I32, ne, std::move(values));
}

class ReferenceTest : public ::testing::Test {
 protected:
  std::vector<float> Run(const OpSpec& spec) {
    harness::OpRun run = harness::RunOp(*backend_, spec);
    EXPECT_TRUE(run.supported) << spec.Describe();
    return run.values;
  }
  std::unique_ptr<Backend> backend_ = CreateReferenceBackend({});
};

TEST_F(ReferenceTest, DeviceInfo) {
  EXPECT_EQ(backend_->device().name, "reference");
  EXPECT_TRUE(backend_->device().host_memory);
  auto buffer = backend_->Allocate(100);
  EXPECT_EQ(buffer->size(), 100u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->host_data()) % 64, 0u);
}

TEST_F(ReferenceTest, MatMulF32Small) {
  // x: 2 rows (M) of 3 (K); w: 2 rows (N) of 3. out[n, m] = x_m · w_n.
  OpSpec spec;
  spec.op = Op::kMatMul;
  spec.src = {F32({3, 2, 1, 1}, {1, 2, 3, 4, 5, 6}), F32({3, 2, 1, 1}, {1, 0, -1, 0.5f, 2, 1})};
  EXPECT_EQ(Run(spec), (std::vector<float>{1 - 3, 0.5f + 4 + 3, 4 - 6, 2 + 10 + 6}));
}

TEST_F(ReferenceTest, AddMulScaleBroadcast) {
  OpSpec add;
  add.op = Op::kAdd;
  add.src = {F32({2, 2, 1, 1}, {1, 2, 3, 4}), F32({2, 1, 1, 1}, {10, 20})};
  EXPECT_EQ(Run(add), (std::vector<float>{11, 22, 13, 24}));
  OpSpec mul = add;
  mul.op = Op::kMul;
  mul.src[1] = F32({2, 2, 1, 1}, {2, 3, 4, 5});
  EXPECT_EQ(Run(mul), (std::vector<float>{2, 6, 12, 20}));
  OpSpec scale;
  scale.op = Op::kScale;
  scale.params.scale = -0.5f;
  scale.src = {F32({3, 1, 1, 1}, {2, 4, -8})};
  EXPECT_EQ(Run(scale), (std::vector<float>{-1, -2, 4}));
}

TEST_F(ReferenceTest, RmsNormKnownValues) {
  OpSpec spec;
  spec.op = Op::kRmsNorm;
  spec.params.eps = 0;
  spec.src = {F32({4, 2, 1, 1}, {1, 2, 3, 4, 2, 2, 2, 2}), F32({4, 1, 1, 1}, {1, 1, 2, -1})};
  const float r = std::sqrt(7.5f);  // mean(1, 4, 9, 16) = 7.5
  const std::vector<float> out = Run(spec);
  const std::vector<float> want = {1 / r, 2 / r, 6 / r, -4 / r, 1, 1, 2, -1};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(out[i], want[i], 1e-6f) << i;
  spec.params.eps = 1;  // without weight: x / sqrt(mean + 1)
  spec.src[1] = std::nullopt;
  EXPECT_NEAR(Run(spec)[0], 1 / std::sqrt(8.5f), 1e-6f);
}

// A unit vector along dim 0 of a 4-dim head rotated at position p.
OpSpec RopeUnit(RopeMode mode, int n_rot, int pos, std::vector<float> factors = {}) {
  OpSpec spec;
  spec.op = Op::kRope;
  spec.params.rope.n_rot = n_rot;
  spec.params.rope.mode = mode;
  spec.params.rope.freq_base = 100.0f;
  spec.src = {F32({4, 1, 1, 1}, {1, 0, 0, 0}), I32({1, 1, 1, 1}, {static_cast<float>(pos)})};
  if (!factors.empty()) spec.src.push_back(F32({2, 1, 1, 1}, factors));
  return spec;
}

TEST_F(ReferenceTest, RopeRotatesPairsByPosition) {
  // Pair 0 has theta = pos exactly; normal mode pairs dims (0, 1), neox mode (0, n_rot / 2).
  std::vector<float> normal = Run(RopeUnit(RopeMode::kNormal, 4, 3));
  EXPECT_NEAR(normal[0], std::cos(3.0f), 1e-6f);
  EXPECT_NEAR(normal[1], std::sin(3.0f), 1e-6f);
  EXPECT_EQ(normal[2], 0.0f);
  std::vector<float> neox = Run(RopeUnit(RopeMode::kNeox, 4, 3));
  EXPECT_NEAR(neox[0], std::cos(3.0f), 1e-6f);
  EXPECT_EQ(neox[1], 0.0f);
  EXPECT_NEAR(neox[2], std::sin(3.0f), 1e-6f);
  // Frequency factor 2 on pair 0 halves its angle.
  std::vector<float> slowed = Run(RopeUnit(RopeMode::kNormal, 4, 3, {2, 1}));
  EXPECT_NEAR(slowed[1], std::sin(1.5f), 1e-6f);
}

TEST_F(ReferenceTest, RopeSecondPairAndPartialRotation) {
  // x = e1 + e3 (normal mode): pair 1 = dims (2, 3) at theta = pos · 100^(-2/4) = pos / 10.
  OpSpec spec = RopeUnit(RopeMode::kNormal, 4, 5);
  spec.src[0] = F32({4, 1, 1, 1}, {0, 0, 1, 0});
  std::vector<float> out = Run(spec);
  EXPECT_NEAR(out[2], std::cos(0.5f), 1e-6f);
  EXPECT_NEAR(out[3], std::sin(0.5f), 1e-6f);
  // With n_rot = 2 only dims 0, 1 rotate; dims 2, 3 are copied.
  spec = RopeUnit(RopeMode::kNormal, 2, 5);
  spec.src[0] = F32({4, 1, 1, 1}, {1, 0, 7, 8});
  out = Run(spec);
  EXPECT_NEAR(out[1], std::sin(5.0f), 1e-6f);
  EXPECT_EQ(out[2], 7.0f);
  EXPECT_EQ(out[3], 8.0f);
}

TEST_F(ReferenceTest, RopeLinearScalingAndYarn) {
  // Linear scaling without YaRN: angle · freq_scale, magnitude · attn_factor.
  OpSpec spec = RopeUnit(RopeMode::kNormal, 4, 6);
  spec.params.rope.freq_scale = 0.5f;
  spec.params.rope.attn_factor = 2.0f;
  std::vector<float> out = Run(spec);
  EXPECT_NEAR(out[0], 2 * std::cos(3.0f), 1e-5f);
  EXPECT_NEAR(out[1], 2 * std::sin(3.0f), 1e-5f);

  // YaRN with n_rot 64, base 1e4, n_ctx_orig 4096, beta 32 / 1: the correction dims are
  // floor(64 ln(4096 / 64π) / 2 ln 1e4) = 10 and ceil(64 ln(4096 / 2π) / 2 ln 1e4) = 23, so pair 0
  // extrapolates (angle unscaled) and pair 31 interpolates (angle · freq_scale); both magnitudes
  // gain 1 + 0.1 ln(1 / freq_scale).
  OpSpec yarn;
  yarn.op = Op::kRope;
  RopeParams& p = yarn.params.rope;
  p.n_rot = 64;
  p.freq_base = 10000;
  p.freq_scale = 0.25f;
  p.ext_factor = 1;
  p.n_ctx_orig = 4096;
  std::vector<float> x(64, 0.0f);
  x[0] = 1;
  x[62] = 1;
  const int pos = 7;
  yarn.src = {F32({64, 1, 1, 1}, x), I32({1, 1, 1, 1}, {pos})};
  out = Run(yarn);
  const double mscale = 1 + 0.1 * std::log(4.0);
  const double theta31 = 0.25 * pos * std::pow(10000.0, -62.0 / 64);
  EXPECT_NEAR(out[0], mscale * std::cos(pos), 1e-5);
  EXPECT_NEAR(out[1], mscale * std::sin(pos), 1e-5);
  EXPECT_NEAR(out[62], mscale * std::cos(theta31), 1e-5);
  EXPECT_NEAR(out[63], mscale * std::sin(theta31), 1e-5);
}

TEST_F(ReferenceTest, GluKnownValues) {
  OpSpec spec;
  spec.op = Op::kGlu;
  spec.params.act = Activation::kSilu;
  spec.src = {F32({3, 1, 1, 1}, {1, 0, -2}), F32({3, 1, 1, 1}, {2, 5, 1})};
  std::vector<float> out = Run(spec);
  EXPECT_NEAR(out[0], 2 / (1 + std::exp(-1.0f)), 1e-6f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_NEAR(out[2], -2 / (1 + std::exp(2.0f)), 1e-6f);
  // gelu_tanh as the GGUF engines' f16 table (core/gelu.h): gelu_tanh(1) = 0.841192 and
  // gelu_tanh(-2) = -0.0454023 are the f16 values below (llama.cpp's table entries 0x3abb and
  // 0xa9d0); beyond ±10 the activation is 0 or x itself.
  spec.params.act = Activation::kGeluTanh;
  out = Run(spec);
  EXPECT_EQ(out[0], 2 * 0.84130859375f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[2], -0.04541015625f);
  spec.src = {F32({3, 1, 1, 1}, {-10, 10, 12.5f}), F32({3, 1, 1, 1}, {3, 0.5f, 2})};
  out = Run(spec);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 5.0f);
  EXPECT_EQ(out[2], 25.0f);
}

TEST_F(ReferenceTest, GetRowsDequantizesEachType) {
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q5_1,
                     DType::Q4_K, DType::Q6_K}) {
    OpSpec spec = harness::GetRowsSpec(type, 256, 10, 6);
    const harness::Operands in = harness::MakeOperands(spec);
    const harness::OpRun run = harness::RunOp(*backend_, spec, in);
    ASSERT_TRUE(run.supported);
    const std::vector<float> table = in[0]->ToFloat();
    const std::vector<float> ids = in[1]->ToFloat();
    for (int t = 0; t < 6; ++t) {
      for (int i = 0; i < 256; ++i) {
        ASSERT_EQ(run.values[t * 256 + i], table[static_cast<int>(ids[t]) * 256 + i])
            << Name(type) << " token " << t << " element " << i;
      }
    }
  }
}

// ATTENTION with head size 2: one query token at (pos, seq) over explicit cells.
OpSpec AttentionCase(std::vector<float> q, int64_t q_heads, int64_t kv_heads, std::vector<float> k,
                     std::vector<float> v, std::vector<float> cells, std::vector<float> token,
                     DType cache = DType::F32) {
  const int64_t n_cells = static_cast<int64_t>(cells.size() / 2);
  OpSpec spec;
  spec.op = Op::kAttention;
  spec.params.attention.scale = 1.0f;
  spec.src = {F32({2, q_heads, 1, 1}, q), Values(cache, {2, kv_heads, n_cells, 1}, k),
              Values(cache, {2, kv_heads, n_cells, 1}, v), I32({2, 1, 1, 1}, token),
              I32({2, n_cells, 1, 1}, cells)};
  return spec;
}

TEST_F(ReferenceTest, AttentionOneCellReturnsV) {
  for (DType cache : {DType::F32, DType::F16}) {
    OpSpec spec = AttentionCase({0.3f, -1}, 1, 1, {2, 1}, {1.5f, -0.25f}, {4, 0}, {4, 0}, cache);
    EXPECT_EQ(Run(spec), (std::vector<float>{1.5f, -0.25f})) << Name(cache);
  }
}

TEST_F(ReferenceTest, AttentionMasksOtherSequenceFutureAndWindow) {
  // Cells: (pos 0, seq 0) v=(1,0); (pos 1, seq 1) other sequence; (pos 3, seq 0) future;
  // (pos 2, seq 0) v=(0,1); (pos 1, seq -1) empty. Masked cells carry huge values that would
  // dominate the output if they leaked in. With q = 0 all visible scores tie.
  const std::vector<float> cells = {0, 0, 1, 1, 3, 0, 2, 0, 1, -1};
  const std::vector<float> k = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<float> v = {1, 0, 1000, 1000, -1000, 1000, 0, 1, 500, 500};
  OpSpec spec = AttentionCase({0, 0}, 1, 1, k, v, cells, {2, 0});
  std::vector<float> out = Run(spec);
  EXPECT_NEAR(out[0], 0.5f, 1e-6f);
  EXPECT_NEAR(out[1], 0.5f, 1e-6f);
  // Window 1 leaves only pos 2 (2 − 0 = 2 ≥ 1 is outside).
  spec.params.attention.window = 1;
  out = Run(spec);
  EXPECT_NEAR(out[0], 0.0f, 1e-6f);
  EXPECT_NEAR(out[1], 1.0f, 1e-6f);
}

TEST_F(ReferenceTest, AttentionGqaHeadMapping) {
  // 4 query heads over 2 kv heads: heads 0, 1 read kv head 0, heads 2, 3 kv head 1.
  OpSpec spec =
      AttentionCase({1, 0, 0, 1, 1, 1, 0, 0}, 4, 2, {0, 0, 0, 0}, {1, 2, 3, 4}, {0, 0}, {0, 0});
  EXPECT_EQ(Run(spec), (std::vector<float>{1, 2, 1, 2, 3, 4, 3, 4}));
}

TEST_F(ReferenceTest, AttentionSoftmaxScaleAndSoftcap) {
  // Two cells with k·q = 2 and 0 (q = (1, 0)); out = p0 v0 + p1 v1 with p ∝ exp(s).
  const std::vector<float> k = {2, 0, 0, 5};
  const std::vector<float> v = {1, 0, 0, 1};
  OpSpec spec = AttentionCase({1, 0}, 1, 1, k, v, {0, 0, 1, 0}, {1, 0});
  spec.params.attention.scale = 0.5f;  // scores 1, 0
  std::vector<float> out = Run(spec);
  const double p0 = std::exp(1.0) / (std::exp(1.0) + 1);
  EXPECT_NEAR(out[0], p0, 1e-6);
  EXPECT_NEAR(out[1], 1 - p0, 1e-6);
  spec.params.attention.softcap = 0.5f;  // scores 0.5 tanh(2), 0
  out = Run(spec);
  const double s0 = 0.5 * std::tanh(2.0);
  EXPECT_NEAR(out[0], std::exp(s0) / (std::exp(s0) + 1), 1e-6);
}

TEST_F(ReferenceTest, AttentionIsStableForLargeScores) {
  const std::vector<float> k = {1000, 0, 999, 0};
  const std::vector<float> v = {1, 0, 0, 1};
  OpSpec spec = AttentionCase({1, 0}, 1, 1, k, v, {0, 0, 1, 0}, {1, 0});
  std::vector<float> out = Run(spec);
  const double p0 = 1 / (1 + std::exp(-1.0));
  EXPECT_NEAR(out[0], p0, 1e-6);
  EXPECT_NEAR(out[1], 1 - p0, 1e-6);
}

TEST_F(ReferenceTest, StoreKvConvertsAndLeavesOtherCells) {
  for (DType cache : {DType::F32, DType::F16}) {
    OpSpec spec = harness::StoreKVSpec(8, 2, 3, 7, cache);
    const harness::Operands in = harness::MakeOperands(spec);
    const harness::OpRun run = harness::RunOp(*backend_, spec, in);
    ASSERT_TRUE(run.supported);
    const std::vector<float> rows = in[0]->ToFloat();
    const std::vector<float> targets = in[1]->ToFloat();
    const std::vector<float> before = in[2]->ToFloat();
    std::vector<float> want = before;
    for (int t = 0; t < 3; ++t) {
      for (int i = 0; i < 16; ++i) {
        const float x = rows[t * 16 + i];
        want[static_cast<int>(targets[t]) * 16 + i] =
            cache == DType::F32 ? x : F16ToF32(F32ToF16(x));
      }
    }
    EXPECT_EQ(run.values, want) << Name(cache);
  }
}

// MATMUL with a quantized weight against float arithmetic on the same dequantized weights.
//
// `exact`: x is first converted to the activation type and dequantized, so the only difference
// left is float rounding of the block factors (and, for Q4_1/Q5_1, the f16-rounded activation
// sum s that the Q8_1 format stores): a bit-layout mistake would show as NMSE near 1.
// `f32`: x as is, so the difference is the activation quantization the semantics prescribe. Q8
// activations carry about 8 bits per element (relative rounding error ≤ 1/254 of the block
// maximum), giving an NMSE around 1e-5 whatever the weight type, since the weight's own
// quantization error is in both sides. The bound 2e-4 leaves room for random draws.
TEST_F(ReferenceTest, MatMulQuantizedMatchesDequantizedFloat) {
  const int64_t k = 512, n = 12, m = 3;
  for (DType type :
       {DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
        DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    OpSpec spec = harness::MatMulSpec(type, k, n, m);
    const harness::Operands in = harness::MakeOperands(spec);
    const harness::OpRun run = harness::RunOp(*backend_, spec, in);
    ASSERT_TRUE(run.supported) << Name(type);
    const std::vector<float> x = in[0]->ToFloat();
    const std::vector<float> w = in[1]->ToFloat();
    const DType act = reference::ActivationType(type);
    std::vector<float> xq(x.size());
    for (int64_t r = 0; r < m; ++r) {
      std::vector<uint8_t> bytes(*RowBytes(act, k));
      QuantizeRow(act, x.data() + r * k, bytes.data(), k);
      DequantizeRow(act, bytes.data(), xq.data() + r * k, k);
    }
    std::vector<float> exact(n * m), f32(n * m);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t j = 0; j < n; ++j) {
        double a = 0, b = 0;
        for (int64_t i = 0; i < k; ++i) {
          a += static_cast<double>(w[j * k + i]) * xq[r * k + i];
          b += static_cast<double>(w[j * k + i]) * x[r * k + i];
        }
        exact[r * n + j] = static_cast<float>(a);
        f32[r * n + j] = static_cast<float>(b);
      }
    }
    const bool stored_sum = type == DType::Q4_1 || type == DType::Q5_1;
    const double nmse_exact = harness::Nmse(run.values.data(), exact.data(), n * m);
    const double nmse_f32 = harness::Nmse(run.values.data(), f32.data(), n * m);
    EXPECT_LT(nmse_exact, stored_sum ? 1e-6 : 1e-10) << Name(type);
    EXPECT_LT(nmse_f32, 2e-4) << Name(type);
    std::printf("  %-5s nmse vs dequantized-activation %.2e, vs f32 activation %.2e\n",
                std::string(Name(type)).c_str(), nmse_exact, nmse_f32);
  }
}

TEST_F(ReferenceTest, SupportsRejectsWhatItDoesNotImplement) {
  Graph g;
  Tensor* x = g.NewInput(DType::F32, {32, 2}, "x");
  Tensor* w = g.NewInput(DType::Q8_K, {256, 2}, "w");  // Q8_K is an activation type only
  Tensor* x256 = g.NewInput(DType::F32, {256, 2}, "x256");
  g.MatMul(x256, w);
  EXPECT_FALSE(backend_->Supports(g.nodes().back()));
  Tensor* w_ok = g.NewInput(DType::Q4_0, {32, 4}, "w_ok");
  g.MatMul(x, w_ok);
  EXPECT_TRUE(backend_->Supports(g.nodes().back()));
  // A row whose elements are not packed.
  Tensor* strided = g.NewInput(DType::F32, {4, 2}, "strided");
  strided->nb[0] = 8;
  g.Scale(strided, 2);
  EXPECT_FALSE(backend_->Supports(g.nodes().back()));
}

TEST(RegistryTest, CreatesByNameAndListsNamesOnError) {
  const std::vector<std::string> names = BackendNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "reference"), names.end());
  for (const std::string& name : names) {
    try {
      EXPECT_EQ(CreateBackend(name, {.threads = 1})->device().name, name);
    } catch (const Error& e) {
      // A device backend built without its device on this machine (cuda on a build machine)
      // says so and names the others; its own test checks the whole message.
      EXPECT_NE(std::string(e.what()).find("backend '" + name + "' cannot be used: "),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("available: "), std::string::npos) << e.what();
    }
  }
  try {
    CreateBackend("tpu9000", {});
    FAIL() << "no error for an unknown backend";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown backend 'tpu9000'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("reference"), std::string::npos) << e.what();
  }
}

TEST(HarnessTest, NmseAndNonFinite) {
  const float ref[] = {1, 2, 0};
  const float a[] = {1, 2.5f, 0};
  EXPECT_DOUBLE_EQ(harness::Nmse(a, ref, 3), 0.25 / 5);
  EXPECT_EQ(harness::Nmse(ref, ref, 3), 0.0);
  const float nan[] = {1, std::nanf(""), INFINITY};
  EXPECT_EQ(harness::CountNonFinite(nan, 3), 2);
  EXPECT_TRUE(std::isinf(harness::Nmse(nan, ref, 3)));
}

TEST(HarnessTest, OperandsAreDeterministic) {
  OpSpec spec = harness::MatMulSpec(DType::Q4_K, 256, 4, 2);
  EXPECT_EQ(harness::MakeOperands(spec)[1]->bytes, harness::MakeOperands(spec)[1]->bytes);
  spec.seed = 2;
  EXPECT_NE(harness::MakeOperands(spec)[1]->bytes,
            harness::MakeOperands(harness::MatMulSpec(DType::Q4_K, 256, 4, 2))[1]->bytes);
}

}  // namespace
}  // namespace dizuo
