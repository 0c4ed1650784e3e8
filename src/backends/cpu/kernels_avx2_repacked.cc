// AVX2 layouts of the CPU backend's own, into which weights are copied at load (kernels.h
// RepackFns). Compiled with the AVX2 flags of kernels_avx2.cc; MakeAvx2() installs them with
// AddAvx2RepackedKernels(). Helpers live in an anonymous namespace (see kernels_avx512.cc).
//
// The layouts keep a row's bytes in order and give each 32-bit lane of a vector one 32-element
// block (q4_0x8, q5_0x8, q8_0x8: 8 blocks per step; q4_Kx8: the 8 sub-blocks of a Q4_K
// super-block; q6_Kx8: pairs of Q6_K's 16-element sub-blocks), so a step sums its blocks against
// the activation with vpmaddubsw (4-bit quants: in i16, exact: 8 · 2 · 15 · 128 < 2^15), scales all
// 8 lanes at once and ends in one or two FMAs. The activation is transposed into the same lane
// order once per MATMUL (generation) or per quad of rows (prompt GEMM). All are the file's size
// but q4_Kx8 (+4 bytes per 144, its scales and mins unpacked).
//
// q4_0x8: Q4_0 rows in groups of 8 blocks, one 32-bit lane per block. The file's layout (the AVX2
// tile, KernelQ4_0) spends per 32-block two f16 conversions, a broadcast, a nibble unpack with a
// 128-bit insert, a sign fix-up on both operands, vpmaddubsw, vpmaddwd, a conversion and an FMA.
// Here a step of 8 blocks is 4 loads, 12 mask/shift operations, 8 vpmaddubsw of unsigned nibbles
// (q + 8) with the activation (summed in i16: 8 × 2 × 15 × 128 < 2^15, so exact), one vpmaddwd,
// one f16 conversion of the 8 weight scales and one FMA: about a third of the operations. The
// −8·Σa term is computed once per activation block. The AVX2 host this was written on (an EPYC
// Zen 1, family 23 model 1: 256-bit operations split into two 128-bit ones) ran 125m Q4_0
// generation with 1 thread at 26% of the memory-bandwidth limit in the file's layout, so the
// operation count, not memory, set the speed.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_avx2_ops.h"
#include "backends/cpu/kernels_common.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {
namespace {

using avx2::Hsum;

// ---- shared: lane order, the layout-generic tile, gemv and GEMM ---------------------------

inline __m256i LoadV(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline void StoreV(uint8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// v, hidden from GCC's reassociation: in a GEMM step's chains of exact integer adds over 4
// activation rows, GCC otherwise rewrites each chain into a tree that computes all its products
// first (32 live vectors on 16 registers: spills). i16 chains use saturating adds instead, which
// equal plain ones within the bounds and are not reassociated.
inline __m256i Opaque(__m256i v) {
  asm("" : "+x"(v));
  return v;
}
inline __m128i Opaque(__m128i v) {
  asm("" : "+x"(v));
  return v;
}

// Half-group steps (a legacy layout's last step of 4 blocks: Gemma 3's 640-long rows end in one)
// run on 128-bit vectors, lanes 0-3 of the 256-bit step: on CPUs that split 256-bit operations in
// two (Zen 1) that halves their cost. Every lane's integer sum and float operations are the full
// step's, and lanes 4-7 of a full-width half step only add zeros, so results are bit-identical.
inline __m128i LoadH(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
// acc + cvt(s) · (d_w · d_a) on lanes 0-3: the 4 f16 weight scales at w, the f32 activation scales
// at a.
inline __m128 FinishHalf(__m128i s, const uint8_t* w, const uint8_t* a, __m128 acc) {
  const __m128 d = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w)));
  const __m128 da = _mm_loadu_ps(reinterpret_cast<const float*>(a));
  return _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(d, da), acc);
}

// Dwords 0-3 of x[0..7] (16 bytes each) transposed: lane l of out[v] = dword v of x[l].
inline void TransposeBlocks(const uint8_t* const x[8], __m256i out[4]) {
  __m256i y[4];
  for (int i = 0; i < 4; ++i) {
    y[i] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(x[i + 4]),
                               reinterpret_cast<const __m128i*>(x[i]));
  }
  const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpackhi_epi32(y[0], y[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(y[2], y[3]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

// 8 lanes of 32 int8 in lane order, stored at dst (256 bytes): at 32·v, lane l holds lo[l]'s bytes
// 4v .. 4v + 3; at 128 + 32·v, hi[l]'s bytes 4v .. 4v + 3 (v < 4). Returns the sum of each lane's
// 32 bytes (i32 lane l).
inline __m256i TransposeActivation(const uint8_t* const lo[8], const uint8_t* const hi[8],
                                   uint8_t* dst) {
  __m256i q[8];
  TransposeBlocks(lo, q);
  TransposeBlocks(hi, q + 4);
  const __m256i ones = _mm256_set1_epi8(1);
  __m256i sum16 = _mm256_setzero_si256();  // |Σ| ≤ 8 · 2 · 128 per i16 lane
  for (int v = 0; v < 8; ++v) {
    StoreV(dst + 32 * v, q[v]);
    sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(ones, q[v]));
  }
  return _mm256_madd_epi16(sum16, _mm256_set1_epi16(1));
}

// The same for 8 blocks of 32 (lo = the blocks' first 16 bytes, hi = their last 16).
inline __m256i TransposeBlocks32(const uint8_t* const block[8], uint8_t* dst) {
  const uint8_t* hi[8];
  for (int l = 0; l < 8; ++l) hi[l] = block[l] + 16;
  return TransposeActivation(block, hi, dst);
}

// Legacy (32-block) layouts keep a row's last, partial group of t < 8 blocks as vectors of 4·t
// bytes (lanes t .. 7 read as zeros), so rows of any whole number of blocks take the layout.
inline __m256i LoadLanes(const uint8_t* p, int t) {
  if (t == 8) return LoadV(p);
  // Half a group (Gemma 3's 640-long rows: 2.5 groups) is one 16-byte load.
  if (t == 4) return _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(t), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), mask);
}

// t f16 scales at p → f32 lanes (lanes t .. 7: 0).
inline __m256 LoadScales(const uint8_t* p, int t) {
  if (t == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  if (t == 4) return _mm256_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  uint16_t h[8] = {};
  std::memcpy(h, p, 2 * static_cast<size_t>(t));
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
}

// Unsigned nibbles of 4 vectors of 4·t bytes at p: lo[v] = low nibbles of vector v, hi[v] = high.
inline void DecodeNibbles(const uint8_t* p, int t, __m256i lo[4], __m256i hi[4]) {
  const __m256i mask = _mm256_set1_epi8(0x0f);
  for (int v = 0; v < 4; ++v) {
    const __m256i raw = LoadLanes(p + 4 * t * v, t);
    lo[v] = _mm256_and_si256(raw, mask);
    hi[v] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
  }
}

// The blocks of step s of a Q8_0 activation row of k elements: 8, or fewer in the last step; the
// missing ones read as this all-zero block.
const BlockQ8_0 kZeroQ8Block{};

inline void StepBlocks(const uint8_t* row, int64_t s, int t, const uint8_t* blocks[8],
                       uint16_t d[8]) {
  const auto* a = reinterpret_cast<const BlockQ8_0*>(row) + 8 * s;
  for (int l = 0; l < 8; ++l) {
    const BlockQ8_0& b = l < t ? a[l] : kZeroQ8Block;
    blocks[l] = reinterpret_cast<const uint8_t*>(b.qs);
    d[l] = b.d;
  }
}

inline __m256 Halves(const uint16_t d[8]) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d)));
}

// Σ over the 8 vectors of vpmaddubsw(nibbles, activation) in i16 (lane pairs 2l, 2l + 1: block l).
inline __m256i NibbleSums16(const __m256i lo[4], const __m256i hi[4], const uint8_t* a) {
  __m256i s0 = _mm256_maddubs_epi16(lo[0], LoadV(a));
  __m256i s1 = _mm256_maddubs_epi16(hi[0], LoadV(a + 128));
  for (int v = 1; v < 4; ++v) {
    s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(lo[v], LoadV(a + 32 * v)));
    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(hi[v], LoadV(a + 128 + 32 * v)));
  }
  return _mm256_add_epi16(s0, s1);
}

// NibbleSums16 of one weight step against N prepared activation steps (act + c · act_bytes), each
// raw vector decoded once and used for the N rows at once: the prompt GEMM's inner loop (N = 4)
// with 4 i16 sums live instead of 8 decoded vectors and 4 accumulators (AVX2 has 16 registers).
// The sums are exact, so they equal NibbleSums16's.
template <int N>
inline void NibbleSums16xN(const uint8_t* p, int t, const uint8_t* act, int64_t act_bytes,
                           __m256i sums[N]) {
  const __m256i mask = _mm256_set1_epi8(0x0f);
  for (int c = 0; c < N; ++c) sums[c] = _mm256_setzero_si256();
  for (int v = 0; v < 4; ++v) {
    const __m256i raw = LoadLanes(p + 4 * t * v, t);
    const __m256i lo = _mm256_and_si256(raw, mask);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
    for (int c = 0; c < N; ++c) {
      const uint8_t* a = act + c * act_bytes;
      sums[c] =
          _mm256_adds_epi16(_mm256_adds_epi16(sums[c], _mm256_maddubs_epi16(lo, LoadV(a + 32 * v))),
                            _mm256_maddubs_epi16(hi, LoadV(a + 128 + 32 * v)));
    }
  }
}

// A layout L provides: kStepElems (elements per step), kStepBytes (weight bytes per full step),
// kActBytes (prepared activation bytes per step), PrepAct(activation row, step, t, dst), W
// Decode(weight step, t) and Dot(W, prepared step, acc) → acc, where t is the number of 32-element
// blocks in the step over 8 (8 but in a legacy layout's last step; K-quant layouts ignore it).
// It also provides DotN<N>(weight step, t, N prepared steps, acc[N]): Dot for N activation rows
// with each weight vector decoded once (the prompt GEMM runs DotN<4>), and kGemvDotN: whether
// generation runs DotN<1> rather than Decode and Dot.
// Every path runs L::Dot's operations per (weight row, activation row, step), in step order, and
// Hsum at the end (DotN sums the same integers in another order, exactly, then runs Dot's float
// operations), so tiles, gemv and GEMM give bit-identical results.
template <typename L>
int64_t Steps(int64_t k) {
  return (k + L::kStepElems - 1) / L::kStepElems;
}

template <typename L>
int StepLanes(int64_t k, int64_t s) {
  return static_cast<int>(std::min<int64_t>(8, k / 32 - 8 * s));
}

// Dot tiles (kernels.h DotTileFn) on converted activation rows: up to 4 × 4 outputs.
template <typename L>
void LayoutTile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
                float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  nw = std::min(nw, kTileRows);
  na = std::min(na, kTileRows);
  __m256 acc[kTileRows][kTileRows];
  for (auto& row : acc) {
    for (auto& x : row) x = _mm256_setzero_ps();
  }
  for (int64_t s = 0; s < Steps<L>(k); ++s) {
    alignas(32) uint8_t act[kTileRows][L::kActBytes];
    const int t = StepLanes<L>(k, s);
    for (int c = 0; c < na; ++c) L::PrepAct(ab + c * as, s, t, act[c]);
    for (int r = 0; r < nw; ++r) {
      const typename L::W wd = L::Decode(wb + r * ws + L::kStepBytes * s, t);
      for (int c = 0; c < na; ++c) acc[r][c] = L::Dot(wd, act[c], acc[r][c]);
    }
  }
  for (int r = 0; r < nw; ++r) {
    for (int c = 0; c < na; ++c) out[c * os + r] = Hsum(acc[r][c]);
  }
}

// Generation: the activation row prepared once per MATMUL and thread (RepackFns::gemv_act), then
// each weight row read front to back.
template <typename L>
size_t PreparedBytes(int64_t k) {
  return static_cast<size_t>(Steps<L>(k) * L::kActBytes);
}

template <typename L>
void Prepare(int64_t k, const void* a, void* dst) {
  for (int64_t s = 0; s < Steps<L>(k); ++s) {
    L::PrepAct(static_cast<const uint8_t*>(a), s, StepLanes<L>(k, s),
               static_cast<uint8_t*>(dst) + s * L::kActBytes);
  }
}

// Generation prefetches every cache line of a row kGemvPrefetchBytes ahead into L1. On the EPYC
// Zen 1, tg32 with 1 thread, 2 alternated rounds against none: 1b Q4_0 16.5 / 15.6 t/s against
// 13.0 / 12.9 (16 KB ahead: 16.5 / 15.8), 1b Q4_K_M 13.2 / 13.3 against 11.0 / 11.1, 125m Q8_0
// 68.3 / 63.6 against 55.5 / 49.1.
constexpr int64_t kGemvPrefetchBytes = 4096;

template <typename L>
concept HasHalfStep = requires(const uint8_t* p, __m128* acc) {
  L::template DotHalfN<1>(p, p, acc);
};

// Whether a k-long row's last step is half a group that the GEMV and the GEMM run on 128-bit
// vectors (L::DotHalfN): then they run Steps<L>(k) − 1 full steps before it.
template <typename L>
bool HalfLastStep(int64_t k) {
  if constexpr (HasHalfStep<L>) return StepLanes<L>(k, Steps<L>(k) - 1) == 4;
  return false;
}

template <typename L>
void PrefetchStep(const uint8_t* row, int64_t s) {
  for (int64_t o = 0; o < L::kStepBytes; o += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(row + L::kStepBytes * s + o) + kGemvPrefetchBytes,
                 _MM_HINT_T0);
  }
}

template <typename L>
void LayoutGemv(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  const auto* act = static_cast<const uint8_t*>(a);
  const bool half = HalfLastStep<L>(k);
  const int64_t full = Steps<L>(k) - (half ? 1 : 0);
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + r * ws;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t s = 0; s < full; ++s) {
      PrefetchStep<L>(row, s);
      if constexpr (L::kGemvDotN) {
        L::template DotN<1>(row + L::kStepBytes * s, StepLanes<L>(k, s), act + s * L::kActBytes,
                            &acc);
      } else {
        acc = L::Dot(L::Decode(row + L::kStepBytes * s, StepLanes<L>(k, s)), act + s * L::kActBytes,
                     acc);
      }
    }
    if constexpr (HasHalfStep<L>) {
      if (half) {
        PrefetchStep<L>(row, full);
        __m128 lo = _mm256_castps256_ps128(acc);
        L::template DotHalfN<1>(row + L::kStepBytes * full, act + full * L::kActBytes, &lo);
        acc = _mm256_blend_ps(acc, _mm256_castps128_ps256(lo), 0x0f);
      }
    }
    out[r] = Hsum(acc);
  }
}

// Prompt batches (kernels.h GemmFns): a quad is, per step, the 4 rows' prepared activations
// (missing rows: zeros). The GEMM takes one weight row against one quad at a time: the row's step
// is decoded once for the 4 activation rows, which come from L1/L2.
template <typename L>
size_t QuadBytes(int64_t k) {
  return 4 * PreparedBytes<L>(k);
}

template <typename L>
void PackQuad(int64_t k, const void* a, size_t a_stride, int na, void* dst) {
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int64_t s = 0; s < Steps<L>(k); ++s) {
    for (int c = 0; c < 4; ++c) {
      uint8_t* x = static_cast<uint8_t*>(dst) + (4 * s + c) * L::kActBytes;
      if (c < na) {
        L::PrepAct(ab + c * a_stride, s, StepLanes<L>(k, s), x);
      } else {
        std::memset(x, 0, L::kActBytes);
      }
    }
  }
}

template <typename L>
void LayoutGemm(int64_t k, const void* w, size_t ws, int nw, const void* packed, int na, float* out,
                size_t os) {
  const int64_t steps = Steps<L>(k);
  const bool half = HalfLastStep<L>(k);
  const int64_t full = steps - (half ? 1 : 0);
  for (int q = 0; 4 * q < na; ++q) {
    const auto* act = static_cast<const uint8_t*>(packed) + 4 * steps * q * L::kActBytes;
    const int nc = std::min(4, na - 4 * q);
    for (int r = 0; r < nw; ++r) {
      const uint8_t* row = static_cast<const uint8_t*>(w) + r * ws;
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                       _mm256_setzero_ps()};
      for (int64_t s = 0; s < full; ++s) {
        L::template DotN<4>(row + L::kStepBytes * s, StepLanes<L>(k, s), act + 4 * s * L::kActBytes,
                            acc);
      }
      if constexpr (HasHalfStep<L>) {
        if (half) {
          __m128 lo[4];
          for (int c = 0; c < 4; ++c) lo[c] = _mm256_castps256_ps128(acc[c]);
          L::template DotHalfN<4>(row + L::kStepBytes * full, act + 4 * full * L::kActBytes, lo);
          for (int c = 0; c < 4; ++c)
            acc[c] = _mm256_blend_ps(acc[c], _mm256_castps128_ps256(lo[c]), 0x0f);
        }
      }
      // Summed for all 4 with constant indices (a loop bounded by nc kept acc in memory).
      float sums[4];
      for (int c = 0; c < 4; ++c) sums[c] = Hsum(acc[c]);
      for (int c = 0; c < nc; ++c) out[(4 * q + c) * os + r] = sums[c];
    }
  }
}

template <typename L>
RepackFns LayoutFns(const char* name) {
  return {name,
          L::RowBytes,
          L::Repack,
          LayoutTile<L>,
          LayoutGemv<L>,
          {QuadBytes<L>, PackQuad<L>, LayoutGemm<L>},
          PreparedBytes<L>,
          Prepare<L>,
          UnpackRowAt<L::UnpackRow>};
}

// ---- legacy 32-blocks: q4_0x8, q5_0x8, q8_0x8 --------------------------------------------------
//
// Layouts (Repack): a row of nb = k / 32 blocks, B bytes per block as in the file (q4_0 18, q5_0
// 22, q8_0 34), in groups of 8 blocks at byte 8·B·g; the last group may hold t < 8 blocks. A group
// of t blocks is V vectors of 4·t bytes, dword l of each belonging to block 8g + l, then the t f16
// scales. The vectors, in the order TransposeBlocks32 gives the activation:
//   q4_0: 4 vectors, vector v = block bytes qs[4v .. 4v + 3] (low nibbles: elements 4v .. 4v + 3,
//         high nibbles: 16 + 4v .. 16 + 4v + 3);
//   q5_0: the same 4 vectors, then one whose byte 4l + i holds in bit m the 5th bit of element
//         4m + i (m < 4) or 16 + 4(m − 4) + i (m ≥ 4) of block l;
//   q8_0: 8 vectors, vector v = bytes 4v .. 4v + 3 (v < 4) or 16 + 4(v − 4) .. (v ≥ 4).
// The prepared activation step: the 8 Q8_0 blocks in lane order (missing blocks zero), then (q4_0,
// q5_0) −o·Σa per block (i32 lanes; o = 8 / 16, the offset that makes the quants unsigned) at 256,
// and the blocks' scales (f32 lanes) at 288 (q8_0: at 256).
// Step s (t blocks) of a Q8_0 activation row in lane order at dst, the blocks' scales (f32 lanes)
// at dst + scale_at; returns Σa per block.
inline __m256i PrepLegacyBlocks(const uint8_t* row, int64_t s, int t, uint8_t* dst, int scale_at) {
  const uint8_t* blocks[8];
  uint16_t d[8];
  StepBlocks(row, s, t, blocks, d);
  const __m256i sum = TransposeBlocks32(blocks, dst);
  _mm256_storeu_ps(reinterpret_cast<float*>(dst + scale_at), Halves(d));
  return sum;
}

template <int64_t kBlockBytes, int kVectors>
struct LegacyX8 {
  static constexpr int64_t kStepElems = 256;
  static constexpr bool kGemvDotN = false;
  static constexpr int64_t kStepBytes = 8 * kBlockBytes;

  static size_t RowBytes(int64_t k) { return static_cast<size_t>(k / 32 * kBlockBytes); }
  // write(group, t, l, block l) places block l of a group of t.
  template <typename Block, typename Write>
  static void RepackWith(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst,
                         Write write) {
    for (int64_t r = 0; r < rows; ++r) {
      const auto* b =
          reinterpret_cast<const Block*>(static_cast<const uint8_t*>(src) + r * src_stride);
      uint8_t* row = static_cast<uint8_t*>(dst) + r * RowBytes(k);
      ForEachBlock(
          k, [&](int64_t g, int t, int l) { write(row + kStepBytes * g, t, l, b[8 * g + l]); });
    }
  }
  // The inverse of RepackWith for one row: read(group, t, l, &block) reads block l of a group of t.
  template <typename Block, typename Read>
  static void UnpackWith(int64_t k, const void* src, void* dst, Read read) {
    const auto* row = static_cast<const uint8_t*>(src);
    ForEachBlock(k, [&](int64_t g, int t, int l) {
      Block blk;
      read(row + kStepBytes * g, t, l, &blk);
      std::memcpy(static_cast<uint8_t*>(dst) + (8 * g + l) * sizeof(Block), &blk, sizeof(Block));
    });
  }
  // f(g, t, l) for block l of each group g of a k-long row (t blocks in the group: 8, or fewer in
  // the last).
  template <typename F>
  static void ForEachBlock(int64_t k, F f) {
    const int64_t nb = k / 32;
    for (int64_t g = 0; 8 * g < nb; ++g) {
      const int t = static_cast<int>(std::min<int64_t>(8, nb - 8 * g));
      for (int l = 0; l < t; ++l) f(g, t, l);
    }
  }
  static __m256 Scales(const uint8_t* step, int t) {
    return LoadScales(step + 4 * t * kVectors, t);
  }
};

// q4_0 (o = 8) and q5_0 (o = 16): the activation with −o·Σa per block.
template <int kOffsetShift>
inline void PrepOffsetAct(const uint8_t* row, int64_t s, int t, uint8_t* dst) {
  const __m256i sum = PrepLegacyBlocks(row, s, t, dst, 288);
  StoreV(dst + 256, _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, kOffsetShift)));
}

struct Q4_0x8 : LegacyX8<18, 4> {
  static constexpr int64_t kActBytes = 320;
  static void Repack(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
    RepackWith<BlockQ4_0>(k, src, src_stride, rows, dst,
                          [](uint8_t* group, int t, int l, const BlockQ4_0& blk) {
                            for (int v = 0; v < 4; ++v) {
                              std::memcpy(group + 4 * t * v + 4 * l, blk.qs + 4 * v, 4);
                            }
                            std::memcpy(group + 16 * t + 2 * l, &blk.d, 2);
                          });
  }
  static void UnpackRow(int64_t k, const void* src, void* dst) {
    UnpackWith<BlockQ4_0>(k, src, dst, [](const uint8_t* group, int t, int l, BlockQ4_0* blk) {
      for (int v = 0; v < 4; ++v) std::memcpy(blk->qs + 4 * v, group + 4 * t * v + 4 * l, 4);
      std::memcpy(&blk->d, group + 16 * t + 2 * l, 2);
    });
  }
  static void PrepAct(const uint8_t* row, int64_t s, int t, uint8_t* dst) {
    PrepOffsetAct<3>(row, s, t, dst);
  }
  struct W {
    __m256i lo[4], hi[4];  // unsigned nibbles q + 8
    __m256 d;
  };
  static W Decode(const uint8_t* step, int t) {
    W w;
    DecodeNibbles(step, t, w.lo, w.hi);
    w.d = Scales(step, t);
    return w;
  }
  // acc + Σ_l (block l's exact integer sum) · d_w · d_a.
  static __m256 Dot(const W& w, const uint8_t* a, __m256 acc) {
    return Finish(w.d, NibbleSums16(w.lo, w.hi, a), a, acc);
  }
  static __m256 Finish(__m256 d, __m256i sums, const uint8_t* a, __m256 acc) {
    const __m256i s =
        _mm256_add_epi32(_mm256_madd_epi16(sums, _mm256_set1_epi16(1)), LoadV(a + 256));
    const __m256 da = _mm256_loadu_ps(reinterpret_cast<const float*>(a + 288));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, da), acc);
  }
  // Dot for N rows (LayoutGemm: the 4 of a quad): the same operations per row.
  template <int N>
  static void DotN(const uint8_t* step, int t, const uint8_t* act, __m256 acc[N]) {
    __m256i sums[N];
    NibbleSums16xN<N>(step, t, act, kActBytes, sums);
    const __m256 d = Scales(step, t);
    for (int c = 0; c < N; ++c) acc[c] = Finish(d, sums[c], act + c * kActBytes, acc[c]);
  }
  // DotN of a half-group step (t = 4) on lanes 0-3.
  template <int N>
  static void DotHalfN(const uint8_t* step, const uint8_t* act, __m128 acc[N]) {
    const __m128i mask = _mm_set1_epi8(0x0f);
    __m128i sums[N];
    for (int c = 0; c < N; ++c) sums[c] = _mm_setzero_si128();
    for (int v = 0; v < 4; ++v) {
      const __m128i raw = LoadH(step + 16 * v);
      const __m128i lo = _mm_and_si128(raw, mask);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
      for (int c = 0; c < N; ++c) {
        const uint8_t* a = act + c * kActBytes;
        sums[c] = _mm_adds_epi16(_mm_adds_epi16(sums[c], _mm_maddubs_epi16(lo, LoadH(a + 32 * v))),
                                 _mm_maddubs_epi16(hi, LoadH(a + 128 + 32 * v)));
      }
    }
    for (int c = 0; c < N; ++c) {
      const uint8_t* a = act + c * kActBytes;
      const __m128i s = _mm_add_epi32(_mm_madd_epi16(sums[c], _mm_set1_epi16(1)), LoadH(a + 256));
      acc[c] = FinishHalf(s, step + 64, a + 288, acc[c]);
    }
  }
};

// q5_0: quants q + 16 ≤ 31, so 4 vpmaddubsw fit an i16 sum (4 · 2 · 31 · 128 < 2^15): two sums, two
// vpmaddwd. The 5th bits come from one vector, a shift and a mask per decoded vector.
struct Q5_0x8 : LegacyX8<22, 5> {
  static constexpr int64_t kActBytes = 320;
  static void Repack(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
    RepackWith<BlockQ5_0>(k, src, src_stride, rows, dst,
                          [](uint8_t* group, int t, int l, const BlockQ5_0& blk) {
                            for (int v = 0; v < 4; ++v)
                              std::memcpy(group + 4 * t * v + 4 * l, blk.qs + 4 * v, 4);
                            const uint32_t bits = SpreadQ5Bits(LoadUnaligned<uint32_t>(blk.qh));
                            std::memcpy(group + 16 * t + 4 * l, &bits, 4);
                            std::memcpy(group + 20 * t + 2 * l, &blk.d, 2);
                          });
  }
  static void UnpackRow(int64_t k, const void* src, void* dst) {
    UnpackWith<BlockQ5_0>(k, src, dst, [](const uint8_t* group, int t, int l, BlockQ5_0* blk) {
      for (int v = 0; v < 4; ++v) std::memcpy(blk->qs + 4 * v, group + 4 * t * v + 4 * l, 4);
      const uint32_t qh = GatherQ5Bits(LoadUnaligned<uint32_t>(group + 16 * t + 4 * l));
      std::memcpy(blk->qh, &qh, 4);
      std::memcpy(&blk->d, group + 20 * t + 2 * l, 2);
    });
  }
  static void PrepAct(const uint8_t* row, int64_t s, int t, uint8_t* dst) {
    PrepOffsetAct<4>(row, s, t, dst);
  }
  using W = Q4_0x8::W;  // unsigned quants q + 16
  // Vector v's 5th bits for its low / high nibbles: bit m of each byte of h → bit 4 (16-bit
  // shifts; the bits they carry across bytes are masked off).
  static __m256i LowBits(__m256i h, int v) {
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    return _mm256_and_si256(v == 0   ? _mm256_slli_epi16(h, 4)
                            : v == 1 ? _mm256_slli_epi16(h, 3)
                            : v == 2 ? _mm256_slli_epi16(h, 2)
                                     : _mm256_slli_epi16(h, 1),
                            bit4);
  }
  static __m256i HighBits(__m256i h, int v) {
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    return _mm256_and_si256(v == 0   ? h
                            : v == 1 ? _mm256_srli_epi16(h, 1)
                            : v == 2 ? _mm256_srli_epi16(h, 2)
                                     : _mm256_srli_epi16(h, 3),
                            bit4);
  }
  // Vector v's quants: its nibbles with the 5th bits from h (the step's bit vector).
  static void Quants(const uint8_t* step, int t, __m256i h, int v, __m256i* lo, __m256i* hi) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i raw = LoadLanes(step + 4 * t * v, t);
    *lo = _mm256_or_si256(_mm256_and_si256(raw, mask), LowBits(h, v));
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), mask), HighBits(h, v));
  }
  static W Decode(const uint8_t* step, int t) {
    W w;
    const __m256i h = LoadLanes(step + 16 * t, t);
    for (int v = 0; v < 4; ++v) Quants(step, t, h, v, &w.lo[v], &w.hi[v]);
    w.d = Scales(step, t);
    return w;
  }
  static __m256 Dot(const W& w, const uint8_t* a, __m256 acc) {
    __m256i s0 = _mm256_maddubs_epi16(w.lo[0], LoadV(a));
    __m256i s1 = _mm256_maddubs_epi16(w.hi[0], LoadV(a + 128));
    for (int v = 1; v < 4; ++v) {
      s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w.lo[v], LoadV(a + 32 * v)));
      s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w.hi[v], LoadV(a + 128 + 32 * v)));
    }
    return Finish(w.d, s0, s1, a, acc);
  }
  static __m256 Finish(__m256 d, __m256i s0, __m256i s1, const uint8_t* a, __m256 acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i s = _mm256_add_epi32(
        _mm256_add_epi32(_mm256_madd_epi16(s0, ones), _mm256_madd_epi16(s1, ones)), LoadV(a + 256));
    const __m256 da = _mm256_loadu_ps(reinterpret_cast<const float*>(a + 288));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, da), acc);
  }
  // Dot for N rows (LayoutGemm: the 4 of a quad): each vector decoded once, the same sums per row.
  template <int N>
  static void DotN(const uint8_t* step, int t, const uint8_t* act, __m256 acc[N]) {
    const __m256i h = LoadLanes(step + 16 * t, t);
    __m256i s0[N], s1[N];
    for (int c = 0; c < N; ++c) s0[c] = s1[c] = _mm256_setzero_si256();
    for (int v = 0; v < 4; ++v) {
      __m256i lo, hi;
      Quants(step, t, h, v, &lo, &hi);
      for (int c = 0; c < N; ++c) {
        const uint8_t* a = act + c * kActBytes;
        s0[c] = _mm256_adds_epi16(s0[c], _mm256_maddubs_epi16(lo, LoadV(a + 32 * v)));
        s1[c] = _mm256_adds_epi16(s1[c], _mm256_maddubs_epi16(hi, LoadV(a + 128 + 32 * v)));
      }
    }
    const __m256 d = Scales(step, t);
    for (int c = 0; c < N; ++c) acc[c] = Finish(d, s0[c], s1[c], act + c * kActBytes, acc[c]);
  }
  // DotN of a half-group step (t = 4) on lanes 0-3.
  template <int N>
  static void DotHalfN(const uint8_t* step, const uint8_t* act, __m128 acc[N]) {
    const __m128i mask = _mm_set1_epi8(0x0f), bit4 = _mm_set1_epi8(0x10);
    const __m128i h = LoadH(step + 64);
    __m128i s0[N], s1[N];
    for (int c = 0; c < N; ++c) s0[c] = s1[c] = _mm_setzero_si128();
    for (int v = 0; v < 4; ++v) {
      const __m128i raw = LoadH(step + 16 * v);
      // Vector v's 5th bits, as LowBits and HighBits give them.
      const __m128i low5 = _mm_and_si128(v == 0   ? _mm_slli_epi16(h, 4)
                                         : v == 1 ? _mm_slli_epi16(h, 3)
                                         : v == 2 ? _mm_slli_epi16(h, 2)
                                                  : _mm_slli_epi16(h, 1),
                                         bit4);
      const __m128i high5 = _mm_and_si128(v == 0   ? h
                                          : v == 1 ? _mm_srli_epi16(h, 1)
                                          : v == 2 ? _mm_srli_epi16(h, 2)
                                                   : _mm_srli_epi16(h, 3),
                                          bit4);
      const __m128i lo = _mm_or_si128(_mm_and_si128(raw, mask), low5);
      const __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), high5);
      for (int c = 0; c < N; ++c) {
        const uint8_t* a = act + c * kActBytes;
        s0[c] = _mm_adds_epi16(s0[c], _mm_maddubs_epi16(lo, LoadH(a + 32 * v)));
        s1[c] = _mm_adds_epi16(s1[c], _mm_maddubs_epi16(hi, LoadH(a + 128 + 32 * v)));
      }
    }
    const __m128i ones = _mm_set1_epi16(1);
    for (int c = 0; c < N; ++c) {
      const uint8_t* a = act + c * kActBytes;
      const __m128i s = _mm_add_epi32(
          _mm_add_epi32(_mm_madd_epi16(s0[c], ones), _mm_madd_epi16(s1[c], ones)), LoadH(a + 256));
      acc[c] = FinishHalf(s, step + 80, a + 288, acc[c]);
    }
  }
};

// q8_0: per vector the sign fix-up (|w| · sign(a, w), as the file layout's tile), vpmaddubsw and
// vpmaddwd, then one conversion and one FMA for 8 blocks; the file layout's tile converts, scales
// and adds per block.
struct Q8_0x8 : LegacyX8<34, 8> {
  static constexpr int64_t kActBytes = 288;
  // BM_GemvDram K = 2048 on the EPYC Zen 1, alternated: 13.6 / 13.9 GB/s against Decode and Dot's
  // 12.7 / 12.9 (q8_0), 10.4 / 10.2 against 9.5 / 9.5 (q6_K); q4_0 10.9 / 10.7 against 11.4 / 11.3
  // and q4_K 9.7 / 9.6 against 9.6 / 9.6, so those two keep Dot.
  static constexpr bool kGemvDotN = true;
  static void Repack(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
    RepackWith<BlockQ8_0>(k, src, src_stride, rows, dst,
                          [](uint8_t* group, int t, int l, const BlockQ8_0& blk) {
                            for (int v = 0; v < 8; ++v) {
                              const int from = v < 4 ? 4 * v : 16 + 4 * (v - 4);
                              std::memcpy(group + 4 * t * v + 4 * l, blk.qs + from, 4);
                            }
                            std::memcpy(group + 32 * t + 2 * l, &blk.d, 2);
                          });
  }
  static void UnpackRow(int64_t k, const void* src, void* dst) {
    UnpackWith<BlockQ8_0>(k, src, dst, [](const uint8_t* group, int t, int l, BlockQ8_0* blk) {
      for (int v = 0; v < 8; ++v) {
        std::memcpy(blk->qs + (v < 4 ? 4 * v : 16 + 4 * (v - 4)), group + 4 * t * v + 4 * l, 4);
      }
      std::memcpy(&blk->d, group + 32 * t + 2 * l, 2);
    });
  }
  static void PrepAct(const uint8_t* row, int64_t s, int t, uint8_t* dst) {
    PrepLegacyBlocks(row, s, t, dst, 256);
  }
  struct W {
    __m256i q[8], abs[8];  // the signed quants and their magnitudes
    __m256 d;
  };
  static W Decode(const uint8_t* step, int t) {
    W w;
    for (int v = 0; v < 8; ++v) {
      w.q[v] = LoadLanes(step + 4 * t * v, t);
      w.abs[v] = _mm256_sign_epi8(w.q[v], w.q[v]);
    }
    w.d = Scales(step, t);
    return w;
  }
  // acc + Σ_l (block l's exact integer sum) · d_w · d_a.
  static __m256 Dot(const W& w, const uint8_t* a, __m256 acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    for (int v = 0; v < 8; v += 2) {
      const __m256i p0 =
          _mm256_maddubs_epi16(w.abs[v], _mm256_sign_epi8(LoadV(a + 32 * v), w.q[v]));
      const __m256i p1 =
          _mm256_maddubs_epi16(w.abs[v + 1], _mm256_sign_epi8(LoadV(a + 32 * v + 32), w.q[v + 1]));
      s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, ones));
      s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, ones));
    }
    return Finish(w.d, _mm256_add_epi32(s0, s1), a, acc);
  }
  static __m256 Finish(__m256 d, __m256i s, const uint8_t* a, __m256 acc) {
    const __m256 da = _mm256_loadu_ps(reinterpret_cast<const float*>(a + 256));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, da), acc);
  }
  // Dot for N rows (LayoutGemm: the 4 of a quad): each vector loaded once; the exact i32 sums equal
  // Dot's.
  template <int N>
  static void DotN(const uint8_t* step, int t, const uint8_t* act, __m256 acc[N]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s[N];
    for (int c = 0; c < N; ++c) s[c] = _mm256_setzero_si256();
    for (int v = 0; v < 8; ++v) {
      const __m256i q = LoadLanes(step + 4 * t * v, t);
      const __m256i abs = _mm256_sign_epi8(q, q);
      for (int c = 0; c < N; ++c) {
        const __m256i p =
            _mm256_maddubs_epi16(abs, _mm256_sign_epi8(LoadV(act + c * kActBytes + 32 * v), q));
        s[c] = _mm256_add_epi32(Opaque(s[c]), _mm256_madd_epi16(p, ones));
      }
    }
    const __m256 d = Scales(step, t);
    for (int c = 0; c < N; ++c) acc[c] = Finish(d, s[c], act + c * kActBytes, acc[c]);
  }
  // DotN of a half-group step (t = 4) on lanes 0-3.
  template <int N>
  static void DotHalfN(const uint8_t* step, const uint8_t* act, __m128 acc[N]) {
    const __m128i ones = _mm_set1_epi16(1);
    __m128i s[N];
    for (int c = 0; c < N; ++c) s[c] = _mm_setzero_si128();
    for (int v = 0; v < 8; ++v) {
      const __m128i q = LoadH(step + 16 * v);
      const __m128i abs = _mm_sign_epi8(q, q);
      for (int c = 0; c < N; ++c) {
        const __m128i p =
            _mm_maddubs_epi16(abs, _mm_sign_epi8(LoadH(act + c * kActBytes + 32 * v), q));
        s[c] = _mm_add_epi32(Opaque(s[c]), _mm_madd_epi16(p, ones));
      }
    }
    for (int c = 0; c < N; ++c) {
      acc[c] = FinishHalf(s[c], step + 128, act + c * kActBytes + 256, acc[c]);
    }
  }
};

// ---- q4_Kx8 ---------------------------------------------------------------------------------
//
// Layout (Q4_Kx8::Repack): per super-block of 256, 148 bytes (the file's 144 + 4): 4 vectors of
// 32 bytes where dword j of vector v holds sub-block j's elements 4v .. 4v + 3 in the low nibbles
// and 16 + 4v .. 16 + 4v + 3 in the high nibbles (the file pairs sub-blocks 2p and 2p + 1 in a
// byte instead), then the 8 sub-blocks' 6-bit scales and the 8 mins as bytes (unpacked from the
// file's 12 bytes at load, so a step needs no scalar unpacking), then d and dmin (f16). The
// prepared activation step: the Q8_K super-block's 8 sub-blocks in lane order, the 8 sub-blocks'
// activation sums (i16, bsums paired) at 256, its scale in all 8 f32 lanes at 288.
// A step: 8 vpmaddubsw summed in i16, one vpmaddwd by the scales (lane j: sc_j · Σ sub-block j),
// d·S − dmin·M in an fmsub and one FMA by the activation's scale. The mins' term M runs on
// 128-bit vectors (a zero-extending load, one vpmaddwd by the sub-block sums: 4 lanes of two
// sub-blocks each, a conversion and a multiply by dmin) and enters the fmsub in lanes 0-3: on Zen
// 1, which splits 256-bit operations in two, that is 7 µops fewer per step than a 256-bit M (one
// of them on the multiply pipe). The file layout's tile unpacks the scales in scalar code and
// spends 8 broadcasts, 8 vpmaddwd and 8 adds per super-block.
struct Q4_Kx8 {
  static constexpr int64_t kStepElems = 256;
  static constexpr bool kGemvDotN = false;  // see Q8_0x8
  static constexpr int64_t kStepBytes = 148;
  static constexpr int64_t kActBytes = 320;

  static size_t RowBytes(int64_t k) { return static_cast<size_t>(k / kStepElems * kStepBytes); }
  static void Repack(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
    for (int64_t r = 0; r < rows; ++r) {
      const auto* b =
          reinterpret_cast<const BlockQ4_K*>(static_cast<const uint8_t*>(src) + r * src_stride);
      uint8_t* row = static_cast<uint8_t*>(dst) + r * RowBytes(k);
      for (int64_t i = 0; i < Steps<Q4_Kx8>(k); ++i) {
        const BlockQ4_K& blk = b[i];
        uint8_t* step = row + kStepBytes * i;
        for (int j = 0; j < 8; ++j) {
          // Element e of sub-block j: nibble (j % 2) of qs[32·(j / 2) + e].
          auto q = [&](int e) { return (blk.qs[32 * (j / 2) + e] >> (4 * (j % 2))) & 0x0f; };
          for (int v = 0; v < 4; ++v) {
            for (int i4 = 0; i4 < 4; ++i4) {
              step[32 * v + 4 * j + i4] =
                  static_cast<uint8_t>(q(4 * v + i4) | (q(16 + 4 * v + i4) << 4));
            }
          }
          int sc, mn;
          UnpackScaleMinK4(blk.scales, j, &sc, &mn);
          step[128 + j] = static_cast<uint8_t>(sc);
          step[136 + j] = static_cast<uint8_t>(mn);
        }
        std::memcpy(step + 144, &blk.d, 2);
        std::memcpy(step + 146, &blk.dmin, 2);
      }
    }
  }
  static void UnpackRow(int64_t k, const void* src, void* dst) {
    for (int64_t i = 0; i < Steps<Q4_Kx8>(k); ++i) {
      const uint8_t* step = static_cast<const uint8_t*>(src) + kStepBytes * i;
      BlockQ4_K blk{};
      int sc[8], mn[8];
      for (int j = 0; j < 8; ++j) {
        // Step byte 32v + 4j + i4 holds elements 4v + i4 (low) and 16 + 4v + i4 (high) of
        // sub-block j; element e of sub-block j is nibble (j % 2) of qs[32·(j / 2) + e].
        for (int v = 0; v < 4; ++v) {
          for (int i4 = 0; i4 < 4; ++i4) {
            const int byte = step[32 * v + 4 * j + i4];
            const int shift = 4 * (j % 2);
            blk.qs[32 * (j / 2) + 4 * v + i4] |= static_cast<uint8_t>((byte & 0x0f) << shift);
            blk.qs[32 * (j / 2) + 16 + 4 * v + i4] |= static_cast<uint8_t>((byte >> 4) << shift);
          }
        }
        sc[j] = step[128 + j];
        mn[j] = step[136 + j];
      }
      PackScaleMinK4(sc, mn, blk.scales);
      std::memcpy(&blk.d, step + 144, 2);
      std::memcpy(&blk.dmin, step + 146, 2);
      std::memcpy(static_cast<uint8_t*>(dst) + i * sizeof(BlockQ4_K), &blk, sizeof(BlockQ4_K));
    }
  }
  static void PrepAct(const uint8_t* row, int64_t s, int /*t*/, uint8_t* dst) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(row) + s;
    const uint8_t* blocks[8];
    for (int l = 0; l < 8; ++l) blocks[l] = reinterpret_cast<const uint8_t*>(a->qs + 32 * l);
    TransposeBlocks32(blocks, dst);
    // Sub-block j's sum bsums[2j] + bsums[2j + 1]: |Σ| ≤ 32 · 128 fits an i16.
    const __m256i pairs =
        _mm256_madd_epi16(LoadV(reinterpret_cast<const uint8_t*>(a->bsums)), _mm256_set1_epi16(1));
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(dst + 256),
        _mm_packs_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1)));
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + 288), _mm256_set1_ps(a->d));
  }
  struct ScaleMins {
    __m256i scales;  // i16 lanes 2j, 2j + 1: sub-block j's scale
    __m128i mins;    // i16 lane j: sub-block j's min
    __m256 d;
    __m128 dmin;
  };
  static ScaleMins DecodeScaleMins(const uint8_t* step) {
    const __m128i sc = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(step + 128));
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(LoadUnaligned<int32_t>(step + 144)));
    return {_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(sc, sc)),
            _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(step + 136))),
            _mm256_broadcastss_ps(dd), _mm_shuffle_ps(dd, dd, 0x55)};
  }
  struct W {
    __m256i lo[4], hi[4];
    ScaleMins sm;
  };
  static W Decode(const uint8_t* step, int /*t*/) {
    W w;
    DecodeNibbles(step, 8, w.lo, w.hi);
    w.sm = DecodeScaleMins(step);
    return w;
  }
  // acc + d_a · (d · Σ_j sc_j · Σ sub-block j − dmin · Σ_j m_j · Σ sub-block j's activation).
  static __m256 Dot(const W& w, const uint8_t* a, __m256 acc) {
    return Finish(w.sm, NibbleSums16(w.lo, w.hi, a), a, acc);
  }
  static __m256 Finish(const ScaleMins& sm, __m256i sums, const uint8_t* a, __m256 acc) {
    const __m256i s = _mm256_madd_epi16(sums, sm.scales);
    // Lane i: m_2i · Σ sub-block 2i's activation + m_2i+1 · Σ sub-block 2i + 1's.
    const __m128i m = _mm_madd_epi16(sm.mins, LoadH(a + 256));
    const __m128 mm = _mm_mul_ps(_mm_cvtepi32_ps(m), sm.dmin);
    const __m256 da = _mm256_loadu_ps(reinterpret_cast<const float*>(a + 288));
    const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(s), sm.d, _mm256_zextps128_ps256(mm));
    return _mm256_fmadd_ps(t, da, acc);
  }
  // Dot for N rows (LayoutGemm: the 4 of a quad): the same operations per row.
  template <int N>
  static void DotN(const uint8_t* step, int /*t*/, const uint8_t* act, __m256 acc[N]) {
    __m256i sums[N];
    NibbleSums16xN<N>(step, 8, act, kActBytes, sums);
    const ScaleMins sm = DecodeScaleMins(step);
    for (int c = 0; c < N; ++c) acc[c] = Finish(sm, sums[c], act + c * kActBytes, acc[c]);
  }
};

// ---- q6_Kx8 ---------------------------------------------------------------------------------
//
// Layout (Q6_Kx8::Repack): per super-block of 256, 210 bytes as in the file. Decoded vector D_v
// (v < 8) holds, in byte i of dword lane j, element 4·(v % 4) + i of sub-block j + 8·(v / 4)
// (16 sub-blocks of 16). Stored: 4 vectors of nibbles (vector t's low nibbles are D_t's low 4 bits,
// its high nibbles D_{t+4}'s), 2 vectors of high bits (bits 2m, 2m + 1 of vector u's bytes are
// D_{4u+m}'s bits 4-5), the 16 int8 scales, d (f16). The prepared activation step: the Q8_K
// super-block's 16 sub-blocks in the same order, its 16 bsums at 256, its scale in all 8 f32 lanes
// at 288. A step: 8 vpmaddubsw of q + 32 (≤ 63, so two may be summed in i16), 4 vpmaddwd by the
// scales, one vpmaddwd of the scales by the bsums for the −32·Σ sc·Σa term, one conversion and one
// FMA; the file layout's tile spends 8 vpmaddwd and 8 scale broadcasts.
struct Q6_Kx8 {
  static constexpr int64_t kStepElems = 256;
  static constexpr bool kGemvDotN = true;  // see Q8_0x8
  static constexpr int64_t kStepBytes = 210;
  static constexpr int64_t kActBytes = 320;

  static size_t RowBytes(int64_t k) { return static_cast<size_t>(k / kStepElems * kStepBytes); }
  static void Repack(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
    for (int64_t r = 0; r < rows; ++r) {
      const auto* b =
          reinterpret_cast<const BlockQ6_K*>(static_cast<const uint8_t*>(src) + r * src_stride);
      uint8_t* row = static_cast<uint8_t*>(dst) + r * RowBytes(k);
      for (int64_t i = 0; i < Steps<Q6_Kx8>(k); ++i) {
        const BlockQ6_K& blk = b[i];
        // Element e (0..255) as q + 32 in 0..63: element 128h + 32c + l has low nibble c / 2 of
        // ql[64h + 32(c % 2) + l] and high bits 2c..2c+1 of qh[32h + l].
        auto q = [&](int e) {
          const int h = e / 128, c = (e % 128) / 32, l = e % 32;
          const int low = (blk.ql[64 * h + 32 * (c % 2) + l] >> (4 * (c / 2))) & 0x0f;
          const int high = (blk.qh[32 * h + l] >> (2 * c)) & 0x03;
          return low | (high << 4);
        };
        uint8_t* step = row + kStepBytes * i;
        uint8_t d[8][32];  // the decoded vectors D_v
        for (int v = 0; v < 8; ++v) {
          for (int j = 0; j < 8; ++j) {
            for (int b4 = 0; b4 < 4; ++b4)
              d[v][4 * j + b4] = static_cast<uint8_t>(q(16 * (j + 8 * (v / 4)) + 4 * (v % 4) + b4));
          }
        }
        for (int t = 0; t < 4; ++t) {
          for (int x = 0; x < 32; ++x) {
            step[32 * t + x] = static_cast<uint8_t>((d[t][x] & 0x0f) | ((d[t + 4][x] & 0x0f) << 4));
          }
        }
        for (int u = 0; u < 2; ++u) {
          for (int x = 0; x < 32; ++x) {
            int bits = 0;
            for (int m = 0; m < 4; ++m) bits |= (d[4 * u + m][x] >> 4) << (2 * m);
            step[128 + 32 * u + x] = static_cast<uint8_t>(bits);
          }
        }
        std::memcpy(step + 192, blk.scales, 16);
        std::memcpy(step + 208, &blk.d, 2);
      }
    }
  }
  static void UnpackRow(int64_t k, const void* src, void* dst) {
    for (int64_t i = 0; i < Steps<Q6_Kx8>(k); ++i) {
      const uint8_t* step = static_cast<const uint8_t*>(src) + kStepBytes * i;
      uint8_t d[8][32];  // the decoded vectors D_v, as Repack made them
      for (int t = 0; t < 4; ++t) {
        for (int x = 0; x < 32; ++x) {
          d[t][x] = step[32 * t + x] & 0x0f;
          d[t + 4][x] = step[32 * t + x] >> 4;
        }
      }
      for (int u = 0; u < 2; ++u) {
        for (int x = 0; x < 32; ++x) {
          const int bits = step[128 + 32 * u + x];
          for (int m = 0; m < 4; ++m) d[4 * u + m][x] |= ((bits >> (2 * m)) & 0x03) << 4;
        }
      }
      BlockQ6_K blk{};
      for (int v = 0; v < 8; ++v) {
        for (int j = 0; j < 8; ++j) {
          for (int b4 = 0; b4 < 4; ++b4) {
            const int e = 16 * (j + 8 * (v / 4)) + 4 * (v % 4) + b4, q = d[v][4 * j + b4];
            const int h = e / 128, c = (e % 128) / 32, l = e % 32;
            blk.ql[64 * h + 32 * (c % 2) + l] |= static_cast<uint8_t>((q & 0x0f) << (4 * (c / 2)));
            blk.qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * c));
          }
        }
      }
      std::memcpy(blk.scales, step + 192, 16);
      std::memcpy(&blk.d, step + 208, 2);
      std::memcpy(static_cast<uint8_t*>(dst) + i * sizeof(BlockQ6_K), &blk, sizeof(BlockQ6_K));
    }
  }
  static void PrepAct(const uint8_t* row, int64_t s, int /*t*/, uint8_t* dst) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(row) + s;
    const uint8_t* lo[8];
    const uint8_t* hi[8];
    for (int l = 0; l < 8; ++l) {
      lo[l] = reinterpret_cast<const uint8_t*>(a->qs + 16 * l);
      hi[l] = reinterpret_cast<const uint8_t*>(a->qs + 128 + 16 * l);
    }
    TransposeActivation(lo, hi, dst);
    std::memcpy(dst + 256, a->bsums, 32);
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + 288), _mm256_set1_ps(a->d));
  }
  struct Scales {
    __m256i sc_lo, sc_hi;  // i16 lanes 2j, 2j + 1: scale j / scale 8 + j
    __m256i scales;        // the 16 scales as i16 (pair with the bsums)
    __m256 d;
  };
  static Scales DecodeScales(const uint8_t* step) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(step + 192));
    return {_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(sc, sc)),
            _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(sc, sc)), _mm256_cvtepi8_epi16(sc),
            _mm256_set1_ps(_cvtsh_ss(LoadUnaligned<uint16_t>(step + 208)))};
  }
  // D_{4u+m}'s bits 4-5 from high-bit vector h (u): its bits 2m, 2m + 1 → bits 4-5 of each byte.
  static __m256i HighBits(__m256i h, int m) {
    return _mm256_and_si256(m == 0   ? _mm256_slli_epi16(h, 4)
                            : m == 1 ? _mm256_slli_epi16(h, 2)
                            : m == 2 ? h
                                     : _mm256_srli_epi16(h, 2),
                            _mm256_set1_epi8(0x30));
  }
  struct W {
    __m256i q[8];  // D_v
    Scales sc;
  };
  static W Decode(const uint8_t* step, int /*t*/) {
    W w;
    __m256i lo[4], hi[4];
    DecodeNibbles(step, 8, lo, hi);
    for (int u = 0; u < 2; ++u) {
      const __m256i h = LoadV(step + 128 + 32 * u);
      for (int m = 0; m < 4; ++m) {
        const int v = 4 * u + m;
        w.q[v] = _mm256_or_si256(v < 4 ? lo[v] : hi[v - 4], HighBits(h, m));
      }
    }
    w.sc = DecodeScales(step);
    return w;
  }
  // acc + d · d_a · (Σ_j sc_j · Σ (q + 32)·a over sub-block j − 32 · Σ_j sc_j · Σa over j).
  static __m256 Dot(const W& w, const uint8_t* a, __m256 acc) {
    __m256i t[4];
    for (int p = 0; p < 4; ++p) {
      t[p] = _mm256_add_epi16(_mm256_maddubs_epi16(w.q[2 * p], LoadV(a + 64 * p)),
                              _mm256_maddubs_epi16(w.q[2 * p + 1], LoadV(a + 64 * p + 32)));
    }
    const __m256i s = _mm256_add_epi32(
        _mm256_add_epi32(_mm256_madd_epi16(t[0], w.sc.sc_lo), _mm256_madd_epi16(t[1], w.sc.sc_lo)),
        _mm256_add_epi32(_mm256_madd_epi16(t[2], w.sc.sc_hi), _mm256_madd_epi16(t[3], w.sc.sc_hi)));
    return Finish(w.sc, s, a, acc);
  }
  static __m256 Finish(const Scales& sc, __m256i s, const uint8_t* a, __m256 acc) {
    const __m256i m = _mm256_madd_epi16(sc.scales, LoadV(a + 256));
    const __m256i total = _mm256_sub_epi32(s, _mm256_slli_epi32(m, 5));
    const __m256 da = _mm256_loadu_ps(reinterpret_cast<const float*>(a + 288));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(sc.d, da), acc);
  }
  // Dot for N rows (LayoutGemm: the 4 of a quad): D_{2p}, D_{2p+1} decoded once per pair p and used
  // for the 4 rows; the exact i32 sums equal Dot's.
  template <int N>
  static void DotN(const uint8_t* step, int /*t*/, const uint8_t* act, __m256 acc[N]) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const Scales sc = DecodeScales(step);
    __m256i s[N];
    for (int c = 0; c < N; ++c) s[c] = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
      const int u = p / 2;  // D_v for v = 2p, 2p + 1: nibble vector v % 4, high-bit vector u
      const __m256i h = LoadV(step + 128 + 32 * u);
      __m256i q[2];
      for (int i = 0; i < 2; ++i) {
        const int m = (2 * p + i) % 4;
        const __m256i raw = LoadV(step + 32 * m);
        const __m256i nib = u == 0 ? _mm256_and_si256(raw, mask)
                                   : _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
        q[i] = _mm256_or_si256(nib, HighBits(h, m));
      }
      const __m256i scp = u == 0 ? sc.sc_lo : sc.sc_hi;
      for (int c = 0; c < N; ++c) {
        const uint8_t* a = act + c * kActBytes + 64 * p;
        const __m256i t = _mm256_adds_epi16(_mm256_maddubs_epi16(q[0], LoadV(a)),
                                            _mm256_maddubs_epi16(q[1], LoadV(a + 32)));
        s[c] = _mm256_add_epi32(Opaque(s[c]), _mm256_madd_epi16(t, scp));
      }
    }
    for (int c = 0; c < N; ++c) acc[c] = Finish(sc, s[c], act + c * kActBytes, acc[c]);
  }
};

}  // namespace

void AddAvx2RepackedKernels(Kernels* k) {
  k->repacked[static_cast<size_t>(DType::Q4_0)] = LayoutFns<Q4_0x8>("q4_0x8");
  k->repacked[static_cast<size_t>(DType::Q5_0)] = LayoutFns<Q5_0x8>("q5_0x8");
  k->repacked[static_cast<size_t>(DType::Q8_0)] = LayoutFns<Q8_0x8>("q8_0x8");
  k->repacked[static_cast<size_t>(DType::Q4_K)] = LayoutFns<Q4_Kx8>("q4_Kx8");
  k->repacked[static_cast<size_t>(DType::Q6_K)] = LayoutFns<Q6_Kx8>("q6_Kx8");
}

}  // namespace dizuo::cpu
