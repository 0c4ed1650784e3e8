// GGUF block layouts, bit-identical to ggml's (little-endian, no padding).
//
// Half-precision fields are raw IEEE binary16 bits (see F16ToF32 in quant.h). Element order inside
// each block is documented beside the struct; quant.cc and quant_k.cc are the executable
// definition. Kernels may reinterpret tensor bytes as these structs: each has alignment <= 4 and a
// size equal to its DTypeTraits::type_size.
#pragma once

#include <cstdint>

namespace dizuo {

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK8_0 = 32;

// x[i] = d * (q[i] - 8); q[i] is the low nibble of qs[i] for i < 16, the high nibble of qs[i-16].
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};

// x[i] = d * q[i] + m; nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[16];
};

// x[i] = d * (q[i] - 16); q[i] = nibble (as Q4_0) | bit i of qh (little-endian u32) << 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};

// x[i] = d * q[i] + m; q[i] as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};

// x[i] = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};

// x[i] = d * qs[i]; s = d * sum(qs) (an aid for dot products, not needed to decode).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[32];
};

// K-quants: super-blocks of 256 elements made of 16 sub-blocks of 16 or 8 sub-blocks of 32.

// 16 sub-blocks of 16. scales[j] = scale (low nibble) | min (high nibble) of sub-block j;
// x = d * scale * q - dmin * min, q in 0..3. Element e = 128*h + 32*k + l (h < 2, k < 4, l < 32)
// is bits 2k..2k+1 of qs[32*h + l]; its sub-block is e / 16.
struct BlockQ2_K {
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d;
  uint16_t dmin;
};

// 16 sub-blocks of 16; x = d * (s - 32) * (q - 4), q in 0..7, s the 6-bit scale of sub-block
// e / 16. Element e = 128*h + 32*k + l: low bits of q are bits 2k..2k+1 of qs[32*h + l], bit 2 is
// bit 4*h + k of hmask[l]. Scale s[j]: low 4 bits are nibble j / 8 of scales[j % 8], high 2 bits
// are bits 2*(j / 4).. of scales[8 + j % 4].
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;
};

// 8 sub-blocks of 32; x = d * sc[j] * q - dmin * m[j], q in 0..15, j = e / 32. Element
// e = 64*p + 32*n + l (p < 4, n < 2, l < 32) is nibble n of qs[32*p + l]. The 6-bit sc/m pairs are
// packed in `scales` as described at PackScaleMinK4 below.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};

// Q4_K/Q5_K scale packing: 8 six-bit scales sc and mins m in 12 bytes. For j < 4, bytes j and
// j + 4 hold sc[j] and m[j] in their low 6 bits; for j >= 4, byte j + 4 holds the low nibbles of
// sc[j] (low) and m[j] (high), and the top 2 bits of bytes j - 4 and j hold sc[j] >> 4 and
// m[j] >> 4. Every bit is used, so unpacking and packing again gives the same 12 bytes.
inline void PackScaleMinK4(const int* sc, const int* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
  }
}

// The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
inline void UnpackScaleMinK4(const uint8_t* in, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = in[j] & 0x3f;
    *m = in[j + 4] & 0x3f;
  } else {
    *sc = (in[j + 4] & 0x0f) | ((in[j - 4] >> 6) << 4);
    *m = (in[j + 4] >> 4) | ((in[j] >> 6) << 4);
  }
}

// As Q4_K with q in 0..31; bit 4 of element e's q is bit e / 32 of qh[e % 32].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};

// 16 sub-blocks of 16; x = d * scales[e / 16] * (q - 32), q in 0..63. Element
// e = 128*h + 32*k + l (k < 4, l < 32): low 4 bits are nibble k / 2 of ql[64*h + 32*(k % 2) + l],
// high 2 bits are bits 2k..2k+1 of qh[32*h + l].
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

// x[i] = d * qs[i]; bsums[j] = sum of qs[16*j .. 16*j + 15]. d is an f32.
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace dizuo
