// AVX2 + FMA + F16C kernels, compiled with those flags (the AVX-512 files add their own);
// SelectKernels() uses the table only on CPUs that have all three. Helpers the Zen 4 q8_0 GEMV
// shares are in kernels_avx2_ops.h.
//
// Quantized dot products keep GGUF's arithmetic: per block, an exact integer sum (vpmaddubsw /
// vpmaddwd on the int8 quants) scaled by the block factors in f32. Activation conversion is bit for
// bit QuantizeRow's (same scale formula and rounding), so results differ from the generic table
// only by float summation order.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_avx2_ops.h"
#include "backends/cpu/kernels_common.h"
#include "core/gelu.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {

// Layouts of the table's own (kernels_avx2_repacked.cc).
void AddAvx2RepackedKernels(Kernels* k);

namespace {

using avx2::DotI8;
using avx2::HalfToFloat;
using avx2::Hsum;
using avx2::PairSums;

// ---- helpers --------------------------------------------------------------------------------

inline float Hmax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline int HsumI32(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(x);
}

inline __m256i Load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Σ u·y for unsigned u (≤ 63) and signed y → 8 × i32.
inline __m256i DotU8I8(__m256i u, __m256i y) { return PairSums(_mm256_maddubs_epi16(u, y)); }

// 16 packed bytes of nibbles → 32 bytes: low nibbles, then high nibbles (legacy block order).
inline __m256i Nibbles16(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i lo = _mm_and_si128(raw, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
  return _mm256_set_m128i(hi, lo);
}

// Byte i = 0xff where bit i of `bits` is set.
inline __m256i BitsToBytes(uint32_t bits) {
  const __m256i shuffle = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                             0x0202020202020202, 0x0303030303030303);
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

// ---- dot kernels: one block of weight and activation into an accumulator -----------------------

// Accumulator of one output: a vector part and a scalar part subtracted at the end.
struct Acc {
  __m256 v = _mm256_setzero_ps();
  float s = 0.0f;
};

struct KernelQ8_0 {
  using W = BlockQ8_0;
  using A = BlockQ8_0;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    const __m256 d = _mm256_set1_ps(HalfToFloat(w->d) * HalfToFloat(a->d));
    const __m256i p = DotI8(Load256(w->qs), Load256(a->qs));
    acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v);
  }
};

struct KernelQ4_0 {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    const __m256 d = _mm256_set1_ps(HalfToFloat(w->d) * HalfToFloat(a->d));
    const __m256i q = _mm256_sub_epi8(Nibbles16(w->qs), _mm256_set1_epi8(8));
    const __m256i p = DotI8(q, Load256(a->qs));
    acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v);
  }
};

struct KernelQ5_0 {
  using W = BlockQ5_0;
  using A = BlockQ8_0;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    const __m256 d = _mm256_set1_ps(HalfToFloat(w->d) * HalfToFloat(a->d));
    const __m256i high =
        _mm256_and_si256(BitsToBytes(LoadUnaligned<uint32_t>(w->qh)), _mm256_set1_epi8(0x10));
    const __m256i q =
        _mm256_sub_epi8(_mm256_or_si256(Nibbles16(w->qs), high), _mm256_set1_epi8(16));
    const __m256i p = DotI8(q, Load256(a->qs));
    acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v);
  }
};

struct KernelQ4_1 {
  using W = BlockQ4_1;
  using A = BlockQ8_1;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    const __m256 d = _mm256_set1_ps(HalfToFloat(w->d) * HalfToFloat(a->d));
    const __m256i p = DotU8I8(Nibbles16(w->qs), Load256(a->qs));
    acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v);
    acc.s -= HalfToFloat(w->m) * HalfToFloat(a->s);
  }
};

struct KernelQ5_1 {
  using W = BlockQ5_1;
  using A = BlockQ8_1;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    const __m256 d = _mm256_set1_ps(HalfToFloat(w->d) * HalfToFloat(a->d));
    const __m256i high =
        _mm256_and_si256(BitsToBytes(LoadUnaligned<uint32_t>(w->qh)), _mm256_set1_epi8(0x10));
    const __m256i p = DotU8I8(_mm256_or_si256(Nibbles16(w->qs), high), Load256(a->qs));
    acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v);
    acc.s -= HalfToFloat(w->m) * HalfToFloat(a->s);
  }
};

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; qs holds sub-blocks 2p (low
// nibbles) and 2p + 1 (high nibbles) of 32-byte group p; Q5_K's bit 4 of element 32j + l is bit
// j of qh[l].
template <typename WBlock, bool kHigh>
struct KernelQ45_K {
  using W = WBlock;
  using A = BlockQ8_K;
  static constexpr int64_t kBlock = 256;
  static void Block(const W* w, const A* a, Acc& acc) {
    int sc[8];
    const int mins = ScalesAndMinSumK4(w->scales, a->bsums, sc);
    const __m256i mask = _mm256_set1_epi8(0x0f);
    __m256i hbits = _mm256_setzero_si256();
    if constexpr (kHigh) hbits = Load256(w->qh);
    __m256i sum = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
      const __m256i q = Load256(w->qs + 32 * p);
      __m256i lo = _mm256_and_si256(q, mask);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
      if constexpr (kHigh) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, one), 4));
        hi = _mm256_or_si256(
            hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 1), one), 4));
        hbits = _mm256_srli_epi16(hbits, 2);
      }
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, Load256(a->qs + 64 * p)),
                                           _mm256_set1_epi16(static_cast<int16_t>(sc[2 * p])));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, Load256(a->qs + 64 * p + 32)),
                                           _mm256_set1_epi16(static_cast<int16_t>(sc[2 * p + 1])));
      sum = _mm256_add_epi32(sum, _mm256_add_epi32(p0, p1));
    }
    const float d = a->d * HalfToFloat(w->d);
    const float dmin = a->d * HalfToFloat(w->dmin);
    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sum), acc.v);
    acc.s += dmin * static_cast<float>(mins);
  }
};

// Q6_K: element 128h + 32k + l has low nibble k / 2 of ql[64h + 32(k % 2) + l] and high bits
// 2k..2k+1 of qh[32h + l]; q - 32 is summed as q·a - 32·Σa, Σa from the activation's bsums.
struct KernelQ6_K {
  using W = BlockQ6_K;
  using A = BlockQ8_K;
  static constexpr int64_t kBlock = 256;
  static void Block(const W* w, const A* a, Acc& acc) {
    int offset = 0;
    for (int j = 0; j < 16; ++j) offset += w->scales[j] * a->bsums[j];
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i two = _mm256_set1_epi8(0x03);
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = Load256(w->ql + 64 * h);
      const __m256i ql1 = Load256(w->ql + 64 * h + 32);
      const __m256i qh = Load256(w->qh + 32 * h);
      const __m256i low[4] = {_mm256_and_si256(ql0, mask), _mm256_and_si256(ql1, mask),
                              _mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask),
                              _mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask)};
      for (int k = 0; k < 4; ++k) {
        const __m256i high =
            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two), 4);
        const __m256i q = _mm256_or_si256(low[k], high);
        const int j = 8 * h + 2 * k;
        const __m256i scale =
            _mm256_set_m128i(_mm_set1_epi16(w->scales[j + 1]), _mm_set1_epi16(w->scales[j]));
        const __m256i prod = _mm256_maddubs_epi16(q, Load256(a->qs + 128 * h + 32 * k));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(prod, scale));
      }
    }
    const float d = a->d * HalfToFloat(w->d);
    acc.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sum), acc.v);
    acc.s += d * static_cast<float>(32 * offset);
  }
};

// An accumulator's output, and the block kernels' dot tiles (kernels_common.h BlockTile).
struct FinishAcc {
  static float Of(const Acc& x) { return Hsum(x.v) - x.s; }
};
template <typename K>
void Tile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na, float* out,
          size_t os) {
  BlockTile<K, Acc, FinishAcc>(k, w, ws, nw, a, as, na, out, os);
}

// Generation on q8_0 weights in the file's layout (rows the q8_0x8 layout does not take, e.g.
// Gemma 3's 640-long rows, and tied output matrices that are not copied): the dot tile's
// operations (sign / vpmaddubsw / vpmaddwd, one FMA chain, the same horizontal sum), so the result
// equals dot[Q8_0] with one activation row bit for bit, but as one loop over the rows with the
// activation scales converted once per call and a prefetch 4 KB ahead. Written for the Zen 4
// table (which keeps this gemv there): cpu_kernels_bench q8_0 M = 1, 1 thread, medians of 7
// repetitions, 3 alternated rounds (ms): 768 × 3072 0.147 / 0.127 / 0.137 → 0.113 / 0.098 /
// 0.088, 2048 × 2048 0.236 / 0.227 / 0.224 → 0.194 / 0.169 / 0.159; tg32 (paired ratios over
// alternated rounds, medians): 125m 1 thread 1.10×; 1b 1 thread 1.01× and 1.07×, 2 threads 1.06×;
// against 4 KB: 8 KB ahead 0.96×, 16 KB 0.86×, none 0.95×.
constexpr int64_t kQ8GemvMaxBlocks = 512;
constexpr int64_t kQ8GemvPrefetchBytes = 4096;

void GemvQ8_0(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  const int64_t nb = k / 32;
  const auto* wbase = static_cast<const uint8_t*>(w);
  if (nb > kQ8GemvMaxBlocks) {  // rows longer than the scale buffer: the tile, row by row
    for (int64_t r = 0; r < n; ++r) Tile<KernelQ8_0>(k, wbase + r * ws, ws, 1, a, 0, 1, out + r, 1);
    return;
  }
  const auto* ab = static_cast<const BlockQ8_0*>(a);
  float ad[kQ8GemvMaxBlocks];
  for (int64_t b = 0; b < nb; ++b) ad[b] = HalfToFloat(ab[b].d);
  for (int64_t r = 0; r < n; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ8_0*>(wbase + r * ws);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      // Blocks are 34 bytes: one prefetch per two blocks covers every line.
      if (b % 2 == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(wr + b) + kQ8GemvPrefetchBytes, _MM_HINT_T0);
      }
      // As KernelQ8_0::Block, with the activation's scale converted up front.
      const __m256 d = _mm256_set1_ps(HalfToFloat(wr[b].d) * ad[b]);
      const __m256i p = DotI8(Load256(wr[b].qs), Load256(ab[b].qs));
      acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    out[r] = Hsum(acc);
  }
}

// ---- float weights: 8 elements per step, scalar tail
// ---------------------------------------------

inline __m256 LoadF32(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 LoadF16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 LoadBF16(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
inline float ScalarF32(const float* p) { return *p; }
inline float ScalarF16(const uint16_t* p) { return HalfToFloat(*p); }
inline float ScalarBF16(const uint16_t* p) { return BF16ToF32(*p); }

// f16 without vcvtph2ps. On the EPYC Zen 1 that instruction converts 8 values per 3 cycles, so an
// f16 GEMV that used it alone ran at 10-11 GB/s from DRAM (13.2 from L1 with nothing else in the
// loop): below the 1-thread bandwidth of 14.5-15.3 GB/s. The integer form takes 16 values from one
// 256-bit load: vpunpck{l,h}wd with zeros puts each f16 in the high half of a dword (h << 16), an
// arithmetic shift by 3 and a mask leave sign | (h & 0x7fff) << 13, which as an f32 is exactly the
// f16's value · 2^-112 (normal and subnormal f16 alike; f16 inf and NaN read as finite values, so
// weights holding them, which vcvtph2ps would turn into inf or NaN sums, sum to large finite ones).
// Multiplied by the activation · 2^112 in an FMA, the product is exactly the f16 weight times the
// activation, so the sums equal those of vcvtph2ps; |activation| ≤ 65504 (it is rounded to f16),
// so the scaled activation stays finite. The lanes come in the order {0-3, 8-11}, {4-7, 12-15}.
// The float dot products on f16 weights (tiles and GEMV) run each 32 elements as 16 converted by
// vcvtph2ps and 16 in the integer form, so the two run on different pipes. On the Zen 1, 1 thread,
// alternated rounds: a standalone GEMV on 2048-long rows 1.27× / 1.29× from L2 and 1.21× / 1.23×
// from DRAM against vcvtph2ps alone (the integer form alone: 1.07-1.11×); cpu_kernels_bench f16,
// 4 rounds: BM_GemvL2 K = 2048 13.2-13.6 GB/s against 9.9-11.3, BM_GemvDram K = 2048 13.2-14.0
// against 8.9-11.5; llama 1b F16 tg64 1.18× (2 threads 1.10×).
// The 4 × 4 tiles, whose 32 accumulators do not fit the registers, lose: BM_DotTileF16 weight:1,
// d 64 and 256, 5 alternated rounds: 0.82-0.91× (f16 MATMULs of 2-11 rows), so attention's q · k
// keeps vcvtph2ps alone (kv_dot_f16).
inline void F16ScaledDown(const uint16_t* p, __m256* lo, __m256* hi) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i z = _mm256_setzero_si256();
  const __m256i keep = _mm256_set1_epi32(static_cast<int>(0x8fffe000u));
  *lo = _mm256_castsi256_ps(
      _mm256_and_si256(_mm256_srai_epi32(_mm256_unpacklo_epi16(z, v), 3), keep));
  *hi = _mm256_castsi256_ps(
      _mm256_and_si256(_mm256_srai_epi32(_mm256_unpackhi_epi16(z, v), 3), keep));
}
constexpr float kTwoPow112 = 0x1p112f;

// Each output sums its products in two accumulators (even and odd 8-element steps; a last lone
// step goes to the even one), then Hsum(even + odd), then the scalar tail: the same operations in
// every tile shape and in FloatGemv. Two chains per output let a row read alone (FloatGemv) run
// two FMAs per FMA latency. With kMixed (f16 weights) they take each whole 32 elements as four
// steps: 0-7 and 8-15 converted by kLoad, then {16-19, 24-27} and {20-23, 28-31} in F16ScaledDown's
// integer form.
template <typename T, __m256 (*kLoad)(const T*), float (*kScalar)(const T*), bool kMixed, int NW,
          int NA>
void FloatTileFixed(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* out,
                    size_t os) {
  static_assert(!kMixed || std::is_same_v<T, uint16_t>);  // kLoad: LoadF16
  __m256 acc[NW][NA][2];
  for (int r = 0; r < NW; ++r) {
    for (int c = 0; c < NA; ++c) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();
  }
  auto step = [&](int64_t i, int h) {
    __m256 av[NA];
    for (int c = 0; c < NA; ++c) av[c] = kLoad(reinterpret_cast<const T*>(a + c * as) + i);
    for (int r = 0; r < NW; ++r) {
      const __m256 wv = kLoad(reinterpret_cast<const T*>(w + r * ws) + i);
      for (int c = 0; c < NA; ++c) acc[r][c][h] = _mm256_fmadd_ps(wv, av[c], acc[r][c][h]);
    }
  };
  int64_t i = 0;
  if constexpr (kMixed) {
    const __m256 up = _mm256_set1_ps(kTwoPow112);
    for (; i + 32 <= k; i += 32) {
      step(i, 0);
      step(i + 8, 1);
      // The activation in the same lanes, · 2^112: its integer form (· 2^-112) times 2^224.
      __m256 alo[NA], ahi[NA];
      for (int c = 0; c < NA; ++c) {
        F16ScaledDown(reinterpret_cast<const T*>(a + c * as) + i + 16, &alo[c], &ahi[c]);
        alo[c] = _mm256_mul_ps(_mm256_mul_ps(alo[c], up), up);
        ahi[c] = _mm256_mul_ps(_mm256_mul_ps(ahi[c], up), up);
      }
      for (int r = 0; r < NW; ++r) {
        __m256 wlo, whi;
        F16ScaledDown(reinterpret_cast<const T*>(w + r * ws) + i + 16, &wlo, &whi);
        for (int c = 0; c < NA; ++c) {
          acc[r][c][0] = _mm256_fmadd_ps(wlo, alo[c], acc[r][c][0]);
          acc[r][c][1] = _mm256_fmadd_ps(whi, ahi[c], acc[r][c][1]);
        }
      }
    }
  }
  for (; i + 16 <= k; i += 16) {
    step(i, 0);
    step(i + 8, 1);
  }
  if (i + 8 <= k) {
    step(i, 0);
    i += 8;
  }
  for (int r = 0; r < NW; ++r) {
    for (int c = 0; c < NA; ++c) {
      float sum = Hsum(_mm256_add_ps(acc[r][c][0], acc[r][c][1]));
      const T* wr = reinterpret_cast<const T*>(w + r * ws);
      const T* ar = reinterpret_cast<const T*>(a + c * as);
      for (int64_t j = i; j < k; ++j) sum += kScalar(wr + j) * kScalar(ar + j);
      out[c * os + r] = sum;
    }
  }
}

// Generation (kernels.h GemvFn): FloatTileFixed<…, 1, 1>'s operations, but on the activation
// converted to f32 once per call, and each weight row read front to back: on an EPYC Zen 1 the
// 4-row tile streamed 125m f16 weights at about 5 GB/s with 1 thread. For f16 weights, elements
// 16-31 of each whole 32 are stored in F16ScaledDown's lane order, · 2^112.
template <typename T, __m256 (*kLoad)(const T*), float (*kScalar)(const T*), bool kMixed = false>
void FloatGemv(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  static_assert(!kMixed || std::is_same_v<T, uint16_t>);  // kLoad: LoadF16
  thread_local std::vector<float> converted;
  converted.resize(static_cast<size_t>(k));
  const auto* ar = static_cast<const T*>(a);
  float* af = converted.data();
  const int64_t k8 = k / 8 * 8;
  for (int64_t i = 0; i < k8; i += 8) _mm256_storeu_ps(af + i, kLoad(ar + i));
  const int64_t k32 = kMixed ? k / 32 * 32 : 0;
  if constexpr (kMixed) {
    const __m256 up = _mm256_set1_ps(kTwoPow112);
    for (int64_t i = 0; i < k32; i += 32) {
      const __m256 x0 = _mm256_loadu_ps(af + i + 16), x1 = _mm256_loadu_ps(af + i + 24);
      _mm256_storeu_ps(af + i + 16, _mm256_mul_ps(_mm256_permute2f128_ps(x0, x1, 0x20), up));
      _mm256_storeu_ps(af + i + 24, _mm256_mul_ps(_mm256_permute2f128_ps(x0, x1, 0x31), up));
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    const T* wr = reinterpret_cast<const T*>(static_cast<const uint8_t*>(w) + r * ws);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    if constexpr (kMixed) {
      for (; i < k32; i += 32) {
        // 32 elements of f16 (64 bytes) per iteration: a prefetch per iteration covers each line.
        _mm_prefetch(reinterpret_cast<const char*>(wr + i) + 4096, _MM_HINT_T0);
        acc0 = _mm256_fmadd_ps(kLoad(wr + i), _mm256_loadu_ps(af + i), acc0);
        acc1 = _mm256_fmadd_ps(kLoad(wr + i + 8), _mm256_loadu_ps(af + i + 8), acc1);
        __m256 wlo, whi;
        F16ScaledDown(wr + i + 16, &wlo, &whi);
        acc0 = _mm256_fmadd_ps(wlo, _mm256_loadu_ps(af + i + 16), acc0);
        acc1 = _mm256_fmadd_ps(whi, _mm256_loadu_ps(af + i + 24), acc1);
      }
    }
    for (; i + 16 <= k; i += 16) {
      // 16 elements of f16 (32 bytes) per iteration: a prefetch every other one covers each line.
      if constexpr (sizeof(T) == 2) {
        if (i % 32 == 0) _mm_prefetch(reinterpret_cast<const char*>(wr + i) + 4096, _MM_HINT_T0);
      } else {
        _mm_prefetch(reinterpret_cast<const char*>(wr + i) + 4096, _MM_HINT_T0);
      }
      acc0 = _mm256_fmadd_ps(kLoad(wr + i), _mm256_loadu_ps(af + i), acc0);
      acc1 = _mm256_fmadd_ps(kLoad(wr + i + 8), _mm256_loadu_ps(af + i + 8), acc1);
    }
    if (i + 8 <= k) {
      acc0 = _mm256_fmadd_ps(kLoad(wr + i), _mm256_loadu_ps(af + i), acc0);
      i += 8;
    }
    float sum = Hsum(_mm256_add_ps(acc0, acc1));
    for (int64_t j = i; j < k; ++j) sum += kScalar(wr + j) * kScalar(ar + j);
    out[r] = sum;
  }
}

template <typename T, __m256 (*kLoad)(const T*), float (*kScalar)(const T*), bool kMixed = false>
void FloatTile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
               float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  // Rows beyond 4 × 4 do not occur (kTileRows); smaller tiles run the matching instance.
#define DZ_FLOAT_TILE(NW, NA)                                                             \
  if (nw == NW && na == NA) {                                                             \
    return FloatTileFixed<T, kLoad, kScalar, kMixed, NW, NA>(k, wb, ws, ab, as, out, os); \
  }
  DZ_FLOAT_TILE(4, 4)
  DZ_FLOAT_TILE(4, 3)
  DZ_FLOAT_TILE(4, 2)
  DZ_FLOAT_TILE(4, 1)
  DZ_FLOAT_TILE(3, 4)
  DZ_FLOAT_TILE(3, 3)
  DZ_FLOAT_TILE(3, 2)
  DZ_FLOAT_TILE(3, 1)
  DZ_FLOAT_TILE(2, 4)
  DZ_FLOAT_TILE(2, 3)
  DZ_FLOAT_TILE(2, 2)
  DZ_FLOAT_TILE(2, 1)
  DZ_FLOAT_TILE(1, 4)
  DZ_FLOAT_TILE(1, 3)
  DZ_FLOAT_TILE(1, 2)
#undef DZ_FLOAT_TILE
  return FloatTileFixed<T, kLoad, kScalar, kMixed, 1, 1>(k, wb, ws, ab, as, out, os);
}

// ---- f16 prompt GEMM: weight chunks converted to f32 panels, a 16 × 4 outer-product micro-tile --
//
// MATMUL gives a thread 16 weight rows (kF16GemmRows) with up to 256 activation rows at a time
// (GemmFns with pack_weights). F16PackWeights converts the 16 rows once into a K-major f32 panel
// (panel[16·i + r]); F16Pack stores each quad of activation rows as f32 interleaved along K
// (quad[4·i + c]). The micro-tile keeps 16 weight rows (2 ymm) × 4 activation rows in 8
// accumulators: per element 2 panel loads and 4 broadcasts for 8 FMAs, no conversion in the loop.
// Each accumulator lane is one output, summed in element order from 0, so results do not depend on
// the tiling or the thread split (they differ from the dot tiles' by summation order).
// F16PackWeights converted one row at a time and stored each element alone, 13% of the GEMM's
// time (perf, 1b pp512 on a Zen 4 with DIZUO_CPU_ISA=avx2); 8 rows at a time through an 8 × 8
// register transpose (eighteenth session) made it 2.8%: bench/ab-dizuo pp512, 3 rounds, that Zen 4
// with the AVX2 table, old ÷ new: 1b 0.89× (1 thread) / 0.90× (2), 125m 0.93× / 0.95×. Not yet
// measured on the Zen 1 this table was tuned on.
constexpr int kF16GemmRows = 16;
// Below this many activation rows the dot tiles run instead: converting a chunk costs about as
// much as a few activation rows of FMAs. Since the tiles took the f16 integer half (slower in
// 4 × 4 tiles), the crossover is lower: cpu_kernels_bench BM_MatMul f16, n 2048, 1 thread, 2
// alternated rounds (ms), tiles against GEMM: m 10 6.7 / 7.5-7.9, m 12 7.9-8.3 / 7.6, m 15
// 10.0-12.5 / 8.6-8.7 (m 4 3.3-4.4 / 5.8, m 8 5.9-6.5 / 6.7).
constexpr int kF16GemmMinRows = 12;

size_t F16PackBytes(int64_t k) { return static_cast<size_t>(4 * k) * sizeof(float); }

void F16Pack(int64_t k, const void* a, size_t as, int na, void* dst) {
  auto* d = static_cast<float*>(dst);
  for (int c = 0; c < 4; ++c) {
    const auto* row = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(a) + c * as);
    for (int64_t i = 0; i < k; ++i) d[4 * i + c] = c < na ? HalfToFloat(row[i]) : 0.0f;
  }
}

size_t F16WeightPackBytes(int64_t k) {
  return static_cast<size_t>(kF16GemmRows * k) * sizeof(float);
}

// In place: row r of the 8 × 8 block v (v[r] lane e) becomes column r (v[e] lane r).
inline void Transpose8x8(__m256 v[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// 8 rows at a time, 8 elements per step, transposed in registers: each step reads 16 bytes of
// 8 rows (one L1 set when the rows are a multiple of 4 KB apart, as at K = 2048: 8 lines fit its
// 8 ways, so a line stays for its next three steps) and stores 8 panel vectors.
void F16PackWeights(int64_t k, const void* w, size_t ws, int nw, void* dst) {
  auto* panel = static_cast<float*>(dst);
  for (int g = 0; g < kF16GemmRows / 8; ++g) {
    const int n = std::clamp(nw - 8 * g, 0, 8);
    const auto* base = static_cast<const uint8_t*>(w) + 8 * g * ws;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) {
        v[r] = r < n ? LoadF16(reinterpret_cast<const uint16_t*>(base + r * ws) + i)
                     : _mm256_setzero_ps();
      }
      Transpose8x8(v);
      for (int e = 0; e < 8; ++e) _mm256_storeu_ps(panel + kF16GemmRows * (i + e) + 8 * g, v[e]);
    }
    for (; i < k; ++i) {
      for (int r = 0; r < 8; ++r) {
        const auto* row = reinterpret_cast<const uint16_t*>(base + r * ws);
        panel[kF16GemmRows * i + 8 * g + r] = r < n ? HalfToFloat(row[i]) : 0.0f;
      }
    }
  }
}

void F16Gemm(int64_t k, const void* w, size_t /*ws*/, int nw, const void* packed, int na,
             float* out, size_t os) {
  const auto* panel = static_cast<const float*>(w);
  for (int q = 0; 4 * q < na; ++q) {
    const float* quad = static_cast<const float*>(packed) + 4 * k * q;
    __m256 acc[4][2];
    for (auto& c : acc) c[0] = c[1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < k; ++i) {
      const __m256 w0 = _mm256_loadu_ps(panel + kF16GemmRows * i);
      const __m256 w1 = _mm256_loadu_ps(panel + kF16GemmRows * i + 8);
      for (int c = 0; c < 4; ++c) {
        const __m256 b = _mm256_broadcast_ss(quad + 4 * i + c);
        acc[c][0] = _mm256_fmadd_ps(w0, b, acc[c][0]);
        acc[c][1] = _mm256_fmadd_ps(w1, b, acc[c][1]);
      }
    }
    // Stored for all 4 columns with constant indices: a loop bounded by nc here made GCC keep acc
    // in memory and store all 8 accumulators on every element of the loop above.
    alignas(32) float lanes[4][kF16GemmRows];
    for (int c = 0; c < 4; ++c) {
      _mm256_store_ps(lanes[c], acc[c][0]);
      _mm256_store_ps(lanes[c] + 8, acc[c][1]);
    }
    const int nc = std::min(4, na - 4 * q);
    for (int c = 0; c < nc; ++c) {
      std::memcpy(out + (4 * q + c) * os, lanes[c], static_cast<size_t>(nw) * sizeof(float));
    }
  }
}

// ---- activation conversion (bit-identical to QuantizeRow) ---------------------------------------

inline __m256 Abs(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

// max(|x|) over 8·n values, NaN skipped (as std::max(amax, |x|) in the reference).
inline float AbsMax(const float* x, int n8) {
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n8; ++i) m = _mm256_max_ps(Abs(_mm256_loadu_ps(x + 8 * i)), m);
  return Hmax(m);
}

// roundf (ties away from zero) clamped to [-128, 127], NaN → -128.
inline __m256i RoundAwayToI32(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = Abs(_mm256_sub_ps(v, t));  // exact for |v| < 2^23
  const __m256 bump =
      _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                    _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f))));
  __m256 r = _mm256_add_ps(t, bump);
  r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
  return _mm256_cvtps_epi32(r);
}

inline __m256i RoundEvenToI32(__m256 v) {
  __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
  return _mm256_cvtps_epi32(r);
}

// Four vectors of 8 × i32 (each in [-128, 127]) → 32 int8 in element order.
inline __m256i PackI8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i abcd = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

template <bool kWithSum>
void QuantizeQ8Legacy(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  const size_t block_bytes = kWithSum ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += block_bytes) {
    const float d = AbsMax(x, 4) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = RoundAwayToI32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), idv));
    const __m256i packed = PackI8(q[0], q[1], q[2], q[3]);
    const uint16_t dh = F32ToF16(d);
    if constexpr (kWithSum) {
      const int sum =
          HsumI32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
      const uint16_t s = F32ToF16(static_cast<float>(sum) * d);
      std::memcpy(out, &dh, 2);
      std::memcpy(out + 2, &s, 2);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4), packed);
    } else {
      std::memcpy(out, &dh, 2);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2), packed);
    }
  }
}

void QuantizeQ8_0Row(const float* x, void* dst, int64_t n) { QuantizeQ8Legacy<false>(x, dst, n); }
void QuantizeQ8_1Row(const float* x, void* dst, int64_t n) { QuantizeQ8Legacy<true>(x, dst, n); }

void QuantizeQ8_KRow(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / 256; ++b, x += 256) {
    BlockQ8_K block{};
    const float amax = AbsMax(x, 32);
    if (amax > 0.0f) {
      float max = 0.0f;  // the first element of largest magnitude, with its sign
      for (int e = 0; e < 256; ++e) {
        if (std::fabs(x[e]) == amax) {
          max = x[e];
          break;
        }
      }
      const float iscale = -127.0f / max;
      const __m256 iv = _mm256_set1_ps(iscale);
      for (int g = 0; g < 8; ++g) {
        __m256i q[4];
        for (int i = 0; i < 4; ++i) {
          q[i] = RoundEvenToI32(_mm256_mul_ps(iv, _mm256_loadu_ps(x + 32 * g + 8 * i)));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(block.qs + 32 * g),
                            PackI8(q[0], q[1], q[2], q[3]));
        block.bsums[2 * g] = static_cast<int16_t>(HsumI32(_mm256_add_epi32(q[0], q[1])));
        block.bsums[2 * g + 1] = static_cast<int16_t>(HsumI32(_mm256_add_epi32(q[2], q[3])));
      }
      block.d = 1.0f / iscale;
    }
    std::memcpy(out + b, &block, sizeof(block));
  }
}

void ToF16Row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = F32ToF16(x[i]);
}

void ConvertF16Row(const float* x, void* dst, int64_t n) {
  ToF16Row(x, static_cast<uint16_t*>(dst), n);
}

void ConvertBF16Row(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i bits = _mm256_castps_si256(_mm256_loadu_ps(x + i));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb), 16);
    // NaN: truncate and set the quiet bit.
    const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
    const __m256i is_nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
    const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    rounded = _mm256_blendv_epi8(rounded, nan, is_nan);
    const __m256i packed = _mm256_packus_epi32(rounded, rounded);  // values are < 2^16
    const __m256i ordered = _mm256_permute4x64_epi64(packed, 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_castsi256_si128(ordered));
  }
  for (; i < n; ++i) y[i] = F32ToBF16(x[i]);
}

// ---- attention and elementwise primitives -----------------------------------------------------

void AxpyF32(float alpha, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * x[i];
}

void AxpyF16(float alpha, const uint16_t* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, LoadF16(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * HalfToFloat(x[i]);
}

void ScaleF32(float alpha, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(av, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= alpha;
}

// e^x, Cephes-style (also ExpSum's softmax numerators): x = n·ln2 + r with |r| ≤ ln2/2, a degree-6
// polynomial for e^r, and 2^n built in the exponent bits. About 1 ulp on [-87, 88]; inputs are
// clamped to that range.
inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// silu(x) = x · sigmoid(x).
inline __m256 Silu(__m256 x) {
  const __m256 e = Exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// gelu_tanh as core/gelu.h defines it: the f16 table at x rounded to f16; 0 for x <= -10 and x
// itself for x >= 10.
inline __m256 GeluTanh(__m256 x, const uint16_t* table) {
  alignas(16) uint16_t h[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(h), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
  for (uint16_t& v : h) v = table[v];
  const __m256 g = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
  const __m256 low = _mm256_cmp_ps(x, _mm256_set1_ps(-10.0f), _CMP_LE_OQ);
  const __m256 high = _mm256_cmp_ps(x, _mm256_set1_ps(10.0f), _CMP_GE_OQ);
  return _mm256_blendv_ps(_mm256_andnot_ps(low, g), x, high);
}

inline __m256 Activate(Activation act, __m256 x, const uint16_t* gelu_table) {
  return act == Activation::kSilu ? Silu(x) : GeluTanh(x, gelu_table);
}

void GluRow(Activation act, const float* gate, const float* up, float* out, int64_t n) {
  const uint16_t* table = act == Activation::kGeluTanh ? GeluTanhF16Table().data() : nullptr;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(Activate(act, _mm256_loadu_ps(gate + i), table),
                                            _mm256_loadu_ps(up + i)));
  }
  if (i < n) {  // the tail through the same vector code, so every element gets the same formula
    float g[8] = {}, u[8] = {}, o[8];
    std::memcpy(g, gate + i, static_cast<size_t>(n - i) * sizeof(float));
    std::memcpy(u, up + i, static_cast<size_t>(n - i) * sizeof(float));
    _mm256_storeu_ps(o,
                     _mm256_mul_ps(Activate(act, _mm256_loadu_ps(g), table), _mm256_loadu_ps(u)));
    std::memcpy(out + i, o, static_cast<size_t>(n - i) * sizeof(float));
  }
}

// Attention's weighted V rows (kernels.h): weights of up to 4 rows for a chunk of 64 cells are
// prepared in a stack buffer (scaled, rounded to f16), then 16 columns of the 4 accumulators stay
// in registers while the chunk's V rows stream past: one fused multiply-add per (row, cell,
// column), in cell order, as AxpyF16/AxpyF32 would do them one call per (row, cell).
template <typename T, __m256 (*kLoad)(const T*), float (*kScalar)(const T*), int NR>
void WeightedRowsFixed(int64_t d, int64_t n, const float* s, size_t s_stride, const float* scale,
                       bool round_f16, const T* v, size_t v_stride_elems, float* acc) {
  constexpr int64_t kChunk = 64;
  alignas(32) float w[NR][kChunk];
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t cn = std::min(kChunk, n - c0);
    for (int r = 0; r < NR; ++r) {
      const float* src = s + static_cast<size_t>(r) * s_stride + c0;
      for (int64_t j = 0; j < cn; ++j) {
        const float x = src[j] * scale[r];
        w[r][j] = round_f16 ? HalfToFloat(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)) : x;
      }
    }
    const T* vc = v + c0 * static_cast<int64_t>(v_stride_elems);
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
      __m256 a[NR][2];
      for (int r = 0; r < NR; ++r) {
        a[r][0] = _mm256_loadu_ps(acc + r * d + i);
        a[r][1] = _mm256_loadu_ps(acc + r * d + i + 8);
      }
      for (int64_t j = 0; j < cn; ++j) {
        const T* row = vc + j * static_cast<int64_t>(v_stride_elems) + i;
        const __m256 v0 = kLoad(row), v1 = kLoad(row + 8);
        for (int r = 0; r < NR; ++r) {
          const __m256 wr = _mm256_set1_ps(w[r][j]);
          a[r][0] = _mm256_fmadd_ps(wr, v0, a[r][0]);
          a[r][1] = _mm256_fmadd_ps(wr, v1, a[r][1]);
        }
      }
      for (int r = 0; r < NR; ++r) {
        _mm256_storeu_ps(acc + r * d + i, a[r][0]);
        _mm256_storeu_ps(acc + r * d + i + 8, a[r][1]);
      }
    }
    for (; i + 8 <= d; i += 8) {
      for (int r = 0; r < NR; ++r) {
        __m256 a = _mm256_loadu_ps(acc + r * d + i);
        for (int64_t j = 0; j < cn; ++j) {
          a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][j]),
                              kLoad(vc + j * static_cast<int64_t>(v_stride_elems) + i), a);
        }
        _mm256_storeu_ps(acc + r * d + i, a);
      }
    }
    for (; i < d; ++i) {
      for (int r = 0; r < NR; ++r) {
        float a = acc[r * d + i];
        for (int64_t j = 0; j < cn; ++j) {
          a = std::fma(w[r][j], kScalar(vc + j * static_cast<int64_t>(v_stride_elems) + i), a);
        }
        acc[r * d + i] = a;
      }
    }
  }
}

template <typename T, __m256 (*kLoad)(const T*), float (*kScalar)(const T*)>
void WeightedRowsOf(int64_t d, int64_t n, const float* s, size_t s_stride, const float* scale,
                    int nr, bool round_f16, const void* v, size_t v_stride, float* acc) {
  const auto* rows = static_cast<const T*>(v);
  const size_t stride = v_stride / sizeof(T);
  switch (nr) {
    case 1:
      return WeightedRowsFixed<T, kLoad, kScalar, 1>(d, n, s, s_stride, scale, round_f16, rows,
                                                     stride, acc);
    case 2:
      return WeightedRowsFixed<T, kLoad, kScalar, 2>(d, n, s, s_stride, scale, round_f16, rows,
                                                     stride, acc);
    case 3:
      return WeightedRowsFixed<T, kLoad, kScalar, 3>(d, n, s, s_stride, scale, round_f16, rows,
                                                     stride, acc);
    default:
      return WeightedRowsFixed<T, kLoad, kScalar, 4>(d, n, s, s_stride, scale, round_f16, rows,
                                                     stride, acc);
  }
}

void WeightedRows(int64_t d, int64_t n, const float* s, size_t s_stride, const float* scale, int nr,
                  bool round_f16, DType v_type, const void* v, size_t v_stride, float* acc) {
  if (v_type == DType::F16) {
    WeightedRowsOf<uint16_t, LoadF16, ScalarF16>(d, n, s, s_stride, scale, nr, round_f16, v,
                                                 v_stride, acc);
  } else {
    WeightedRowsOf<float, LoadF32, ScalarF32>(d, n, s, s_stride, scale, nr, round_f16, v, v_stride,
                                              acc);
  }
}

float ExpSum(float* x, int64_t n, float max) {
  const __m256 hidden = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const __m256 m = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e =
        _mm256_andnot_ps(_mm256_cmp_ps(v, hidden, _CMP_EQ_OQ), Exp(_mm256_sub_ps(v, m)));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < n) {  // the tail through the same polynomial, padded with hidden lanes
    alignas(32) float tail[8];
    for (int j = 0; j < 8; ++j)
      tail[j] = i + j < n ? x[i + j] : -std::numeric_limits<float>::infinity();
    const __m256 v = _mm256_load_ps(tail);
    const __m256 e =
        _mm256_andnot_ps(_mm256_cmp_ps(v, hidden, _CMP_EQ_OQ), Exp(_mm256_sub_ps(v, m)));
    _mm256_store_ps(tail, e);
    for (int64_t j = 0; i + j < n; ++j) x[i + j] = tail[j];
    sum = _mm256_add_ps(sum, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// ---- attention on f16 caches (kernels.h AttentionRows) ----------------------------------------
//
// The AVX2 form of kernels_avx512.cc's block kernel: each K and V row is converted to f32 once per
// call, for all the call's query rows (the dot tiles it replaces converted both operands of every
// 4 × 4 tile, and their 32 accumulators spilled on AVX2's 16 registers).
//   - Conversion: as in the f16 GEMV (F16ScaledDown), of each 32 elements 16 go through vcvtph2ps
//     and 16 through the integer form, which lands in lanes {0-3, 8-11}, {4-7, 12-15} scaled by
//     2^-112; the other operand (the query row, the softmax weight) takes that order and 2^112, so
//     every product is exactly the one vcvtph2ps would give.
//   - Scores, 8 cells at a time: per query row 8 FMA chains (one per cell, lanes: elements j mod 8
//     in that order) over the head dimension, reduced by a fixed tree of horizontal adds into one
//     vector of the 8 cells' scores (Reduce8). With more than 4 rows (prompts) the 8 key rows are
//     converted into kf (8 × d) first and each row reads them there (ScoreBlock); with 1-4 rows
//     (generation) each key row is converted into registers and meets every row at once
//     (ScoresFew), the same operations without the round trip.
//   - Softmax per row, 8 cells per vector: masked maximum, exponentials (Exp), their sum in f64,
//     normalization and f16 rounding of the weights, which are also stored · 2^112 (for the
//     integer half of V) and marked in a bit per cell when not 0.
//   - V: the accumulators of up to 3 query rows × 32 elements (one 64-byte line of an f16 row;
//     WeightedLine), or 4 rows × 16 elements (WeightedBlock), stay in registers while the cells
//     pass in order, each V element converted once per call (3 rows) or per 4 rows. With 1-3 rows
//     (generation) that is d / 32 passes over the cells; 16-element passes took twice as many, and
//     multiplied every weight by 2^112 in each integer-half pass. Cells whose weight is 0 in every
//     row of the call are skipped (cells no token sees may hold stale or unwritten rows);
//     otherwise every row adds w·v, which for w = 0 and a finite v leaves its sum unchanged bit
//     for bit (the sums start at +0 and never become −0), so each output is Σ over its cells with
//     w ≠ 0, in cell order, whatever the other rows of the call.
// Per output the operations do not depend on the other rows or on nc, as kernels.h requires.

// Lane c: the sum of a[c]'s 8 lanes, in a fixed order.
inline __m256 Reduce8(const __m256 a[8]) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  // u0: lanes 0-3 the sums of a[0..3]'s elements 0-3, lanes 4-7 of their elements 4-7; u1: a[4..7].
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  const __m256 lo = _mm256_insertf128_ps(u0, _mm256_castps256_ps128(u1), 1);
  const __m256 hi = _mm256_insertf128_ps(u1, _mm256_extractf128_ps(u0, 1), 0);
  return _mm256_add_ps(lo, hi);
}

inline __m256 RoundF16(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// Lanes where visible[0..7] is non-zero: all ones.
inline __m256 VisibleMask(const uint8_t* visible) {
  const __m256i v =
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(visible)));
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(v, _mm256_setzero_si256()));
}

// 32 f16 at p → 4 vectors: elements 0-7 and 8-15 (vcvtph2ps), then 16-31 in F16ScaledDown's form.
inline void ConvertMixed32(const uint16_t* p, __m256 out[4]) {
  out[0] = LoadF16(p);
  out[1] = LoadF16(p + 8);
  F16ScaledDown(p + 16, &out[2], &out[3]);
}

// The query row x (d floats) rounded to f16, in ConvertMixed32's lane order and scale.
inline void PrepareQuery(const float* x, int64_t d, float* out) {
  const __m256 up = _mm256_set1_ps(kTwoPow112);
  for (int64_t j = 0; j < d; j += 32) {
    const __m256 x2 = RoundF16(_mm256_loadu_ps(x + j + 16));
    const __m256 x3 = RoundF16(_mm256_loadu_ps(x + j + 24));
    _mm256_storeu_ps(out + j, RoundF16(_mm256_loadu_ps(x + j)));
    _mm256_storeu_ps(out + j + 8, RoundF16(_mm256_loadu_ps(x + j + 8)));
    _mm256_storeu_ps(out + j + 16, _mm256_mul_ps(_mm256_permute2f128_ps(x2, x3, 0x20), up));
    _mm256_storeu_ps(out + j + 24, _mm256_mul_ps(_mm256_permute2f128_ps(x2, x3, 0x31), up));
  }
}

// s[0..7] = the scores of query row q against the 8 converted key rows kf (d floats each).
inline void ScoreBlock(const float* q, int64_t d, const float* kf, float* s) {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int64_t j = 0; j < d; j += 8) {
    const __m256 qv = _mm256_loadu_ps(q + j);
    for (int c = 0; c < 8; ++c)
      acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(kf + c * d + j), qv, acc[c]);
  }
  _mm256_storeu_ps(s, Reduce8(acc));
}

// 16 sums to o: acc[0] and acc[1] are elements 0-7 and 8-15, or with kScaled (ConvertMixed32's
// integer half) lanes {0-3, 8-11} and {4-7, 12-15}, put back in order.
template <bool kScaled>
inline void StoreSums(const __m256* acc, float* o) {
  if constexpr (kScaled) {
    _mm_storeu_ps(o, _mm256_castps256_ps128(acc[0]));
    _mm_storeu_ps(o + 4, _mm256_castps256_ps128(acc[1]));
    _mm_storeu_ps(o + 8, _mm256_extractf128_ps(acc[0], 1));
    _mm_storeu_ps(o + 12, _mm256_extractf128_ps(acc[1], 1));
  } else {
    _mm256_storeu_ps(o, acc[0]);
    _mm256_storeu_ps(o + 8, acc[1]);
  }
}

// The scores of all query rows of the call, 8 cells at a time: the 8 key rows converted into kf
// (8 × d; rows past nc as zeros), then ScoreBlock per row.
inline void ScoresThroughBlock(const AttentionRows& t, const float* qr, float* s, int64_t nc16,
                               float* kf) {
  const int64_t d = t.d;
  const int nq = t.tokens * t.heads;
  for (int64_t c0 = 0; c0 < t.nc; c0 += 8) {
    const int64_t left = std::min<int64_t>(8, t.nc - c0);
    for (int64_t c = 0; c < 8; ++c) {
      const uint16_t* row = t.k + (c0 + c) * t.k_stride;
      for (int64_t j = 0; j < d; j += 32) {
        __m256 kv[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                        _mm256_setzero_ps()};
        if (c < left) ConvertMixed32(row + j, kv);
        for (int u = 0; u < 4; ++u) _mm256_storeu_ps(kf + c * d + j + 8 * u, kv[u]);
      }
    }
    for (int i = 0; i < nq; ++i) ScoreBlock(qr + i * d, d, kf, s + i * nc16 + c0);
  }
}

// The scores of NQ ≤ 4 query rows (a generated token's group): ScoresThroughBlock's operations in
// the same order, without the converted key rows' round trip through kf. Each cell's key row is
// converted 32 elements at a time into registers and meets every row there; a row's 8 per-cell
// chains go to `part` and Reduce8 as before. Per cell that is NQ stores instead of d / 8 (and as
// many loads back per row).
template <int NQ>
inline void ScoresFew(const AttentionRows& t, const float* qr, float* s, int64_t nc16) {
  const int64_t d = t.d;
  __m256 part[NQ][8];
  for (int64_t c0 = 0; c0 < t.nc; c0 += 8) {
    const int64_t left = std::min<int64_t>(8, t.nc - c0);
    for (int64_t c = 0; c < 8; ++c) {
      __m256 acc[NQ];
      for (int i = 0; i < NQ; ++i) acc[i] = _mm256_setzero_ps();
      if (c < left) {
        const uint16_t* row = t.k + (c0 + c) * t.k_stride;
        for (int64_t j = 0; j < d; j += 32) {
          __m256 kv[4];
          ConvertMixed32(row + j, kv);
          for (int u = 0; u < 4; ++u) {
            for (int i = 0; i < NQ; ++i) {
              acc[i] = _mm256_fmadd_ps(kv[u], _mm256_loadu_ps(qr + i * d + j + 8 * u), acc[i]);
            }
          }
        }
      }
      for (int i = 0; i < NQ; ++i) part[i][c] = acc[i];
    }
    for (int i = 0; i < NQ; ++i) _mm256_storeu_ps(s + i * nc16 + c0, Reduce8(part[i]));
  }
}

// Whether some row of the call weights cell c (bit c of `used`, see above).
inline bool Used(const uint8_t* used, int64_t c) { return (used[c >> 3] >> (c & 7)) & 1; }

// out rows (NQ ≤ 4) [j0, j0 + 16) = Σ_c w[i · w_stride + c] · v_c[j0 ..] over the cells c that
// some row uses. kScaled: elements 16-31 of a 32 (ConvertMixed32's integer half) with the weights
// · 2^112 (ws), else 0-15 (vcvtph2ps) with w. 4 rows × 16 elements keep the 8 sums and the
// converted V row in registers (4 × 32 spilled).
template <int NQ, bool kScaled>
inline void WeightedBlock(const float* w, size_t w_stride, int64_t nc, const uint8_t* used,
                          const uint16_t* v, size_t v_stride, int64_t j0, float* const* out) {
  __m256 acc[NQ][2];
  for (int i = 0; i < NQ; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < nc; ++c) {
    if (!Used(used, c)) continue;
    const uint16_t* row = v + c * v_stride + j0;
    __m256 v0, v1;
    if constexpr (kScaled) {
      F16ScaledDown(row, &v0, &v1);
    } else {
      v0 = LoadF16(row);
      v1 = LoadF16(row + 8);
    }
    for (int i = 0; i < NQ; ++i) {
      const __m256 b = _mm256_broadcast_ss(w + i * w_stride + c);
      acc[i][0] = _mm256_fmadd_ps(b, v0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(b, v1, acc[i][1]);
    }
  }
  for (int i = 0; i < NQ; ++i) StoreSums<kScaled>(acc[i], out[i] + j0);
}

// The same for NQ ≤ 3 rows and a whole 32 elements (one cache line of f16) per pass over the
// cells: 12 sums, the two converted halves in turn and a broadcast fit the 16 registers. Each sum
// sees the products of WeightedBlock in the same order, so the results are the same.
template <int NQ>
inline void WeightedLine(const float* w, const float* ws, size_t w_stride, int64_t nc,
                         const uint8_t* used, const uint16_t* v, size_t v_stride, int64_t j0,
                         float* const* out) {
  static_assert(NQ <= 3);
  __m256 acc[NQ][4];
  for (int i = 0; i < NQ; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm256_setzero_ps();
  for (int64_t c = 0; c < nc; ++c) {
    if (!Used(used, c)) continue;
    const uint16_t* row = v + c * v_stride + j0;
    const __m256 v0 = LoadF16(row), v1 = LoadF16(row + 8);
    for (int i = 0; i < NQ; ++i) {
      const __m256 b = _mm256_broadcast_ss(w + i * w_stride + c);
      acc[i][0] = _mm256_fmadd_ps(b, v0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(b, v1, acc[i][1]);
    }
    __m256 v2, v3;
    F16ScaledDown(row + 16, &v2, &v3);
    for (int i = 0; i < NQ; ++i) {
      const __m256 b = _mm256_broadcast_ss(ws + i * w_stride + c);
      acc[i][2] = _mm256_fmadd_ps(b, v2, acc[i][2]);
      acc[i][3] = _mm256_fmadd_ps(b, v3, acc[i][3]);
    }
  }
  for (int i = 0; i < NQ; ++i) {
    StoreSums<false>(acc[i], out[i] + j0);
    StoreSums<true>(acc[i] + 2, out[i] + j0 + 16);
  }
}

template <int NQ>
inline void WeightedRows32(const float* w, const float* ws, size_t w_stride, int64_t nc,
                           const uint8_t* used, const uint16_t* v, size_t v_stride, int64_t j_begin,
                           int64_t j_end, float* const* out) {
  for (int64_t j0 = j_begin; j0 < j_end; j0 += 32) {
    if constexpr (NQ <= 3) {
      WeightedLine<NQ>(w, ws, w_stride, nc, used, v, v_stride, j0, out);
    } else {
      WeightedBlock<NQ, false>(w, w_stride, nc, used, v, v_stride, j0, out);
      WeightedBlock<NQ, true>(ws, w_stride, nc, used, v, v_stride, j0 + 16, out);
    }
  }
}

// The scores of every row of the call for cells [c0, c1) (c0 a multiple of 8) into s (rows nc16
// apart). A cell's score does not depend on the others, so any split of the cells gives the same.
void ScoresOf(const AttentionRows& t, const float* qr, float* s, int64_t nc16, float* kf,
              int64_t c0, int64_t c1) {
  AttentionRows part = t;
  part.k = t.k + c0 * t.k_stride;
  part.nc = c1 - c0;
  s += c0;
  switch (t.tokens * t.heads) {
    case 1:
      ScoresFew<1>(part, qr, s, nc16);
      break;
    case 2:
      ScoresFew<2>(part, qr, s, nc16);
      break;
    case 3:
      ScoresFew<3>(part, qr, s, nc16);
      break;
    case 4:
      ScoresFew<4>(part, qr, s, nc16);
      break;
    default:
      ScoresThroughBlock(part, qr, s, nc16, kf);
      break;
  }
}

// Row i's softmax: its scores in row (nc16 floats, the cells past nc rounded up to 8 included)
// become the weights rounded to f16, ws their copy · 2^112, and the cells whose weight is not 0
// are marked in used (a bit per cell, ORed in).
void SoftmaxRow(const AttentionRows& t, int i, float* row, float* ws, int64_t nc16, uint8_t* used) {
  const int64_t nc8 = (t.nc + 7) / 8 * 8;
  const __m256 scale = _mm256_set1_ps(t.scale);
  const uint8_t* vis = t.mask(i);
  __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t c = 0; c < nc8; c += 8) {
    const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(row + c), scale);
    _mm256_storeu_ps(row + c, x);
    mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, x), VisibleMask(vis + c));
  }
  const float max = Hmax(mx);
  if (max == -std::numeric_limits<float>::infinity()) {
    std::fill(row, row + nc16, 0.0f);  // no visible cell: zeros
    std::fill(ws, ws + nc16, 0.0f);
    return;
  }
  const __m256 vmax = _mm256_set1_ps(max);
  __m256d sum0 = _mm256_setzero_pd(), sum1 = _mm256_setzero_pd();
  for (int64_t c = 0; c < nc8; c += 8) {
    const __m256 e =
        _mm256_and_ps(VisibleMask(vis + c), Exp(_mm256_sub_ps(_mm256_loadu_ps(row + c), vmax)));
    _mm256_storeu_ps(row + c, e);
    sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(sum0, sum1));
  const double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  const __m256 up = _mm256_set1_ps(kTwoPow112);
  for (int64_t c = 0; c < nc8; c += 8) {
    const __m256 w = RoundF16(_mm256_mul_ps(_mm256_loadu_ps(row + c), inv));
    _mm256_storeu_ps(row + c, w);
    _mm256_storeu_ps(ws + c, _mm256_mul_ps(w, up));
    used[c / 8] |= static_cast<uint8_t>(
        _mm256_movemask_ps(_mm256_cmp_ps(w, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
  }
}

// Elements [j_begin, j_end) (multiples of 32) of every output row: the weighted V rows over the
// cells marked in used. Each output element's sum runs over the same cells in the same order
// whatever the range.
void ValuesOf(const AttentionRows& t, const float* s, const float* ws, int64_t nc16,
              const uint8_t* used, int64_t j_begin, int64_t j_end) {
  const int nq = t.tokens * t.heads;
  for (int i0 = 0; i0 < nq; i0 += 4) {
    const int n = std::min(4, nq - i0);
    float* rows[4];
    for (int i = 0; i < n; ++i) rows[i] = t.output(i0 + i);
    const float* w = s + i0 * nc16;
    const float* wu = ws + i0 * nc16;
    switch (n) {
      case 1:
        WeightedRows32<1>(w, wu, nc16, t.nc, used, t.v, t.v_stride, j_begin, j_end, rows);
        break;
      case 2:
        WeightedRows32<2>(w, wu, nc16, t.nc, used, t.v, t.v_stride, j_begin, j_end, rows);
        break;
      case 3:
        WeightedRows32<3>(w, wu, nc16, t.nc, used, t.v, t.v_stride, j_begin, j_end, rows);
        break;
      default:
        WeightedRows32<4>(w, wu, nc16, t.nc, used, t.v, t.v_stride, j_begin, j_end, rows);
        break;
    }
  }
}

void AttentionF16(const AttentionRows& t) {
  const int64_t d = t.d;
  const int nq = t.tokens * t.heads;
  const int64_t nc16 = (t.nc + 15) / 16 * 16;
  float* qr = t.scratch;       // nq × d: the query rows rounded to f16 (PrepareQuery)
  float* s = qr + nq * d;      // nq × nc16: scores, then weights
  float* ws = s + nq * nc16;   // nq × nc16: the weights · 2^112 (for ConvertMixed32's 2nd half)
  float* kf = ws + nq * nc16;  // 8 × d: 8 key rows converted (ConvertMixed32)
  // Which cells some row of the call weights (V skips the others): 1 bit per cell, after kf.
  auto* used = reinterpret_cast<uint8_t*>(kf + 8 * d);
  for (int i = 0; i < nq; ++i) PrepareQuery(t.query(i), d, qr + i * d);
  ScoresOf(t, qr, s, nc16, kf, 0, t.nc);
  std::memset(used, 0, static_cast<size_t>(nc16 / 8));
  for (int i = 0; i < nq; ++i) SoftmaxRow(t, i, s + i * nc16, ws + i * nc16, nc16, used);
  ValuesOf(t, s, ws, nc16, used, 0, d);
}

// AttentionF16 in parts (kernels.h AttentionPart): the scores, weights and each row's bits in
// task.shared; the query rows, kf and the rows' bits ORed in the thread's scratch. Each scores
// part prepares the query rows again: nq · d roundings against its cells × nq · d products.
void AttentionF16Part(const AttentionRows& t, AttentionPart part, int64_t begin, int64_t end) {
  const int64_t d = t.d;
  const int nq = t.tokens * t.heads;
  const int64_t nc16 = (t.nc + 15) / 16 * 16, bytes = nc16 / 8;
  float* s = t.shared;
  float* ws = s + nq * nc16;
  auto* row_used = reinterpret_cast<uint8_t*>(ws + nq * nc16);  // nq × bytes
  float* qr = t.scratch;
  float* kf = qr + nq * d;
  auto* used = reinterpret_cast<uint8_t*>(kf + 8 * d);
  switch (part) {
    case AttentionPart::kScores:
      for (int i = 0; i < nq; ++i) PrepareQuery(t.query(i), d, qr + i * d);
      ScoresOf(t, qr, s, nc16, kf, begin, end);
      break;
    case AttentionPart::kSoftmax:
      for (int64_t i = begin; i < end; ++i) {
        uint8_t* bits = row_used + i * bytes;
        std::memset(bits, 0, static_cast<size_t>(bytes));
        SoftmaxRow(t, static_cast<int>(i), s + i * nc16, ws + i * nc16, nc16, bits);
      }
      break;
    case AttentionPart::kValues:
      std::memset(used, 0, static_cast<size_t>(bytes));
      for (int i = 0; i < nq; ++i) {
        for (int64_t b = 0; b < bytes; ++b) used[b] |= row_used[i * bytes + b];
      }
      ValuesOf(t, s, ws, nc16, used, begin, end);
      break;
  }
}

Kernels MakeAvx2() {
  Kernels k = GenericKernels();
  k.isa = "avx2";
  auto slot = [](DType t) { return static_cast<size_t>(t); };
  k.dot[slot(DType::F32)] = FloatTile<float, LoadF32, ScalarF32>;
  k.dot[slot(DType::F16)] = FloatTile<uint16_t, LoadF16, ScalarF16, true>;
  // Attention's q · k on f16 caches keeps vcvtph2ps alone (see F16ScaledDown).
  k.kv_dot_f16 = FloatTile<uint16_t, LoadF16, ScalarF16, false>;
  k.dot[slot(DType::BF16)] = FloatTile<uint16_t, LoadBF16, ScalarBF16>;
  k.gemv[slot(DType::F32)] = FloatGemv<float, LoadF32, ScalarF32>;
  k.gemm[slot(DType::F16)] = {F16PackBytes,       F16Pack,        F16Gemm,        kF16GemmRows,
                              F16WeightPackBytes, F16PackWeights, kF16GemmMinRows};
  k.gemv[slot(DType::F16)] = FloatGemv<uint16_t, LoadF16, ScalarF16, true>;
  k.gemv[slot(DType::BF16)] = FloatGemv<uint16_t, LoadBF16, ScalarBF16>;
  k.dot[slot(DType::Q4_0)] = Tile<KernelQ4_0>;
  k.dot[slot(DType::Q4_1)] = Tile<KernelQ4_1>;
  k.dot[slot(DType::Q5_0)] = Tile<KernelQ5_0>;
  k.dot[slot(DType::Q5_1)] = Tile<KernelQ5_1>;
  k.dot[slot(DType::Q8_0)] = Tile<KernelQ8_0>;
  k.gemv[slot(DType::Q8_0)] = GemvQ8_0;
  k.dot[slot(DType::Q4_K)] = Tile<KernelQ45_K<BlockQ4_K, false>>;
  k.dot[slot(DType::Q5_K)] = Tile<KernelQ45_K<BlockQ5_K, true>>;
  k.dot[slot(DType::Q6_K)] = Tile<KernelQ6_K>;
  k.to_activation[slot(DType::Q8_0)] = QuantizeQ8_0Row;
  k.to_activation[slot(DType::Q8_1)] = QuantizeQ8_1Row;
  k.to_activation[slot(DType::Q8_K)] = QuantizeQ8_KRow;
  k.to_activation[slot(DType::F16)] = ConvertF16Row;
  k.to_activation[slot(DType::BF16)] = ConvertBF16Row;
  k.axpy_f32 = AxpyF32;
  k.axpy_f16 = AxpyF16;
  k.f32_to_f16 = ToF16Row;
  k.scale_f32 = ScaleF32;
  k.exp_sum = ExpSum;
  k.weighted_rows = WeightedRows;
  k.attention_f16 = AttentionF16;
  k.attention_f16_part = AttentionF16Part;
  k.glu = GluRow;
  AddAvx2RepackedKernels(&k);
  AddFileLayoutCopies(&k);
  return k;
}

}  // namespace

const Kernels& Avx2Kernels() {
  static const Kernels kernels = MakeAvx2();
  return kernels;
}

}  // namespace dizuo::cpu
