// AVX-512 kernels for f16 weights (activations rounded to f16 first, ActivationType(F16) == F16,
// as llama.cpp does). Compiled with the same flags as kernels_avx512.cc; MakeAvx512() installs
// them with AddAvx512F16Kernels(). Helpers live in an anonymous namespace (see kernels_avx512.cc).
//
// Generation (dot tiles, M = 1): a tile reads its weight rows one after another, each row one
// sequential stream, converted 16 halves at a time with vcvtph2ps into two accumulators (even and
// odd 16-element blocks). Interleaving 4 rows (the AVX2 tile) measured 11 GB/s on rows of 4 KB
// streamed from DRAM on an EPYC Zen 5, one row at a time 32 GB/s (the plain read speed is 37).
// Each step also prefetches a cache line ahead (kDotPrefetchBytes, see there): llama 1b f16
// generation with 1 thread went from ~14.0 to ~16.4 tokens/s (median of alternated runs).
//
// Prompt batches (GemmFns with weight repacking): the weights are converted to f32 once per work
// item instead of inside the loop. MATMUL gives a thread one chunk of 32 weight rows with a group
// of activation rows (256 rows, or as many 256-row groups as fit kF16GroupBytes of packed
// quads: 2048 rows at K = 2048, 512 at K = 8192); F16PackWeights converts the chunk into the
// thread's scratch as a K-major panel (panel[32·i + r], 256 KB at K = 2048, 1 MB at K = 8192), and
// F16Pack stores the activation rows once per MATMUL as f32 quads interleaved along K (quad[4·i +
// c]). The micro-tile is an outer product, 32 weight rows (2 zmm) × 12 activation rows = 24
// accumulators: per element 2 panel loads and 12 broadcasts for 24 FMAs, no vcvtph2ps and no
// horizontal sums (each accumulator lane is one output, summed in element order from 0, so results
// do not depend on the tiling or the thread split). Converting a chunk (vcvtph2ps + a 16 × 16
// transpose) costs about as much as 4-8 activation rows of FMAs, hence the large groups and
// kF16GemmMinRows.
//
// The chunk conversion (eighteenth session, same Zen 4): it read each row 16 halves (half a
// cache line) per step, but the 32 rows are K · 2 bytes apart, a multiple of 4 KB at K = 2048 and
// 8192, so their lines share one L1 set and were evicted before their second half was read; it
// took 11% of the 1b pp512 GEMM time (perf). Reading whole lines (F16PackWeights) made it 4%,
// and groups sized by kF16GroupBytes, so a chunk is converted once per pp512 instead of twice,
// 2.4%. The 1b MATMULs went from 100-103 to 108-112 GFLOP/s (`--profile`; the FMA peak
// measured 116-117 this session, as below). bench/ab-dizuo pp512, 3 rounds, 19feb11 ÷ this: 1b
// 0.92× (1 thread) / 0.93× (2), 125m 0.96× / 0.97×; the groups alone: 1b 1.00× / 0.99×, 125m 0.97×
// / 0.97×. Prefetching the rows' next lines in the conversion (256 or 1024 bytes ahead) was slower
// (56.1-56.3 and 55.3-55.7 tokens/s against 56.6). The AVX2 table keeps 256-row groups: its f16
// GEMM on this host ran 0.94-0.97× as fast with 16 MB groups, and the quantized GEMMs 0.95-0.99×
// (their activation groups fit L2 otherwise).
//
// Measured on a 2-core EPYC Zen 4 (family 25 model 17: zmm FMAs run on 256-bit units, peak 115
// GFLOP/s per core measured with 12 independent FMA chains, half the Zen 5 figure below, so the
// old kernel's 1b pp512 gave 44-53 tokens/s with 1 thread instead of ~106 on Zen 5), alternating
// with the previous kernel (medians of all rounds):
//   llama 1b f16 pp512, 1 thread, 11 rounds: 49.7 vs 48.0 tokens/s (+3.5%; per set of rounds
//   +7%, +1.5%, +3.5%); 2 threads, 12 rounds: 99.9 vs 102.1 (-2%; per set +9%, 0%, -3%, +2%).
//   125m f16 pp512, 3 rounds: 1 thread 442 vs 393 (+12%), 2 threads 847 vs 788 (+7.5%).
//   cpu_kernels_bench MATMUL K = 2048, M = 512, 1 thread: N = 2048 89-96 vs 77-82 GFLOP/s (that
//   matrix is under 16 MB, so it now also gets the 256-row groups); N = 8192 87-103 vs 86-99.
// So the gain is clear where the activations stay in cache (125m, K = 768) and small or none on
// 1b, where every chunk streams its group's packed activations (2 MB at K = 2048, 8 MB at K =
// 8192) from L3, both threads at once; a BLIS-style K-block order that keeps an activation block
// in L2 across chunks is the next thing to try.
// Measured and not kept (same conditions): K-blocks of 128 / 256 / 512 elements (kernels bench
// as above, N = 8192: 80-86 / 86-94 / 96-98 GFLOP/s against 95-103 without blocking; presumably
// the activation streams from L3 restart too often); software prefetch of the activation quads
// 512-4096 bytes ahead (within the noise); chunks of 64 rows (two panels per item, so each
// activation tile serves 64 weight rows: 1b 1 thread 49.2 vs 48.7 tokens/s, 2 threads 99.8 vs
// 100.3, within the noise, and 2 MB of scratch per thread at K = 8192); groups of 128 activation
// rows (1b, 2 threads: 94.7 vs 100.9).
//
// The previous kernel, for reference: dot-product form along K, 4 weight rows × 6 activation rows,
// each 16-element step converting 4 weight vectors with vcvtph2ps for 24 FMAs: 226-236 GFLOP/s on
// a standalone sweep (87-91% of the 260 GFLOP/s zmm FMA peak per core), the whole MATMUL 175-205;
// with f32 weights that tile was ~10% faster, the gain the repacking aimed at.

// GCC 12's AVX-512 intrinsics trip -Wuninitialized (GCC bug 105593; see kernels_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_avx512_ops.h"

namespace dizuo::cpu {
namespace {

using avx512::TransposeBlocks;

// 16 halves from p (only the first n < 16 when masked; the rest read as +0).
inline __m512 LoadHalves(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 LoadHalvesMasked(const uint16_t* p, int64_t n) {
  const auto mask = static_cast<__mmask16>((1u << n) - 1);
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
}

// ---- dot tiles (generation) ---------------------------------------------------------------------

// Accumulators per output of a dot tile: consecutive 16-element blocks go to them in turn. 1, 2
// and 4 measured the same within the noise on llama 1b f16 generation (12.3-12.7 tokens/s with 1
// thread, about 82% of the 32 GB/s read bandwidth); 2 leaves the FMA latency hidden when the
// weights come from cache.
constexpr int kDotAccs = 2;

// A dot-tile step (kDotAccs · 16 halves = one 64-byte line) prefetches the weight line
// kDotPrefetchBytes<kToL2> ahead; rows are contiguous, so near a row's end this reaches into the
// next row the tile or the thread's share reads next.
// - Zen 5 and other CPUs with full 512-bit units: 8 KB ahead into L1 (prefetcht0). Measured on
//   llama 1b f16 generation, 1 thread, EPYC Zen 5 with another benchmark running beside (medians
//   of 3-4 alternated runs, tokens/s; baseline without prefetch 12.5-14.0): 1 KB and 512 B slower,
//   4 KB +13%, 8 KB +11-17%, 16 KB +10%, 32 KB +6%; prefetchnta or prefetcht1 at 8 KB 2-5% below
//   prefetcht0. Also measured and not kept: 4 accumulators (no better than 2 with the prefetch), 2
//   or 4 rows read together (8-10 tokens/s against 13.6 for one row at a time, without prefetch).
// - Where 512-bit instructions run on 256-bit units (Zen 4): 32 KB ahead into L2 (prefetcht1; the
//   L1 is left to the hardware prefetcher), as kernels_avx512.cc's kFar mode does. Until the eighth
//   session no software prefetch did best there (2-core EPYC Zen 4, tg32, medians of alternated
//   paired ratios: none ÷ 4 KB into L1 125m 1 thread 1.08×, 2 threads 1.08×, 1b 1.00× / 1.02×).
//   The far prefetch against none (bench/ab-dizuo --dizuo-b, tg32, 3 rounds): 1b 1 thread 1.09×
//   (1.07-1.12), 2 threads 1.14× (0.72-1.26); 125m 1 thread 1.00×, 2 threads 0.87× (0.85-0.94,
//   again 0.87× over 5 rounds of tg64) while the host's 2-thread probe read only 36 GB/s. Earlier
//   the same session, on a less starved host: 1b 1.10-1.15× / 1.07-1.09×, 125m 1.01-1.05× / 1.00×
//   (3 rounds, a build with the same prefetch behind a run-time branch), and this code 1b 1.10×,
//   125m 1.04× with 1 thread (2 rounds). So with 2 threads it depends on the memory bus.
template <bool kToL2>
constexpr int64_t kDotPrefetchBytes = kToL2 ? 32768 : 8192;
const bool kDotPrefetchToL2 = HostCpu().avx512_on_256bit_units;
static_assert(kDotAccs * 16 * 2 == 64, "one prefetch per step covers one 64-byte line");

// out[c · os] = dot(weight row w, activation row c) for c < NA: kDotAccs · 16 elements per step,
// block j of a step into accumulator j; the tail (t < kDotAccs · 16 elements) is loaded masked
// into the same accumulators (block j gets elements 16j .. min(t, 16j + 16)). The weight row is
// converted once per step for every activation row.
// kToL2: prefetch into L2 (Zen 4) rather than L1 (a template argument: GCC 12 can drop a prefetch
// guarded by a run-time flag inside the loop; see kernels_avx512.cc GemvRows).
template <int NA, bool kToL2>
void RowTimesCols(int64_t k, const uint16_t* w, const uint8_t* a, size_t as, float* out,
                  size_t os) {
  constexpr int U = kDotAccs;
  __m512 acc[NA][U];
  for (int c = 0; c < NA; ++c) {
    for (int u = 0; u < U; ++u) acc[c][u] = _mm512_setzero_ps();
  }
  const uint16_t* ar[NA];
  for (int c = 0; c < NA; ++c) ar[c] = reinterpret_cast<const uint16_t*>(a + c * as);
  int64_t i = 0;
  for (; i + 16 * U <= k; i += 16 * U) {
    if constexpr (kToL2) {
      _mm_prefetch(reinterpret_cast<const char*>(w + i) + kDotPrefetchBytes<true>, _MM_HINT_T1);
    } else {
      _mm_prefetch(reinterpret_cast<const char*>(w + i) + kDotPrefetchBytes<false>, _MM_HINT_T0);
    }
    for (int u = 0; u < U; ++u) {
      const __m512 wv = LoadHalves(w + i + 16 * u);
      for (int c = 0; c < NA; ++c) {
        acc[c][u] = _mm512_fmadd_ps(wv, LoadHalves(ar[c] + i + 16 * u), acc[c][u]);
      }
    }
  }
  for (int u = 0; u < U && i < k; ++u, i += 16) {
    const int64_t t = std::min<int64_t>(k - i, 16);
    const __m512 wv = LoadHalvesMasked(w + i, t);
    for (int c = 0; c < NA; ++c) {
      acc[c][u] = _mm512_fmadd_ps(wv, LoadHalvesMasked(ar[c] + i, t), acc[c][u]);
    }
  }
  for (int c = 0; c < NA; ++c) {
    for (int u = 1; u < U; ++u) acc[c][0] = _mm512_add_ps(acc[c][0], acc[c][u]);
    out[c * os] = _mm512_reduce_add_ps(acc[c][0]);
  }
}

template <bool kToL2>
void RowTimesColsN(int64_t k, const uint16_t* w, const uint8_t* a, size_t as, int na, float* out,
                   size_t os) {
  switch (na) {
    case 1:
      return RowTimesCols<1, kToL2>(k, w, a, as, out, os);
    case 2:
      return RowTimesCols<2, kToL2>(k, w, a, as, out, os);
    case 3:
      return RowTimesCols<3, kToL2>(k, w, a, as, out, os);
    default:
      return RowTimesCols<4, kToL2>(k, w, a, as, out, os);
  }
}

// DotTileFn: weight rows one after another (one sequential stream during generation).
void DotF16(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
            float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int r = 0; r < nw; ++r) {
    const auto* wr = reinterpret_cast<const uint16_t*>(wb + r * ws);
    if (kDotPrefetchToL2) {
      RowTimesColsN<true>(k, wr, ab, as, na, out + r, os);
    } else {
      RowTimesColsN<false>(k, wr, ab, as, na, out + r, os);
    }
  }
}

// ---- prompt GEMM ------------------------------------------------------------------------------

// Packed activation quads: 4 rows interleaved along K as f32 (the f16-rounded values, converted
// once), quad[4·i + c] = row c, element i; missing rows are zeros. A micro-tile broadcasts one
// element of each of its activation rows per step, so every row is one sequential stream.
size_t F16PackBytes(int64_t k) { return static_cast<size_t>(4 * k) * sizeof(float); }

// r0..r3 (16 elements of 4 rows), in place: block b of r_e becomes rows 0..3 of element 4b + e.
inline void InterleaveInBlocks(__m512& r0, __m512& r1, __m512& r2, __m512& r3) {
  const __m512 a0 = _mm512_unpacklo_ps(r0, r1), a1 = _mm512_unpackhi_ps(r0, r1);
  const __m512 a2 = _mm512_unpacklo_ps(r2, r3), a3 = _mm512_unpackhi_ps(r2, r3);
  r0 = _mm512_shuffle_ps(a0, a2, 0x44);
  r1 = _mm512_shuffle_ps(a0, a2, 0xEE);
  r2 = _mm512_shuffle_ps(a1, a3, 0x44);
  r3 = _mm512_shuffle_ps(a1, a3, 0xEE);
}

// r0..r3 (16 elements of 4 rows) → 4 vectors of 4 elements × 4 rows, element-major: out j holds
// elements 4j .. 4j + 3, each as [row 0, row 1, row 2, row 3].
inline void Interleave4(__m512& r0, __m512& r1, __m512& r2, __m512& r3) {
  InterleaveInBlocks(r0, r1, r2, r3);
  TransposeBlocks(r0, r1, r2, r3);
}

void F16Pack(int64_t k, const void* a, size_t as, int na, void* dst) {
  auto* d = static_cast<float*>(dst);
  const uint16_t* row[4];
  for (int c = 0; c < 4; ++c) {
    row[c] = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(a) + c * as);
  }
  for (int64_t i = 0; i < k; i += 16) {
    const int64_t t = std::min<int64_t>(16, k - i);
    __m512 v[4];
    for (int c = 0; c < 4; ++c) {
      v[c] = c >= na ? _mm512_setzero_ps()
                     : (t == 16 ? LoadHalves(row[c] + i) : LoadHalvesMasked(row[c] + i, t));
    }
    Interleave4(v[0], v[1], v[2], v[3]);
    for (int j = 0; j < 4 && 4 * j < t; ++j) {
      const int64_t n = std::min<int64_t>(4, t - 4 * j) * 4;
      _mm512_mask_storeu_ps(d + 4 * (i + 4 * j), static_cast<__mmask16>((1u << n) - 1), v[j]);
    }
  }
}

// Weight rows per work item (chunk), packed as one panel that a micro-tile covers with two zmm of
// 16 rows (chunks of 64 rows measured no faster, see the top of the file).
constexpr int kF16GemmRows = 32;

// Packed weight chunk: f32, K-major, panel[32·i + r] = row r, element i (rows ≥ nw are zeros).
size_t F16WeightPackBytes(int64_t k) {
  return static_cast<size_t>(kF16GemmRows * k) * sizeof(float);
}

// 16 rows of 16 elements → 16 vectors of one element each over the 16 rows (in place).
inline void Transpose16(__m512 v[16]) {
  // Block b of v[4g + e]: rows 4g .. 4g + 3 of element 4b + e.
  for (int g = 0; g < 4; ++g)
    InterleaveInBlocks(v[4 * g], v[4 * g + 1], v[4 * g + 2], v[4 * g + 3]);
  __m512 a[16];
  for (int e = 0; e < 4; ++e) {
    __m512 w0 = v[e], w1 = v[4 + e], w2 = v[8 + e], w3 = v[12 + e];
    TransposeBlocks(w0, w1, w2, w3);  // w_b: element 4b + e of all 16 rows
    a[e] = w0;
    a[4 + e] = w1;
    a[8 + e] = w2;
    a[12 + e] = w3;
  }
  for (int i = 0; i < 16; ++i) v[i] = a[i];
}

// Elements i .. i + t - 1 (t ≤ 16) of the 16 rows of row group g (v[r], zeros past the chunk's
// rows; v is overwritten), transposed into the panel: d[kF16GemmRows · (i + j) + 16 · g + r], j <
// t.
inline void PackBlock(__m512 v[16], int t, int64_t i, int g, float* d) {
  Transpose16(v);
  for (int j = 0; j < t; ++j) _mm512_storeu_ps(d + kF16GemmRows * (i + j) + 16 * g, v[j]);
}

// The 16 rows of a group are read one 64-byte line (32 halves) each per step, both halves used at
// once: the rows are K · 2 bytes apart (a multiple of 4 KB for K = 2048 or 8192), so their lines
// share an L1 set, and 16 halves per row and step (the previous form) had the line evicted before
// its second half was read.
void F16PackWeights(int64_t k, const void* w, size_t ws, int nw, void* dst) {
  auto* d = static_cast<float*>(dst);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int g = 0; g < kF16GemmRows / 16; ++g) {
    const uint8_t* base = wb + 16 * g * ws;
    const int n = std::clamp(nw - 16 * g, 0, 16);
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
      __m512i line[16];
      for (int r = 0; r < 16; ++r) {
        line[r] = r < n ? _mm512_loadu_si512(base + r * ws + 2 * i) : _mm512_setzero_si512();
      }
      __m512 v[16];
      for (int r = 0; r < 16; ++r) v[r] = _mm512_cvtph_ps(_mm512_castsi512_si256(line[r]));
      PackBlock(v, 16, i, g, d);
      for (int r = 0; r < 16; ++r) v[r] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(line[r], 1));
      PackBlock(v, 16, i + 16, g, d);
    }
    for (; i < k; i += 16) {
      const int64_t t = std::min<int64_t>(16, k - i);
      __m512 v[16];
      for (int r = 0; r < 16; ++r) {
        const auto* row = reinterpret_cast<const uint16_t*>(base + r * ws);
        v[r] = r >= n ? _mm512_setzero_ps()
                      : (t == 16 ? LoadHalves(row + i) : LoadHalvesMasked(row + i, t));
      }
      PackBlock(v, static_cast<int>(t), i, g, d);
    }
  }
}

// K-block of the GEMM: every micro-tile runs over elements [k0, k0 + kF16GemmKBlock) before the
// next block, its accumulators stored to out and reloaded (exactly) between blocks, so the
// chunk's block (256 KB) stays in L2 while the activation group streams past.
// Smaller blocks measured slower (see the top of the file); at K ≤ 2048 this is no blocking, at
// K = 8192 (ffn_down) it keeps the block in L2 (not measured separately).
constexpr int64_t kF16GemmKBlock = 2048;

// Micro-tile: the chunk's 32 weight rows (2 zmm) × NA activation rows (the quads from a), 2 · NA
// accumulators; per element i, 2 loads and NA broadcasts for 2 · NA FMAs. Each output is one
// accumulator lane that sees out's previous value (continue) or 0, then one FMA per element in
// element order.
template <int NA>
void GemmMicroTile(int64_t k0, int64_t k1, bool cont, const float* w, const float* a, size_t quad,
                   int nw, float* out, size_t os) {
  const auto m0 = static_cast<__mmask16>(nw >= 16 ? 0xFFFFu : (1u << nw) - 1);
  const auto m1 = static_cast<__mmask16>(nw >= 32 ? 0xFFFFu : nw > 16 ? (1u << (nw - 16)) - 1 : 0);
  __m512 acc[NA][2];
  for (int c = 0; c < NA; ++c) {
    acc[c][0] = cont ? _mm512_maskz_loadu_ps(m0, out + c * os) : _mm512_setzero_ps();
    acc[c][1] = cont ? _mm512_maskz_loadu_ps(m1, out + c * os + 16) : _mm512_setzero_ps();
  }
  const float* q[(NA + 3) / 4];
  for (int j = 0; j < (NA + 3) / 4; ++j) q[j] = a + j * quad;
  for (int64_t i = k0; i < k1; ++i) {
    const __m512 w0 = _mm512_loadu_ps(w + kF16GemmRows * i);
    const __m512 w1 = _mm512_loadu_ps(w + kF16GemmRows * i + 16);
    for (int c = 0; c < NA; ++c) {
      const __m512 b = _mm512_set1_ps(q[c / 4][4 * i + c % 4]);
      acc[c][0] = _mm512_fmadd_ps(w0, b, acc[c][0]);
      acc[c][1] = _mm512_fmadd_ps(w1, b, acc[c][1]);
    }
  }
  for (int c = 0; c < NA; ++c) {
    _mm512_mask_storeu_ps(out + c * os, m0, acc[c][0]);
    _mm512_mask_storeu_ps(out + c * os + 16, m1, acc[c][1]);
  }
}

// Activation rows per micro-tile: 2 × 12 accumulators fill 24 of the 32 zmm registers.
constexpr int kF16TileRows = 12;

// GemmMicroTile<na>, by na - 1 (na ≤ kF16TileRows).
template <size_t... I>
constexpr auto MicroTiles(std::index_sequence<I...>) {
  return std::array{&GemmMicroTile<static_cast<int>(I) + 1>...};
}
constexpr auto kMicroTiles = MicroTiles(std::make_index_sequence<kF16TileRows>());

// GemmFns::gemm on a packed weight chunk (F16PackWeights): K-blocks outside, then micro-tiles of
// up to 12 activation rows (3 quads) against the chunk's panel.
void F16Gemm(int64_t k, const void* w, size_t /*ws*/, int nw, const void* packed, int na,
             float* out, size_t os) {
  const auto* wp = static_cast<const float*>(w);
  const auto* a = static_cast<const float*>(packed);
  const size_t quad = static_cast<size_t>(4 * k);
  for (int64_t k0 = 0; k0 < k; k0 += kF16GemmKBlock) {
    const int64_t k1 = std::min(k, k0 + kF16GemmKBlock);
    for (int c = 0; c < na; c += kF16TileRows) {
      kMicroTiles[static_cast<size_t>(std::min(kF16TileRows, na - c) - 1)](
          k0, k1, k0 > 0, wp, a + (c / 4) * quad, quad, nw, out + c * os, os);
    }
  }
}

// Smallest batch for the packed path: converting a 32-row chunk costs about as much as 4-8
// activation rows of FMAs, so smaller batches keep the dot tiles. Measured on a 2-core EPYC Zen 4,
// 1 thread, tokens/s with the packed path from 4 rows against the dot tiles only (2 rounds):
// 125m f16 pp12 197/195 vs 226/233, pp16 236/235 vs 232/236, pp24 290/288 vs 238/240;
// 1b f16 (threshold 16 against dot tiles only) pp12 23.7/23.6 vs 25.5/22.8, pp16 27.2/27.4 vs
// 26.1/24.3, pp24 33.2/33.1 vs 24.5/25.7. The crossover was at about 16 rows. With the
// whole-line conversion (eighteenth session) it moved down for matrices from DRAM: 1b f16, 1
// thread, `dizuo bench -r 5`, 2 alternations, GEMM from 8 rows vs from 16: pp8 22.5-24.0 vs
// 25.3-25.8, pp10 26.7-27.6 vs 24.8-25.1, pp12 29.3-29.9 vs 25.5-25.6, pp16 33.8-33.9 vs
// 33.8-34.2; 125m f16 (its matrices in L3): pp10 196-199 vs 209-215, pp12 217-219 vs 224-229.
// 12 takes the 1b gain and leaves 125m 3% slower at 12-15 rows.
// GemmFns::group_bytes: the packed activation quads (4 KB per row at K = 1024) a work item
// covers with one converted chunk; see the top of the file.
constexpr size_t kF16GroupBytes = size_t{16} << 20;
constexpr int kF16GemmMinRows = 12;

}  // namespace

// Installs the f16-weight entries into the AVX-512 table (called by MakeAvx512()).
void AddAvx512F16Kernels(Kernels* k) {
  k->dot[static_cast<size_t>(DType::F16)] = DotF16;
  // Generation runs DotF16 (it reads rows in turn itself); the AVX2 table's gemv, copied with the
  // rest of that table, would not give its results bit for bit.
  k->gemv[static_cast<size_t>(DType::F16)] = nullptr;
  // Attention's q · k tiles are DotF16 too (the AVX2 table's would differ).
  k->kv_dot_f16 = nullptr;
  k->gemm[static_cast<size_t>(DType::F16)] = {
      F16PackBytes,       F16Pack,        F16Gemm,         kF16GemmRows,
      F16WeightPackBytes, F16PackWeights, kF16GemmMinRows, kF16GroupBytes};
}

}  // namespace dizuo::cpu
