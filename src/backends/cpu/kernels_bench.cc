// MATMUL throughput of the CPU backend (not part of ctest): weights of 2048 × 2048 and
// 2048 × 8192 (K × N) in f16, q8_0, q4_0, q4_K and q6_K, with 1 and 2 threads, for generation
// (M = 1 activation row) and prompt batches (M = 64, 512). Reports GFLOP/s (2·M·N·K per
// product) and the weight bytes streamed per second.
//
//   cpu_kernels_bench [--benchmark_filter=q4_0]   (DIZUO_CPU_ISA=generic for the scalar table)
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/thread_pool.h"

#include "core/graph.h"
#include "core/quant.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics trip -Wuninitialized (GCC bug 105593; see kernels_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace dizuo {
namespace {

constexpr int64_t kK = 2048;
// 0-4 for every benchmark; 5 (q5_0) for BM_MatMul and BM_GemvL2.
const DType kTypes[] = {DType::F16,  DType::Q8_0, DType::Q4_0,
                        DType::Q4_K, DType::Q6_K, DType::Q5_0};

// A K × N weight: 64 distinct random rows (quantizing K-quants is slow), repeated.
const std::vector<uint8_t>& Weight(DType type, int64_t n, int64_t k = kK) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::vector<uint8_t>> cache;
  std::vector<uint8_t>& w = cache[{static_cast<int>(type), n, k}];
  if (!w.empty()) return w;
  const uint64_t row = *RowBytes(type, static_cast<uint64_t>(k));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(k));
  std::vector<uint8_t> distinct(row * 64);
  for (int r = 0; r < 64; ++r) {
    for (float& v : values) v = dist(rng);
    QuantizeRow(type, values.data(), distinct.data() + r * row, k);
  }
  w.resize(row * static_cast<uint64_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    std::copy_n(distinct.data() + (r % 64) * row, row, w.data() + r * row);
  }
  return w;
}

// repack: the weight as the backend repacks it at load (Backend::PrepareWeight), when its kernel
// table has a layout of its own for the type.
void RunMatMul(benchmark::State& state, DType type, int64_t k, int64_t n, int64_t m, int threads,
               bool repack = false) {
  auto backend = CreateCpuBackend({.threads = threads});
  const std::vector<uint8_t>& weight = Weight(type, n, k);

  Graph graph;
  Tensor* x = graph.NewInput(DType::F32, {k, m}, "x");
  Tensor w = MakeTensor(type, {k, n}, "w");
  w.data = const_cast<uint8_t*>(weight.data());
  std::unique_ptr<Buffer> copy = repack ? backend->PrepareWeight(w) : nullptr;
  backend->FinishPreparing();  // copies are made in the background
  if (repack && copy == nullptr) {
    state.SkipWithError("this CPU's kernel table does not repack this type");
    return;
  }
  Tensor* out = graph.MatMul(x, &w);
  std::vector<float> xs(static_cast<size_t>(k * m)), ys(static_cast<size_t>(n * m));
  std::mt19937 rng(2);
  std::normal_distribution<float> dist;
  for (float& v : xs) v = dist(rng);
  x->data = xs.data();
  out->data = ys.data();

  for (auto _ : state) {
    backend->Compute(graph.nodes());
    backend->Synchronize();
    benchmark::DoNotOptimize(ys.data());
  }
  const double flops = 2.0 * static_cast<double>(m * n * k);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(weight.size()) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(fmt::format("{}{} {}x{} M={} t={} [{}]", Name(type), copy ? " repacked" : "", k, n,
                             m, threads, backend->device().description));
}

void BM_MatMul(benchmark::State& state) {
  RunMatMul(state, kTypes[state.range(0)], kK, state.range(1), state.range(2),
            static_cast<int>(state.range(3)));
}

// Gemma 3 270M's output layer (tied embeddings): 262144 × 640 q8_0, 178 MB, larger than any
// cache, so M = 1 measures how close generation's largest product gets to memory bandwidth.
void BM_GemmaOutput(benchmark::State& state) {
  RunMatMul(state, DType::Q8_0, 640, 262144, state.range(0), static_cast<int>(state.range(1)));
}
BENCHMARK(BM_GemmaOutput)
    ->ArgsProduct({{1, 64}, {1, 2}})
    ->ArgNames({"m", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The thread pool's per-op synchronization: one Barrier() per op boundary (a token of a small
// model runs ~200-400 ops). Reports the time per barrier with the team doing no work between.
void BM_Barrier(benchmark::State& state) {
  cpu::ThreadPool pool(static_cast<int>(state.range(0)));
  constexpr int kBarriers = 1000;
  for (auto _ : state) {
    pool.Run([&](int) {
      for (int i = 0; i < kBarriers; ++i) pool.Barrier();
    });
  }
  state.counters["ns/barrier"] =
      benchmark::Counter(kBarriers * 1e-9, benchmark::Counter::kIsIterationInvariantRate |
                                               benchmark::Counter::kInvert);
}
BENCHMARK(BM_Barrier)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();

// The products of a 125M llama (dim 768, ffn 3072, attn_k/v 256 wide) at a 512-token prompt and
// at generation, 1 thread: K × N = 768 × {768, 256, 3072} and 3072 × 768 (n_k selects the shape).
void BM_MatMul125m(benchmark::State& state) {
  static constexpr int64_t kShapes[][2] = {{768, 768}, {768, 256}, {768, 3072}, {3072, 768}};
  const auto& shape = kShapes[state.range(1)];
  RunMatMul(state, kTypes[state.range(0)], shape[0], shape[1], state.range(2), 1);
}
BENCHMARK(BM_MatMul125m)
    ->ArgsProduct({{1, 2, 3, 4}, {0, 1, 2, 3}, {1, 512}})
    ->ArgNames({"type", "shape", "m"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A 768 × 131072 q4_0 weight (57 MB, past the L3): generation's streaming speed from DRAM for
// rows as short as a 125M llama's.
void BM_Q4_0Dram(benchmark::State& state) {
  RunMatMul(state, DType::Q4_0, 768, 131072, 1, static_cast<int>(state.range(0)));
}
BENCHMARK(BM_Q4_0Dram)
    ->Arg(1)
    ->Arg(2)
    ->ArgName("threads")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Every type of kTypes (f16, q8_0, q4_0, q4_K, q6_K: type 0-4) in the file's layout (repack 0) and
// in the backend's copy made at load (1: q8_0, q4_0, q4_K and q6_K in layouts of their own on
// AVX-512, f16 as it is), for generation (M = 1) and a prompt (M = 512), 1 thread: the 125M
// llama's 768 × 3072 and 3072 × 768, llama 1b's 2048 × 8192 and 8192 × 2048 (shape 0-3), and from
// DRAM 768 × 131072 (57 MB in q4_0 and q4_K, 83 MB in q6_K, 201 MB in f16) and 2048 × 65536 (75 MB
// in q4_K, 110 MB in q6_K, 268 MB in f16) (shape 4, 5). Compare the two with
// --benchmark_enable_random_interleaving=true --benchmark_repetitions=N.
void BM_Repack(benchmark::State& state) {
  static constexpr int64_t kShapes[][2] = {{768, 3072},  {3072, 768},   {2048, 8192},
                                           {8192, 2048}, {768, 131072}, {2048, 65536}};
  const auto& shape = kShapes[state.range(1)];
  RunMatMul(state, kTypes[state.range(0)], shape[0], shape[1], state.range(3), 1,
            state.range(2) != 0);
}
BENCHMARK(BM_Repack)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1, 2, 3, 4, 5}, {0, 1}, {1, 512}})
    ->ArgNames({"type", "shape", "repack", "m"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Generation (M = 1, 1 thread) from DRAM on weights far larger than the L3 (N rows of ~256 MiB in
// all, in the backend's copy made at load) for row lengths K = 768, 1024, 2048, 4096 and 8192:
// how the kernels' prefetching (kernels_avx512.cc, PrefetchMode) streams by row length. Types as
// BM_Repack (f16, q8_0, q4_0, q4_K, q6_K: 0-4); q4_K at K = 768 is not repacked (skipped).
void BM_GemvDram(benchmark::State& state) {
  const DType type = kTypes[state.range(0)];
  const int64_t k = state.range(1);
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(k));
  const auto n = static_cast<int64_t>((uint64_t{256} << 20) / row_bytes / 64 * 64);
  RunMatMul(state, type, k, n, 1, 1, /*repack=*/true);
}
BENCHMARK(BM_GemvDram)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {768, 1024, 2048, 4096, 8192}})
    ->ArgNames({"type", "k"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Generation (M = 1, 1 thread) on a weight that stays in L2 (k × 192·2048/k: 216 KB in q4_0,
// 408 KB in q8_0; f16's 786 KB spills to L3) and is read again on every call: the kernels' speed
// without DRAM, against BM_GemvDram's speed from DRAM. Types as BM_Repack (0-4) and q5_0 (5,
// Gemma 3's most common weight type), in the backend's copy; rows of 2048 and of Gemma 3's 640
// (the same bytes in 3.2 times as many rows: the cost of each row's start and end; the k-quants
// take no 640-long rows).
void BM_GemvL2(benchmark::State& state) {
  const int64_t k = state.range(1);
  RunMatMul(state, kTypes[state.range(0)], k, 192 * 2048 / k, 1, 1, /*repack=*/true);
}
BENCHMARK(BM_GemvL2)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 5, 1), {2048, 768, 640}})
    ->ArgNames({"type", "k"})
    ->UseRealTime();

// Random query rows and `caches` head-major f16 K and V caches of nc visible cells, with a call
// of `rows` query rows (one token) set up on the first cache.
struct AttentionSetup {
  std::vector<float> q, out, scratch;
  std::vector<uint16_t> k, v;
  std::vector<uint8_t> visible;
  cpu::AttentionRows t;

  AttentionSetup(const cpu::Kernels& kern, int rows, int64_t d, int64_t nc, int64_t caches) {
    const int64_t nc16 = (nc + 15) / 16 * 16;
    std::mt19937 rng(3);
    std::normal_distribution<float> dist;
    q.resize(static_cast<size_t>(rows * d));
    for (float& x : q) x = dist(rng);
    out.resize(q.size());
    k.resize(static_cast<size_t>(caches * nc * d));
    v.resize(k.size());
    std::vector<float> tmp(static_cast<size_t>(d));
    for (size_t r = 0; r < k.size(); r += tmp.size()) {
      for (float& x : tmp) x = dist(rng) * 0.2f;
      kern.f32_to_f16(tmp.data(), k.data() + r, d);
      for (float& x : tmp) x = dist(rng);
      kern.f32_to_f16(tmp.data(), v.data() + r, d);
    }
    visible.assign(static_cast<size_t>(nc16), 0);
    std::fill_n(visible.begin(), nc, uint8_t{1});
    scratch.resize(cpu::AttentionRowsScratch(d, rows, nc));
    t.d = d;
    t.tokens = 1;
    t.heads = rows;
    t.q = q.data();
    t.q_token_stride = t.out_token_stride = static_cast<size_t>(rows * d);
    t.q_head_stride = t.out_head_stride = static_cast<size_t>(d);
    t.out = out.data();
    t.nc = nc;
    t.visible = visible.data();
    t.mask_stride = static_cast<size_t>(nc16);
    t.k = k.data();
    t.v = v.data();
    t.k_stride = t.v_stride = static_cast<size_t>(d);
    t.scale = 0.125f;
    t.scratch = scratch.data();
  }
};

// The f16 attention kernel of one KV head at generation (query rows = the KV group: 1 for the
// 125M llama, 4 for llama 1b and Gemma 3), head size d, nc visible cells, 1 thread. Reports the
// time per call; the cells × d K and V values are read once per call.
void BM_AttentionF16(benchmark::State& state) {
  const cpu::Kernels& kern = cpu::SelectKernels();
  if (kern.attention_f16 == nullptr) {
    state.SkipWithError("this CPU's kernel table has no f16 attention");
    return;
  }
  const int heads = static_cast<int>(state.range(0));
  const int64_t d = state.range(1), nc = state.range(2);
  AttentionSetup a(kern, heads, d, nc, 1);
  for (auto _ : state) {
    kern.attention_f16(a.t);
    benchmark::DoNotOptimize(a.out.data());
  }
  state.SetLabel(fmt::format("{} query rows, d {}, {} cells [{}]", heads, d, nc, kern.isa));
}
BENCHMARK(BM_AttentionF16)
    ->ArgsProduct({{1, 4}, {64}, {64, 128, 1024, 4096}})
    ->Args({4, 256, 128})
    ->Args({4, 256, 2048})
    ->Args({96, 64, 512})   // a prompt's work item: 32 tokens × a 125M llama's group of 3 heads
    ->Args({128, 64, 512})  // llama 1b: 32 tokens × a group of 4 heads
    ->ArgNames({"rows", "d", "cells"})
    ->Unit(benchmark::kMicrosecond);

// One generated token's attention as a model runs it: every layer's cache (f16 K and V apart,
// head-major as model/kv_cache.h lays them out; 12 layers of a 125M llama at 2048 cells are 25 MB,
// past the last-level cache), one call per layer and kv head with the group's query rows (the same
// ones each time). Reports the time per token, 1 thread.
void BM_AttentionF16Cache(benchmark::State& state) {
  const cpu::Kernels& kern = cpu::SelectKernels();
  if (kern.attention_f16 == nullptr) {
    state.SkipWithError("this CPU's kernel table has no f16 attention");
    return;
  }
  const int group = static_cast<int>(state.range(0));
  const int64_t n_kv = state.range(1), nc = state.range(2), layers = state.range(3);
  const int64_t d = state.range(4);
  AttentionSetup a(kern, group, d, nc, layers * n_kv);
  for (auto _ : state) {
    for (int64_t c = 0; c < layers * n_kv; ++c) {
      a.t.k = a.k.data() + c * nc * d;
      a.t.v = a.v.data() + c * nc * d;
      kern.attention_f16(a.t);
      benchmark::DoNotOptimize(a.out.data());
    }
  }
  const double bytes = 2.0 * static_cast<double>(a.k.size()) * sizeof(uint16_t);
  state.counters["cache_GBps"] = benchmark::Counter(bytes * static_cast<double>(state.iterations()),
                                                    benchmark::Counter::kIsRate);
  state.SetLabel(fmt::format("{} layers × {} kv heads × {} rows, d {}, {} cells [{}]", layers, n_kv,
                             group, d, nc, kern.isa));
}
BENCHMARK(BM_AttentionF16Cache)
    ->Args({3, 4, 2048, 12, 64})  // 125M llama
    ->Args({3, 4, 2048, 1, 64})   // one layer: 2 MB, in the caches
    ->Args({4, 1, 2048, 1, 256})  // a Gemma 3 270M global layer
    ->ArgNames({"group", "kv", "cells", "layers", "d"})
    ->Unit(benchmark::kMicrosecond);

// The f16 dot tiles as attention runs them where the table has no f16 attention kernel (AVX2):
// q · k for 4 query rows against nc cached key rows of head size d, 4 × 4 per call, 1 thread
// (weight: 0 the kv_dot_f16 tiles, 1 the f16 weights' tiles). Reports the time per pass.
void BM_DotTileF16(benchmark::State& state) {
  const cpu::Kernels& kern = cpu::SelectKernels();
  const cpu::DotTileFn dot = state.range(2) == 0 && kern.kv_dot_f16 != nullptr
                                 ? kern.kv_dot_f16
                                 : kern.dot[static_cast<size_t>(DType::F16)];
  const int64_t d = state.range(0), nc = state.range(1);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  std::vector<float> tmp(static_cast<size_t>(d));
  std::vector<uint16_t> q(static_cast<size_t>(4 * d)), k(static_cast<size_t>(nc * d));
  for (int64_t r = 0; r < 4 + nc; ++r) {
    for (float& x : tmp) x = dist(rng);
    kern.f32_to_f16(tmp.data(), r < 4 ? q.data() + r * d : k.data() + (r - 4) * d, d);
  }
  std::vector<float> scores(static_cast<size_t>(4 * nc));
  const size_t stride = static_cast<size_t>(d) * sizeof(uint16_t);
  for (auto _ : state) {
    for (int64_t c = 0; c < nc; c += cpu::kTileRows) {
      dot(d, k.data() + c * d, stride, cpu::kTileRows, q.data(), stride, 4, scores.data() + c,
          static_cast<size_t>(nc));
    }
    benchmark::DoNotOptimize(scores.data());
  }
  state.SetLabel(fmt::format("4 query rows, d {}, {} cells [{}]", d, nc, kern.isa));
}
BENCHMARK(BM_DotTileF16)
    ->ArgsProduct({{64, 256}, {512}, {0, 1}})
    ->ArgNames({"d", "cells", "weight"})
    ->Unit(benchmark::kMicrosecond);

#if defined(__x86_64__)
// One core reading 512 MiB (huge pages, so from DRAM) one 64-byte load per cache line, with
// kExtra more 64-byte loads per line from a 4 KB buffer that stays in L1, as a generation kernel
// loads its prepared activation at every step. On the 2-vCPU EPYC Zen 4 VM (twenty-second
// session, two repetitions): 0 extra loads 28.2-28.3 GB/s, 1 28.2-28.8, 2 15.5-16.2, 3 16.9-17.2,
// 4 12.0-12.2 (a standalone loop before it: 0 28-29, 2 18-20, 4 13-14, and a chain of 8 more
// arithmetic operations per line instead cost nothing). The loads a kernel issues per weight line
// bound how fast one core streams (docs/benchmarks/HISTORY.md, twenty-second session).
template <int kExtra>
__attribute__((target("avx512f"), noinline)) int64_t StreamWithLoads(const uint8_t* w, size_t bytes,
                                                                     const uint8_t* l1) {
  __m512i acc[kExtra + 1];
  for (__m512i& a : acc) a = _mm512_setzero_si512();
  size_t o = 0;
  for (size_t i = 0; i < bytes; i += 64) {
    acc[0] = _mm512_add_epi32(acc[0], _mm512_load_si512(w + i));
    for (int j = 0; j < kExtra; ++j) {
      acc[j + 1] = _mm512_add_epi32(acc[j + 1], _mm512_load_si512(l1 + o + 64 * j));
    }
    o = (o + 64 * kExtra) & 4095;
  }
  for (int j = 1; j <= kExtra; ++j) acc[0] = _mm512_add_epi32(acc[0], acc[j]);
  return _mm512_reduce_add_epi32(acc[0]);
}
#endif

void BM_StreamLoads(benchmark::State& state) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("needs AVX-512");
    return;
  }
  constexpr size_t kBytes = size_t{512} << 20;
  static uint8_t* const w = [] {
    void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return static_cast<uint8_t*>(nullptr);
    madvise(p, kBytes, MADV_HUGEPAGE);
    auto* b = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < kBytes; ++i) b[i] = static_cast<uint8_t>(i * 131 + 7);
    return b;
  }();
  if (w == nullptr) {
    state.SkipWithError("cannot map 512 MiB");
    return;
  }
  alignas(64) static uint8_t l1[4096 + 256];
  std::memset(l1, 1, sizeof(l1));
  using Fn = int64_t (*)(const uint8_t*, size_t, const uint8_t*);
  constexpr Fn kFns[] = {StreamWithLoads<0>, StreamWithLoads<1>, StreamWithLoads<2>,
                         StreamWithLoads<3>, StreamWithLoads<4>};
  const Fn fn = kFns[state.range(0)];
  for (auto _ : state) benchmark::DoNotOptimize(fn(w, kBytes, l1));
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(kBytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
#else
  state.SkipWithError("x86-64 only");
#endif
}
BENCHMARK(BM_StreamLoads)
    ->DenseRange(0, 4)
    ->ArgName("extra_loads")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void Args(benchmark::internal::Benchmark* b) {
  for (int t = 0; t < static_cast<int>(std::size(kTypes)); ++t) {
    for (int64_t n : {kK, 4 * kK}) {
      for (int64_t m : {1, 64, 512}) {
        for (int threads : {1, 2}) b->Args({t, n, m, threads});
      }
    }
  }
  b->ArgNames({"type", "n", "m", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_MatMul)->Apply(Args);

}  // namespace
}  // namespace dizuo

BENCHMARK_MAIN();
