// AVX-512 (F, BW, VL) + VNNI kernels. Only this file is compiled with those flags; SelectKernels()
// uses the table only on CPUs that have them all. It adds the f16 block attention (AttentionF16).
// Entries not overridden here (activation conversion, the per-row attention primitives, f32/bf16
// weights, Q4_1/Q5_1, Q2_K/Q3_K) come from the AVX2 table: 512-bit f32 tiles measured no faster
// than the AVX2 ones here (memory-bound at M = 1, and within 5% at M = 64 on an EPYC Zen 5). f16
// weights have their own kernels (dot tiles reading rows in turn, and a register-tiled GEMM) in
// kernels_avx512_f16.cc.
//
// Integer dot products use vpdpbusd (u8 × s8, four products summed into an i32 lane) and
// vpdpwssd. Weights are decoded to *unsigned* bytes u = q + o, so no sign fix-up is needed per
// product: Σ q·a = Σ u·a − o·Σ a, and the o·Σ a term is computed once per activation block (legacy
// quants) or taken from Q8_K's bsums (K-quants). All sums are exact integers scaled by the same
// block factors as the generic kernels, so results differ from them only by float summation order.
//
// A tile walks the row in steps (two 32-blocks or one 256-super-block); per step each weight row
// is decoded once and reused for every activation row of the tile. Each output's accumulator sees
// the same operations in the same order whatever the tile shape, so results do not depend on it.
//
// Helpers live in an anonymous namespace: nothing compiled with AVX-512 flags may be shared (as an
// inline or template instance) with code that runs on other CPUs.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values and trip -Wuninitialized
// at every use (GCC bug 105593, fixed in 13); the pragma must precede the header.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_avx2_ops.h"
#include "backends/cpu/kernels_avx512_ops.h"
#include "backends/cpu/kernels_common.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {

// f16 weights (kernels_avx512_f16.cc).
void AddAvx512F16Kernels(Kernels* k);

namespace {

using avx512::TransposeBlocks;

// For the per-step functions of the generation loops (DotSteps, and q5_0x16's and q8_0x16's
// DecodeW, Dot and DotTail): with the half-width tails GCC 12 called q8_0x16's DecodeW out of line
// from the row loop, its 9 vectors returned through memory, and q8_0x16 rows of 2048 from DRAM read
// 24.1-25.5 GB/s against 27.9-28.5 (cpu_kernels_bench BM_GemvDram, 1 thread); inlined, 27.4-27.9.
// q4_0x16 keeps the compiler's choice and no DotTail: either one made llama 1b Q4_0's rows of 2048
// read 4-10% slower from DRAM (`--profile`, alternated with the previous build) while their code
// in the row loop and their speed from L2 stayed the same; why is not known.
#define DZ_STEP inline __attribute__((always_inline))

// How a generation row loop prefetches: kNear, K::kPrefetchStride apart kPrefetchBytes ahead into
// L1 (T0); kFar, once per cache line kFarPrefetchBytes ahead into L2 (T1), the L1 left to the
// hardware prefetcher; kNone, the hardware prefetchers alone. Kernels with a Zen4Prefetch(k)
// choose per row length on Zen 4 (see kFarPrefetchBytes); all others, and every kernel on other
// CPUs, use kNear.
enum class PrefetchMode { kNear, kFar, kNone };

template <typename T>
inline T Load(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

inline float Half(uint16_t h) { return _cvtsh_ss(h); }

// Lanes 0-7 = h0, lanes 8-15 = h1 (f16 inputs).
inline __m512 TwoHalves(uint16_t h0, uint16_t h1) {
  const __m128 both = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h0 | (uint32_t{h1} << 16))));
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(both));
}

// Lanes 4r..4r+3 = d_r (f16 inputs).
inline __m512 QuadScales(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3) {
  const __m128i h = _mm_setr_epi16(static_cast<int16_t>(d0), static_cast<int16_t>(d1),
                                   static_cast<int16_t>(d2), static_cast<int16_t>(d3), 0, 0, 0, 0);
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  return _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
}

// In place, per 128-bit lane j, a 4 × 4 dword transpose: dword r of v[i]'s lane j becomes dword i
// of v[r]'s lane j.
inline void TransposeDwords4x4(__m512i v[4]) {
  const __m512i a = _mm512_unpacklo_epi32(v[0], v[1]), b = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i c = _mm512_unpacklo_epi32(v[2], v[3]), d = _mm512_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm512_unpacklo_epi64(a, c);
  v[1] = _mm512_unpackhi_epi64(a, c);
  v[2] = _mm512_unpacklo_epi64(b, d);
  v[3] = _mm512_unpackhi_epi64(b, d);
}

// ---- legacy 32-blocks (Q8_0, Q4_0, Q5_0) × Q8_0 activations: two blocks per step ------------

struct LegacyAcc {
  __m512 v = _mm512_setzero_ps();
};

// Two Q8_0 activation blocks: quants, their per-lane sums times −o (o: the weight's offset), and
// scales (lanes 0-7: block 0, 8-15: block 1). A missing second block is all zero.
struct LegacyAct {
  __m512i q, bias;
  __m512 d;
};

template <int kOffset>
inline LegacyAct PrepLegacyAct(const uint8_t* row, int64_t step, int64_t blocks) {
  const auto* a = reinterpret_cast<const BlockQ8_0*>(row) + 2 * step;
  LegacyAct r;
  const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[0].qs));
  if (2 * step + 1 < blocks) {
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[1].qs));
    r.q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    r.d = TwoHalves(a[0].d, a[1].d);
  } else {
    r.q = _mm512_zextsi256_si512(q0);
    r.d = TwoHalves(a[0].d, 0);
  }
  const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(kOffset), r.q);
  r.bias = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
  return r;
}

struct LegacyW {
  __m512i u;  // unsigned quants q + offset
  __m512 d;
};

inline void LegacyDot(const LegacyW& w, const LegacyAct& a, LegacyAcc& acc) {
  const __m512i s = _mm512_dpbusd_epi32(a.bias, w.u, a.q);
  acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, a.d), acc.v);
}

// 16 bytes of block 0 and of block 1 → [lo0, hi0, lo1, hi1] nibbles: elements in order.
inline __m512i NibblePairs(const uint8_t* qs0, const uint8_t* qs1) {
  const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0));
  const __m128i r1 = qs1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)) : r0;
  const __m512i dup = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(r0, r0)),
                                         _mm256_set_m128i(r1, r1), 1);
  const __m512i shifts = _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0,
                                           0x0004000400040004, 0x0004000400040004);
  return _mm512_and_si512(_mm512_srlv_epi16(dup, shifts), _mm512_set1_epi8(0x0f));
}

struct KernelQ8_0 {
  using Acc = LegacyAcc;
  using Act = LegacyAct;
  static constexpr int64_t kStep = 64;
  static constexpr int64_t kStepBytes = 2 * sizeof(BlockQ8_0);
  static constexpr bool kPrefetch = true;
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t blocks) {
    return PrepLegacyAct<128>(row, step, blocks);
  }
  static LegacyW DecodeW(const uint8_t* row, int64_t step, int64_t blocks) {
    const auto* w = reinterpret_cast<const BlockQ8_0*>(row) + 2 * step;
    LegacyW r;
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[0].qs));
    __m512i q;
    if (2 * step + 1 < blocks) {
      const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[1].qs));
      q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
      r.d = TwoHalves(w[0].d, w[1].d);
    } else {
      q = _mm512_castsi256_si512(q0);
      r.d = TwoHalves(w[0].d, 0);
    }
    r.u = _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
    return r;
  }
  static void Dot(const LegacyW& w, const Act& a, Acc& acc) { LegacyDot(w, a, acc); }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

// Q4_0: four blocks (128 elements, 72 contiguous bytes) per step, block j's 16 quant bytes in
// 128-bit lane j (low nibbles: elements 0-15, high: 16-31), so a step costs two vpdpbusd, one
// conversion and one FMA for four blocks, where two-block steps spent one of each per two blocks
// plus a spread of the nibbles into element order. The activation is laid out to match (lane j:
// block j's elements 0-15 in `lo`, 16-31 in `hi`); missing blocks of a last step are zeros.
// M = 1 from L2/L3 (cpu_kernels_bench, 1 thread, CPU time): 2048 × 8192 0.388 → 0.328 ms, 125M
// shapes 768 × 3072 and 3072 × 768 0.059 → 0.053 and 0.053 → 0.045 ms; 57 MB from DRAM
// 2.67 → 2.30 ms. Two 64-byte loads per step with 16-bit permutes (fewer instructions) measured
// 1.2-1.4× faster still from cache but 1.3× slower in 1B tg (the loads split cache lines and
// stalled on misses), so the quants came in four 16-byte loads. Now one 64-byte load of the
// step's head feeds two word permutes (blocks 0-2's quants, the four scales) and block 3's quants
// come in one 16-byte load: from L2/L3 (M = 1 gemv, see Gemv) 768 × 3072 0.033 → 0.031-0.032,
// 3072 × 768 0.032 → 0.030, 2048 × 8192 0.0575 → 0.054 ms; from DRAM too noisy under load to
// separate (1b tg unchanged within noise).
struct Q4Act {
  __m512i lo, hi, bias;  // bias: −8·Σa per dword
  __m512 d;              // lanes 4j..4j+3: block j's scale
};

// Word 8j + i of lanes 0-2 ← word 9j + 1 + i of a Q4_0 step (block j's 16 quant bytes).
alignas(64) constexpr uint16_t kQ4Lanes[32] = {1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12,
                                               13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24,
                                               25, 26, 0,  0,  0,  0,  0,  0,  0,  0};

struct KernelQ4_0 {
  using Acc = LegacyAcc;
  using Act = Q4Act;
  static constexpr int64_t kStep = 128;
  static constexpr int64_t kStepBytes = 4 * sizeof(BlockQ4_0);
  static constexpr bool kPrefetch = true;
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t blocks) {
    const auto* a = reinterpret_cast<const BlockQ8_0*>(row) + 4 * step;
    const int64_t n = std::min<int64_t>(4, blocks - 4 * step);
    Act r;
    r.lo = r.hi = _mm512_setzero_si512();
    uint16_t d[4] = {};
    for (int64_t j = 0; j < n; ++j) {
      const __m512i lo =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[j].qs)));
      const __m512i hi =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[j].qs + 16)));
      const auto lane = static_cast<__mmask16>(0xf << (4 * j));
      r.lo = _mm512_mask_mov_epi32(r.lo, lane, lo);
      r.hi = _mm512_mask_mov_epi32(r.hi, lane, hi);
      d[j] = a[j].d;
    }
    r.d = QuadScales(d[0], d[1], d[2], d[3]);
    const __m512i eight = _mm512_set1_epi8(8);
    const __m512i sum =
        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, r.lo), eight, r.hi);
    r.bias = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
    return r;
  }
  struct W {
    __m512i lo, hi;
    __m512 d;
  };
  static W DecodeW(const uint8_t* row, int64_t step, int64_t blocks) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(row) + 4 * step;
    auto q = [&](int j) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[j].qs)); };
    const __m512i mask = _mm512_set1_epi8(0x0f);
    if (4 * step + 4 <= blocks) {
      // The four scales (words 0, 9, 18, 27 of the step) spread to lanes 4j..4j+3 by one word
      // permute of the step's first 64 bytes, instead of four scalar loads and inserts.
      const __m512i spread = _mm512_setr_epi64(0, 0x0009000900090009, 0x0012001200120012,
                                               0x001b001b001b001b, 0, 0, 0, 0);
      const __m512i head = _mm512_loadu_si512(b);
      __m512i z = _mm512_permutexvar_epi16(_mm512_load_si512(kQ4Lanes), head);
      z = _mm512_inserti32x4(z, q(3), 3);
      const __m512 d =
          _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(spread, head)));
      return {_mm512_and_si512(z, mask), _mm512_and_si512(_mm512_srli_epi16(z, 4), mask), d};
    }
    // A last, partial step: missing blocks are zeros.
    __m512i z = _mm512_setzero_si512();
    uint16_t d[4] = {};
    for (int j = 0; 4 * step + j < blocks; ++j) {
      z = _mm512_mask_broadcast_i32x4(z, static_cast<__mmask16>(0xf << (4 * j)), q(j));
      d[j] = b[j].d;
    }
    return {_mm512_and_si512(z, mask), _mm512_and_si512(_mm512_srli_epi16(z, 4), mask),
            QuadScales(d[0], d[1], d[2], d[3])};
  }
  static void Dot(const W& w, const Act& a, Acc& acc) {
    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a.bias, w.lo, a.lo), w.hi, a.hi);
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, a.d), acc.v);
  }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

// ---- Q4_0 repacked at load: 16 blocks per step, one i32 lane per block ----------------------
//
// Layout (RepackQ4_0x16; a row of nb = k / 32 blocks, rows Q4_0x16RowBytes(k) apart): groups of
// t = 16 blocks (the last group: the blocks left), group g at byte 288·g: 4 vectors of 4·t bytes,
// where dword l of vector v is block 16g + l's quant bytes 4v .. 4v + 3, then the group's t f16
// scales: 18 bytes per block, as in the file. The row is read front to back, as the file's layout
// is, 288 bytes per step. Rows padded to a multiple of 64 bytes measured the same (125m Q4_0
// tg64, 4 alternated rounds: unpadded ÷ padded 1.01× with 1 thread, 0.99× with 2) and cost 3.7%
// more memory for 768-long rows, so rows are not padded.
// A step decodes 16 blocks with four 64-byte loads, one f16 conversion of their scales and no
// permute: each of its 8 vpdpbusd adds 4 products of every block into that block's lane, so one
// conversion and one FMA per step scale 16 exact block sums. The file's layout (KernelQ4_0)
// spends two word permutes, an insert, a conversion and an FMA per 4 blocks.
// The activation step (16 Q8_0 blocks) is gathered into the same lane order.
// A first version kept all of a row's scales after its quants (aligned quant vectors, but two
// streams per row): llama 1b Q4_0 tg32, 1 thread, 22.4-23.3 t/s against 27.2-27.5 with the scales
// after each group (one prefetch per line both; see kPrefetchStride).
constexpr int64_t kQ4x16Blocks = 16;
constexpr int64_t kQ4x16GroupBytes = 18 * kQ4x16Blocks;

// Blocks in group g of a row of nb blocks (16, or fewer in the last group).
inline int64_t Q4x16GroupBlocks(int64_t g, int64_t nb) {
  return std::min(kQ4x16Blocks, nb - kQ4x16Blocks * g);
}

size_t Q4_0x16RowBytes(int64_t k) { return static_cast<size_t>(k / 32 * 18); }

// A row's last group of at most 8 blocks (rows of 768 end in 8, Gemma 3's 640 in 4) fills at most
// the low half of a step's vectors. The x16 kernels' DotTail does it with 256-bit operations,
// which a Zen 4 runs as one micro-op where it splits a 512-bit one in two; the full-width step
// spent as much on such a group as on 16 blocks. The low lanes see the same operations, and the
// high ones are left as they are instead of receiving + 0 · 0 (an exact no-op: an accumulator that
// starts at +0 never holds −0), so results are bit for bit those of the full-width step.
// From L2 (cpu_kernels_bench BM_GemvL2, 1 thread, GB/s, two runs each): q8_0x16 rows of 768
// 43.9-44.9 → 55.2-57.2, of 640 37.7-38.2 → 46.0-47.8; q5_0x16 768 25.4-25.6 → 26.9, 640 21.5 →
// 22.7-22.8. From DRAM a single thread reads rows of 768 at the same 27-28 GB/s; Gemma 3 270M tg64
// with 1 thread (its 178 MB q8_0 output layer and q5_0 projections have rows of 640): 1.04×
// (bench/ab-dizuo, 4 rounds, 1.02-1.08).
inline bool HalfTail(int64_t step, int64_t blocks) {
  return blocks - kQ4x16Blocks * step <= kQ4x16Blocks / 2;
}

// acc's lanes 0-7 ← lo (lanes 8-15 unchanged).
DZ_STEP void SetLowHalf(__m512& acc, __m256 lo) {
  acc = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(acc), _mm256_castps_pd(lo), 0));
}

// acc lanes 0-7 += cvt(s) · (wd · ad), as the full-width step's FMA does them.
DZ_STEP void AccumulateLow(__m256i s, __m256 wd, __m512 ad, __m512& acc) {
  SetLowHalf(acc,
             _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(wd, _mm512_castps512_ps256(ad)),
                             _mm512_castps512_ps256(acc)));
}

// The rows of a 16-block layout of Block (sizeof(Block) bytes per block, as in the file): for each
// group of t blocks, write(group, t, l, block l of the group) places block l.
template <typename Block, typename Write>
void RepackX16(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst,
               Write write) {
  const int64_t nb = k / 32;
  const size_t row_bytes = static_cast<size_t>(nb) * sizeof(Block);
  for (int64_t r = 0; r < rows; ++r) {
    const auto* b =
        reinterpret_cast<const Block*>(static_cast<const uint8_t*>(src) + r * src_stride);
    uint8_t* o = static_cast<uint8_t*>(dst) + r * row_bytes;
    for (int64_t g = 0; kQ4x16Blocks * g < nb; ++g) {
      const int64_t t = Q4x16GroupBlocks(g, nb);
      uint8_t* group = o + static_cast<int64_t>(sizeof(Block)) * kQ4x16Blocks * g;
      for (int64_t l = 0; l < t; ++l) write(group, t, l, b[kQ4x16Blocks * g + l]);
    }
  }
}

// One row of such a layout back in the file's: read(group, t, l, &block) fills block l of each
// group (RepackFns::unpack_row). With it, an embedding table tied to the output layer gets its
// copy too: Gemma 3 270M's 178 MB Q8_0 output layer read 25 GB/s as q8_0x16 against 16 in the
// file's layout (Zen 4, 1 thread, `--profile`; the AVX2 GEMV is compute-bound there).
template <typename Block, typename Read>
void UnpackX16(int64_t k, const void* src, void* dst, Read read) {
  const int64_t nb = k / 32;
  const auto* row = static_cast<const uint8_t*>(src);
  for (int64_t g = 0; kQ4x16Blocks * g < nb; ++g) {
    const int64_t t = Q4x16GroupBlocks(g, nb);
    const uint8_t* group = row + static_cast<int64_t>(sizeof(Block)) * kQ4x16Blocks * g;
    for (int64_t l = 0; l < t; ++l) {
      Block blk;
      read(group, t, l, &blk);
      std::memcpy(static_cast<uint8_t*>(dst) + (kQ4x16Blocks * g + l) * sizeof(Block), &blk,
                  sizeof(Block));
    }
  }
}

// Rows of whole 16-block groups (k a multiple of 512: llama 1b's 2048 and 8192) are stored in
// groups of kQ4x16RowGroup rows (RepackFns::row_group) whose steps interleave: step s of row j of
// a group of g rows (4, or the rows left at the end) at byte (s·g + j)·288 of the group. A
// generation call then reads each group front to back, one stream, and loads each activation step
// once for the group's rows (GemvQ4_0x16). Rows with a partial last group (768) keep one
// row after another. What it saves is presumably loads, not arithmetic: a streaming loop (512 MiB,
// huge pages, one 64-byte load per line) read 28-29 GB/s from DRAM on the 2-vCPU EPYC Zen 4 with
// one thread; with 2 more loads per line, from L1, 18-20 GB/s, with 4 more 13-14, while a chain of
// 8 more arithmetic operations per line cost nothing (29.5-30.0) and a chain of 16 less (23). Every
// load behind a weight line still in flight presumably holds a load-queue entry until that line
// arrives, so fewer lines are in flight (no hardware counters on this VM to confirm it). One row at
// a time, a q4_0x16 step loads its 10 activation vectors for 4.5 lines of weights; in groups of 4,
// for 18. BM_GemvDram q4_0, 1 thread, 3 alternated rounds, GB/s at K = 1024 / 2048 / 8192: one row
// at a time 26.6-27.2 / 23.0-23.8 / 22.7-28.4; groups of 4 28.4-29.3 / 27.7-29.7 / 26.7-29.2 (the
// probe: 31.3); groups of 2 rows 23-24 / 20-29 / 23-30. Two rows read side by side from their
// own places (two streams) read 8-11 GB/s with the hardware prefetcher alone and 19-21 with the
// far prefetch: the interleaving keeps one stream. (Loads are not the whole story: q4_Kx16 with
// each weight vector loaded once instead of folded into both masks ran faster from L2 and slower
// from DRAM; see docs/benchmarks/HISTORY.md, twenty-second session.)
constexpr int kQ4x16RowGroup = 4;

int Q4_0x16RowGroup(int64_t k) { return k % (32 * kQ4x16Blocks) == 0 ? kQ4x16RowGroup : 1; }

// Block l of a q4_0x16 group (step) of t blocks, written or read.
void WriteQ4_0x16Block(uint8_t* group, int64_t t, int64_t l, const BlockQ4_0& blk) {
  for (int v = 0; v < 4; ++v) std::memcpy(group + 4 * t * v + 4 * l, blk.qs + 4 * v, 4);
  std::memcpy(group + 16 * t + 2 * l, &blk.d, 2);
}
void ReadQ4_0x16Block(const uint8_t* group, int64_t t, int64_t l, BlockQ4_0* blk) {
  for (int v = 0; v < 4; ++v) std::memcpy(blk->qs + 4 * v, group + 4 * t * v + 4 * l, 4);
  std::memcpy(&blk->d, group + 16 * t + 2 * l, 2);
}

void RepackQ4_0x16(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  const int64_t group_rows = Q4_0x16RowGroup(k);
  if (group_rows == 1)
    return RepackX16<BlockQ4_0>(k, src, src_stride, rows, dst, WriteQ4_0x16Block);
  const int64_t nb = k / 32, steps = nb / kQ4x16Blocks;
  for (int64_t r0 = 0; r0 < rows; r0 += group_rows) {
    const int64_t g = std::min(group_rows, rows - r0);
    uint8_t* group = static_cast<uint8_t*>(dst) + r0 * Q4_0x16RowBytes(k);
    for (int64_t j = 0; j < g; ++j) {
      const auto* b = reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(src) +
                                                         (r0 + j) * src_stride);
      for (int64_t s = 0; s < steps; ++s) {
        uint8_t* step = group + (s * g + j) * kQ4x16GroupBytes;
        for (int64_t l = 0; l < kQ4x16Blocks; ++l) {
          WriteQ4_0x16Block(step, kQ4x16Blocks, l, b[kQ4x16Blocks * s + l]);
        }
      }
    }
  }
}

void UnpackQ4_0x16(int64_t k, const void* src, void* dst) {
  UnpackX16<BlockQ4_0>(k, src, dst, ReadQ4_0x16Block);
}

void UnpackRowQ4_0x16(int64_t k, const void* data, size_t stride, int64_t rows, int64_t r,
                      void* dst) {
  const int64_t group_rows = Q4_0x16RowGroup(k);
  const auto* base = static_cast<const uint8_t*>(data);
  if (group_rows == 1) return UnpackQ4_0x16(k, base + r * static_cast<int64_t>(stride), dst);
  const int64_t r0 = r / group_rows * group_rows, g = std::min(group_rows, rows - r0);
  const uint8_t* group = base + r0 * static_cast<int64_t>(stride);
  for (int64_t s = 0; s < k / 32 / kQ4x16Blocks; ++s) {
    const uint8_t* step = group + (s * g + r - r0) * kQ4x16GroupBytes;
    for (int64_t l = 0; l < kQ4x16Blocks; ++l) {
      BlockQ4_0 blk;
      ReadQ4_0x16Block(step, kQ4x16Blocks, l, &blk);
      std::memcpy(static_cast<uint8_t*>(dst) + (kQ4x16Blocks * s + l) * sizeof(BlockQ4_0), &blk,
                  sizeof(BlockQ4_0));
    }
  }
}

// Lane l ← the 32-bit word at byte 34·l + offset of a Q8_0 step (lanes of missing blocks: 0).
inline __m512i GatherQ8Words(const uint8_t* blocks, __mmask16 valid, int offset) {
  const __m512i at = _mm512_add_epi32(
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(sizeof(BlockQ8_0)))),
      _mm512_set1_epi32(offset));
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, at, blocks, 1);
}

struct KernelQ4_0x16 {
  using Acc = LegacyAcc;
  struct Act {
    __m512i lo[4], hi[4];  // lane l: block l's elements 4v .. 4v + 3 and 16 + 4v .. 16 + 4v + 3
    __m512i bias;          // lane l: −8·Σ a of block l
    __m512 d;              // lane l: block l's scale
  };
  static constexpr int64_t kStep = 32 * kQ4x16Blocks;
  static constexpr int64_t kStepBytes = kQ4x16GroupBytes;
  // A step's activation in registers, loaded once for all rows of a group (GemvQ4_0x16):
  // without it GCC folds the loads into each row's vpdpbusd.
  DZ_STEP static void Pin(Act& a) {
    for (int v = 0; v < 4; ++v) __asm__("" : "+v"(a.lo[v]), "+v"(a.hi[v]));
    __asm__("" : "+v"(a.bias), "+v"(a.d));
  }
  static constexpr bool kPrefetch = true;
  // Two prefetches per cache line. llama 1b Q4_0 tg16, 1 thread, EPYC Zen 4 (two alternated
  // rounds, t/s): 37.8 / 36.9 against 26.7 / 25.6 with one per line (the file layout: 30.5 /
  // 30.1 and 29.4 / 28.5); one per 16 bytes 33.3 / 34.0. Prefetching to L2 (T1) instead: 30.9 /
  // 31.6. Against the current kernel (bench/ab-dizuo --dizuo-b, 1b tg32, 3 rounds, seventh
  // session): one per line 0.87× with 1 thread and 0.98× with 2. (An earlier A/B gave 0.70× /
  // 0.89×, and 8 KB ahead instead of 4 KB 0.92× / 0.97×, but may have run its B binary with
  // --no-repack, ab-dizuo's default for B then.) Why the second
  // prefetch of a line pays is not known (no hardware counters on this virtual machine); a first
  // one that is dropped while many misses are in flight is a guess. Since the eighth session
  // these near prefetches serve other CPUs only: Zen 4 takes Zen4Prefetch's modes.
  static constexpr int64_t kPrefetchStride = 32;
  // On Zen 4 (eighth session, see kFarPrefetchBytes): rows of whole 16-block groups stream best
  // with the hardware prefetchers alone; rows with a partial last group (K = 768) with the far
  // prefetch. llama 1b Q4_0 tg32, 1 thread, t/s: near 43.8-45.0, none 48.1-51.4, far 39.1-41.0;
  // 125m Q4_0: near 309-317, none 279-295, far 363-398.
  static PrefetchMode Zen4Prefetch(int64_t k) {
    return k % kStep == 0 ? PrefetchMode::kNone : PrefetchMode::kFar;
  }
  static __mmask16 Valid(int64_t step, int64_t blocks) {
    return static_cast<__mmask16>((uint32_t{1} << Q4x16GroupBlocks(step, blocks)) - 1);
  }
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t blocks) {
    const uint8_t* a = row + kQ4x16Blocks * step * static_cast<int64_t>(sizeof(BlockQ8_0));
    const __mmask16 valid = Valid(step, blocks);
    Act r;
    const __m512i eight = _mm512_set1_epi8(8);
    __m512i sum = _mm512_setzero_si512();
    for (int v = 0; v < 4; ++v) {
      r.lo[v] = GatherQ8Words(a, valid, 2 + 4 * v);
      r.hi[v] = GatherQ8Words(a, valid, 18 + 4 * v);
      sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sum, eight, r.lo[v]), eight, r.hi[v]);
    }
    r.bias = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
    const __m512i d = _mm512_and_si512(GatherQ8Words(a, valid, 0), _mm512_set1_epi32(0xffff));
    r.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
    return r;
  }
  struct W {
    __m512i lo[4], hi[4];
    __m512 d;
  };
  static W DecodeW(const uint8_t* row, int64_t step, int64_t blocks) {
    const uint8_t* q = row + kQ4x16GroupBytes * step;
    const int64_t t = Q4x16GroupBlocks(step, blocks);
    const uint8_t* scales = q + 16 * t;
    const __m512i mask = _mm512_set1_epi8(0x0f);
    W w;
    __m512i raw[4];
    // The branch tests the step, not t: against the build before t was factored out, testing
    // t == 16 measured 0.94-0.95× (three A/Bs, 1b tg, 1 thread) and this form 1.04× (one A/B).
    if (kQ4x16Blocks * (step + 1) <= blocks) {
      for (int v = 0; v < 4; ++v) raw[v] = _mm512_loadu_si512(q + 64 * v);
      w.d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
    } else {  // the last group's t blocks: vectors of 4·t bytes
      const __mmask16 valid = Valid(step, blocks);
      for (int v = 0; v < 4; ++v) raw[v] = _mm512_maskz_loadu_epi32(valid, q + 4 * t * v);
      w.d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, scales));
    }
    for (int v = 0; v < 4; ++v) {
      w.lo[v] = _mm512_and_si512(raw[v], mask);
      w.hi[v] = _mm512_and_si512(_mm512_srli_epi16(raw[v], 4), mask);
    }
    return w;
  }
  static void Dot(const W& w, const Act& a, Acc& acc) {
    // Two dependency chains; the integer sums are exact, so their split does not matter.
    __m512i s0 = a.bias, s1 = _mm512_setzero_si512();
    for (int v = 0; v < 4; ++v) {
      s0 = _mm512_dpbusd_epi32(s0, w.lo[v], a.lo[v]);
      s1 = _mm512_dpbusd_epi32(s1, w.hi[v], a.hi[v]);
    }
    const __m512i s = _mm512_add_epi32(s0, s1);
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, a.d), acc.v);
  }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

// ---- Q5_0 repacked at load: q4_0x16's steps with the fifth bits ---------------------------------
//
// Layout (RepackQ5_0x16; rows Q5_0x16RowBytes(k) = 22 · k / 32 bytes apart, as in the file): groups
// of t = 16 blocks (the last group: the blocks left), group g at byte 352·g: q4_0x16's 4 vectors of
// 4·t bytes (dword l of vector v: block 16g + l's quant bytes 4v .. 4v + 3), then a vector of 4·t
// bytes whose dword l is block 16g + l's qh with its bits transposed (SpreadQ5Bits, as q5_0x8's),
// then the t f16 scales.
// A step decodes q4_0x16's nibbles and sets bit 4 where an element's fifth bit is set: vector u's
// fifth bits are bit u of every qh byte, moved to bit 4 by one shift and merged by one vpternlogd.
// The activation is q4_0x16's with −16·Σa for the offset. Until the twenty-second session qh kept
// the file's bit order, and each vector took a byte shuffle, a test into a mask and a masked add
// (as QuadQ5_0 does); see q5_0x16's entry in docs/benchmarks/HISTORY.md for the two measured.
// It replaced Q5_0's copy in the file's layout, which the AVX-512 tile reads at 13 GB/s on a Zen 4
// (Gemma 3 270M tg32, 1 thread, --profile; the AVX2 table's q5_0x8 reads 21 GB/s there): this
// kernel reads 20.7-21.0 GB/s. A first version spread the bits with a 32-bit multiply (vpmulld)
// per vector and read 13 GB/s, no faster than the file's layout.
constexpr int64_t kQ5x16GroupBytes = 22 * kQ4x16Blocks;

size_t Q5_0x16RowBytes(int64_t k) { return static_cast<size_t>(k / 32 * 22); }

void RepackQ5_0x16(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  RepackX16<BlockQ5_0>(k, src, src_stride, rows, dst,
                       [](uint8_t* group, int64_t t, int64_t l, const BlockQ5_0& blk) {
                         for (int v = 0; v < 4; ++v) {
                           std::memcpy(group + 4 * t * v + 4 * l, blk.qs + 4 * v, 4);
                         }
                         const uint32_t qh = SpreadQ5Bits(Load<uint32_t>(blk.qh));
                         std::memcpy(group + 16 * t + 4 * l, &qh, 4);
                         std::memcpy(group + 20 * t + 2 * l, &blk.d, 2);
                       });
}

void UnpackQ5_0x16(int64_t k, const void* src, void* dst) {
  UnpackX16<BlockQ5_0>(k, src, dst, [](const uint8_t* group, int64_t t, int64_t l, BlockQ5_0* blk) {
    for (int v = 0; v < 4; ++v) std::memcpy(blk->qs + 4 * v, group + 4 * t * v + 4 * l, 4);
    const uint32_t qh = GatherQ5Bits(Load<uint32_t>(group + 16 * t + 4 * l));
    std::memcpy(blk->qh, &qh, 4);
    std::memcpy(&blk->d, group + 20 * t + 2 * l, 2);
  });
}

// Vector u's fifth bits (SpreadQ5Bits) at bit 4 of each byte, the other bits 0.
template <int u>
DZ_STEP __m512i FifthBits(__m512i qh) {
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  if constexpr (u < 4) return _mm512_and_si512(_mm512_slli_epi16(qh, 4 - u), bit4);
  if constexpr (u == 4) return _mm512_and_si512(qh, bit4);
  if constexpr (u > 4) return _mm512_and_si512(_mm512_srli_epi16(qh, u - 4), bit4);
}
template <int u>
DZ_STEP __m256i FifthBits(__m256i qh) {
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  if constexpr (u < 4) return _mm256_and_si256(_mm256_slli_epi16(qh, 4 - u), bit4);
  if constexpr (u == 4) return _mm256_and_si256(qh, bit4);
  if constexpr (u > 4) return _mm256_and_si256(_mm256_srli_epi16(qh, u - 4), bit4);
}

struct KernelQ5_0x16 : KernelQ4_0x16 {
  static constexpr int64_t kStepBytes = kQ5x16GroupBytes;
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t blocks) {
    Act r = KernelQ4_0x16::PrepAct(row, step, blocks);
    r.bias = _mm512_add_epi32(r.bias, r.bias);  // −16·Σa
    return r;
  }
  DZ_STEP static W DecodeW(const uint8_t* row, int64_t step, int64_t blocks) {
    const uint8_t* q = row + kQ5x16GroupBytes * step;
    const int64_t t = Q4x16GroupBlocks(step, blocks);
    const uint8_t* scales = q + 20 * t;
    W w;
    __m512i raw[4], qh;
    if (kQ4x16Blocks * (step + 1) <= blocks) {
      for (int v = 0; v < 4; ++v) raw[v] = _mm512_loadu_si512(q + 64 * v);
      qh = _mm512_loadu_si512(q + 256);
      w.d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
    } else {  // the last group's t blocks: vectors of 4·t bytes
      const __mmask16 valid = Valid(step, blocks);
      for (int v = 0; v < 4; ++v) raw[v] = _mm512_maskz_loadu_epi32(valid, q + 4 * t * v);
      qh = _mm512_maskz_loadu_epi32(valid, q + 16 * t);
      w.d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, scales));
    }
    // (nibble & 0x0f) | fifth bit · 16 in one vpternlogd: 0xEC = (A & C) | B.
    const __m512i mask = _mm512_set1_epi8(0x0f);
    auto join = [&](__m512i nibbles, __m512i fifth) {
      return _mm512_ternarylogic_epi32(nibbles, fifth, mask, 0xEC);
    };
    w.lo[0] = join(raw[0], FifthBits<0>(qh));
    w.lo[1] = join(raw[1], FifthBits<1>(qh));
    w.lo[2] = join(raw[2], FifthBits<2>(qh));
    w.lo[3] = join(raw[3], FifthBits<3>(qh));
    w.hi[0] = join(_mm512_srli_epi16(raw[0], 4), FifthBits<4>(qh));
    w.hi[1] = join(_mm512_srli_epi16(raw[1], 4), FifthBits<5>(qh));
    w.hi[2] = join(_mm512_srli_epi16(raw[2], 4), FifthBits<6>(qh));
    w.hi[3] = join(_mm512_srli_epi16(raw[3], 4), FifthBits<7>(qh));
    return w;
  }
  // DecodeW + Dot of a last group of t <= 8 blocks (HalfTail) in 256-bit operations.
  DZ_STEP static void DotTail(const uint8_t* row, int64_t step, int64_t blocks, const Act& a,
                              Acc& acc) {
    const uint8_t* q = row + kQ5x16GroupBytes * step;
    const int64_t t = blocks - kQ4x16Blocks * step;
    const auto valid = static_cast<__mmask8>((1u << t) - 1);
    const __m256i qh = _mm256_maskz_loadu_epi32(valid, q + 16 * t);
    const __m256i mask = _mm256_set1_epi8(0x0f);
    auto join = [&](__m256i nibbles, __m256i fifth) {  // as DecodeW's
      return _mm256_ternarylogic_epi32(nibbles, fifth, mask, 0xEC);
    };
    __m256i raw[4];
    for (int v = 0; v < 4; ++v) raw[v] = _mm256_maskz_loadu_epi32(valid, q + 4 * t * v);
    const __m256i lo[4] = {join(raw[0], FifthBits<0>(qh)), join(raw[1], FifthBits<1>(qh)),
                           join(raw[2], FifthBits<2>(qh)), join(raw[3], FifthBits<3>(qh))};
    const __m256i hi[4] = {join(_mm256_srli_epi16(raw[0], 4), FifthBits<4>(qh)),
                           join(_mm256_srli_epi16(raw[1], 4), FifthBits<5>(qh)),
                           join(_mm256_srli_epi16(raw[2], 4), FifthBits<6>(qh)),
                           join(_mm256_srli_epi16(raw[3], 4), FifthBits<7>(qh))};
    __m256i s0 = _mm512_castsi512_si256(a.bias), s1 = _mm256_setzero_si256();
    for (int v = 0; v < 4; ++v) {
      s0 = _mm256_dpbusd_epi32(s0, lo[v], _mm512_castsi512_si256(a.lo[v]));
      s1 = _mm256_dpbusd_epi32(s1, hi[v], _mm512_castsi512_si256(a.hi[v]));
    }
    const __m256 wd = _mm256_cvtph_ps(_mm_maskz_loadu_epi16(valid, q + 20 * t));
    AccumulateLow(_mm256_add_epi32(s0, s1), wd, a.d, acc.v);
  }
};

// ---- Q8_0 repacked at load: 16 blocks per step, one i32 lane per block ----------------------
//
// Layout (RepackQ8_0x16; rows Q8_0x16RowBytes(k) = 34 · k / 32 bytes apart, as in the file): groups
// of t = 16 blocks (the last group: the blocks left), group g at byte 544·g: 8 vectors of 4·t
// bytes, where dword l of vector v is block 16g + l's quant bytes 4v .. 4v + 3 stored as q + 128
// (unsigned, for vpdpbusd), then the group's t f16 scales. A step is eight 64-byte loads, 8
// vpdpbusd from the activation's −128·Σa, one f16 conversion and one FMA for 16 blocks; the file's
// layout (the AVX2 tile on Zen 4) spends a sign, a vpmaddubsw, a vpmaddwd, a conversion and an FMA
// per block.
constexpr int64_t kQ8x16GroupBytes = 34 * kQ4x16Blocks;

size_t Q8_0x16RowBytes(int64_t k) { return static_cast<size_t>(k / 32 * 34); }

void RepackQ8_0x16(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  RepackX16<BlockQ8_0>(k, src, src_stride, rows, dst,
                       [](uint8_t* group, int64_t t, int64_t l, const BlockQ8_0& blk) {
                         for (int v = 0; v < 8; ++v) {
                           for (int i = 0; i < 4; ++i) {
                             group[4 * t * v + 4 * l + i] =
                                 static_cast<uint8_t>(blk.qs[4 * v + i] ^ 0x80);
                           }
                         }
                         std::memcpy(group + 32 * t + 2 * l, &blk.d, 2);
                       });
}

void UnpackQ8_0x16(int64_t k, const void* src, void* dst) {
  UnpackX16<BlockQ8_0>(k, src, dst, [](const uint8_t* group, int64_t t, int64_t l, BlockQ8_0* blk) {
    for (int v = 0; v < 8; ++v) {
      for (int i = 0; i < 4; ++i) {
        blk->qs[4 * v + i] = static_cast<int8_t>(group[4 * t * v + 4 * l + i] ^ 0x80);
      }
    }
    std::memcpy(&blk->d, group + 32 * t + 2 * l, 2);
  });
}

struct KernelQ8_0x16 {
  using Acc = LegacyAcc;
  struct Act {
    __m512i q[8];  // lane l: block l's elements 4v .. 4v + 3
    __m512i bias;  // lane l: −128·Σ a of block l
    __m512 d;      // lane l: block l's scale
  };
  static constexpr int64_t kStep = 32 * kQ4x16Blocks;
  static constexpr int64_t kStepBytes = kQ8x16GroupBytes;
  static constexpr bool kPrefetch = true;
  static constexpr int64_t kPrefetchStride = 32;  // as KernelQ4_0x16
  static __mmask16 Valid(int64_t step, int64_t blocks) {
    return KernelQ4_0x16::Valid(step, blocks);
  }
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t blocks) {
    const uint8_t* a = row + kQ4x16Blocks * step * static_cast<int64_t>(sizeof(BlockQ8_0));
    const __mmask16 valid = Valid(step, blocks);
    Act r;
    const __m512i k128 = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i sum = _mm512_setzero_si512();
    for (int v = 0; v < 8; ++v) {
      r.q[v] = GatherQ8Words(a, valid, 2 + 4 * v);
      sum = _mm512_dpbusd_epi32(sum, k128, r.q[v]);
    }
    r.bias = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
    const __m512i d = _mm512_and_si512(GatherQ8Words(a, valid, 0), _mm512_set1_epi32(0xffff));
    r.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
    return r;
  }
  struct W {
    __m512i q[8];
    __m512 d;
  };
  DZ_STEP static W DecodeW(const uint8_t* row, int64_t step, int64_t blocks) {
    const uint8_t* q = row + kQ8x16GroupBytes * step;
    const int64_t t = Q4x16GroupBlocks(step, blocks);
    const uint8_t* scales = q + 32 * t;
    W w;
    if (kQ4x16Blocks * (step + 1) <= blocks) {
      for (int v = 0; v < 8; ++v) w.q[v] = _mm512_loadu_si512(q + 64 * v);
      w.d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
    } else {  // the last group's t blocks: vectors of 4·t bytes
      const __mmask16 valid = Valid(step, blocks);
      for (int v = 0; v < 8; ++v) w.q[v] = _mm512_maskz_loadu_epi32(valid, q + 4 * t * v);
      w.d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, scales));
    }
    return w;
  }
  DZ_STEP static void Dot(const W& w, const Act& a, Acc& acc) {
    // Two dependency chains; the integer sums are exact, so their split does not matter.
    __m512i s0 = a.bias, s1 = _mm512_setzero_si512();
    for (int v = 0; v < 8; v += 2) {
      s0 = _mm512_dpbusd_epi32(s0, w.q[v], a.q[v]);
      s1 = _mm512_dpbusd_epi32(s1, w.q[v + 1], a.q[v + 1]);
    }
    const __m512i s = _mm512_add_epi32(s0, s1);
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, a.d), acc.v);
  }
  // DecodeW + Dot of a last group of t <= 8 blocks (HalfTail) in 256-bit operations.
  DZ_STEP static void DotTail(const uint8_t* row, int64_t step, int64_t blocks, const Act& a,
                              Acc& acc) {
    const uint8_t* q = row + kQ8x16GroupBytes * step;
    const int64_t t = blocks - kQ4x16Blocks * step;
    const auto valid = static_cast<__mmask8>((1u << t) - 1);
    __m256i s0 = _mm512_castsi512_si256(a.bias), s1 = _mm256_setzero_si256();
    for (int v = 0; v < 8; v += 2) {
      s0 = _mm256_dpbusd_epi32(s0, _mm256_maskz_loadu_epi32(valid, q + 4 * t * v),
                               _mm512_castsi512_si256(a.q[v]));
      s1 = _mm256_dpbusd_epi32(s1, _mm256_maskz_loadu_epi32(valid, q + 4 * t * (v + 1)),
                               _mm512_castsi512_si256(a.q[v + 1]));
    }
    const __m256 wd = _mm256_cvtph_ps(_mm_maskz_loadu_epi16(valid, q + 32 * t));
    AccumulateLow(_mm256_add_epi32(s0, s1), wd, a.d, acc.v);
  }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

struct KernelQ5_0 {
  using Acc = LegacyAcc;
  using Act = LegacyAct;
  static constexpr int64_t kStep = 64;
  static constexpr int64_t kStepBytes = 2 * sizeof(BlockQ5_0);
  static constexpr bool kPrefetch = true;
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t blocks) {
    return PrepLegacyAct<16>(row, step, blocks);
  }
  static LegacyW DecodeW(const uint8_t* row, int64_t step, int64_t blocks) {
    const auto* w = reinterpret_cast<const BlockQ5_0*>(row) + 2 * step;
    const bool two = 2 * step + 1 < blocks;
    LegacyW r;
    const uint64_t high =
        Load<uint32_t>(w[0].qh) | (two ? uint64_t{Load<uint32_t>(w[1].qh)} << 32 : 0);
    const __m512i nib = NibblePairs(w[0].qs, two ? w[1].qs : nullptr);
    r.u = _mm512_mask_add_epi8(nib, _cvtu64_mask64(high), nib, _mm512_set1_epi8(16));
    r.d = TwoHalves(w[0].d, two ? w[1].d : 0);
    return r;
  }
  static void Dot(const LegacyW& w, const Act& a, Acc& acc) { LegacyDot(w, a, acc); }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

// ---- K-quants × Q8_K: one super-block of 256 per step ---------------------------------------

struct KAcc {
  __m512 v = _mm512_setzero_ps();
};

struct KAct {
  const BlockQ8_K* a;
  __m256i bsums;  // 16 × i16
};

inline KAct PrepKAct(const uint8_t* row, int64_t step) {
  const auto* a = reinterpret_cast<const BlockQ8_K*>(row) + step;
  return {a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums))};
}

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks as bytes.
inline void UnpackScalesMinsK4(const uint8_t* s, uint64_t* scales, uint64_t* mins) {
  const uint32_t w0 = Load<uint32_t>(s), w1 = Load<uint32_t>(s + 4), w2 = Load<uint32_t>(s + 8);
  const uint32_t sc_lo = w0 & 0x3f3f3f3f;
  const uint32_t m_lo = w1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (w2 & 0x0f0f0f0f) | (((w0 >> 6) & 0x03030303) << 4);
  const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0f) | (((w1 >> 6) & 0x03030303) << 4);
  *scales = sc_lo | (uint64_t{sc_hi} << 32);
  *mins = m_lo | (uint64_t{m_hi} << 32);
}

// 64 bytes from p as two 32-byte loads. K-quant super-blocks are 144 and 210 bytes, so a single
// 64-byte load would span two cache lines most of the time, which cost ~15% when streaming from
// DRAM on a Zen 4.
inline __m512i Load64In32ByteHalves(const uint8_t* p) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), 1);
}

// Q4_K / Q5_K weights decoded 64 bytes at a time. Bytes 0-63 of qs hold sub-blocks 0-3
// (bytes 0-31: sub-block 0 in the low nibbles, 1 in the high; bytes 32-63: 2 and 3), bytes 64-127
// sub-blocks 4-7. Masking and shifting 64 such bytes gives vector j's two 256-bit halves
// sub-blocks kLowHalf[j] and kHighHalf[j]; the activations are put in the same order once per step
// (KActPerm), so no weight needs a cross-lane shuffle. On a Zen 4 (512-bit instructions on 256-bit
// units), in a standalone microbenchmark (2048-long rows, best of 6 alternated rounds), this
// decode, two 32-bit accumulation chains and a separate min accumulator took a super-block from
// 6.2 to 5.3 ns in L2, and with the weights split into 32-byte loads (Load64In32ByteHalves)
// from 7.2 to 6.5 ns streaming from DRAM. llama 1b Q4_K_M tg32 with 1 thread (medians of 5
// alternated runs, with the same split loads in KernelQ6_K): 28.5 → 30.9 tokens/s; with 2 threads
// unchanged (42.4 vs 42.7, bandwidth-bound).
// On Zen 4 a super-block is bound by the vector pipes (~68 256-bit slots, ~17-20 cycles), so the
// per-block extras were trimmed: the scales stay bytes (one vpbroadcastq; the vpshufb controls
// zero-extend them) instead of being widened and broadcast; d and dmin convert in one vcvtph2ps
// and scale by the activation in one vmulps; the min term runs on 128-bit vectors with the
// activation's sub-block sums paired once per step (bsums8), where a zero-extended zmm cvt and
// fnmadd ran before. cpu_kernels_bench q4_K M = 1, 1 thread, medians of 9 repetitions, 3
// alternated rounds (ms): 768 × 3072 0.078 / 0.072 / 0.081 → 0.071 / 0.071 / 0.068, 3072 × 768
// 0.066 / 0.069 / 0.066 → 0.062 / 0.063 / 0.054, 2048 × 2048 0.105 / 0.116 / 0.110 → 0.107 /
// 0.110 / 0.096.
constexpr int kLowHalf[4] = {0, 1, 4, 5};
constexpr int kHighHalf[4] = {2, 3, 6, 7};

struct KActPerm {
  __m512i q[4];    // vector j: activations of sub-blocks kLowHalf[j], kHighHalf[j]
  __m128i bsums8;  // 8 × i16: the activation sum of each 32-element sub-block
  __m128 d;        // the activation scale in every lane
};

inline KActPerm PrepKActPerm(const uint8_t* row, int64_t step) {
  const auto* a = reinterpret_cast<const BlockQ8_K*>(row) + step;
  KActPerm r;
  for (int j = 0; j < 4; ++j) {
    const __m256i lo =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs + 32 * kLowHalf[j]));
    const __m256i hi =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs + 32 * kHighHalf[j]));
    r.q[j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }
  // Pairs of 16-element sums: |Σ| ≤ 32 · 127, so the i16 pack is exact.
  const __m256i pairs = _mm256_madd_epi16(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums)), _mm256_set1_epi16(1));
  r.bsums8 = _mm_packs_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
  r.d = _mm_set1_ps(a->d);
  return r;
}

// Scales (8 × u8, repeated in every 128-bit lane) → i16 lane t of vector j gets scale
// kLowHalf[j] (t < 16) or kHighHalf[j], zero-extended by the control's 0x80 bytes.
// The control vectors live in memory (a vpshufb operand): built in registers, they were rebuilt
// for every weight row of a GEMV (about 25 instructions per row, against ~85 per super-block).
struct ScaleSelectTable {
  alignas(64) uint8_t v[4][64];
};
constexpr ScaleSelectTable MakeScaleSelect() {
  ScaleSelectTable t{};
  for (int j = 0; j < 4; ++j) {
    for (int b = 0; b < 64; ++b) {
      const int s = b < 32 ? kLowHalf[j] : kHighHalf[j];
      t.v[j][b] = static_cast<uint8_t>((b & 1) ? 0x80 : s);
    }
  }
  return t;
}
constexpr ScaleSelectTable kScaleSelect = MakeScaleSelect();
inline __m512i ScaleSelect(int j) { return _mm512_load_si512(kScaleSelect.v[j]); }

struct KAccMin {
  __m512 v = _mm512_setzero_ps();  // d·Σ sc·q·a
  __m128 m = _mm_setzero_ps();     // −dmin·Σ m·bsum
};

// Q4_K (kHigh = false) and Q5_K: u = q in 0..15 / 0..31; x = d·sc·q − dmin·m.
template <typename WBlock, bool kHigh>
struct KernelQ45_K {
  using Acc = KAccMin;
  using Act = KActPerm;
  static constexpr int64_t kStep = 256;
  static constexpr int64_t kStepBytes = sizeof(WBlock);
  static constexpr bool kPrefetch = true;
  struct W {
    __m512i u[4];   // vector j: sub-blocks kLowHalf[j], kHighHalf[j]
    __m512i sc8;    // the 8 scales as u8, in every 128-bit lane
    __m128i mins;   // the 8 mins as i16
    __m128 d_dmin;  // d, dmin in lanes 0, 1
  };
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t) { return PrepKActPerm(row, step); }
  static W DecodeW(const uint8_t* row, int64_t step, int64_t) {
    const auto* w = reinterpret_cast<const WBlock*>(row) + step;
    static_assert(offsetof(WBlock, dmin) == offsetof(WBlock, d) + 2);
    W r;
    uint64_t sc, mn;
    UnpackScalesMinsK4(w->scales, &sc, &mn);
    r.sc8 = _mm512_set1_epi64(static_cast<int64_t>(sc));
    r.mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mn)));
    r.d_dmin = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(Load<uint32_t>(&w->d))));
    const __m512i mask = _mm512_set1_epi8(0x0f);
    for (int h = 0; h < 2; ++h) {
      const __m512i raw = Load64In32ByteHalves(w->qs + 64 * h);
      r.u[2 * h] = _mm512_and_si512(raw, mask);
      r.u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
    }
    if constexpr (kHigh) {
      // Bit 4 of element e of sub-block s is bit s of qh[e]; qh sits in both 256-bit halves.
      const __m512i high =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w->qh)));
      for (int j = 0; j < 4; ++j) {
        const __m512i select =
            _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << kLowHalf[j])),
                               _mm256_set1_epi8(static_cast<char>(1 << kHighHalf[j])), 1);
        r.u[j] = _mm512_mask_add_epi8(r.u[j], _mm512_test_epi8_mask(high, select), r.u[j],
                                      _mm512_set1_epi8(16));
      }
    }
    return r;
  }
  static void Dot(const W& w, const Act& a, Acc& acc) {
    // Two independent chains: one long dpwssd chain per step left the core waiting on latency.
    __m512i s0 = _mm512_madd_epi16(_mm512_maddubs_epi16(w.u[0], a.q[0]),
                                   _mm512_shuffle_epi8(w.sc8, ScaleSelect(0)));
    __m512i s1 = _mm512_madd_epi16(_mm512_maddubs_epi16(w.u[2], a.q[2]),
                                   _mm512_shuffle_epi8(w.sc8, ScaleSelect(2)));
    s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(w.u[1], a.q[1]),
                             _mm512_shuffle_epi8(w.sc8, ScaleSelect(1)));
    s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(w.u[3], a.q[3]),
                             _mm512_shuffle_epi8(w.sc8, ScaleSelect(3)));
    const __m128 f = _mm_mul_ps(w.d_dmin, a.d);  // d·a.d, dmin·a.d
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_broadcastss_ps(f),
                            acc.v);
    acc.m = _mm_fnmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(a.bsums8, w.mins)),
                          _mm_shuffle_ps(f, f, 0x55), acc.m);
  }
  static float Finish(const Acc& acc) {
    __m128 m = _mm_add_ps(acc.m, _mm_movehl_ps(acc.m, acc.m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm512_reduce_add_ps(acc.v) + _mm_cvtss_f32(m);
  }
};

// ---- Q4_K repacked at load: two super-blocks per step, one i32 lane per half sub-block --------
//
// Layout (RepackQ4_Kx16; rows of an even number of super-blocks, Q4_Kx16RowBytes(k) = 144·k/256
// bytes apart, as in the file): steps of 2 super-blocks, step s at byte 288·s: 4 vectors of 64
// bytes, where dword L = 8h + l of vector v (l = 2j + half) is super-block 2s + h's quant bytes
// 16·l + 4v .. 16·l + 4v + 3, i.e. elements 64j + 16·half + 4v .. + 3 of sub-block 2j in the low
// nibbles and the same elements of sub-block 2j + 1 in the high ones; then each super-block's d,
// dmin and 12 packed scale bytes (the file block's first 16 bytes).
// A step decodes 2 super-blocks with four 64-byte loads and two masks per vector (the high nibbles
// stay ×16 and are shifted back once per step), 8 vpdpbusd, two blends and a dword swap that sum
// each lane pair into its sub-block's exact Σ q·a, then one multiply by the 6-bit scales, one by
// the mins and two FMAs. The file's layout (KernelQ45_K) spends more per super-block on its
// vpmaddubsw/vpmaddwd scale products and scale shuffles. cpu_kernels_bench BM_Repack q4_K, M = 1,
// 1 thread, 5 repetitions (ms, file → repacked): 3072 × 768 0.050 → 0.040, 2048 × 8192 0.362 →
// 0.291, 8192 × 2048 0.340 → 0.274, 2048 × 65536 from DRAM 2.99 → 2.74 (27.5 GB/s).
// Rows of an odd number of super-blocks (768: the 125M llama) are not repacked (row_bytes 0): a
// last step of one super-block cost as much as a full one, and 768 × 3072 measured 0.058 repacked
// against 0.054 in the file's layout; running that step on 256-bit vectors made it no faster and
// the even rows 20% slower (0.048 against 0.040 for 3072 × 768).
// The activation step (2 Q8_K blocks) is gathered into the same lane order.
constexpr int64_t kQ4Kx16StepBytes = 2 * 144;

size_t Q4_Kx16RowBytes(int64_t k) { return k % 512 == 0 ? static_cast<size_t>(k / 256 * 144) : 0; }

void RepackQ4_Kx16(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const auto* b =
        reinterpret_cast<const BlockQ4_K*>(static_cast<const uint8_t*>(src) + r * src_stride);
    uint8_t* o = static_cast<uint8_t*>(dst) + r * Q4_Kx16RowBytes(k);
    for (int64_t s = 0; s < k / 512; ++s) {
      uint8_t* step = o + kQ4Kx16StepBytes * s;
      for (int h = 0; h < 2; ++h) {
        const BlockQ4_K& blk = b[2 * s + h];
        for (int l = 0; l < 8; ++l) {
          for (int v = 0; v < 4; ++v) {
            std::memcpy(step + 64 * v + 4 * (8 * h + l), blk.qs + 16 * l + 4 * v, 4);
          }
        }
        static_assert(offsetof(BlockQ4_K, qs) == 16);
        std::memcpy(step + 256 + 16 * h, &blk, 16);  // d, dmin, scales
      }
    }
  }
}

void UnpackQ4_Kx16(int64_t k, const void* src, void* dst) {
  for (int64_t s = 0; s < k / 512; ++s) {
    const uint8_t* step = static_cast<const uint8_t*>(src) + kQ4Kx16StepBytes * s;
    for (int h = 0; h < 2; ++h) {
      BlockQ4_K blk;
      std::memcpy(&blk, step + 256 + 16 * h, 16);
      for (int l = 0; l < 8; ++l) {
        for (int v = 0; v < 4; ++v) {
          std::memcpy(blk.qs + 16 * l + 4 * v, step + 64 * v + 4 * (8 * h + l), 4);
        }
      }
      std::memcpy(static_cast<uint8_t*>(dst) + (2 * s + h) * sizeof(BlockQ4_K), &blk,
                  sizeof(BlockQ4_K));
    }
  }
}

struct KernelQ4_Kx16 {
  struct Acc {
    __m512 v = _mm512_setzero_ps();  // lane 8h + l: Σ d·sc·(Σ q·a)·d_a of sub-block l
    __m512 m = _mm512_setzero_ps();  // lane 8h + l: −Σ dmin·m·bsum·d_a
  };
  struct Act {
    __m512i lo[4], hi[4];  // lane 8h + 2j + half: elements 64j + 16·half + 4v .. (+ 32 for hi)
    __m512i bsum;          // lane 8h + l: Σ a over sub-block l, as i16 in the low half (0 above)
    __m512 d;              // lane 8h + l: super-block h's activation scale
  };
  struct W {
    __m512i lo[4], hi[4];  // hi: the high nibbles in place (16·q)
    __m512i sc, mn;        // lane 8h + l: super-block h's 6-bit scale and min of sub-block l
    __m512 d, dmin;        // lane 8h + l: super-block h's d and dmin
  };
  static constexpr int64_t kStep = 512;
  static constexpr int64_t kStepBytes = kQ4Kx16StepBytes;
  static constexpr bool kPrefetch = true;
  static constexpr int64_t kPrefetchStride = 32;  // as KernelQ4_0x16
  // Zen 4: the far prefetch (kFarPrefetchBytes). llama 1b Q4_K_M tg32, 1 thread, t/s (with
  // q6_Kx16 unchanged): near 39.3-40.5, far 45.2-46.4; with q6_Kx16 far too 46.0-49.2.
  static PrefetchMode Zen4Prefetch(int64_t /*k*/) { return PrefetchMode::kFar; }
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t /*blocks*/) {
    const uint8_t* a = row + 2 * step * static_cast<int64_t>(sizeof(BlockQ8_K));
    constexpr int kBlock = sizeof(BlockQ8_K);
    // Byte offset of lane 8h + 2j + half's first activation (v = 0, lo).
    const __m512i at =
        _mm512_setr_epi32(4, 4 + 16, 4 + 64, 4 + 80, 4 + 128, 4 + 144, 4 + 192, 4 + 208, kBlock + 4,
                          kBlock + 4 + 16, kBlock + 4 + 64, kBlock + 4 + 80, kBlock + 4 + 128,
                          kBlock + 4 + 144, kBlock + 4 + 192, kBlock + 4 + 208);
    Act r;
    for (int v = 0; v < 4; ++v) {
      const __m512i lo = _mm512_add_epi32(at, _mm512_set1_epi32(4 * v));
      r.lo[v] = _mm512_i32gather_epi32(lo, a, 1);
      r.hi[v] = _mm512_i32gather_epi32(_mm512_add_epi32(lo, _mm512_set1_epi32(32)), a, 1);
    }
    static_assert(offsetof(BlockQ8_K, qs) == 4 && offsetof(BlockQ8_K, bsums) == 260);
    const __m512i pair_at = _mm512_setr_epi32(
        260, 264, 268, 272, 276, 280, 284, 288, kBlock + 260, kBlock + 264, kBlock + 268,
        kBlock + 272, kBlock + 276, kBlock + 280, kBlock + 284, kBlock + 288);
    // bsums[2l] (low half) + bsums[2l + 1] (high half); |sum| ≤ 32·128 fits an i16.
    const __m512i pairs = _mm512_i32gather_epi32(pair_at, a, 1);
    const __m512i sum = _mm512_add_epi32(_mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16),
                                         _mm512_srai_epi32(pairs, 16));
    r.bsum = _mm512_and_si512(sum, _mm512_set1_epi32(0xffff));
    r.d = _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(Load<float>(a))),
                           _mm256_castps_pd(_mm256_set1_ps(Load<float>(a + kBlock))), 1));
    return r;
  }
  static W DecodeW(const uint8_t* row, int64_t step, int64_t /*blocks*/) {
    const uint8_t* q = row + kQ4Kx16StepBytes * step;
    W w;
    const __m512i lo_mask = _mm512_set1_epi8(0x0f), hi_mask = _mm512_set1_epi8(-16);
    for (int v = 0; v < 4; ++v) {
      const __m512i raw = _mm512_loadu_si512(q + 64 * v);
      w.lo[v] = _mm512_and_si512(raw, lo_mask);
      w.hi[v] = _mm512_and_si512(raw, hi_mask);
    }
    // UnpackScalesMinsK4 on both super-blocks at once in 64-bit words (dwords: h = 0, 1). The
    // empty asm keeps them in general registers: GCC otherwise vectorizes this into ~30 128-bit
    // instructions, which took the vector pipes the step is bound by (3072 × 768 0.045 → 0.040 ms).
    auto words = [&](int i) {
      uint64_t x =
          Load<uint32_t>(q + 260 + 4 * i) | (uint64_t{Load<uint32_t>(q + 276 + 4 * i)} << 32);
      __asm__("" : "+r"(x));
      return x;
    };
    const uint64_t w0 = words(0), w1 = words(1), w2 = words(2);
    constexpr uint64_t k3f = 0x3f3f3f3f3f3f3f3f, k0f = 0x0f0f0f0f0f0f0f0f, k03 = 0x0303030303030303;
    const uint64_t sc_lo = w0 & k3f, m_lo = w1 & k3f;
    const uint64_t sc_hi = (w2 & k0f) | (((w0 >> 6) & k03) << 4);
    const uint64_t m_hi = ((w2 >> 4) & k0f) | (((w1 >> 6) & k03) << 4);
    // Bytes: scales 0-3, 4-7 of super-block 0, then of super-block 1.
    auto bytes = [](uint64_t lo, uint64_t hi) {
      return _mm512_cvtepu8_epi32(_mm_unpacklo_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(lo)),
                                                     _mm_cvtsi64_si128(static_cast<int64_t>(hi))));
    };
    w.sc = bytes(sc_lo, sc_hi);
    w.mn = bytes(m_lo, m_hi);
    // [d0, dmin0, d1, dmin1] spread over lanes 0-7 and 8-15.
    const uint64_t dd = Load<uint32_t>(q + 256) | (uint64_t{Load<uint32_t>(q + 272)} << 32);
    const __m512 dm =
        _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<int64_t>(dd))));
    w.d = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                                dm);
    w.dmin = _mm512_permutexvar_ps(
        _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3), dm);
    return w;
  }
  static void Dot(const W& w, const Act& a, Acc& acc) {
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    for (int v = 0; v < 4; ++v) {
      lo = _mm512_dpbusd_epi32(lo, w.lo[v], a.lo[v]);
      hi = _mm512_dpbusd_epi32(hi, w.hi[v], a.hi[v]);
    }
    // Lane 8h + 2j + half: lo = that half of sub-block 2j's Σ q·a, hi = 16 × sub-block 2j + 1's.
    // Even lanes take lo + its odd neighbour, odd lanes hi + its even neighbour: lane 8h + l then
    // holds sub-block l's Σ q·a (×16 for odd l, shifted back exactly).
    const __m512i own = _mm512_mask_blend_epi32(0xaaaa, lo, hi);
    const __m512i other = _mm512_mask_blend_epi32(0xaaaa, hi, lo);
    const __m512i sum =
        _mm512_srav_epi32(_mm512_add_epi32(own, _mm512_shuffle_epi32(other, _MM_PERM_CDAB)),
                          _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4));
    // |sc·Σ q·a| ≤ 63·32·15·128 and m·bsum are below 2^24: both convert to f32 exactly.
    const __m512i scaled = _mm512_mullo_epi32(sum, w.sc);
    const __m512i mins = _mm512_madd_epi16(w.mn, a.bsum);
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(scaled), _mm512_mul_ps(w.d, a.d), acc.v);
    acc.m = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_mul_ps(w.dmin, a.d), acc.m);
  }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(_mm512_add_ps(acc.v, acc.m)); }
};

// Q6_K: u = q in 0..63, x = d·s·(q − 32); the −32·Σ s·a term comes from the bsums.
struct KernelQ6_K {
  using Acc = KAcc;
  using Act = KAct;
  static constexpr int64_t kStep = 256;
  static constexpr int64_t kStepBytes = sizeof(BlockQ6_K);
  static constexpr bool kPrefetch = true;
  struct W {
    __m512i u[4];   // elements 64i .. 64i + 63
    __m512i sc[4];  // i16 scale per maddubs lane
    __m256i scales16;
    float d;
  };
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t) { return PrepKAct(row, step); }
  static W DecodeW(const uint8_t* row, int64_t step, int64_t) {
    const auto* w = reinterpret_cast<const BlockQ6_K*>(row) + step;
    W r;
    r.scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w->scales)));
    const __m512i scales = _mm512_castsi256_si512(r.scales16);
    const __m512i lane_block = _mm512_srli_epi16(
        _mm512_setr_epi64(0x0003000200010000, 0x0007000600050004, 0x000b000a00090008,
                          0x000f000e000d000c, 0x0013001200110010, 0x0017001600150014,
                          0x001b001a00190018, 0x001f001e001d001c),
        3);  // t / 8
    const __m512i mask = _mm512_set1_epi8(0x0f);
    const __m512i high_bits = _mm512_set1_epi8(0x30);
    // Bits 2s, 2s + 1 of qh[l] (s = 0, 1 | 2, 3 for the vectors' low | high halves) moved to
    // bits 4-5 by one variable shift each: left by 4 | 2, right by 0 | 2.
    const __m512i left = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i right = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = Load64In32ByteHalves(w->ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w->qh + 32 * h)));
      const __m512i high_lo = _mm512_and_si512(_mm512_sllv_epi16(qh, left), high_bits);
      const __m512i high_hi = _mm512_and_si512(_mm512_srlv_epi16(qh, right), high_bits);
      // (a & 0x0f) | b in one vpternlogd: 0xEC = (A & C) | B with A = nibbles, B = high, C = mask.
      r.u[2 * h] = _mm512_ternarylogic_epi32(ql, high_lo, mask, 0xEC);
      r.u[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), high_hi, mask, 0xEC);
    }
    for (int i = 0; i < 4; ++i) {
      const __m512i idx =
          _mm512_add_epi16(lane_block, _mm512_set1_epi16(static_cast<int16_t>(4 * i)));
      r.sc[i] = _mm512_permutexvar_epi16(idx, scales);
    }
    r.d = Half(w->d);
    return r;
  }
  static void Dot(const W& w, const Act& a, Acc& acc) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(a.bsums, w.scales16), 5);
    __m512i sum = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(offset));
    for (int i = 0; i < 4; ++i) {
      const __m512i q = _mm512_loadu_si512(a.a->qs + 64 * i);
      sum = _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(w.u[i], q), w.sc[i]);
    }
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(w.d * a.a->d), acc.v);
  }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

// ---- Q6_K repacked at load: one super-block per step, one i32 lane per 16-element sub-block ---
//
// Layout (RepackQ6_Kx16; 210 bytes per super-block, as in the file). Lane p of a step holds
// sub-block σ(p) = 4·(p mod 4) + p / 4 (the order a 4 × 4 dword transpose per 128-bit lane gives
// the Q8_K activation). Per super-block: 2 vectors of 64 bytes where byte b of dword p of vector v
// holds the low 4 bits of element 16σ + 4v + b (low nibble) and of 16σ + 8 + 4v + b (high
// nibble); 1 vector whose dword p byte b holds the high 2 bits of elements 16σ + 4i + b in bits
// 2i, 2i + 1 (i = 0..3); the 16 scales in lane order; d.
// A step decodes its 256 weights with three 64-byte loads, 13 shifts/masks/ternary-logic ops and
// 4 vpdpbusd (starting from the activation's −32·Σa), then one multiply by the scales, a
// conversion and an FMA. The file's layout (KernelQ6_K) spends about 40 vector instructions per
// super-block (scale permutes and vpmaddubsw/vpdpwssd pairs). There is no prompt GEMM for Q6_K:
// prompts use the dot tiles, which prepare each activation step (a transpose) once per 4 weight
// rows.
constexpr int64_t kQ6x16StepBytes = sizeof(BlockQ6_K);
constexpr int Q6x16SubBlock(int p) { return 4 * (p % 4) + p / 4; }

size_t Q6_Kx16RowBytes(int64_t k) { return static_cast<size_t>(k / 256) * sizeof(BlockQ6_K); }

void RepackQ6_Kx16(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const auto* b =
        reinterpret_cast<const BlockQ6_K*>(static_cast<const uint8_t*>(src) + r * src_stride);
    uint8_t* o = static_cast<uint8_t*>(dst) + r * Q6_Kx16RowBytes(k);
    for (int64_t s = 0; s < k / 256; ++s, o += kQ6x16StepBytes) {
      const BlockQ6_K& blk = b[s];
      // Element e's low 4 and high 2 bits (the file's layout: DequantizeQ6_K).
      auto low = [&](int e) {
        return (blk.ql[64 * (e / 128) + 32 * ((e % 128) / 32 % 2) + e % 32] >>
                (4 * ((e % 128) / 64))) &
               0x0f;
      };
      auto high = [&](int e) {
        return (blk.qh[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      };
      for (int p = 0; p < 16; ++p) {
        const int base = 16 * Q6x16SubBlock(p);
        for (int byte = 0; byte < 4; ++byte) {
          for (int v = 0; v < 2; ++v) {
            o[64 * v + 4 * p + byte] = static_cast<uint8_t>(low(base + 4 * v + byte) |
                                                            (low(base + 8 + 4 * v + byte) << 4));
          }
          int h = 0;
          for (int i = 0; i < 4; ++i) h |= high(base + 4 * i + byte) << (2 * i);
          o[128 + 4 * p + byte] = static_cast<uint8_t>(h);
        }
        o[192 + p] = static_cast<uint8_t>(blk.scales[Q6x16SubBlock(p)]);
      }
      std::memcpy(o + 208, &blk.d, 2);
    }
  }
}

void UnpackQ6_Kx16(int64_t k, const void* src, void* dst) {
  const auto* o = static_cast<const uint8_t*>(src);
  for (int64_t s = 0; s < k / 256; ++s, o += kQ6x16StepBytes) {
    BlockQ6_K blk;
    std::memset(&blk, 0, sizeof(blk));
    // Element e's low 4 and high 2 bits back where RepackQ6_Kx16 read them.
    auto put = [&](int e, int low, int high) {
      blk.ql[64 * (e / 128) + 32 * ((e % 128) / 32 % 2) + e % 32] |=
          static_cast<uint8_t>(low << (4 * ((e % 128) / 64)));
      blk.qh[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(high << (2 * ((e % 128) / 32)));
    };
    for (int p = 0; p < 16; ++p) {
      const int base = 16 * Q6x16SubBlock(p);
      for (int byte = 0; byte < 4; ++byte) {
        const int h = o[128 + 4 * p + byte];
        for (int v = 0; v < 2; ++v) {
          const int lows = o[64 * v + 4 * p + byte];
          put(base + 4 * v + byte, lows & 0x0f, (h >> (2 * v)) & 3);
          put(base + 8 + 4 * v + byte, lows >> 4, (h >> (2 * (v + 2))) & 3);
        }
      }
      blk.scales[Q6x16SubBlock(p)] = static_cast<int8_t>(o[192 + p]);
    }
    std::memcpy(&blk.d, o + 208, 2);
    std::memcpy(static_cast<uint8_t*>(dst) + s * sizeof(BlockQ6_K), &blk, sizeof(BlockQ6_K));
  }
}

struct KernelQ6_Kx16 {
  using Acc = KAcc;
  struct Act {
    __m512i q[4];  // lane p: elements 16σ(p) + 4i .. + 3 of the activation
    __m512i bias;  // lane p: −32·Σ a over sub-block σ(p)
    float d;
  };
  struct W {
    __m512i u[4];  // lane p: q of elements 16σ(p) + 4i .. + 3 (0..63)
    __m512i sc;    // lane p: scale of sub-block σ(p)
    float d;
  };
  static constexpr int64_t kStep = 256;
  static constexpr int64_t kStepBytes = kQ6x16StepBytes;
  static constexpr bool kPrefetch = true;
  // Zen 4: the far prefetch (kFarPrefetchBytes), as KernelQ4_Kx16.
  static PrefetchMode Zen4Prefetch(int64_t /*k*/) { return PrefetchMode::kFar; }
  static Act PrepAct(const uint8_t* row, int64_t step, int64_t /*blocks*/) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(row) + step;
    Act r;  // r.q[j]'s 128-bit lane m is loaded with sub-block 4j + m
    for (int j = 0; j < 4; ++j) r.q[j] = _mm512_loadu_si512(a->qs + 64 * j);
    // Then q[i]'s dword j of lane m is sub-block 4j + m's dword i: lane p = 4m + j gets
    // sub-block 4j + m = σ(p).
    TransposeDwords4x4(r.q);
    const __m512i bsums =
        _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums)));
    const __m512i sigma = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    r.bias = _mm512_sub_epi32(_mm512_setzero_si512(),
                              _mm512_slli_epi32(_mm512_permutexvar_epi32(sigma, bsums), 5));
    r.d = a->d;
    return r;
  }
  static W DecodeW(const uint8_t* row, int64_t step, int64_t /*blocks*/) {
    const uint8_t* q = row + kQ6x16StepBytes * step;
    const __m512i ql0 = _mm512_loadu_si512(q), ql1 = _mm512_loadu_si512(q + 64);
    const __m512i qh = _mm512_loadu_si512(q + 128);
    const __m512i nibble = _mm512_set1_epi8(0x0f), crumb = _mm512_set1_epi8(0x30);
    // (a & 0x0f) | b in one vpternlogd: 0xEC = (A & C) | B with A = nibbles, B = high, C = mask.
    auto join = [&](__m512i low, __m512i high) {
      return _mm512_ternarylogic_epi32(low, _mm512_and_si512(high, crumb), nibble, 0xEC);
    };
    W w;
    w.u[0] = join(ql0, _mm512_slli_epi16(qh, 4));
    w.u[1] = join(ql1, _mm512_slli_epi16(qh, 2));
    w.u[2] = join(_mm512_srli_epi16(ql0, 4), qh);
    w.u[3] = join(_mm512_srli_epi16(ql1, 4), _mm512_srli_epi16(qh, 2));
    w.sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 192)));
    w.d = Half(Load<uint16_t>(q + 208));
    return w;
  }
  static void Dot(const W& w, const Act& a, Acc& acc) {
    // Σ (q − 32)·a per sub-block: |·| ≤ 16·32·128, times a scale ≤ 128 in magnitude: below 2^24,
    // so the product converts to f32 exactly.
    __m512i s0 = _mm512_dpbusd_epi32(a.bias, w.u[0], a.q[0]);
    __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.u[1], a.q[1]);
    s0 = _mm512_dpbusd_epi32(s0, w.u[2], a.q[2]);
    s1 = _mm512_dpbusd_epi32(s1, w.u[3], a.q[3]);
    const __m512i scaled = _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), w.sc);
    acc.v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(scaled), _mm512_set1_ps(w.d * a.d), acc.v);
  }
  static float Finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.v); }
};

// ---- tiles ------------------------------------------------------------------------------------

// How far ahead the generation tiles prefetch weights (see TileFixed): 16 KB, measured on Zen 5;
// 4 KB where 512-bit instructions run on 256-bit units (Zen 4). On a 2-core EPYC Zen 4, llama 1b
// tg32 with 1 thread, two alternated rounds (tokens/s): q4_K_M 29.5 / 30.7 at 4 KB against
// 25.2 / 27.8 at 16 KB, 24.1 / 26.4 at 64 KB, 31.3 / 29.5 without prefetch; q4_0 34.7 / 34.5 at
// 4 KB against 29.3 / 30.8 at 16 KB, 28.0 / 28.0 at 64 KB, 32.0 / 30.5 without. With 2 threads
// 4 KB and 16 KB were within the noise of each other.
const int64_t kPrefetchBytes = HostCpu().avx512_on_256bit_units ? 4096 : 16384;

// Bytes between a step's prefetches: a cache line, unless the kernel asks for more than one per
// line (K::kPrefetchStride; see KernelQ4_0x16).
template <typename K>
constexpr int64_t PrefetchStride() {
  if constexpr (requires { K::kPrefetchStride; }) {
    return K::kPrefetchStride;
  } else {
    return 64;
  }
}

// kFar's distance. On a 2-core EPYC Zen 4 VM (eighth session), M = 1 from DRAM on ~300 MB
// weights of row length K (as cpu_kernels_bench BM_GemvDram measures; 1 thread, medians of 3, ms;
// near / none / far): q4_Kx16 at K = 1024-8192 13.4-15.0 / 14.1-15.7 / 10.7-11.4; q4_0x16 at
// K = 768 14.0 / 13.5 / 10.8 but at K = 1024-8192 12.1-13.2 / 11.2-11.9 / 13.4-15.1; q6_Kx16 mixed
// (K = 2048: 18.5 / 19.1 / 16.7); q8_0x16 best with near (23.1-23.5 against 24.3-27.0 /
// 26.6-29.4); the file layouts best with near. Far distances 8-64 KB measured the same, and so did
// prefetching only the first 16-64 KB of each thread's share of a MATMUL. Why the light q4_0x16
// steps stream best with no software prefetch on whole 16-block rows while the heavier q4_Kx16
// steps need the far one is not known (no hardware counters on this VM); the hardware prefetcher
// keeping ahead of a loop with little work per line is a guess. The same A/B on models with 2
// threads depends on the host: 1b Q4_K_M 0.92× while the 2-thread probe read 35 GB/s, 1.11× (and
// Q4_0 1.04×) while it read more.
constexpr int64_t kFarPrefetchBytes = 32768;
const bool kZen4Prefetch = HostCpu().avx512_on_256bit_units;

template <typename K>
PrefetchMode GenerationPrefetch(int64_t k) {
  if constexpr (requires { K::Zen4Prefetch(k); }) {
    if (kZen4Prefetch) return K::Zen4Prefetch(k);
  }
  return PrefetchMode::kNear;
}

// The prefetches for the step at `step` (its first byte) of a generation row loop.
template <typename K, PrefetchMode kMode>
inline void PrefetchStep(const uint8_t* step) {
  if constexpr (!K::kPrefetch || kMode == PrefetchMode::kNone) {
    return;
  } else if constexpr (kMode == PrefetchMode::kNear) {
    for (int64_t o = 0; o < K::kStepBytes; o += PrefetchStride<K>()) {
      _mm_prefetch(reinterpret_cast<const char*>(step + kPrefetchBytes + o), _MM_HINT_T0);
    }
  } else {
    for (int64_t o = 0; o < K::kStepBytes; o += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(step + kFarPrefetchBytes + o), _MM_HINT_T1);
    }
  }
}

// Near prefetches (kNear): The hardware prefetcher alone left M = 1 at about half the memory
// bandwidth; a prefetch kPrefetchBytes ahead (into the following rows past this one's end; it never
// faults) keeps enough lines in flight. 1b Q4_0 tg, 1 thread: 2 KB ahead 28, 4 KB 32, 8 KB 35,
// 16-64 KB 38-39 t/s (22 without). K-quant tiles (a 256-block per step) once measured slower with
// it, but on the current code 1b Q4_K_M tg, 1 thread (A/B alternated, 3 rounds, load ~4-5): 28-29
// t/s without, 4 KB 31-32, 8 KB 33-34, 16 KB 34-36, 32 KB 34-35. Legacy q8_0 at 4/8 KB was slower
// than 16 KB (15.5, 18 vs 19 t/s), 32 KB the same. Steps longer than a cache line (q4_0's 72 bytes)
// prefetch every line they pass.
//
// Steps [s0, s1) of a generation row, the x16 kernels' last group of at most 8 blocks at half
// width (HalfTail), after the loop, which stays free of the test.
template <typename K, PrefetchMode kMode = PrefetchMode::kNear>
DZ_STEP void DotSteps(const uint8_t* row, int64_t s0, int64_t s1, int64_t steps, int64_t blocks,
                      const typename K::Act* act, typename K::Acc& acc) {
  int64_t end = s1;
  if constexpr (requires { K::DotTail(row, s0, blocks, *act, acc); }) {
    if (s1 == steps && HalfTail(steps - 1, blocks)) --end;
  }
  for (int64_t s = s0; s < end; ++s) {
    PrefetchStep<K, kMode>(row + s * K::kStepBytes);
    K::Dot(K::DecodeW(row, s, blocks), act[s - s0], acc);
  }
  if constexpr (requires { K::DotTail(row, s0, blocks, *act, acc); }) {
    if (end < s1) {
      // Its prefetch too: without it the lines 32 KB ahead that fall in the tail's bytes went
      // unfetched (Gemma 3 q5_0x16 rows of 640, kFar: 20.8 → 11.2 GB/s).
      PrefetchStep<K, kMode>(row + end * K::kStepBytes);
      K::DotTail(row, end, blocks, act[end - s0], acc);
    }
  }
}

template <typename K, int NW, int NA>
void TileFixed(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* out,
               size_t os) {
  const int64_t blocks = k / 32;  // legacy blocks (unused by K-quants)
  const int64_t steps = (k + K::kStep - 1) / K::kStep;
  typename K::Acc acc[NW][NA];
  if constexpr (NA == 1 && NW > 1) {
    // Generation: the activation steps are prepared once per chunk and each weight row is then
    // read sequentially (one memory stream, as fast as a single-row tile) while reusing them.
    constexpr int64_t kChunk = 64;
    typename K::Act act[kChunk];
    for (int64_t s0 = 0; s0 < steps; s0 += kChunk) {
      const int64_t s1 = std::min(steps, s0 + kChunk);
      for (int64_t s = s0; s < s1; ++s) act[s - s0] = K::PrepAct(a, s, blocks);
      for (int r = 0; r < NW; ++r) {
        const uint8_t* row = w + r * ws;
        // A local accumulator stays in a register; acc[r][0] indexed by the loop variable went
        // through memory on every step (a store and a load per step in the compiled loop; no
        // speed difference measured on its own).
        typename K::Acc row_acc = acc[r][0];
        DotSteps<K>(row, s0, s1, steps, blocks, act, row_acc);
        acc[r][0] = row_acc;
      }
    }
    for (int r = 0; r < NW; ++r) out[r] = K::Finish(acc[r][0]);
    return;
  }
  for (int64_t s = 0; s < steps; ++s) {
    typename K::Act act[NA];
    for (int c = 0; c < NA; ++c) act[c] = K::PrepAct(a + c * as, s, blocks);
    for (int r = 0; r < NW; ++r) {
      const auto wd = K::DecodeW(w + r * ws, s, blocks);
      for (int c = 0; c < NA; ++c) K::Dot(wd, act[c], acc[r][c]);
    }
  }
  for (int r = 0; r < NW; ++r) {
    for (int c = 0; c < NA; ++c) out[c * os + r] = K::Finish(acc[r][c]);
  }
}

template <typename K>
void Tile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na, float* out,
          size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  WithTileShape(nw, na,
                [&]<int NW, int NA>() { TileFixed<K, NW, NA>(k, wb, ws, ab, as, out, os); });
}

// Rows r < n of w, each read front to back against the prepared activation steps `act`, with
// TileFixed<K, NW, 1>'s operations (so the same results).
template <typename K, PrefetchMode kMode>
void GemvRowsWith(int64_t k, const uint8_t* wb, size_t ws, int64_t n, const typename K::Act* act,
                  float* out) {
  const int64_t blocks = k / 32;
  const int64_t steps = (k + K::kStep - 1) / K::kStep;
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = wb + r * ws;
    typename K::Acc acc;
    DotSteps<K, kMode>(row, 0, steps, steps, blocks, act, acc);
    out[r] = K::Finish(acc);
  }
}

// The prefetch mode is a template argument: GCC 12 dropped the prefetch loop altogether when it
// was guarded by a run-time flag inside the step loop.
template <typename K>
void GemvRows(int64_t k, const uint8_t* wb, size_t ws, int64_t n, const typename K::Act* act,
              float* out) {
  switch (GenerationPrefetch<K>(k)) {
    case PrefetchMode::kNear:
      return GemvRowsWith<K, PrefetchMode::kNear>(k, wb, ws, n, act, out);
    case PrefetchMode::kFar:
      return GemvRowsWith<K, PrefetchMode::kFar>(k, wb, ws, n, act, out);
    case PrefetchMode::kNone:
      return GemvRowsWith<K, PrefetchMode::kNone>(k, wb, ws, n, act, out);
  }
}

// Generation over any number of rows: the activation steps are prepared once per call (a dot
// tile prepares them once per 4 rows, which cost about a third as much as the rows' own steps
// for a 125M model's 768-long rows), then GemvRows. Rows longer than one chunk of prepared steps
// go through the tiles.
template <typename K>
void Gemv(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  constexpr int64_t kChunk = 64;
  const int64_t blocks = k / 32;
  const int64_t steps = (k + K::kStep - 1) / K::kStep;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  if (steps > kChunk) {
    for (int64_t r = 0; r < n; r += kTileRows) {
      const int nw = static_cast<int>(std::min<int64_t>(kTileRows, n - r));
      Tile<K>(k, wb + r * ws, ws, nw, ab, 0, 1, out + r, 1);
    }
    return;
  }
  typename K::Act act[kChunk];
  for (int64_t s = 0; s < steps; ++s) act[s] = K::PrepAct(ab, s, blocks);
  GemvRows<K>(k, wb, ws, n, act, out);
}

// Generation on an activation prepared once per MATMUL and thread (RepackFns::gemv_act): the
// steps K::PrepAct makes, stored, then GemvRows. With the 125M model's 768-long rows and 2
// threads, preparing them per call (per chunk of 48 rows) cost as much as a row's 2 steps.
template <typename K>
size_t PreparedActBytes(int64_t k) {
  return static_cast<size_t>((k + K::kStep - 1) / K::kStep) * sizeof(typename K::Act);
}

template <typename K>
void PrepareAct(int64_t k, const void* a, void* dst) {
  auto* act = static_cast<typename K::Act*>(dst);
  const int64_t steps = (k + K::kStep - 1) / K::kStep;
  for (int64_t s = 0; s < steps; ++s) {
    act[s] = K::PrepAct(static_cast<const uint8_t*>(a), s, k / 32);
  }
}

template <typename K>
void GemvPrepared(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  GemvRows<K>(k, static_cast<const uint8_t*>(w), ws, n, static_cast<const typename K::Act*>(a),
              out);
}

// ---- q4_0x16 rows in groups (Q4_0x16RowGroup) -------------------------------------------------

// The G rows of a group of whole steps, each step's activation loaded once for all of them; each
// row sees DotSteps' operations, so the results are the same as one row at a time.
template <typename K, int G, PrefetchMode kMode>
DZ_STEP void GroupRows(const uint8_t* group, int64_t steps, const typename K::Act* act,
                       float* out) {
  typename K::Acc acc[G];
  for (int64_t s = 0; s < steps; ++s) {
    const uint8_t* step = group + s * G * K::kStepBytes;
    for (int j = 0; j < G; ++j) PrefetchStep<K, kMode>(step + j * K::kStepBytes);
    typename K::Act a = act[s];
    K::Pin(a);
    for (int j = 0; j < G; ++j)
      K::Dot(K::DecodeW(step + j * K::kStepBytes, 0, kQ4x16Blocks), a, acc[j]);
  }
  for (int j = 0; j < G; ++j) out[j] = K::Finish(acc[j]);
}

template <typename K, PrefetchMode kMode>
void GemvGroupsWith(int64_t k, const uint8_t* wb, size_t ws, int64_t n, const typename K::Act* act,
                    float* out) {
  const int64_t steps = k / K::kStep;
  int64_t r = 0;
  for (; r + kQ4x16RowGroup <= n; r += kQ4x16RowGroup) {
    GroupRows<K, kQ4x16RowGroup, kMode>(wb + r * ws, steps, act, out + r);
  }
  static_assert(kQ4x16RowGroup == 4);
  switch (n - r) {  // the last group of the weight: the rows left
    case 1:
      return GroupRows<K, 1, kMode>(wb + r * ws, steps, act, out + r);
    case 2:
      return GroupRows<K, 2, kMode>(wb + r * ws, steps, act, out + r);
    case 3:
      return GroupRows<K, 3, kMode>(wb + r * ws, steps, act, out + r);
  }
}

// RepackFns::gemv of q4_0x16: rows in groups where the layout has them, else one row at a time.
void GemvQ4_0x16(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  using K = KernelQ4_0x16;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* act = static_cast<const K::Act*>(a);
  if (Q4_0x16RowGroup(k) == 1) return GemvRows<K>(k, wb, ws, n, act, out);
  switch (GenerationPrefetch<K>(k)) {
    case PrefetchMode::kNear:
      return GemvGroupsWith<K, PrefetchMode::kNear>(k, wb, ws, n, act, out);
    case PrefetchMode::kFar:
      return GemvGroupsWith<K, PrefetchMode::kFar>(k, wb, ws, n, act, out);
    case PrefetchMode::kNone:
      return GemvGroupsWith<K, PrefetchMode::kNone>(k, wb, ws, n, act, out);
  }
}

// K's steps on the G rows of one group, as TileFixed takes rows: row j at j·kStepBytes (the
// row stride the tile is given), its step s G·kStepBytes further per step.
template <typename K, int G>
struct InGroupOf : K {
  DZ_STEP static typename K::W DecodeW(const uint8_t* row, int64_t step, int64_t /*blocks*/) {
    return K::DecodeW(row + step * G * K::kStepBytes, 0, kQ4x16Blocks);
  }
};

// RepackFns::dot of q4_0x16: a tile's nw rows are one group (calls start at a group's first row,
// and only the weight's last group has fewer than 4 rows).
void TileQ4_0x16(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
                 float* out, size_t os) {
  using K = KernelQ4_0x16;
  if (Q4_0x16RowGroup(k) == 1) return Tile<K>(k, w, ws, nw, a, as, na, out, os);
  static_assert(kTileRows == kQ4x16RowGroup);
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  WithTileShape(nw, na, [&]<int NW, int NA>() {
    TileFixed<InGroupOf<K, NW>, NW, NA>(k, wb, K::kStepBytes, ab, as, out, os);
  });
}

// ---- prompt batches: 4 weight rows × 4 activation rows per vector -----------------------------
//
// Lane 4r + c of a vector belongs to (weight row r, activation row c) of a 4 × 4 tile. Per
// 32-block, eight vpdpbusd (one per 4-element group g: weight row r's group g spread over lanes
// 4r..4r+3, the 4 activation rows' group g broadcast to every 128-bit lane) leave each lane with
// the exact integer block sum, scaled once by d_w·d_a. Activations are packed once per quad of
// rows, in about their q8_0 size, so a weight block is decoded once for up to 32 activation rows.

// Packed quad, per block: 8 groups of [a0 a1 a2 a3] dwords, the 4 biases −o·Σa_c (i32), the 4
// scales d_c (f32): 16 bytes each.
constexpr int64_t kPackedBlock = 10 * 16;

size_t LegacyPackBytes(int64_t k) { return static_cast<size_t>(k / 32 * kPackedBlock); }

template <int kOffset>
void LegacyPack(int64_t k, const void* a, size_t a_stride, int na, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < k / 32; ++b, out += kPackedBlock) {
    int32_t groups[8][4] = {}, bias[4] = {};
    float d[4] = {};
    for (int c = 0; c < na; ++c) {
      const auto* blk =
          reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + c * a_stride) + b;
      int sum = 0;
      for (int e = 0; e < 32; ++e) sum += blk->qs[e];
      for (int g = 0; g < 8; ++g) groups[g][c] = Load<int32_t>(blk->qs + 4 * g);
      bias[c] = -kOffset * sum;
      d[c] = Half(blk->d);
    }
    std::memcpy(out, groups, sizeof(groups));
    std::memcpy(out + 128, bias, sizeof(bias));
    std::memcpy(out + 144, d, sizeof(d));
  }
}

// Four weight rows' block b as unsigned bytes: lane r of `lo` holds row r's groups 0-3, of `hi`
// groups 4-7; lanes 4r..4r+3 of `d` hold d_r.
struct Quad {
  __m512i lo, hi;
  __m512 d;
};

template <typename Block>
inline __m512i Lanes16(const uint8_t* const rows[4], int64_t b, int offset) {
  auto at = [&](int r) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(
        reinterpret_cast<const uint8_t*>(reinterpret_cast<const Block*>(rows[r]) + b) + offset));
  };
  __m512i z = _mm512_castsi128_si512(at(0));
  z = _mm512_inserti32x4(z, at(1), 1);
  z = _mm512_inserti32x4(z, at(2), 2);
  return _mm512_inserti32x4(z, at(3), 3);
}

template <typename Block>
inline __m512 ScalesOf(const uint8_t* const rows[4], int64_t b) {
  auto d = [&](int r) { return reinterpret_cast<const Block*>(rows[r])[b].d; };
  return QuadScales(d(0), d(1), d(2), d(3));
}

struct QuadQ8_0 {
  static constexpr int kOffset = 128;
  static Quad Decode(const uint8_t* const rows[4], int64_t b, int64_t /*blocks*/) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    return {_mm512_xor_si512(Lanes16<BlockQ8_0>(rows, b, 2), flip),
            _mm512_xor_si512(Lanes16<BlockQ8_0>(rows, b, 18), flip), ScalesOf<BlockQ8_0>(rows, b)};
  }
};

struct QuadQ4_0 {
  static constexpr int kOffset = 8;
  static Quad Decode(const uint8_t* const rows[4], int64_t b, int64_t /*blocks*/) {
    const __m512i raw = Lanes16<BlockQ4_0>(rows, b, 2);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    return {_mm512_and_si512(raw, mask), _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask),
            ScalesOf<BlockQ4_0>(rows, b)};
  }
};

struct QuadQ5_0 {
  static constexpr int kOffset = 16;
  static Quad Decode(const uint8_t* const rows[4], int64_t b, int64_t /*blocks*/) {
    Quad q;
    const __m512i raw = Lanes16<BlockQ5_0>(rows, b, 6);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    q.lo = _mm512_and_si512(raw, mask);
    q.hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
    q.d = ScalesOf<BlockQ5_0>(rows, b);
    uint64_t lo_bits = 0, hi_bits = 0;
    for (int r = 0; r < 4; ++r) {
      const uint32_t qh = Load<uint32_t>(reinterpret_cast<const BlockQ5_0*>(rows[r])[b].qh);
      lo_bits |= uint64_t{qh & 0xffff} << (16 * r);
      hi_bits |= uint64_t{qh >> 16} << (16 * r);
    }
    const __m512i sixteen = _mm512_set1_epi8(16);
    q.lo = _mm512_mask_add_epi8(q.lo, _cvtu64_mask64(lo_bits), q.lo, sixteen);
    q.hi = _mm512_mask_add_epi8(q.hi, _cvtu64_mask64(hi_bits), q.hi, sixteen);
    return q;
  }
};

// Lanes 4r..4r+3 ← dword 4r + g of v (row r's group g of this half, for every activation row).
inline __m512i SpreadGroup(__m512i v, int g) {
  const __m512i base = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
  return _mm512_permutexvar_epi32(_mm512_add_epi32(base, _mm512_set1_epi32(g)), v);
}

inline __m512i Broadcast16(const uint8_t* p) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Output rows 4q + c, columns 0 .. nw − 1 ← lanes 4r + c of acc[q]: a 4 × 4 transpose per quad,
// then one masked 16-byte store per activation row (was 16 scalar stores per quad).
template <int NQ>
inline void StoreQuads(const __m512* acc, int nw, int na, float* out, size_t os) {
  const __m512i transpose = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const auto cols = static_cast<__mmask8>((1u << nw) - 1);
  for (int q = 0; q < NQ; ++q) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_permutexvar_ps(transpose, acc[q]));
    for (int c = 0; c < 4 && 4 * q + c < na; ++c) {
      _mm_mask_storeu_ps(out + (4 * q + c) * os, cols, _mm_load_ps(lanes + 4 * c));
    }
  }
}

template <typename Q, int NQ>
void GemmQuads(int64_t k, const uint8_t* const rows[4], int nw, const uint8_t* packed, int na,
               float* out, size_t os) {
  __m512 acc[NQ];
  for (int q = 0; q < NQ; ++q) acc[q] = _mm512_setzero_ps();
  const size_t quad_bytes = LegacyPackBytes(k);
  for (int64_t b = 0; b < k / 32; ++b) {
    const Quad w = Q::Decode(rows, b, k / 32);
    __m512i s[NQ];
    const uint8_t* blk[NQ];
    for (int q = 0; q < NQ; ++q) {
      blk[q] = packed + q * quad_bytes + b * kPackedBlock;
      s[q] = Broadcast16(blk[q] + 128);
    }
    for (int g = 0; g < 8; ++g) {
      const __m512i wg = SpreadGroup(g < 4 ? w.lo : w.hi, g % 4);
      for (int q = 0; q < NQ; ++q) {
        s[q] = _mm512_dpbusd_epi32(s[q], wg, Broadcast16(blk[q] + 16 * g));
      }
    }
    for (int q = 0; q < NQ; ++q) {
      const __m512 scale = _mm512_mul_ps(w.d, _mm512_castsi512_ps(Broadcast16(blk[q] + 144)));
      acc[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[q]), scale, acc[q]);
    }
  }
  StoreQuads<NQ>(acc, nw, na, out, os);
}

template <typename Q>
void GemmRows(int64_t k, const uint8_t* const rows[4], int nw, const void* packed, int na,
              float* out, size_t os) {
  const auto* p = static_cast<const uint8_t*>(packed);
  const size_t quad_bytes = LegacyPackBytes(k);
  for (int c = 0; c < na; c += 32) {
    const int left = std::min(32, na - c);
    const uint8_t* pq = p + (c / 4) * quad_bytes;
    float* o = out + c * os;
    switch ((left + 3) / 4) {
      case 1:
        GemmQuads<Q, 1>(k, rows, nw, pq, left, o, os);
        break;
      case 2:
        GemmQuads<Q, 2>(k, rows, nw, pq, left, o, os);
        break;
      case 3:
        GemmQuads<Q, 3>(k, rows, nw, pq, left, o, os);
        break;
      case 4:
        GemmQuads<Q, 4>(k, rows, nw, pq, left, o, os);
        break;
      case 5:
        GemmQuads<Q, 5>(k, rows, nw, pq, left, o, os);
        break;
      case 6:
        GemmQuads<Q, 6>(k, rows, nw, pq, left, o, os);
        break;
      case 7:
        GemmQuads<Q, 7>(k, rows, nw, pq, left, o, os);
        break;
      default:
        GemmQuads<Q, 8>(k, rows, nw, pq, left, o, os);
        break;
    }
  }
}

template <typename Q>
void Gemm(int64_t k, const void* w, size_t ws, int nw, const void* packed, int na, float* out,
          size_t os) {
  const uint8_t* rows[4];
  for (int r = 0; r < 4; ++r) {  // missing rows repeat the last one; their lanes are not stored
    rows[r] = static_cast<const uint8_t*>(w) + std::min(r, nw - 1) * ws;
  }
  GemmRows<Q>(k, rows, nw, packed, na, out, os);
}

template <typename Q>
GemmFns LegacyGemm() {
  return {LegacyPackBytes, LegacyPack<Q::kOffset>, Gemm<Q>};
}

// Prompt batches on Q4_0x16 weights (GemmFns::pack_weights): a work item's weight rows are first
// put back into QuadQ4_0's lane order, block by block for each quad of rows (QuadBlockQ4), by a
// 4 × 4 dword transpose per 128-bit lane of each group's four quant vectors, with the scales
// spread as QuadScales does; the GEMM then runs QuadQ4_0's operations on them, so its results
// equal the file layout's bit for bit. The conversion is paid once per 32 weight rows and 256
// activation rows. cpu_kernels_bench BM_Q4_0Repack, M = 512, 1 thread, against the file layout:
// decoding each block from the Q4_0x16 rows with one dword gather measured 1.25× (768 × 3072)
// and 1.5× (2048 × 8192) slower; converting 4 rows per gemm call (64 activation rows) 1.02× and
// 1.10× slower.
constexpr int kWeightPackRows = 32;  // weight rows per work item (GemmFns::rows)

// A work item's rows of a 16-block layout (q4_0x16: kHalves 1, 16 quant bytes per block; q8_0x16:
// kHalves 2, 32) in a QuadQ* GEMM's lane order, per block and quad of rows. Written to and read
// from scratch that need not be 64-byte aligned (unaligned loads and stores).
template <int kHalves>
struct QuadBlockX16 {
  uint8_t q[kHalves][64];  // row r's quant bytes 16h .. 16h + 15 in 128-bit lane r of q[h]
  float d[16];             // lanes 4r .. 4r + 3: row r's scale (QuadScales)
};
using QuadBlockQ4 = QuadBlockX16<1>;
using QuadBlockQ8 = QuadBlockX16<2>;

// Groups of the 4 rows (rows[r]) into QuadBlockX16s (or a Block with the same q and d): per row
// and 16 quant bytes of each block, a 4 × 4 dword transpose per 128-bit lane of the group's four
// vectors; the scales spread as QuadScales does. kExtraBytes: bytes per block that the layout
// keeps between the quants and the scales (q5_0x16's qh: 4), left to the caller.
// step_bytes: bytes from a row's group (step) to its next one (the group's bytes, or more where
// rows are stored in groups, Q4_0x16RowGroup).
template <int kHalves, int64_t kExtraBytes = 0, typename Block = QuadBlockX16<kHalves>>
void UnpackX16QuadsStrided(int64_t k, const uint8_t* const rows[4], Block* out,
                           int64_t step_bytes) {
  constexpr int64_t kQuantBytes = 16 * kHalves;  // per block
  constexpr int64_t kScalesAt = kQuantBytes + kExtraBytes;
  const int64_t nb = k / 32;
  for (int64_t g = 0; kQ4x16Blocks * g < nb; ++g) {
    const int64_t t = Q4x16GroupBlocks(g, nb);
    const __mmask16 valid = KernelQ4_0x16::Valid(g, nb);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* group = rows[r] + step_bytes * g;
      for (int h = 0; h < kHalves; ++h) {
        __m512i v[4];
        for (int i = 0; i < 4; ++i) {
          v[i] = _mm512_maskz_loadu_epi32(valid, group + 4 * t * (4 * h + i));
        }
        // 128-bit lane j of v[i] ← block 4j + i's quant bytes 16h .. 16h + 15.
        TransposeDwords4x4(v);
        alignas(64) uint8_t blk[4][64];
        for (int i = 0; i < 4; ++i) _mm512_store_si512(blk[i], v[i]);
        for (int64_t l = 0; l < t; ++l) {
          std::memcpy(out[kQ4x16Blocks * g + l].q[h] + 16 * r, blk[l % 4] + 16 * (l / 4), 16);
        }
      }
    }
    for (int64_t l = 0; l < t; ++l) {
      auto d = [&](int r) {
        return Load<uint16_t>(rows[r] + step_bytes * g + kScalesAt * t + 2 * l);
      };
      _mm512_storeu_ps(out[kQ4x16Blocks * g + l].d, QuadScales(d(0), d(1), d(2), d(3)));
    }
  }
}

template <int kHalves, int64_t kExtraBytes = 0, typename Block = QuadBlockX16<kHalves>>
void UnpackX16Quads(int64_t k, const uint8_t* const rows[4], Block* out) {
  UnpackX16QuadsStrided<kHalves, kExtraBytes, Block>(
      k, rows, out, (16 * kHalves + kExtraBytes + 2) * kQ4x16Blocks);
}

// QuadQ4_0's decode on converted blocks (rows[0] points to the QuadBlockQ4 array).
struct QuadQ4_0Converted {
  static constexpr int kOffset = 8;
  static Quad Decode(const uint8_t* const rows[4], int64_t b, int64_t /*blocks*/) {
    const QuadBlockQ4& q = reinterpret_cast<const QuadBlockQ4*>(rows[0])[b];
    const __m512i raw = _mm512_loadu_si512(q.q[0]);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    return {_mm512_and_si512(raw, mask), _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask),
            _mm512_loadu_ps(q.d)};
  }
};

// GemmFns::weight_pack_bytes, pack_weights and gemm of a 16-block layout whose work item rows are
// converted, 4 rows at a time, into `Block`s in a QuadQ* GEMM's lane order by `Unpack`; `Converted`
// is that GEMM's decode on them.
template <typename Block>
size_t X16WeightPackBytes(int64_t k) {
  return static_cast<size_t>(kWeightPackRows / 4 * (k / 32)) * sizeof(Block);
}

template <typename Block, void (*Unpack)(int64_t, const uint8_t* const[4], Block*)>
void PackX16Weights(int64_t k, const void* w, size_t ws, int nw, void* dst) {
  const int64_t nb = k / 32;
  for (int q = 0; 4 * q < nw; ++q) {
    const uint8_t* rows[4];
    for (int r = 0; r < 4; ++r) {  // missing rows repeat the last one; their lanes are not stored
      rows[r] = static_cast<const uint8_t*>(w) + std::min(4 * q + r, nw - 1) * ws;
    }
    Unpack(k, rows, static_cast<Block*>(dst) + q * nb);
  }
}

// GemmFns::pack_weights of q4_0x16: PackX16Weights, or for rows stored in groups each group's
// rows (the last group: the rows left) with their steps g·288 bytes apart.
void PackQ4_0x16Weights(int64_t k, const void* w, size_t ws, int nw, void* dst) {
  if (Q4_0x16RowGroup(k) == 1)
    return PackX16Weights<QuadBlockQ4, UnpackX16Quads<1>>(k, w, ws, nw, dst);
  static_assert(kQ4x16RowGroup == 4);
  for (int q = 0; 4 * q < nw; ++q) {
    const int g = std::min(4, nw - 4 * q);
    const uint8_t* rows[4];
    for (int r = 0; r < 4; ++r) {  // missing rows repeat the last one; their lanes are not stored
      rows[r] = static_cast<const uint8_t*>(w) + 4 * q * ws + std::min(r, g - 1) * kQ4x16GroupBytes;
    }
    UnpackX16QuadsStrided<1>(k, rows, static_cast<QuadBlockQ4*>(dst) + q * (k / 32),
                             g * kQ4x16GroupBytes);
  }
}

template <typename Block, typename Converted>
void GemmX16(int64_t k, const void* w, size_t /*ws*/, int nw, const void* packed, int na,
             float* out, size_t os) {
  const int64_t nb = k / 32;
  for (int q = 0; 4 * q < nw; ++q) {
    const auto* quad = reinterpret_cast<const uint8_t*>(static_cast<const Block*>(w) + q * nb);
    const uint8_t* const rows[4] = {quad, quad, quad, quad};
    GemmRows<Converted>(k, rows, std::min(4, nw - 4 * q), packed, na, out + 4 * q, os);
  }
}

// Prompt batches on Q8_0x16 weights, as on Q4_0x16 ones: a work item's rows are put into
// QuadQ8_0's lane order (QuadBlockQ8, by two 4 × 4 dword transposes per group and row), and the
// GEMM runs QuadQ8_0's operations on them, so results equal the file layout's bit for bit. The
// quants stay q + 128, the form QuadQ8_0 works in. Converting each row back to the file's layout
// with scalar code instead measured 0.87-0.92× the file layout's pp128 (1b and 125m).
//
// QuadQ8_0's decode on converted blocks (rows[0] points to the QuadBlockQ8 array).
struct QuadQ8_0Converted {
  static constexpr int kOffset = QuadQ8_0::kOffset;
  static Quad Decode(const uint8_t* const rows[4], int64_t b, int64_t /*blocks*/) {
    const QuadBlockQ8& q = reinterpret_cast<const QuadBlockQ8*>(rows[0])[b];
    return {_mm512_loadu_si512(q.q[0]), _mm512_loadu_si512(q.q[1]), _mm512_loadu_ps(q.d)};
  }
};

// Prompt batches on Q5_0x16 weights, as on Q4_0x16 ones: a work item's rows are put into
// QuadQ5_0's lane order (QuadBlockQ5: the quants and scales as for QuadBlockQ4, the fifth bits as
// QuadQ5_0's masks), and the GEMM runs QuadQ5_0's operations on them, so results equal the file
// layout's bit for bit. Gemma 3 270M pp512, 1 thread, --profile, its Q5_0 GEMMs (640 × 2048):
// 490-500 ms this way, against 514-530 on the file layout's copy before q5_0x16, 548-558 when each
// work item's rows went back to the file's layout first and 554-566 when QuadQ5_0's decode read
// the q5_0x16 rows directly (four dword loads per row and block).
struct QuadBlockQ5 {
  uint8_t q[1][64];           // row r's quant bytes in 128-bit lane r
  float d[16];                // lanes 4r .. 4r + 3: row r's scale (QuadScales)
  uint64_t lo_bits, hi_bits;  // bit 16r + e: row r's element e (lo) or 16 + e (hi) has bit 4 set
};

void UnpackQ5_0x16Quads(int64_t k, const uint8_t* const rows[4], QuadBlockQ5* out) {
  UnpackX16Quads<1, 4>(k, rows, out);
  const int64_t nb = k / 32;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / kQ4x16Blocks, l = b % kQ4x16Blocks, t = Q4x16GroupBlocks(g, nb);
    out[b].lo_bits = out[b].hi_bits = 0;
    for (int r = 0; r < 4; ++r) {
      const uint32_t qh =
          GatherQ5Bits(Load<uint32_t>(rows[r] + kQ5x16GroupBytes * g + 16 * t + 4 * l));
      out[b].lo_bits |= uint64_t{qh & 0xffff} << (16 * r);
      out[b].hi_bits |= uint64_t{qh >> 16} << (16 * r);
    }
  }
}

// QuadQ5_0's decode on converted blocks (rows[0] points to the QuadBlockQ5 array).
struct QuadQ5_0Converted {
  static constexpr int kOffset = QuadQ5_0::kOffset;
  static Quad Decode(const uint8_t* const rows[4], int64_t b, int64_t /*blocks*/) {
    const QuadBlockQ5& q = reinterpret_cast<const QuadBlockQ5*>(rows[0])[b];
    const __m512i raw = _mm512_loadu_si512(q.q[0]);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i lo = _mm512_and_si512(raw, mask);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
    return {_mm512_mask_add_epi8(lo, _cvtu64_mask64(q.lo_bits), lo, sixteen),
            _mm512_mask_add_epi8(hi, _cvtu64_mask64(q.hi_bits), hi, sixteen), _mm512_loadu_ps(q.d)};
  }
};

// ---- prompt batches of Q4_K: the same 4 × 4 lane layout per 256-super-block -------------------
//
// Per sub-block j of 32, eight vpdpbusd leave each lane with the exact integer Σ q·a; the
// super-block's integer sums Σ_j sc_j·S_j (over sub-blocks 0-3 and 4-7 apart: each half stays below
// 2^24, so it converts to f32 exactly, which matters because the scale and min terms cancel) and
// Σ_j m_j·bsum_j (bsums of the Q8_K activation, two per sub-block) are then scaled by d_w·d_a and
// dmin_w·d_a.

// Packed quad, per super-block: sub-block j's 8 groups of [a0 a1 a2 a3] dwords (8 × 128 bytes),
// then for each sub-block pair i the dwords (bsum_c[2i] | bsum_c[2i + 1] << 16) of the 4 rows (4 ×
// 16 bytes), then the 4 scales d_c (f32).
constexpr int64_t kPackedSuperBlock = 8 * 128 + 4 * 16 + 16;

size_t Q4_KPackBytes(int64_t k) { return static_cast<size_t>(k / 256 * kPackedSuperBlock); }

void Q4_KPack(int64_t k, const void* a, size_t a_stride, int na, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < k / 256; ++b, out += kPackedSuperBlock) {
    int32_t groups[8][8][4] = {}, pairs[4][4] = {};
    float d[4] = {};
    for (int c = 0; c < na; ++c) {
      const auto* blk =
          reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + c * a_stride) + b;
      for (int j = 0; j < 8; ++j) {
        for (int g = 0; g < 8; ++g) groups[j][g][c] = Load<int32_t>(blk->qs + 32 * j + 4 * g);
      }
      for (int i = 0; i < 4; ++i) {
        const int lo = blk->bsums[4 * i] + blk->bsums[4 * i + 1];
        const int hi = blk->bsums[4 * i + 2] + blk->bsums[4 * i + 3];
        pairs[i][c] = static_cast<int32_t>((static_cast<uint32_t>(lo) & 0xffff) |
                                           (static_cast<uint32_t>(hi) << 16));
      }
      d[c] = blk->d;
    }
    std::memcpy(out, groups, sizeof(groups));
    std::memcpy(out + 1024, pairs, sizeof(pairs));
    std::memcpy(out + 1088, d, sizeof(d));
  }
}

template <int NQ>
void GemmQuadsQ4_K(int64_t k, const uint8_t* const rows[4], int nw, const uint8_t* packed, int na,
                   float* out, size_t os) {
  __m512 acc[NQ];
  for (int q = 0; q < NQ; ++q) acc[q] = _mm512_setzero_ps();
  const size_t quad_bytes = Q4_KPackBytes(k);
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < k / 256; ++b) {
    // 128-bit lane r: row r's 8 scales (bytes 0-7) and 8 mins (bytes 8-15).
    __m512i sm = _mm512_setzero_si512();
    uint16_t dw[4], dminw[4];
    for (int r = 0; r < 4; ++r) {
      const auto* blk = reinterpret_cast<const BlockQ4_K*>(rows[r]) + b;
      uint64_t sc, mn;
      UnpackScalesMinsK4(blk->scales, &sc, &mn);
      const __m128i v = _mm_set_epi64x(static_cast<int64_t>(mn), static_cast<int64_t>(sc));
      sm = _mm512_mask_broadcast_i32x4(sm, static_cast<__mmask16>(0xf << (4 * r)), v);
      dw[r] = blk->d;
      dminw[r] = blk->dmin;
    }
    const uint8_t* blk[NQ];
    __m512i isum[2][NQ], msum[NQ];
    for (int q = 0; q < NQ; ++q) {
      blk[q] = packed + q * quad_bytes + b * kPackedSuperBlock;
      isum[0][q] = isum[1][q] = _mm512_setzero_si512();
      msum[q] = _mm512_setzero_si512();
    }
    for (int i = 0; i < 4; ++i) {  // mins of sub-blocks 2i, 2i + 1 as an i16 pair per dword
      const __m512i ctl =
          _mm512_set1_epi32(static_cast<int>(0x80008008u + 2 * i) | ((9 + 2 * i) << 16));
      const __m512i mins = _mm512_shuffle_epi8(sm, ctl);
      for (int q = 0; q < NQ; ++q) {
        msum[q] = _mm512_dpwssd_epi32(msum[q], mins, Broadcast16(blk[q] + 1024 + 16 * i));
      }
    }
    for (int p = 0; p < 4; ++p) {
      const __m512i raw_lo = Lanes16<BlockQ4_K>(rows, b, 16 + 32 * p);
      const __m512i raw_hi = Lanes16<BlockQ4_K>(rows, b, 16 + 32 * p + 16);
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * p + half;
        const __m512i lo = _mm512_and_si512(half ? _mm512_srli_epi16(raw_lo, 4) : raw_lo, mask);
        const __m512i hi = _mm512_and_si512(half ? _mm512_srli_epi16(raw_hi, 4) : raw_hi, mask);
        const __m512i scale =
            _mm512_shuffle_epi8(sm, _mm512_set1_epi32(static_cast<int>(0x80808000u + j)));
        __m512i s[NQ];
        for (int q = 0; q < NQ; ++q) s[q] = _mm512_setzero_si512();
        for (int g = 0; g < 8; ++g) {
          const __m512i wg = SpreadGroup(g < 4 ? lo : hi, g % 4);
          for (int q = 0; q < NQ; ++q) {
            s[q] = _mm512_dpbusd_epi32(s[q], wg, Broadcast16(blk[q] + 128 * j + 16 * g));
          }
        }
        for (int q = 0; q < NQ; ++q)
          isum[p / 2][q] = _mm512_add_epi32(isum[p / 2][q], _mm512_mullo_epi32(s[q], scale));
      }
    }
    const __m512 d = QuadScales(dw[0], dw[1], dw[2], dw[3]);
    const __m512 dmin = QuadScales(dminw[0], dminw[1], dminw[2], dminw[3]);
    for (int q = 0; q < NQ; ++q) {
      const __m512 da = _mm512_castsi512_ps(Broadcast16(blk[q] + 1088));
      const __m512 dd = _mm512_mul_ps(d, da);
      acc[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[0][q]), dd, acc[q]);
      acc[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[1][q]), dd, acc[q]);
      acc[q] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[q]), _mm512_mul_ps(dmin, da), acc[q]);
    }
  }
  StoreQuads<NQ>(acc, nw, na, out, os);
}

void GemmQ4_K(int64_t k, const void* w, size_t ws, int nw, const void* packed, int na, float* out,
              size_t os) {
  const uint8_t* rows[4];
  for (int r = 0; r < 4; ++r) {  // missing rows repeat the last one; their lanes are not stored
    rows[r] = static_cast<const uint8_t*>(w) + std::min(r, nw - 1) * ws;
  }
  const auto* p = static_cast<const uint8_t*>(packed);
  const size_t quad_bytes = Q4_KPackBytes(k);
  for (int c = 0; c < na; c += 32) {
    const int left = std::min(32, na - c);
    const uint8_t* pq = p + (c / 4) * quad_bytes;
    float* o = out + c * os;
    switch ((left + 3) / 4) {
      case 1:
        GemmQuadsQ4_K<1>(k, rows, nw, pq, left, o, os);
        break;
      case 2:
        GemmQuadsQ4_K<2>(k, rows, nw, pq, left, o, os);
        break;
      case 3:
        GemmQuadsQ4_K<3>(k, rows, nw, pq, left, o, os);
        break;
      case 4:
        GemmQuadsQ4_K<4>(k, rows, nw, pq, left, o, os);
        break;
      case 5:
        GemmQuadsQ4_K<5>(k, rows, nw, pq, left, o, os);
        break;
      case 6:
        GemmQuadsQ4_K<6>(k, rows, nw, pq, left, o, os);
        break;
      case 7:
        GemmQuadsQ4_K<7>(k, rows, nw, pq, left, o, os);
        break;
      default:
        GemmQuadsQ4_K<8>(k, rows, nw, pq, left, o, os);
        break;
    }
  }
}

// Prompt batches on Q4_Kx16 weights (GemmFns::pack_weights): a work item's weight rows are put
// back into the file's layout (a dword transpose of each step's four quant vectors and the
// super-blocks' first 16 bytes copied), and GemmQ4_K runs on them, so the results equal the file
// layout's bit for bit. The conversion is paid once per 32 weight rows and 256 activation rows.
void UnpackQ4_Kx16Row(int64_t k, const uint8_t* row, BlockQ4_K* out) {
  for (int64_t s = 0; s < k / 512; ++s) {
    const uint8_t* step = row + kQ4Kx16StepBytes * s;
    __m512i v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm512_loadu_si512(step + 64 * i);
    // v[i]'s 128-bit lane j ← lane L = 4j + i's 16 bytes (dword L of the loaded v[0..3]).
    TransposeDwords4x4(v);
    // Output vector u ← lanes L = 4u .. 4u + 3: a 4 × 4 transpose of 128-bit lanes.
    const __m512i p = _mm512_shuffle_i32x4(v[0], v[1], 0x44);
    const __m512i q = _mm512_shuffle_i32x4(v[2], v[3], 0x44);
    const __m512i r = _mm512_shuffle_i32x4(v[0], v[1], 0xee);
    const __m512i x = _mm512_shuffle_i32x4(v[2], v[3], 0xee);
    const __m512i quants[4] = {_mm512_shuffle_i32x4(p, q, 0x88), _mm512_shuffle_i32x4(p, q, 0xdd),
                               _mm512_shuffle_i32x4(r, x, 0x88), _mm512_shuffle_i32x4(r, x, 0xdd)};
    for (int h = 0; h < 2; ++h) {
      BlockQ4_K& blk = out[2 * s + h];
      std::memcpy(&blk, step + 256 + 16 * h, 16);
      _mm512_storeu_si512(blk.qs, quants[2 * h]);
      _mm512_storeu_si512(blk.qs + 64, quants[2 * h + 1]);
    }
  }
}

size_t Q4_Kx16WeightPackBytes(int64_t k) {
  return static_cast<size_t>(kWeightPackRows) * Q4_Kx16RowBytes(k);
}

void PackQ4_Kx16Weights(int64_t k, const void* w, size_t ws, int nw, void* dst) {
  for (int r = 0; r < nw; ++r) {
    UnpackQ4_Kx16Row(
        k, static_cast<const uint8_t*>(w) + r * ws,
        reinterpret_cast<BlockQ4_K*>(static_cast<uint8_t*>(dst) + r * Q4_Kx16RowBytes(k)));
  }
}

void GemmQ4_Kx16(int64_t k, const void* w, size_t /*ws*/, int nw, const void* packed, int na,
                 float* out, size_t os) {
  const size_t row_bytes = Q4_Kx16RowBytes(k);
  for (int q = 0; 4 * q < nw; ++q) {
    GemmQ4_K(k, static_cast<const uint8_t*>(w) + 4 * q * row_bytes, row_bytes,
             std::min(4, nw - 4 * q), packed, na, out + 4 * q, os);
  }
}

// ---- attention on f16 caches (kernels.h AttentionRows) ----------------------------------------
//
// The scores of a block of query rows are small matrix products, 16 cells at a time. The query
// rows are rounded to f16 and stored in groups of 4, interleaved by 4 elements (PrepareQueries);
// each vector lane holds one (row, cell) pair's products of the elements ≡ e (mod 4), an FMA
// chain over the head dimension in element order, and the 4 lanes of a pair are added as
// (e0 + e1) + (e2 + e3). Two orientations give these sums bit for bit:
//   - ScoreGroup (calls of up to 4 query rows, generation): the 16 key rows converted to f32 as
//     they are (kt[c · d + j]); a 128-bit block per row, one accumulator per cell, each step a
//     query vector × the cell's 4 elements broadcast to the 4 blocks;
//   - ScoreGroupByCells (more rows, prompts): the key rows converted with their 4-element blocks
//     of 4 cells interleaved (ConvertKeysByQuads, once per 16 cells for all rows); a 128-bit
//     block per cell, 4 accumulators per row, each step one row's 4 elements broadcast × 4 cell
//     vectors, so the 16 cells' elements are loaded once for 4 rows.
// The softmax (max, exp, f64 sum, normalization, f16 rounding of the weights) runs 16 cells per
// vector, and the weighted sum of the V rows keeps 4 query rows × 64 elements in registers while
// it walks the cells in order, each V row converted once for the 4 rows. Per output the operations
// are fixed: the score's sums above, max / sums per lane then in lane order, and out += p·v in
// cell order over the cells with p ≠ 0 (as the axpy loop it replaces).
//
// Until the eighteenth session each score was one FMA chain with the cells in lanes, the 16 key
// rows transposed with shuffles (~80 shuffle and conversion operations per 16 × 16 block; before
// that, gathers) for every call. Generation calls have 1-4 rows, so the transposes cost as much
// as the products. Zen 4, 1 thread, `--profile` ATTENTION, before → after (2 alternations):
// Gemma 3 tg16 after 4096 cached tokens 110-112 → 80-81 ms, llama 125m tg32 after 2048 156-159 →
// 116-121 ms; prompts unchanged within 1-3% (Gemma 3 pp512 220-226 → 223-234, 125m pp512 after
// 2048 1115-1127 → 1131-1143). ScoreGroup for prompts too cost them 17-19% (its 16 broadcast
// loads per 16 FMAs); ScoreGroupByCells for generation gave 90-91 ms on Gemma 3 (its key
// conversion shuffles, paid for 4 rows).
//
// AttentionF16Part runs the same call in parts (kernels.h AttentionPart) for the team path of
// ops_attention.cc. Until it existed the table inherited the AVX2 table's parts beside its own
// whole call, and results then depended on the thread count (CpuVsReference.Attention on a Zen
// 4). Gemma 3 270M tg16 after 4096 cached tokens, 2 threads, Zen 4, `--profile` ATTENTION over
// 576 calls: 114-115 ms with the heads split over the threads, 73-79 ms with these parts.

// e^x, Cephes-style (the AVX2 table's Exp on 16 lanes): about 1 ulp on [-87, 88], clamped there.
inline __m512 Exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

inline __m512 RoundF16(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline __m512 LoadHalf16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Per 128-bit block, lanes [a0 + a1, a2 + a3, b0 + b1, b2 + b3]: the first adds of both score
// orientations' (e0 + e1) + (e2 + e3).
inline __m512 PairSums(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Floats of the query groups (PrepareQueries) of nq rows.
inline int64_t QueryGroupFloats(int nq, int64_t d) { return (nq + 3) / 4 * 4 * d; }

// The scores of query rows 4g .. 4g + n − 1 (n ≤ 4; qg: their group, PrepareQueries) against 16
// converted key rows (kt[c · d + j]), to s[i · s_stride + c]. Lane 4i + e of cell c's accumulator
// sums row i's products of elements 4j + e, j in order; then (e0 + e1) + (e2 + e3).
inline void ScoreGroup(const float* qg, int64_t d, const float* kt, float* s, size_t s_stride,
                       int n) {
  __m512 acc[16];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t j = 0; j < d; j += 4) {
    const __m512 qv = _mm512_loadu_ps(qg + 4 * j);
    for (int c = 0; c < 16; ++c) {
      acc[c] = _mm512_fmadd_ps(qv, _mm512_broadcast_f32x4(_mm_loadu_ps(kt + c * d + j)), acc[c]);
    }
  }
  // Per 128-bit lane (a row): t[p] = [2p: e0 + e1, e2 + e3, 2p + 1: e0 + e1, e2 + e3].
  __m512 t[8];
  for (int p = 0; p < 8; ++p) t[p] = PairSums(acc[2 * p], acc[2 * p + 1]);
  // u[q], per row: the scores of cells 4q .. 4q + 3; then row i's 16 in u[i].
  __m512 u[4];
  for (int q = 0; q < 4; ++q) u[q] = PairSums(t[2 * q], t[2 * q + 1]);
  TransposeBlocks(u[0], u[1], u[2], u[3]);
  for (int i = 0; i < n; ++i) _mm512_storeu_ps(s + i * s_stride, u[i]);
}

// out rows (NQ of them) [j0, j0 + 16 · U) = Σ_c w[i · w_stride + c] · v_c[j0 ..] over the cells
// with w ≠ 0, in cell order. Each element sees the same operations whatever U and j0.
template <int NQ, int U = 4>
inline void WeightedRows(const float* w, size_t w_stride, int64_t nc, const uint16_t* v,
                         size_t v_stride, int64_t j0, float* const* out) {
  __m512 acc[NQ][U];
  for (int i = 0; i < NQ; ++i) {
    for (int u = 0; u < U; ++u) acc[i][u] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < nc; ++c) {
    const uint16_t* row = v + c * v_stride + j0;
    __m512 vv[U];
    bool loaded = false;
    for (int i = 0; i < NQ; ++i) {
      const float wi = w[i * w_stride + c];
      if (wi == 0.0f) continue;
      if (!loaded) {
        for (int u = 0; u < U; ++u) vv[u] = LoadHalf16(row + 16 * u);
        loaded = true;
      }
      const __m512 b = _mm512_set1_ps(wi);
      for (int u = 0; u < U; ++u) acc[i][u] = _mm512_fmadd_ps(b, vv[u], acc[i][u]);
    }
  }
  for (int i = 0; i < NQ; ++i) {
    for (int u = 0; u < U; ++u) _mm512_storeu_ps(out[i] + j0 + 16 * u, acc[i][u]);
  }
}

// kt[c · d + j] = K[c][j] as f32 for the 16 cells c of a block (rows of `base`, zeros past
// `left`).
inline void ConvertKeys(const uint16_t* base, size_t stride, int64_t left, int64_t d, float* kt) {
  for (int64_t c = 0; c < 16; ++c) {
    for (int64_t j = 0; j < d; j += 16) {
      _mm512_storeu_ps(kt + c * d + j,
                       c < left ? LoadHalf16(base + c * stride + j) : _mm512_setzero_ps());
    }
  }
}

// kc[64 j + 16 q + 4 c + e] = K[4q + c][4j + e] as f32 for the 16 cells of a block (rows of
// `base`, zeros past `left`): each 4 elements of 4 cells in one vector.
inline void ConvertKeysByQuads(const uint16_t* base, size_t stride, int64_t left, int64_t d,
                               float* kc) {
  for (int64_t q = 0; q < 4; ++q) {
    for (int64_t b = 0; b < d; b += 16) {
      __m512 r[4];
      for (int64_t c = 0; c < 4; ++c) {
        r[c] = 4 * q + c < left ? LoadHalf16(base + (4 * q + c) * stride + b) : _mm512_setzero_ps();
      }
      TransposeBlocks(r[0], r[1], r[2], r[3]);  // r[j] block c: cell 4q + c's elements b + 4j ..
      for (int64_t j = 0; j < 4; ++j) _mm512_storeu_ps(kc + 64 * (b / 4 + j) + 16 * q, r[j]);
    }
  }
}

// ScoreGroup's sums in the other orientation, bit for bit: lane 4c + e of acc[i][q] sums row i's
// products with cell 4q + c, elements 4j + e, j in order; then (e0 + e1) + (e2 + e3). Each step
// loads the 16 cells' 4 elements once for the 4 rows (kc, ConvertKeysByQuads).
inline void ScoreGroupByCells(const float* qg, int64_t d, const float* kc, float* s,
                              size_t s_stride, int n) {
  __m512 acc[4][4];
  for (auto& row : acc) {
    for (auto& a : row) a = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < d; j += 4) {
    __m512 kv[4];
    for (int q = 0; q < 4; ++q) kv[q] = _mm512_loadu_ps(kc + 16 * j + 16 * q);
    for (int i = 0; i < 4; ++i) {
      const __m512 qb = _mm512_broadcast_f32x4(_mm_loadu_ps(qg + 4 * j + 4 * i));
      for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_fmadd_ps(qb, kv[q], acc[i][q]);
    }
  }
  // Lane 4c + q of u: cell 4q + c; the permute puts cell p in lane p.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int i = 0; i < n; ++i) {
    const __m512* a = acc[i];
    const __m512 u = PairSums(PairSums(a[0], a[1]), PairSums(a[2], a[3]));
    _mm512_storeu_ps(s + i * s_stride, _mm512_permutexvar_ps(order, u));
  }
}

// Calls of up to this many query rows use ScoreGroup, larger ones ScoreGroupByCells (see the top
// of this section).
constexpr int kScoreGroupMaxRows = 4;

// The scores of every row for the cells [c_begin, c_end) (c_begin a multiple of 16), from the
// query groups qg (PrepareQueries); kt: 16 · d floats.
void ScoresOf(const AttentionRows& t, const float* qg, float* s, int64_t nc16, float* kt,
              int64_t c_begin, int64_t c_end) {
  const int64_t d = t.d;
  const int nq = t.tokens * t.heads;
  for (int64_t c0 = c_begin; c0 < c_end; c0 += 16) {
    const int64_t left = std::min<int64_t>(16, t.nc - c0);
    if (nq > kScoreGroupMaxRows) {
      ConvertKeysByQuads(t.k + c0 * t.k_stride, t.k_stride, left, d, kt);
      for (int g = 0; 4 * g < nq; ++g) {
        ScoreGroupByCells(qg + 4 * g * d, d, kt, s + 4 * g * nc16 + c0, nc16,
                          std::min(4, nq - 4 * g));
      }
    } else {
      ConvertKeys(t.k + c0 * t.k_stride, t.k_stride, left, d, kt);
      for (int g = 0; 4 * g < nq; ++g) {
        ScoreGroup(qg + 4 * g * d, d, kt, s + 4 * g * nc16 + c0, nc16, std::min(4, nq - 4 * g));
      }
    }
  }
}

// The query rows rounded to f16, in groups of 4 interleaved by 4 elements: qg[4d · g + 16j + 4i +
// e] = row 4g + i, element 4j + e (0 for rows past the call's).
void PrepareQueries(const AttentionRows& t, float* qg) {
  const int nq = t.tokens * t.heads;
  const int64_t d = t.d;
  for (int g = 0; 4 * g < nq; ++g) {
    for (int64_t b = 0; b < d; b += 16) {
      __m512 r[4];
      for (int i = 0; i < 4; ++i) {
        r[i] = 4 * g + i < nq ? RoundF16(_mm512_loadu_ps(t.query(4 * g + i) + b))
                              : _mm512_setzero_ps();
      }
      TransposeBlocks(r[0], r[1], r[2], r[3]);  // r[j] block i: row i's elements b + 4j ..
      for (int j = 0; j < 4; ++j) _mm512_storeu_ps(qg + 4 * g * d + 4 * (b + 4 * j), r[j]);
    }
  }
}

// Row i's scores (nc16 of them, at `row`) become its weights rounded to f16, 0 where hidden.
void SoftmaxRow(const AttentionRows& t, int i, float* row, int64_t nc16) {
  const __m512 scale = _mm512_set1_ps(t.scale);
  const __m512 hidden = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const uint8_t* vis = t.mask(i);
  __m512 mx = hidden;
  for (int64_t c = 0; c < nc16; c += 16) {
    const __mmask16 m = _mm_test_epi8_mask(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(vis + c)), _mm_set1_epi8(-1));
    const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(row + c), scale);
    _mm512_storeu_ps(row + c, x);
    mx = _mm512_mask_max_ps(mx, m, mx, x);
  }
  const float max = _mm512_reduce_max_ps(mx);
  if (max == -std::numeric_limits<float>::infinity()) {
    std::fill(row, row + nc16, 0.0f);  // no visible cell: zeros
    return;
  }
  const __m512 vmax = _mm512_set1_ps(max);
  __m512d sum0 = _mm512_setzero_pd(), sum1 = _mm512_setzero_pd();
  for (int64_t c = 0; c < nc16; c += 16) {
    const __mmask16 m = _mm_test_epi8_mask(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(vis + c)), _mm_set1_epi8(-1));
    const __m512 e = _mm512_maskz_mov_ps(m, Exp16(_mm512_sub_ps(_mm512_loadu_ps(row + c), vmax)));
    _mm512_storeu_ps(row + c, e);
    sum0 = _mm512_add_pd(sum0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    sum1 = _mm512_add_pd(
        sum1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, _mm512_add_pd(sum0, sum1));
  double sum = 0.0;
  for (double l : lanes) sum += l;
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t c = 0; c < nc16; c += 16) {
    _mm512_storeu_ps(row + c, RoundF16(_mm512_mul_ps(_mm512_loadu_ps(row + c), inv)));
  }
}

template <int U>
void WeightedRange(const AttentionRows& t, const float* w, int64_t nc16, int n, int64_t j0,
                   float* const* rows) {
  switch (n) {
    case 1:
      WeightedRows<1, U>(w, nc16, t.nc, t.v, t.v_stride, j0, rows);
      break;
    case 2:
      WeightedRows<2, U>(w, nc16, t.nc, t.v, t.v_stride, j0, rows);
      break;
    case 3:
      WeightedRows<3, U>(w, nc16, t.nc, t.v, t.v_stride, j0, rows);
      break;
    default:
      WeightedRows<4, U>(w, nc16, t.nc, t.v, t.v_stride, j0, rows);
      break;
  }
}

// Elements [j_begin, j_end) (multiples of 32) of every output row, from the weights s.
void ValuesOf(const AttentionRows& t, const float* s, int64_t nc16, int64_t j_begin,
              int64_t j_end) {
  const int nq = t.tokens * t.heads;
  for (int i0 = 0; i0 < nq; i0 += 4) {
    const int n = std::min(4, nq - i0);
    float* rows[4];
    for (int i = 0; i < n; ++i) rows[i] = t.output(i0 + i);
    const float* w = s + i0 * nc16;
    int64_t j0 = j_begin;
    for (; j0 + 64 <= j_end; j0 += 64) WeightedRange<4>(t, w, nc16, n, j0, rows);
    if (j0 < j_end) WeightedRange<2>(t, w, nc16, n, j0, rows);
  }
}

void AttentionF16(const AttentionRows& t) {
  const int64_t d = t.d;
  const int nq = t.tokens * t.heads;
  const int64_t nc16 = (t.nc + 15) / 16 * 16;
  float* qr = t.scratch;                    // the query groups (PrepareQueries)
  float* s = qr + QueryGroupFloats(nq, d);  // nq × nc16: scores, then weights
  float* kt = s + nq * nc16;                // 16 × d: 16 key rows in f32
  PrepareQueries(t, qr);
  ScoresOf(t, qr, s, nc16, kt, 0, t.nc);
  for (int i = 0; i < nq; ++i) SoftmaxRow(t, i, s + i * nc16, nc16);
  ValuesOf(t, s, nc16, 0, d);
}

// AttentionF16 in parts (kernels.h AttentionPart): the scores and weights in task.shared, the
// query rows and the transposed keys in the thread's scratch. Each scores part rounds the query
// rows again: nq · d conversions against its cells × nq · d products.
void AttentionF16Part(const AttentionRows& t, AttentionPart part, int64_t begin, int64_t end) {
  const int nq = t.tokens * t.heads;
  const int64_t nc16 = (t.nc + 15) / 16 * 16;
  float* s = t.shared;  // nq × nc16
  switch (part) {
    case AttentionPart::kScores: {
      float* qr = t.scratch;
      PrepareQueries(t, qr);
      ScoresOf(t, qr, s, nc16, qr + QueryGroupFloats(nq, t.d), begin, end);
      break;
    }
    case AttentionPart::kSoftmax:
      for (int64_t i = begin; i < end; ++i) SoftmaxRow(t, static_cast<int>(i), s + i * nc16, nc16);
      break;
    case AttentionPart::kValues:
      ValuesOf(t, s, nc16, begin, end);
      break;
  }
}

Kernels MakeAvx512() {
  Kernels k = Avx2Kernels();
  k.isa = "avx512";
  for (RepackFns& r : k.repacked) r = {};  // the AVX2 table's copies run the AVX2 kernels
  k.gemv_reads_rows_in_turn = true;
  auto slot = [](DType t) { return static_cast<size_t>(t); };
  k.dot[slot(DType::Q4_0)] = Tile<KernelQ4_0>;
  k.gemv[slot(DType::Q4_0)] = Gemv<KernelQ4_0>;
  k.dot[slot(DType::Q5_0)] = Tile<KernelQ5_0>;
  if (HostCpu().avx512_on_256bit_units) {
    // dot[Q8_0] and gemv[Q8_0] stay the AVX2 table's (see GemvQ8_0 in kernels_avx2.cc): measured
    // on a 2-core EPYC Zen 4, llama 1b q8_0 tg32, 1 thread, alternated: 12.1 / 13.3 tokens/s with
    // the AVX-512 tile against 17.8 / 21.6 with the AVX2 one (the AVX-512 tile's decode work makes
    // it compute-bound there, at 14 GB/s); 125m q8_0 tg64 126 vs 154. Every other type measured
    // faster with its AVX-512 tile on the same machine (125m tg64: q4_0 220 vs 124, q4_K_M 174 vs
    // 136, f16 97 vs 39).
  } else {
    k.dot[slot(DType::Q8_0)] = Tile<KernelQ8_0>;
    k.gemv[slot(DType::Q8_0)] = nullptr;  // the AVX2 gemv would not match the AVX-512 tile
  }
  k.dot[slot(DType::Q4_K)] = Tile<KernelQ45_K<BlockQ4_K, false>>;
  k.gemv[slot(DType::Q4_K)] = Gemv<KernelQ45_K<BlockQ4_K, false>>;
  k.dot[slot(DType::Q5_K)] = Tile<KernelQ45_K<BlockQ5_K, true>>;
  k.gemv[slot(DType::Q5_K)] = Gemv<KernelQ45_K<BlockQ5_K, true>>;
  k.dot[slot(DType::Q6_K)] = Tile<KernelQ6_K>;
  k.gemv[slot(DType::Q6_K)] = Gemv<KernelQ6_K>;
  k.gemm[slot(DType::Q4_0)] = LegacyGemm<QuadQ4_0>();
  k.repacked[slot(DType::Q4_0)] = {
      "q4_0x16",
      Q4_0x16RowBytes,
      RepackQ4_0x16,
      TileQ4_0x16,
      GemvQ4_0x16,
      {LegacyPackBytes, LegacyPack<8>, GemmX16<QuadBlockQ4, QuadQ4_0Converted>, kWeightPackRows,
       X16WeightPackBytes<QuadBlockQ4>, PackQ4_0x16Weights},
      PreparedActBytes<KernelQ4_0x16>,
      PrepareAct<KernelQ4_0x16>,
      UnpackRowQ4_0x16,
      Q4_0x16RowGroup};
  k.repacked[slot(DType::Q6_K)] = {"q6_Kx16",
                                   Q6_Kx16RowBytes,
                                   RepackQ6_Kx16,
                                   Tile<KernelQ6_Kx16>,
                                   GemvPrepared<KernelQ6_Kx16>,
                                   {},
                                   PreparedActBytes<KernelQ6_Kx16>,
                                   PrepareAct<KernelQ6_Kx16>,
                                   UnpackRowAt<UnpackQ6_Kx16>};
  k.gemm[slot(DType::Q5_0)] = LegacyGemm<QuadQ5_0>();
  k.repacked[slot(DType::Q5_0)] = {
      "q5_0x16",
      Q5_0x16RowBytes,
      RepackQ5_0x16,
      Tile<KernelQ5_0x16>,
      GemvPrepared<KernelQ5_0x16>,
      {LegacyPackBytes, LegacyPack<QuadQ5_0::kOffset>, GemmX16<QuadBlockQ5, QuadQ5_0Converted>,
       kWeightPackRows, X16WeightPackBytes<QuadBlockQ5>,
       PackX16Weights<QuadBlockQ5, UnpackQ5_0x16Quads>},
      PreparedActBytes<KernelQ5_0x16>,
      PrepareAct<KernelQ5_0x16>,
      UnpackRowAt<UnpackQ5_0x16>};
  k.gemm[slot(DType::Q8_0)] = LegacyGemm<QuadQ8_0>();
  k.repacked[slot(DType::Q8_0)] = {
      "q8_0x16",
      Q8_0x16RowBytes,
      RepackQ8_0x16,
      Tile<KernelQ8_0x16>,
      GemvPrepared<KernelQ8_0x16>,
      {LegacyPackBytes, LegacyPack<QuadQ8_0::kOffset>, GemmX16<QuadBlockQ8, QuadQ8_0Converted>,
       kWeightPackRows, X16WeightPackBytes<QuadBlockQ8>,
       PackX16Weights<QuadBlockQ8, UnpackX16Quads<2>>},
      PreparedActBytes<KernelQ8_0x16>,
      PrepareAct<KernelQ8_0x16>,
      UnpackRowAt<UnpackQ8_0x16>};
  k.gemm[slot(DType::Q4_K)] = {Q4_KPackBytes, Q4_KPack, GemmQ4_K};
  k.repacked[slot(DType::Q4_K)] = {"q4_Kx16",
                                   Q4_Kx16RowBytes,
                                   RepackQ4_Kx16,
                                   Tile<KernelQ4_Kx16>,
                                   GemvPrepared<KernelQ4_Kx16>,
                                   {Q4_KPackBytes, Q4_KPack, GemmQ4_Kx16, kWeightPackRows,
                                    Q4_Kx16WeightPackBytes, PackQ4_Kx16Weights},
                                   PreparedActBytes<KernelQ4_Kx16>,
                                   PrepareAct<KernelQ4_Kx16>,
                                   UnpackRowAt<UnpackQ4_Kx16>};
  AddAvx512F16Kernels(&k);
  k.attention_f16 = AttentionF16;
  k.attention_f16_part = AttentionF16Part;
  AddFileLayoutCopies(&k);
  return k;
}

}  // namespace

const Kernels& Avx512Kernels() {
  static const Kernels kernels = MakeAvx512();
  return kernels;
}

}  // namespace dizuo::cpu
