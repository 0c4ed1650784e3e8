// The CPU backend against the reference backend (the oracle), op by op, on operands shaped as
// real models use them (stories260K, Gemma 3 270M, the llama "1b" preset), with 1, 2 and 3
// threads. Thresholds (NMSE = Σ(cpu − ref)² / Σ ref²):
//   - exact ops (GET_ROWS, ADD, MUL, SCALE, STORE_KV): 0 — same conversions, no reductions;
//   - MATMUL: 1e-10. Both backends convert activations identically (bit-exact, checked in
//     kernels_test) and form the same integer block sums, so the only difference is f32 vs f64
//     accumulation: about (2^-24)² · blocks ≈ 1e-13. One flipped activation quant would add
//     roughly 1e-7, so this bound catches a conversion that is merely close;
//   - RMS_NORM, ROPE, GLU, ATTENTION: 1e-10 (f32 rounding and libm/exp differences, ~1e-14..1e-12).
// MATMUL and every other op must also be bit-identical whatever the thread count.
#include "backends/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "backends/reference/reference_backend.h"
#include "backends/testing/op_harness.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/quant.h"

namespace dizuo {
namespace {

using harness::OpSpec;

class CpuVsReference : public ::testing::Test {
 protected:
  // CTest runs this suite once per kernel table (DIZUO_CPU_ISA); one the host lacks is skipped.
  void SetUp() override {
    const char* isa = std::getenv("DIZUO_CPU_ISA");
    if (isa != nullptr && *isa != '\0' && cpu::KernelsNamed(isa) == nullptr) {
      GTEST_SKIP() << "this CPU cannot run the " << isa << " kernels";
    }
  }
  // Runs `spec` on the reference and on the CPU backend with 1, 2 and 3 threads; checks the
  // NMSE bound and that the thread count does not change a single bit.
  void Check(const OpSpec& spec, double max_nmse) {
    const harness::Operands operands = harness::MakeOperands(spec);
    const harness::OpRun ref = harness::RunOp(*reference_, spec, operands);
    ASSERT_TRUE(ref.supported) << spec.Describe();
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      auto cpu = CreateCpuBackend({.threads = threads});
      const harness::OpRun run = harness::RunOp(*cpu, spec, operands);
      ASSERT_TRUE(run.supported) << spec.Describe();
      ASSERT_EQ(run.values.size(), ref.values.size()) << spec.Describe();
      const auto n = static_cast<int64_t>(ref.values.size());
      EXPECT_EQ(harness::CountNonFinite(run.values.data(), n), 0) << spec.Describe();
      const double nmse = harness::Nmse(run.values.data(), ref.values.data(), n);
      EXPECT_LE(nmse, max_nmse) << spec.Describe() << " threads=" << threads;
      if (threads == 1) {
        std::printf("  %-50s nmse %.2e\n", spec.Describe().c_str(), nmse);
        first = run.values;
        worst_ = std::max(worst_, nmse);
      } else {
        EXPECT_EQ(0, std::memcmp(first.data(), run.values.data(), first.size() * sizeof(float)))
            << spec.Describe() << ": result depends on the thread count (" << threads << ")";
      }
    }
  }
  void TearDown() override { RecordProperty("worst_nmse", std::to_string(worst_)); }

  std::unique_ptr<Backend> reference_ = CreateReferenceBackend({});
  double worst_ = 0;
};

constexpr double kMatMulNmse = 1e-10;
constexpr double kFloatNmse = 1e-10;

TEST_F(CpuVsReference, DeviceInfo) {
  auto cpu = CreateCpuBackend({.threads = 2});
  EXPECT_EQ(cpu->device().name, "cpu");
  EXPECT_TRUE(cpu->device().host_memory);
  EXPECT_NE(cpu->device().description.find("2 threads"), std::string::npos);
  EXPECT_THROW(CreateCpuBackend({.threads = -1}), Error);
  EXPECT_THROW(CreateCpuBackend({.threads = 1 << 20}), Error);
}

TEST_F(CpuVsReference, MatMulEveryWeightTypeStories260K) {
  // stories260K: n_embd 64, n_ff 172 (f32 only: 172 is not a multiple of 32).
  Check(harness::MatMulSpec(DType::F32, 64, 172, 7), kMatMulNmse);
  Check(harness::MatMulSpec(DType::F32, 172, 64, 7), kMatMulNmse);
  for (DType t :
       {DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
    Check(harness::MatMulSpec(t, 64, 96, 5), kMatMulNmse);
  }
}

TEST_F(CpuVsReference, MatMulEveryWeightTypeGemmaShapes) {
  // Gemma 3 270M: n_embd 640, n_ff 2048, q = 4 × 256; vocab rows reduced for speed.
  for (DType t :
       {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
        DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    // 640 is not a whole number of 256-element super-blocks: Gemma's files store those tensors
    // in legacy types, so K-quants are checked with the 2048-long rows (and 256 for generation).
    const bool k_quant = Traits(t).block_size == 256;
    Check(harness::MatMulSpec(t, k_quant ? 256 : 640, 2048, 1), kMatMulNmse);  // generation
    Check(harness::MatMulSpec(t, 2048, 640, 9), kMatMulNmse);  // prompt, odd row count
    Check(harness::MatMulSpec(t, k_quant ? 512 : 640, 1000, 3), kMatMulNmse);  // N % 4 != 0
  }
}

TEST_F(CpuVsReference, MatMulLlama1bShapes) {
  for (DType t : {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    Check(harness::MatMulSpec(t, 2048, 512, 2), kMatMulNmse);
    Check(harness::MatMulSpec(t, 8192, 30, 66), kMatMulNmse);  // > one activation block
  }
  // Prompt batches over more than one activation group (256 rows; 512 for f16 on AVX-512, whose
  // groups are sized by GemmFns::group_bytes), the last one partial.
  for (DType t : {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
    Check(harness::MatMulSpec(t, 8192, 40, 600), kMatMulNmse);
  }
}

// n rows of k uniform values in [-1, 1] quantized to `type`, row after row.
std::vector<uint8_t> RandomWeights(DType type, int64_t k, int64_t n, uint32_t seed) {
  const uint64_t row = *RowBytes(type, static_cast<uint64_t>(k));
  std::vector<float> wf(static_cast<size_t>(k));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint8_t> wq(row * static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    for (float& v : wf) v = dist(rng);
    QuantizeRow(type, wf.data(), wq.data() + r * row, k);
  }
  return wq;
}

// Weights repacked at load (Backend::PrepareWeight): once the backend holds a copy, MATMUL reads
// the copy (the original's bytes are wiped here to prove it), matches the reference for
// generation, small batches and prompt batches, does not depend on the thread count, and goes
// back to the original when the copy is destroyed. Tables without a layout of their own return
// no copy.
TEST_F(CpuVsReference, RepackedWeightsAreReadFromTheirCopy) {
  struct Shape {
    int64_t k, n;
  };
  for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
    for (const Shape shape : {Shape{768, 100}, Shape{2048, 36}}) {
      const int64_t k = shape.k, n = shape.n;
      const std::vector<uint8_t> wq = RandomWeights(type, k, n, 7);
      std::mt19937 rng(8);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (int64_t m : {1, 3, 9, 70}) {
        Graph graph;
        Tensor* x = graph.NewInput(DType::F32, {k, m}, "x");
        Tensor w = MakeTensor(type, {k, n}, "w");
        std::vector<uint8_t> original = wq;
        w.data = original.data();
        Tensor* out = graph.MatMul(x, &w);
        std::vector<float> xs(static_cast<size_t>(k * m)), want(static_cast<size_t>(n * m));
        for (float& v : xs) v = 3.0f * dist(rng);
        x->data = xs.data();
        out->data = want.data();
        reference_->Compute(graph.nodes());
        std::vector<float> first;
        for (int threads : {1, 2}) {
          auto cpu = CreateCpuBackend({.threads = threads});
          int copied = 0;
          std::unique_ptr<Buffer> copy =
              cpu->PrepareWeight(w, {.copied = [&] { ++copied; }, .part_copied = {}});
          const char* isa = cpu::SelectKernels().isa;
          // A layout may decline some row lengths (q4_Kx16: odd numbers of super-blocks).
          const cpu::RepackFns& fns = cpu::SelectKernels().repacked[static_cast<size_t>(type)];
          const bool has_layout = fns.repack != nullptr && fns.row_bytes(k) != 0;
          ASSERT_EQ(copy != nullptr, has_layout) << isa << " " << Name(type) << " k=" << k;
          if (copy == nullptr) continue;
          EXPECT_EQ(&copy->backend(), cpu.get());
          EXPECT_EQ(cpu->PrepareWeight(w), nullptr) << "a weight is copied once";
          cpu->FinishPreparing();  // the copy is made in the background
          EXPECT_EQ(copied, 1) << "the copied callback runs once the copy is complete";
          std::fill(original.begin(), original.end(), uint8_t{0});  // only the copy is left
          std::vector<float> got(want.size(), -1.0f);
          out->data = got.data();
          cpu->Compute(graph.nodes());
          const std::string what =
              fmt::format("{} {} k={} n={} m={} threads={}", isa, Name(type), k, n, m, threads);
          EXPECT_LE(harness::Nmse(got.data(), want.data(), static_cast<int64_t>(got.size())),
                    kMatMulNmse)
              << what;
          if (first.empty()) {
            first = got;
          } else {
            EXPECT_EQ(first, got) << what << ": result depends on the thread count";
          }
          // Another tensor at the same address but of another shape is not the copy's weight.
          Graph other;
          Tensor* x2 = other.NewInput(DType::F32, {k, 1}, "x2");
          Tensor w2 = MakeTensor(type, {k, n - 1}, "w2");
          w2.data = original.data();
          Tensor* out2 = other.MatMul(x2, &w2);
          std::vector<float> got2(static_cast<size_t>(n - 1), -1.0f);
          x2->data = xs.data();
          out2->data = got2.data();
          cpu->Compute(other.nodes());
          EXPECT_EQ(got2, std::vector<float>(got2.size(), 0.0f)) << what << " (other shape)";
          // Without the copy, the (wiped) original is read again.
          copy.reset();
          cpu->Compute(graph.nodes());
          EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f)) << what << " (copy destroyed)";
          original = wq;
        }
      }
    }
  }
}

// An embedding table that is also the output layer (WeightCopy::get_rows): once copied, GET_ROWS
// and MATMUL both read the copy (the original is wiped here to prove it), GET_ROWS bit for bit as
// from the file's layout. part_copied reports every byte of the original before `copied` runs.
// Without get_rows, GET_ROWS reads the original.
TEST_F(CpuVsReference, CopiedEmbeddingTablesServeGetRows) {
  for (DType type : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16}) {
    const cpu::RepackFns& fns = cpu::SelectKernels().repacked[static_cast<size_t>(type)];
    // Gemma 3's width (a partial group of 32-blocks in each row), 3 super-blocks for k-quants; and
    // 1024, whose q4_0x16 rows are stored in groups of 4 (RepackFns::row_group), 3001 rows leaving
    // one in the last group.
    for (const int64_t k :
         {Traits(type).block_size == 256 ? int64_t{768} : int64_t{640}, int64_t{1024}}) {
      const int64_t n = 3001;
      if (fns.repack == nullptr || fns.row_bytes(k) == 0) continue;
      const std::vector<uint8_t> wq = RandomWeights(type, k, n, 5);
      std::mt19937 rng(6);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      std::vector<int32_t> ids = {0, 3000, 2999, 17, 17, 1024, 5};
      Graph graph;
      Tensor* id = graph.NewInput(DType::I32, {static_cast<int64_t>(ids.size())}, "ids");
      Tensor table = MakeTensor(type, {k, n}, "token_embd");
      std::vector<uint8_t> original = wq;
      table.data = original.data();
      Tensor* rows = graph.GetRows(&table, id);
      Tensor* x = graph.NewInput(DType::F32, {k, 1}, "x");
      Tensor* logits = graph.MatMul(x, &table);
      id->data = ids.data();
      std::vector<float> xs(static_cast<size_t>(k));
      for (float& v : xs) v = dist(rng);
      x->data = xs.data();
      std::vector<float> want_rows(static_cast<size_t>(k) * ids.size()), want_logits(n);
      rows->data = want_rows.data();
      logits->data = want_logits.data();
      reference_->Compute(graph.nodes());
      for (bool get_rows : {true, false}) {
        const std::string what = fmt::format("{} {} k={} get_rows={}", cpu::SelectKernels().isa,
                                             Name(type), k, get_rows);
        auto cpu = CreateCpuBackend({.threads = 2});
        std::vector<uint8_t> reported(original.size(), 0);
        int copied = 0;
        bool parts_before_copied = true;
        std::mutex mutex;
        std::unique_ptr<Buffer> copy = cpu->PrepareWeight(
            table, {.get_rows = get_rows,
                    .copied =
                        [&] {
                          std::lock_guard lock(mutex);
                          parts_before_copied = std::count(reported.begin(), reported.end(), 1) ==
                                                static_cast<std::ptrdiff_t>(reported.size());
                          ++copied;
                        },
                    .part_copied =
                        [&](uint64_t offset, uint64_t size) {
                          std::lock_guard lock(mutex);
                          ASSERT_LE(offset + size, reported.size());
                          for (uint64_t i = offset; i < offset + size; ++i) ++reported[i];
                        }});
        if (get_rows && fns.unpack_row == nullptr) {
          EXPECT_EQ(copy, nullptr) << what << ": a layout without unpack_row serves no GET_ROWS";
          continue;
        }
        ASSERT_NE(copy, nullptr) << what;
        cpu->FinishPreparing();
        EXPECT_EQ(copied, 1) << what;
        EXPECT_TRUE(parts_before_copied) << what << ": every byte reported once before copied";
        std::fill(original.begin(), original.end(), uint8_t{0});  // only the copy is left
        std::vector<float> got_rows(want_rows.size(), -1.0f), got_logits(want_logits.size());
        rows->data = got_rows.data();
        logits->data = got_logits.data();
        cpu->Compute(graph.nodes());
        EXPECT_LE(harness::Nmse(got_logits.data(), want_logits.data(), n), kMatMulNmse) << what;
        if (get_rows) {
          EXPECT_EQ(got_rows, want_rows) << what;
        } else {
          EXPECT_EQ(got_rows, std::vector<float>(got_rows.size(), 0.0f)) << what;
        }
        original = wq;
      }
    }
  }
}

// Copies are made in the background: a Compute before they are complete reads whichever layout
// is ready (the same results up to summation order), a copy destroyed before it was made is
// dropped without its callback, and FinishPreparing waits for the rest.
TEST_F(CpuVsReference, RepackedCopiesAreMadeInTheBackground) {
  const DType type = DType::Q4_0;
  if (cpu::SelectKernels().repacked[static_cast<size_t>(type)].repack == nullptr) {
    GTEST_SKIP() << "the " << cpu::SelectKernels().isa << " kernels repack nothing";
  }
  constexpr int64_t k = 2048, n = 512;
  constexpr int kWeights = 12;
  std::vector<std::vector<uint8_t>> wq;
  for (int i = 0; i < kWeights; ++i) wq.push_back(RandomWeights(type, k, n, 11 + i));
  std::mt19937 rng(10);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> xs(static_cast<size_t>(k));
  for (float& v : xs) v = dist(rng);

  auto cpu = CreateCpuBackend({.threads = 2});
  Graph graph;
  Tensor* x = graph.NewInput(DType::F32, {k, 1}, "x");
  x->data = xs.data();
  std::vector<Tensor> weights;
  weights.reserve(kWeights);
  std::vector<std::vector<float>> want(kWeights, std::vector<float>(n)), got = want;
  for (int i = 0; i < kWeights; ++i) {
    weights.push_back(MakeTensor(type, {k, n}, "w"));
    weights.back().data = wq[i].data();
    graph.MatMul(x, &weights.back())->data = want[i].data();
  }
  reference_->Compute(graph.nodes());
  for (int i = 0; i < kWeights; ++i) graph.nodes()[i].out->data = got[i].data();

  std::vector<int> copied(kWeights, 0);
  std::vector<std::unique_ptr<Buffer>> copies;
  for (int i = 0; i < kWeights; ++i) {
    copies.push_back(cpu->PrepareWeight(
        weights[i], {.copied = [&copied, i] { ++copied[i]; }, .part_copied = {}}));
    ASSERT_NE(copies.back(), nullptr);
  }
  for (int i = 0; i < kWeights; i += 3) copies[i].reset();  // most still queued
  for (int pass = 0; pass < 2; ++pass) {
    cpu->Compute(graph.nodes());  // first pass: before most copies are complete
    for (int i = 0; i < kWeights; ++i) {
      EXPECT_LE(harness::Nmse(got[i].data(), want[i].data(), n), kMatMulNmse)
          << "weight " << i << ", pass " << pass;
    }
    cpu->FinishPreparing();
    for (int i = 0; i < kWeights; ++i) {
      if (i % 3 == 0) {
        EXPECT_LE(copied[i], 1) << "weight " << i << " (destroyed)";
      } else {
        EXPECT_EQ(copied[i], 1) << "weight " << i;
      }
    }
  }
}

TEST_F(CpuVsReference, GetRowsEveryTableType) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q8_0}) {
    Check(harness::GetRowsSpec(t, 640, 300, 11), 0.0);  // Gemma embedding width
  }
  for (DType t : {DType::Q4_K, DType::Q6_K}) Check(harness::GetRowsSpec(t, 2048, 100, 7), 0.0);
  Check(harness::GetRowsSpec(DType::F32, 64, 512, 5), 0.0);
}

TEST_F(CpuVsReference, ElementwiseOps) {
  for (bool broadcast : {false, true}) {
    Check(harness::BinarySpec(Op::kAdd, 640, 7, broadcast), 0.0);
    Check(harness::BinarySpec(Op::kMul, 2048, 5, broadcast), 0.0);
  }
  Check(harness::ScaleSpec(64, 9, 0.125f), 0.0);
  for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
    Check(harness::GluSpec(172, 7, act), kFloatNmse);
    Check(harness::GluSpec(2048, 3, act), kFloatNmse);
    Check(harness::GluSpec(2048, 3, act, /*in_place=*/true), kFloatNmse);
  }
  // A generated token's rows, fewer than the threads: each row's elements are split instead
  // (ops.h ForEachRowPart), at multiples of 16, with a part of 9 and a thread with none (40 × 3).
  for (int64_t width : {2048, 40, 9}) {
    Check(harness::BinarySpec(Op::kAdd, width, 1, false), 0.0);
    Check(harness::BinarySpec(Op::kMul, width, 2, true), 0.0);
    Check(harness::ScaleSpec(width, 1, 0.125f), 0.0);
    for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
      Check(harness::GluSpec(width, 1, act), kFloatNmse);
      Check(harness::GluSpec(width, 2, act, /*in_place=*/true), kFloatNmse);
    }
  }
}

TEST_F(CpuVsReference, RmsNorm) {
  Check(harness::RmsNormSpec(64, 7, true, 1e-5f), kFloatNmse);
  Check(harness::RmsNormSpec(640, 5, true, 1e-6f), kFloatNmse);
  Check(harness::RmsNormSpec(256, 12, false, 1e-6f), kFloatNmse);  // Gemma QK-norm per head
  Check(harness::RmsNormSpec(77, 3, true, 1e-5f), kFloatNmse);     // a tail past the 8 sums
  Check(harness::RmsNormSpec(2048, 1, true, 1e-5f), kFloatNmse);   // generation: split elements
  Check(harness::RmsNormSpec(40, 2, false, 1e-6f), kFloatNmse);
}

TEST_F(CpuVsReference, Rope) {
  RopeParams normal;
  normal.n_rot = 8;
  Check(harness::RopeSpec(8, 8, 9, normal, false), kFloatNmse);  // stories260K
  RopeParams neox;
  neox.n_rot = 256;
  neox.mode = RopeMode::kNeox;
  neox.freq_base = 1e6f;
  Check(harness::RopeSpec(256, 4, 5, neox, false), kFloatNmse);  // Gemma 3 global layers
  RopeParams scaled = neox;
  scaled.n_rot = 64;
  scaled.freq_base = 500000.0f;
  Check(harness::RopeSpec(64, 32, 3, scaled, true), kFloatNmse);  // llama 3 freq factors
  RopeParams yarn = scaled;
  yarn.freq_scale = 0.25f;
  yarn.ext_factor = 1.0f;
  yarn.n_ctx_orig = 4096;
  Check(harness::RopeSpec(64, 8, 4, yarn, false), kFloatNmse);
  RopeParams partial = normal;
  partial.n_rot = 32;
  Check(harness::RopeSpec(64, 4, 3, partial, false), kFloatNmse);  // partial rotary dims
  // Generation: one token, whose table every thread computes for itself.
  Check(harness::RopeSpec(64, 8, 1, scaled, true), kFloatNmse);
  Check(harness::RopeSpec(64, 1, 1, yarn, false), kFloatNmse);
}

TEST_F(CpuVsReference, Attention) {
  for (DType cache : {DType::F16, DType::F32}) {
    AttentionParams p;
    p.scale = 1.0f / std::sqrt(8.0f);
    Check(harness::AttentionSpec(8, 8, 4, 5, 40, 1, cache, p), kFloatNmse);  // stories260K
    p.scale = 1.0f / 16.0f;
    Check(harness::AttentionSpec(256, 4, 1, 3, 300, 2, cache, p), kFloatNmse);  // Gemma 3
    // Generation on Gemma 3: one token's 4 rows of one KV head, which 2 or 3 threads share as a
    // team (ops_attention.cc), the cells split 64 at a time.
    Check(harness::AttentionSpec(256, 4, 1, 1, 700, 1, cache, p), kFloatNmse);
    AttentionParams window = p;
    window.window = 32;
    window.softcap = 30.0f;
    Check(harness::AttentionSpec(256, 4, 1, 4, 200, 1, cache, window), kFloatNmse);
    // A window without softcap (Gemma 3), which the f16 block kernel takes: only the cells from
    // the window's start (rounded down to 16) reach it.
    window.softcap = 0.0f;
    Check(harness::AttentionSpec(256, 4, 1, 4, 200, 1, cache, window), kFloatNmse);
    Check(harness::AttentionSpec(64, 6, 2, 40, 300, 2, cache, window), kFloatNmse);
    AttentionParams llama;
    llama.scale = 0.125f;
    Check(harness::AttentionSpec(64, 32, 8, 6, 150, 3, cache, llama), kFloatNmse);
    // A prompt longer than one block of the f16 block kernel (32 tokens), 2 sequences, and a
    // head size of 128.
    Check(harness::AttentionSpec(64, 6, 2, 75, 90, 2, cache, llama), kFloatNmse);
    Check(harness::AttentionSpec(128, 4, 4, 37, 50, 1, cache, llama), kFloatNmse);
  }
}

TEST_F(CpuVsReference, StoreKV) {
  for (DType cache : {DType::F16, DType::F32}) {
    Check(harness::StoreKVSpec(8, 4, 5, 16, cache), 0.0);
    Check(harness::StoreKVSpec(256, 1, 7, 64, cache), 0.0);
    Check(harness::StoreKVSpec(64, 8, 1, 16, cache), 0.0);  // generation: heads split
  }
}

}  // namespace
}  // namespace dizuo
