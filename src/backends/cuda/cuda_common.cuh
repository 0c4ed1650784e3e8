// Device helpers shared by the kernels: tensor addressing, f16/bf16 scalars, warp reductions and
// the block layouts of core/quant_blocks.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "backends/cuda/cuda_kernels.h"
#include "core/quant_blocks.h"

namespace dizuo::cuda {

inline constexpr int kWarp = 32;

// Helpers that decode blocks are host-callable too, so that cuda_decode_test checks them against
// the reference without a GPU.
#define DZ_HD __host__ __device__ __forceinline__
// `#pragma unroll` for the device pass only (the host compiler does not know it).
#ifdef __CUDA_ARCH__
#define DZ_UNROLL _Pragma("unroll")
#else
#define DZ_UNROLL
#endif

// Row `r` of `t`, rows numbered over ne[1], ne[2], ne[3] in that order.
__device__ __forceinline__ char* RowPtr(const DevTensor& t, int64_t r) {
  const int64_t i1 = r % t.ne[1];
  const int64_t i2 = (r / t.ne[1]) % t.ne[2];
  const int64_t i3 = r / (t.ne[1] * t.ne[2]);
  return t.data + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

__device__ __forceinline__ int64_t Rows(const DevTensor& t) { return t.ne[1] * t.ne[2] * t.ne[3]; }

DZ_HD float HalfBits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
DZ_HD float Bf16Bits(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
#endif
}
// Round to nearest even, as core/quant.cc's F32ToF16 / F32ToBF16.
__device__ __forceinline__ float RoundToHalf(float x) { return __half2float(__float2half_rn(x)); }
__device__ __forceinline__ float RoundToBf16(float x) {
  return __bfloat162float(__float2bfloat16_rn(x));
}

// GLU's gelu_tanh (core/graph.h, core/gelu.h): 0 for x <= -10, x for x >= 10, otherwise x rounded
// to f16 looks up `table` (core/gelu.h's GeluTanhF16Table, uploaded by the backend), whose f16
// result is the activation.
DZ_HD float GeluTanhFromTable(float x, const uint16_t* table) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return HalfBits(table[__half_as_ushort(__float2half_rn(x))]);
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ int WarpSumInt(int v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Four bytes from an address aligned to 2 (every GGUF block is), little-endian.
DZ_HD uint32_t Load4(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
DZ_HD void ScaleMinK4(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// The 6-bit scale of sub-block j (0..15) of a Q3_K super-block, before subtracting 32.
DZ_HD int ScaleQ3K(const uint8_t* s, int j) {
  const int low = (s[j % 8] >> (4 * (j / 8))) & 0xF;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | (high << 4);
}

// Σ a_i · b_i over the four signed bytes of a and b, plus c.
DZ_HD int Dp4a(int a, int b, int c) {
#ifdef __CUDA_ARCH__
  return __dp4a(a, b, c);
#else
  for (int i = 0; i < 4; ++i) {
    c += static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i)) *
         static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
  }
  return c;
#endif
}

// Bytewise a − b modulo 256 (no borrow between bytes).
DZ_HD uint32_t Vsub4(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  return __vsub4(a, b);
#else
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i)
    r |= ((((a >> (8 * i)) & 0xFF) - ((b >> (8 * i)) & 0xFF)) & 0xFF) << (8 * i);
  return r;
#endif
}

}  // namespace dizuo::cuda
