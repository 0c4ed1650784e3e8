// AVX-512 kernels for f16 weights (activations rounded to f16 first, ActivationType(F16) == F16,
// as llama.cpp does). Compiled with the same flags as kernels_avx512.cc; MakeAvx512() installs
// them with AddAvx512F16Kernels(). Helpers live in an anonymous namespace (see kernels_avx512.cc).
//
// Generation (dot tiles, M = 1): a tile reads its weight rows one after another, each row one
// sequential stream, converted 16 halves at a time with vcvtph2ps into two accumulators (even and
// odd 16-element blocks). Interleaving 4 rows (the AVX2 tile) measured 11 GB/s on rows of 4 KB
// streamed from DRAM on an EPYC Zen 5, one row at a time 32 GB/s (the plain read speed is 37).
// Each step also prefetches the cache line kDotPrefetchBytes ahead (see there): llama 1b f16
// generation with 1 thread went from ~14.0 to ~16.4 tokens/s (median of alternated runs).
//
// Prompt batches (GemmFns): activation rows are packed as f32 (the f16-rounded values, converted
// once), so only the weights need vcvtph2ps inside the loop. A register tile of 4 weight rows × 6
// activation rows keeps 24 zmm accumulators in dot-product form along K; every step loads 4
// converted weight vectors and 6 activation vectors for 24 FMAs, and the accumulators are summed
// horizontally at the end, four at a time (Reduce4). A call takes a whole work item (32 weight
// rows × up to 32 activation rows) and runs each activation tile against all 8 weight quads.
// On an EPYC Zen 5 (zmm FMA peak 260 GFLOP/s per core, measured with an asm loop) a standalone
// sweep of such calls runs at 226-236 GFLOP/s for K = 768 … 5632 (87-91% of peak), the whole
// MATMUL at 175-205 GFLOP/s (activations converted and packed, weights from L3). Measured and
// not kept: converting the weight rows to f32 once per call (with 4 rows per call: 20% slower at
// K ≥ 2048, they no longer fit L1 beside the activation tile), K-blocking with the accumulators
// spilled between blocks of 512 or 1024 (3-8% slower); with f32 weights (no vcvtph2ps) the tile
// is ~10% faster.
//
// Each output's accumulators see the same operations in the same order whatever the tile shape,
// so results do not depend on the tiling or the thread split.
// GCC 12's AVX-512 intrinsics trip -Wuninitialized (GCC bug 105593; see kernels_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels.h"

namespace dizuo::cpu {
namespace {

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

// A dot-tile step (kDotAccs · 16 halves = one 64-byte line) prefetches (prefetcht0) the weight
// line this many bytes ahead; rows are contiguous, so near a row's end this reaches into the
// next row the tile or the thread's share reads next. Measured on llama 1b f16 generation, 1
// thread, EPYC Zen 5 with another benchmark running beside (medians of 3-4 alternated runs,
// tokens/s; baseline without prefetch 12.5-14.0): 1 KB and 512 B slower, 4 KB +13%, 8 KB
// +11-17%, 16 KB +10%, 32 KB +6%; prefetchnta or prefetcht1 at 8 KB 2-5% below prefetcht0.
// Also measured and not kept: 4 accumulators (no better than 2 with the prefetch), 2 or 4 rows
// read together (8-10 tokens/s against 13.6 for one row at a time, without prefetch).
constexpr int64_t kDotPrefetchBytes = 8192;
static_assert(kDotAccs * 16 * 2 == 64, "one prefetch per step covers one 64-byte line");

// out[c · os] = dot(weight row w, activation row c) for c < NA: kDotAccs · 16 elements per step,
// block j of a step into accumulator j; the tail (t < kDotAccs · 16 elements) is loaded masked
// into the same accumulators (block j gets elements 16j .. min(t, 16j + 16)). The weight row is
// converted once per step for every activation row.
template <int NA>
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
    _mm_prefetch(reinterpret_cast<const char*>(w + i) + kDotPrefetchBytes, _MM_HINT_T0);
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

// DotTileFn: weight rows one after another (one sequential stream during generation).
void DotF16(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
            float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int r = 0; r < nw; ++r) {
    const auto* wr = reinterpret_cast<const uint16_t*>(wb + r * ws);
    switch (na) {
      case 1:
        RowTimesCols<1>(k, wr, ab, as, out + r, os);
        break;
      case 2:
        RowTimesCols<2>(k, wr, ab, as, out + r, os);
        break;
      case 3:
        RowTimesCols<3>(k, wr, ab, as, out + r, os);
        break;
      default:
        RowTimesCols<4>(k, wr, ab, as, out + r, os);
        break;
    }
  }
}

// ---- prompt GEMM
// ---------------------------------------------------------------------------------

// Packed activation rows: f32, padded with zeros to a multiple of 16 elements; a quad is 4 such
// rows one after another, so activation row c of consecutive quads starts at c · PaddedK(k).
inline int64_t PaddedK(int64_t k) { return (k + 15) / 16 * 16; }

size_t F16PackBytes(int64_t k) { return static_cast<size_t>(4 * PaddedK(k)) * sizeof(float); }

void F16Pack(int64_t k, const void* a, size_t as, int na, void* dst) {
  const int64_t kp = PaddedK(k);
  auto* d = static_cast<float*>(dst);
  for (int c = 0; c < 4; ++c, d += kp) {
    if (c >= na) {
      std::memset(d, 0, static_cast<size_t>(kp) * sizeof(float));
      continue;
    }
    const auto* row = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(a) + c * as);
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) _mm512_storeu_ps(d + i, LoadHalves(row + i));
    if (i < k) _mm512_storeu_ps(d + i, LoadHalvesMasked(row + i, k - i));
  }
}

// The horizontal sums of v0..v3 (lanes 0..3), each by the same tree whatever the other vectors
// are: 4 outputs for about a third of the instructions of four _mm512_reduce_add_ps.
inline __m128 Reduce4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  // Per 128-bit block: [v0 e0+e2, v1 e0+e2, v0 e1+e3, v1 e1+e3] (and the same for v2, v3).
  const __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
  const __m512 b = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
  // Per block: [v0, v1, v2, v3] each (e0+e2) + (e1+e3).
  const __m512 c = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
  // The four blocks: (b0 + b2) + (b1 + b3).
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(c), hi);
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// out[c · os + r] for NW weight rows × NA packed activation rows (a: the first one): one
// accumulator per output, 16 elements per step; the weight tail (k not a multiple of 16) is
// loaded masked, the activation padding is zero.
template <int NW, int NA>
void GemmTile(int64_t k, const uint8_t* w, size_t ws, const float* a, int64_t kp, float* out,
              size_t os) {
  __m512 acc[NW][NA];
  for (int r = 0; r < NW; ++r) {
    for (int c = 0; c < NA; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  const uint16_t* wr[NW];
  for (int r = 0; r < NW; ++r) wr[r] = reinterpret_cast<const uint16_t*>(w + r * ws);
  auto step = [&](int64_t i, const __m512* wv) {
    for (int c = 0; c < NA; ++c) {
      const __m512 av = _mm512_loadu_ps(a + c * kp + i);
      for (int r = 0; r < NW; ++r) acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);
    }
  };
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[NW];
    for (int r = 0; r < NW; ++r) wv[r] = LoadHalves(wr[r] + i);
    step(i, wv);
  }
  if (i < k) {
    __m512 wv[NW];
    for (int r = 0; r < NW; ++r) wv[r] = LoadHalvesMasked(wr[r] + i, k - i);
    step(i, wv);
  }
  for (int c = 0; c < NA; ++c) {
    const __m512 z = _mm512_setzero_ps();
    const __m128 sums =
        Reduce4(acc[0][c], NW > 1 ? acc[1][c] : z, NW > 2 ? acc[2][c] : z, NW > 3 ? acc[3][c] : z);
    _mm_mask_storeu_ps(out + c * os, static_cast<__mmask8>((1u << NW) - 1), sums);
  }
}

// Weight rows per call: a whole MATMUL work item (32 rows), so each activation tile is reused by
// 8 weight quads while it sits in L1. Standalone sweep of 32 × 32 rows, 1 thread, CPU time: 4 rows
// per call 197/198/189 GFLOP/s at K = 768/2048/3072, 32 rows per call 213/226/225.
constexpr int kF16GemmRows = 32;

// NW weight rows × the NA activation rows at a (one tile).
template <int NA>
void GemmTileRows(int64_t k, const uint8_t* w, size_t ws, int nw, const float* a, int64_t kp,
                  float* out, size_t os) {
  switch (nw) {
    case 1:
      return GemmTile<1, NA>(k, w, ws, a, kp, out, os);
    case 2:
      return GemmTile<2, NA>(k, w, ws, a, kp, out, os);
    case 3:
      return GemmTile<3, NA>(k, w, ws, a, kp, out, os);
    default:
      return GemmTile<4, NA>(k, w, ws, a, kp, out, os);
  }
}

// Activation tiles outside, weight quads inside: the tile's activation rows stay in L1 while the
// call's weight rows (up to kF16GemmRows) stream past them from L2.
void F16Gemm(int64_t k, const void* w, size_t ws, int nw, const void* packed, int na, float* out,
             size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const float*>(packed);
  const int64_t kp = PaddedK(k);
  for (int c = 0; c < na;) {
    // Tiles of 6 activation rows; a remainder of 2 after at least one 6 becomes 4 + 4.
    const int left = na - c;
    const int take = left == 8 ? 4 : std::min(left, 6);
    const float* ac = a + c * kp;
    for (int r = 0; r < nw; r += 4) {
      const int rows = std::min(4, nw - r);
      const uint8_t* wr = wb + r * ws;
      float* o = out + c * os + r;
      switch (take) {
        case 1:
          GemmTileRows<1>(k, wr, ws, rows, ac, kp, o, os);
          break;
        case 2:
          GemmTileRows<2>(k, wr, ws, rows, ac, kp, o, os);
          break;
        case 3:
          GemmTileRows<3>(k, wr, ws, rows, ac, kp, o, os);
          break;
        case 4:
          GemmTileRows<4>(k, wr, ws, rows, ac, kp, o, os);
          break;
        case 5:
          GemmTileRows<5>(k, wr, ws, rows, ac, kp, o, os);
          break;
        default:
          GemmTileRows<6>(k, wr, ws, rows, ac, kp, o, os);
          break;
      }
    }
    c += take;
  }
}

}  // namespace

// Installs the f16-weight entries into the AVX-512 table (called by MakeAvx512()).
void AddAvx512F16Kernels(Kernels* k) {
  k->dot[static_cast<size_t>(DType::F16)] = DotF16;
  k->gemm[static_cast<size_t>(DType::F16)] = {F16PackBytes, F16Pack, F16Gemm, kF16GemmRows};
}

}  // namespace dizuo::cpu
