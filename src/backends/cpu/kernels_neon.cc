// ARM NEON kernels for AArch64, where Advanced SIMD is part of the base architecture. This one
// source builds two tables (src/backends/cpu/CMakeLists.txt compiles it twice):
// - "neon": the base ARMv8-A instruction set; int8 dot products by widening multiplies (SMULL)
//   and pairwise accumulation (SADALP);
// - "neon-dotprod" (DIZUO_NEON_DOTPROD, built with -march=armv8.2-a+dotprod): SDOT, four int8
//   products summed into each int32 lane in one instruction. The optional dot-product extension
//   of ARMv8.2; HostCpu().neon_dotprod (HWCAP_ASIMDDP) tells whether the CPU has it (Graviton 2
//   and later, Ampere Altra, Apple M1 and later, Cortex-A55/A76 and later).
//
// The tables start from the generic one and replace the dot products of the common weight types
// (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K) and the attention primitives
// (axpy, f32 → f16, scale, the weighted sum of V rows). Quantized dot products keep GGUF's
// arithmetic: per block an exact integer sum, scaled by the block factors in f32 and accumulated
// in a 4-lane vector, so results differ from the generic table only by float summation order.
// Activation conversion, softmax exponentials and the GLU stay the generic table's.
//
// Status: correct on every path the unit and model tests cover, run under QEMU's user-mode
// emulator (scripts/test-arm64.sh); the speed on ARM hardware has not been measured.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_common.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {
namespace {

inline float HalfToFloat(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, sizeof(f));
  return static_cast<float>(f);
}

// acc + Σ a·b over each lane's 4 consecutive int8 pairs. The lanes' grouping differs between the
// two forms (SDOT: 4 consecutive bytes; SMULL/SADALP: pairs from each half), but every caller
// only uses the sum of all lanes of a whole block, which is exact in both.
inline int32x4_t DotI8(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(DIZUO_NEON_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

inline int8x16_t S8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

// ---- quantized dot kernels: one block of weight and activation into an accumulator ------------

// Accumulator of one output: a vector part and a scalar part added at the end.
struct Acc {
  float32x4_t v = vdupq_n_f32(0.0f);
  float s = 0.0f;
};

inline void AddScaled(Acc& acc, int32x4_t p, float d) {
  acc.v = vfmaq_n_f32(acc.v, vcvtq_f32_s32(p), d);
}

// A legacy block's 16 bytes of nibbles: elements 0-15 (low nibbles) and 16-31 (high nibbles).
inline void Nibbles(const uint8_t* qs, uint8x16_t* lo, uint8x16_t* hi) {
  const uint8x16_t raw = vld1q_u8(qs);
  *lo = vandq_u8(raw, vdupq_n_u8(0x0f));
  *hi = vshrq_n_u8(raw, 4);
}

// Q5_0 / Q5_1: 0x10 in byte i where bit i of the little-endian u32 at qh is set (i < 32).
inline void HighBits(const uint8_t* qh, uint8x16_t* lo, uint8x16_t* hi) {
  const uint8x16_t bits = vreinterpretq_u8_u32(vdupq_n_u32(LoadUnaligned<uint32_t>(qh)));
  static const uint8_t kLo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  static const uint8_t kHi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bit = vld1q_u8(kBit);
  const uint8x16_t ten = vdupq_n_u8(0x10);
  *lo = vandq_u8(vtstq_u8(vqtbl1q_u8(bits, vld1q_u8(kLo)), bit), ten);
  *hi = vandq_u8(vtstq_u8(vqtbl1q_u8(bits, vld1q_u8(kHi)), bit), ten);
}

// Σ q·a over a 32-element block whose quants are in two 16-byte halves.
inline int32x4_t Dot32(int8x16_t q0, int8x16_t q1, const int8_t* a) {
  return DotI8(DotI8(vdupq_n_s32(0), q0, vld1q_s8(a)), q1, vld1q_s8(a + 16));
}

struct KernelQ8_0 {
  using W = BlockQ8_0;
  using A = BlockQ8_0;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    const int32x4_t p = Dot32(vld1q_s8(w->qs), vld1q_s8(w->qs + 16), a->qs);
    AddScaled(acc, p, HalfToFloat(w->d) * HalfToFloat(a->d));
  }
};

struct KernelQ4_0 {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    uint8x16_t lo, hi;
    Nibbles(w->qs, &lo, &hi);
    const int8x16_t eight = vdupq_n_s8(8);
    const int32x4_t p = Dot32(vsubq_s8(S8(lo), eight), vsubq_s8(S8(hi), eight), a->qs);
    AddScaled(acc, p, HalfToFloat(w->d) * HalfToFloat(a->d));
  }
};

struct KernelQ5_0 {
  using W = BlockQ5_0;
  using A = BlockQ8_0;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    uint8x16_t lo, hi, hlo, hhi;
    Nibbles(w->qs, &lo, &hi);
    HighBits(w->qh, &hlo, &hhi);
    const int8x16_t sixteen = vdupq_n_s8(16);
    const int32x4_t p = Dot32(vsubq_s8(S8(vorrq_u8(lo, hlo)), sixteen),
                              vsubq_s8(S8(vorrq_u8(hi, hhi)), sixteen), a->qs);
    AddScaled(acc, p, HalfToFloat(w->d) * HalfToFloat(a->d));
  }
};

struct KernelQ4_1 {
  using W = BlockQ4_1;
  using A = BlockQ8_1;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    uint8x16_t lo, hi;
    Nibbles(w->qs, &lo, &hi);
    AddScaled(acc, Dot32(S8(lo), S8(hi), a->qs), HalfToFloat(w->d) * HalfToFloat(a->d));
    acc.s += HalfToFloat(w->m) * HalfToFloat(a->s);
  }
};

struct KernelQ5_1 {
  using W = BlockQ5_1;
  using A = BlockQ8_1;
  static constexpr int64_t kBlock = 32;
  static void Block(const W* w, const A* a, Acc& acc) {
    uint8x16_t lo, hi, hlo, hhi;
    Nibbles(w->qs, &lo, &hi);
    HighBits(w->qh, &hlo, &hhi);
    const int32x4_t p = Dot32(S8(vorrq_u8(lo, hlo)), S8(vorrq_u8(hi, hhi)), a->qs);
    AddScaled(acc, p, HalfToFloat(w->d) * HalfToFloat(a->d));
    acc.s += HalfToFloat(w->m) * HalfToFloat(a->s);
  }
};

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; qs holds sub-blocks 2p (low
// nibbles) and 2p + 1 (high nibbles) of 32-byte group p; Q5_K's bit 4 of element 32j + l is bit
// j of qh[l]. The sub-block scales multiply the int32 sums (exact: |Σ| < 2^31).
template <typename WBlock, bool kHigh>
struct KernelQ45_K {
  using W = WBlock;
  using A = BlockQ8_K;
  static constexpr int64_t kBlock = 256;
  static void Block(const W* w, const A* a, Acc& acc) {
    int sc[8];
    const int mins = ScalesAndMinSumK4(w->scales, a->bsums, sc);
    const uint8x16_t mask = vdupq_n_u8(0x0f);
    uint8x16_t qh0 = vdupq_n_u8(0), qh1 = vdupq_n_u8(0);
    if constexpr (kHigh) {
      qh0 = vld1q_u8(w->qh);
      qh1 = vld1q_u8(w->qh + 16);
    }
    int32x4_t sum = vdupq_n_s32(0);
    for (int p = 0; p < 4; ++p) {
      const uint8x16_t raw0 = vld1q_u8(w->qs + 32 * p);
      const uint8x16_t raw1 = vld1q_u8(w->qs + 32 * p + 16);
      uint8x16_t lo0 = vandq_u8(raw0, mask), lo1 = vandq_u8(raw1, mask);
      uint8x16_t hi0 = vshrq_n_u8(raw0, 4), hi1 = vshrq_n_u8(raw1, 4);
      if constexpr (kHigh) {
        const uint8x16_t ten = vdupq_n_u8(0x10);
        const uint8x16_t b_lo = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * p)));
        const uint8x16_t b_hi = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * p + 1)));
        lo0 = vorrq_u8(lo0, vandq_u8(vtstq_u8(qh0, b_lo), ten));
        lo1 = vorrq_u8(lo1, vandq_u8(vtstq_u8(qh1, b_lo), ten));
        hi0 = vorrq_u8(hi0, vandq_u8(vtstq_u8(qh0, b_hi), ten));
        hi1 = vorrq_u8(hi1, vandq_u8(vtstq_u8(qh1, b_hi), ten));
      }
      sum = vmlaq_n_s32(sum, Dot32(S8(lo0), S8(lo1), a->qs + 64 * p), sc[2 * p]);
      sum = vmlaq_n_s32(sum, Dot32(S8(hi0), S8(hi1), a->qs + 64 * p + 32), sc[2 * p + 1]);
    }
    AddScaled(acc, sum, a->d * HalfToFloat(w->d));
    acc.s -= a->d * HalfToFloat(w->dmin) * static_cast<float>(mins);
  }
};

// Q6_K: element 128h + 32k + l has low nibble k / 2 of ql[64h + 32(k % 2) + l] and high bits
// 2k..2k+1 of qh[32h + l]; its sub-block (16 elements) is 8h + 2k + l / 16. The quants are taken
// as q − 32 (signed bytes), so no correction by the activation's sums is needed.
struct KernelQ6_K {
  using W = BlockQ6_K;
  using A = BlockQ8_K;
  static constexpr int64_t kBlock = 256;
  static void Block(const W* w, const A* a, Acc& acc) {
    const uint8x16_t mask = vdupq_n_u8(0x0f);
    const uint8x16_t three = vdupq_n_u8(0x03);
    const int8x16_t bias = vdupq_n_s8(32);
    int32x4_t sum = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w->ql + 64 * h;
      const uint8x16_t ql0[2] = {vld1q_u8(ql), vld1q_u8(ql + 16)};
      const uint8x16_t ql1[2] = {vld1q_u8(ql + 32), vld1q_u8(ql + 48)};
      const uint8x16_t qh[2] = {vld1q_u8(w->qh + 32 * h), vld1q_u8(w->qh + 32 * h + 16)};
      for (int k = 0; k < 4; ++k) {
        const int8x16_t shift = vdupq_n_s8(static_cast<int8_t>(-2 * k));
        int8x16_t q[2];
        for (int half = 0; half < 2; ++half) {
          const uint8x16_t src = k % 2 == 0 ? ql0[half] : ql1[half];
          const uint8x16_t low = k < 2 ? vandq_u8(src, mask) : vshrq_n_u8(src, 4);
          const uint8x16_t high = vshlq_n_u8(vandq_u8(vshlq_u8(qh[half], shift), three), 4);
          q[half] = vsubq_s8(S8(vorrq_u8(low, high)), bias);
        }
        const int8_t* ak = a->qs + 128 * h + 32 * k;
        const int j = 8 * h + 2 * k;
        sum = vmlaq_n_s32(sum, DotI8(vdupq_n_s32(0), q[0], vld1q_s8(ak)), w->scales[j]);
        sum = vmlaq_n_s32(sum, DotI8(vdupq_n_s32(0), q[1], vld1q_s8(ak + 16)), w->scales[j + 1]);
      }
    }
    AddScaled(acc, sum, a->d * HalfToFloat(w->d));
  }
};

// ---- float weights: 8 elements per step in two accumulators, scalar tail ------------------------

struct F32Loads {
  using T = float;
  static float32x4_t Load(const float* p) { return vld1q_f32(p); }
  static float Scalar(const float* p) { return *p; }
};
struct F16Loads {
  using T = uint16_t;
  static float32x4_t Load(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
  static float Scalar(const uint16_t* p) { return HalfToFloat(*p); }
};
struct BF16Loads {
  using T = uint16_t;
  static float32x4_t Load(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static float Scalar(const uint16_t* p) { return BF16ToF32(*p); }
};

// Each output sums elements 8i..8i+3 in one accumulator and 8i+4..8i+7 in the other, then adds
// the two, its lanes, and the tail in element order: the same operations in every tile shape.
// Tiles of more than 2 weight rows run as pairs of rows (16 accumulators at most).
template <typename L, int NW, int NA>
void FloatTileFixed(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* out,
                    size_t os) {
  using T = typename L::T;
  const int64_t steps = k / 8;
  float32x4_t acc[NW][NA][2];
  for (int r = 0; r < NW; ++r) {
    for (int c = 0; c < NA; ++c) acc[r][c][0] = acc[r][c][1] = vdupq_n_f32(0.0f);
  }
  for (int64_t s = 0; s < steps; ++s) {
    float32x4_t x[NA][2];
    for (int c = 0; c < NA; ++c) {
      const T* ac = reinterpret_cast<const T*>(a + c * as) + 8 * s;
      x[c][0] = L::Load(ac);
      x[c][1] = L::Load(ac + 4);
    }
    for (int r = 0; r < NW; ++r) {
      const T* wr = reinterpret_cast<const T*>(w + r * ws) + 8 * s;
      const float32x4_t w0 = L::Load(wr), w1 = L::Load(wr + 4);
      for (int c = 0; c < NA; ++c) {
        acc[r][c][0] = vfmaq_f32(acc[r][c][0], w0, x[c][0]);
        acc[r][c][1] = vfmaq_f32(acc[r][c][1], w1, x[c][1]);
      }
    }
  }
  for (int r = 0; r < NW; ++r) {
    const T* wr = reinterpret_cast<const T*>(w + r * ws);
    for (int c = 0; c < NA; ++c) {
      const T* ac = reinterpret_cast<const T*>(a + c * as);
      float sum = vaddvq_f32(vaddq_f32(acc[r][c][0], acc[r][c][1]));
      for (int64_t i = 8 * steps; i < k; ++i) sum += L::Scalar(wr + i) * L::Scalar(ac + i);
      out[c * os + r] = sum;
    }
  }
}

template <typename L, int NA>
void FloatTileRows(int64_t k, const uint8_t* w, size_t ws, int nw, const uint8_t* a, size_t as,
                   float* out, size_t os) {
  for (int r = 0; r < nw; r += 2) {
    if (nw - r >= 2) {
      FloatTileFixed<L, 2, NA>(k, w + r * ws, ws, a, as, out + r, os);
    } else {
      FloatTileFixed<L, 1, NA>(k, w + r * ws, ws, a, as, out + r, os);
    }
  }
}

template <typename L>
void FloatTile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
               float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  switch (na) {
    case 1:
      return FloatTileRows<L, 1>(k, wb, ws, nw, ab, as, out, os);
    case 2:
      return FloatTileRows<L, 2>(k, wb, ws, nw, ab, as, out, os);
    case 3:
      return FloatTileRows<L, 3>(k, wb, ws, nw, ab, as, out, os);
    default:
      return FloatTileRows<L, 4>(k, wb, ws, nw, ab, as, out, os);
  }
}

// An accumulator's output, and the block kernels' dot tiles (kernels_common.h BlockTile).
struct FinishAcc {
  static float Of(const Acc& x) { return vaddvq_f32(x.v) + x.s; }
};
template <typename K>
void Tile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na, float* out,
          size_t os) {
  BlockTile<K, Acc, FinishAcc>(k, w, ws, nw, a, as, na, out, os);
}

// ---- attention and cache primitives ------------------------------------------------------------

// y[i] += alpha · x[i], one fused multiply-add per element (every table's axpy is used only with
// its own weighted_rows, which must match it bit for bit).
void AxpyF32(float alpha, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), alpha));
  }
  for (; i < n; ++i) y[i] = std::fma(alpha, x[i], y[i]);
}

void AxpyF16(float alpha, const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), F16Loads::Load(x + i), alpha));
  }
  for (; i < n; ++i) y[i] = std::fma(alpha, HalfToFloat(x[i]), y[i]);
}

void F32ToF16Row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  }
  for (; i < n; ++i) {
    const __fp16 h = static_cast<__fp16>(x[i]);
    std::memcpy(y + i, &h, sizeof(h));
  }
}

void ScaleF32(float alpha, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(y + i), alpha));
  for (; i < n; ++i) y[i] *= alpha;
}

Kernels MakeNeon(const char* isa) {
  Kernels k = GenericKernels();
  k.isa = isa;
  auto slot = [](DType t) { return static_cast<size_t>(t); };
  k.dot[slot(DType::F32)] = FloatTile<F32Loads>;
  k.dot[slot(DType::F16)] = FloatTile<F16Loads>;
  k.dot[slot(DType::BF16)] = FloatTile<BF16Loads>;
  k.dot[slot(DType::Q4_0)] = Tile<KernelQ4_0>;
  k.dot[slot(DType::Q4_1)] = Tile<KernelQ4_1>;
  k.dot[slot(DType::Q5_0)] = Tile<KernelQ5_0>;
  k.dot[slot(DType::Q5_1)] = Tile<KernelQ5_1>;
  k.dot[slot(DType::Q8_0)] = Tile<KernelQ8_0>;
  k.dot[slot(DType::Q4_K)] = Tile<KernelQ45_K<BlockQ4_K, false>>;
  k.dot[slot(DType::Q5_K)] = Tile<KernelQ45_K<BlockQ5_K, true>>;
  k.dot[slot(DType::Q6_K)] = Tile<KernelQ6_K>;
  k.axpy_f32 = AxpyF32;
  k.axpy_f16 = AxpyF16;
  k.f32_to_f16 = F32ToF16Row;
  k.scale_f32 = ScaleF32;
  k.weighted_rows = WeightedRowsWith<AxpyF16, AxpyF32>;
  AddFileLayoutCopies(&k);
  return k;
}

}  // namespace

#if defined(DIZUO_NEON_DOTPROD)
const Kernels& NeonDotprodKernels() {
  static const Kernels kernels = MakeNeon("neon-dotprod");
  return kernels;
}
#else
const Kernels& NeonKernels() {
  static const Kernels kernels = MakeNeon("neon");
  return kernels;
}
#endif

}  // namespace dizuo::cpu
