// Scalar reference codecs: f16/bf16 scalars, plain float types and the 32-element legacy blocks.
// The K-quants are in quant_k.cc.
//
// The legacy quantizers reproduce ggml's reference quantizers (quantize_row_*_ref) bit for bit:
// same scale formula, same reciprocal, same rounding (truncation of x*id + offset, or roundf).
#include "core/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_k.h"

namespace dizuo {

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {  // inf or NaN; the NaN payload is kept
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in f32
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t F32ToF16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    // NaN: keep the top payload bits and set the quiet bit, as x86 F16C does.
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (magnitude >= 0x38800000u) {                       // f16 normal range, >= 2^-14
    const uint32_t rebiased = magnitude - (112u << 23);
    const uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);  // ties to even
    return static_cast<uint16_t>(sign | (rounded >> 13));
  }
  if (magnitude < 0x33000000u) return sign;  // <= 2^-25 (the tie with zero) rounds to zero
  // Subnormal result: the value in units of 2^-24, rounded to nearest even. A carry into bit 10
  // yields the smallest normal, which is the correct encoding.
  const uint32_t exponent = magnitude >> 23;  // 102..112
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14..24
  uint32_t units = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (units & 1u))) ++units;
  return static_cast<uint16_t>(sign | units);
}

float BF16ToF32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t F32ToBF16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x40u);  // NaN: truncate, force quiet
  }
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);  // ties to even
}

namespace {

using quant_internal::Load;
using quant_internal::Store;

// (int)v clamped to [lo, hi] without undefined behaviour for out-of-range or NaN v (NaN -> lo).
int TruncClamp(float v, int lo, int hi) {
  if (!(v > static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// roundf (ties away from zero), clamped to int8.
int8_t RoundToInt8(float v) {
  const float r = std::round(v);
  if (!(r > -128.0f)) return -128;
  if (r >= 127.0f) return 127;
  return static_cast<int8_t>(r);
}

// The first element of largest magnitude, with its sign (0 for an all-zero block).
float SignedAbsMax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

float AbsMax(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

void MinMax(const float* x, int n, float* min, float* max) {
  *min = x[0];
  *max = x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < *min) *min = x[i];
    if (x[i] > *max) *max = x[i];
  }
}

// The 32 quants of a 4-bit block (values 0..15): element i < 16 is the low nibble of qs[i],
// element i >= 16 the high nibble of qs[i - 16].
void Unpack4(const uint8_t* qs, int* q) {
  for (int i = 0; i < 16; ++i) {
    q[i] = qs[i] & 0x0f;
    q[i + 16] = qs[i] >> 4;
  }
}

void Pack4(const int* q, uint8_t* qs) {
  for (int i = 0; i < 16; ++i)
    qs[i] = static_cast<uint8_t>((q[i] & 0x0f) | ((q[i + 16] & 0x0f) << 4));
}

// 5-bit quants: low nibbles as Unpack4, bit 4 of element i is bit i of qh (little-endian).
void Unpack5(const uint8_t* qh, const uint8_t* qs, int* q) {
  Unpack4(qs, q);
  for (int i = 0; i < 32; ++i) q[i] |= ((qh[i / 8] >> (i % 8)) & 1) << 4;
}

void Pack5(const int* q, uint8_t* qh, uint8_t* qs) {
  Pack4(q, qs);
  std::memset(qh, 0, 4);
  for (int i = 0; i < 32; ++i) qh[i / 8] |= static_cast<uint8_t>(((q[i] >> 4) & 1) << (i % 8));
}

void DequantizeQ4_0(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += 32) {
    const auto block = Load<BlockQ4_0>(src, b);
    const float d = F16ToF32(block.d);
    int q[32];
    Unpack4(block.qs, q);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(q[i] - 8);
  }
}

void DequantizeQ4_1(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += 32) {
    const auto block = Load<BlockQ4_1>(src, b);
    const float d = F16ToF32(block.d);
    const float m = F16ToF32(block.m);
    int q[32];
    Unpack4(block.qs, q);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(q[i]) + m;
  }
}

void DequantizeQ5_0(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += 32) {
    const auto block = Load<BlockQ5_0>(src, b);
    const float d = F16ToF32(block.d);
    int q[32];
    Unpack5(block.qh, block.qs, q);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(q[i] - 16);
  }
}

void DequantizeQ5_1(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += 32) {
    const auto block = Load<BlockQ5_1>(src, b);
    const float d = F16ToF32(block.d);
    const float m = F16ToF32(block.m);
    int q[32];
    Unpack5(block.qh, block.qs, q);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(q[i]) + m;
  }
}

void DequantizeQ8_0(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += 32) {
    const auto block = Load<BlockQ8_0>(src, b);
    const float d = F16ToF32(block.d);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(block.qs[i]);
  }
}

void DequantizeQ8_1(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += 32) {
    const auto block = Load<BlockQ8_1>(src, b);
    const float d = F16ToF32(block.d);
    for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(block.qs[i]);
  }
}

// Symmetric 4-bit: the element of largest magnitude maps to -8 exactly, so the other sign gets
// the 8 levels 0..7 plus the clamp of +8 to 7.
void QuantizeQ4_0(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    BlockQ4_0 block;
    const float d = SignedAbsMax(x, 32) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = TruncClamp(x[i] * id + 8.5f, 0, 15);
    block.d = F32ToF16(d);
    Pack4(q, block.qs);
    Store(dst, b, block);
  }
}

void QuantizeQ4_1(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    BlockQ4_1 block;
    float min = 0.0f;
    float max = 0.0f;
    MinMax(x, 32, &min, &max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = TruncClamp((x[i] - min) * id + 0.5f, 0, 15);
    block.d = F32ToF16(d);
    block.m = F32ToF16(min);
    Pack4(q, block.qs);
    Store(dst, b, block);
  }
}

void QuantizeQ5_0(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    BlockQ5_0 block;
    const float d = SignedAbsMax(x, 32) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = TruncClamp(x[i] * id + 16.5f, 0, 31);
    block.d = F32ToF16(d);
    Pack5(q, block.qh, block.qs);
    Store(dst, b, block);
  }
}

void QuantizeQ5_1(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    BlockQ5_1 block;
    float min = 0.0f;
    float max = 0.0f;
    MinMax(x, 32, &min, &max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = TruncClamp((x[i] - min) * id + 0.5f, 0, 31);
    block.d = F32ToF16(d);
    block.m = F32ToF16(min);
    Pack5(q, block.qh, block.qs);
    Store(dst, b, block);
  }
}

void QuantizeQ8_0(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    BlockQ8_0 block;
    const float d = AbsMax(x, 32) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < 32; ++i) block.qs[i] = RoundToInt8(x[i] * id);
    block.d = F32ToF16(d);
    Store(dst, b, block);
  }
}

// As Q8_0, plus s = fp16(d * sum of the quants), with the unrounded d (as ggml).
void QuantizeQ8_1(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    BlockQ8_1 block;
    const float d = AbsMax(x, 32) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      block.qs[i] = RoundToInt8(x[i] * id);
      sum += block.qs[i];
    }
    block.d = F32ToF16(d);
    block.s = F32ToF16(static_cast<float>(sum) * d);
    Store(dst, b, block);
  }
}

}  // namespace

bool CanConvert(DType type) {
  switch (type) {
    case DType::I8:
    case DType::I16:
    case DType::I32:
    case DType::I64:
      return false;
    default:
      return true;
  }
}

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  const DTypeTraits& traits = Traits(type);
  DZ_ASSERT(CanConvert(type) && n >= 0 && n % traits.block_size == 0);
  const int64_t nblocks = n / traits.block_size;
  namespace qi = quant_internal;
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(Load<uint16_t>(src, i));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(Load<uint16_t>(src, i));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(Load<double>(src, i));
      return;
    case DType::Q4_0:
      return DequantizeQ4_0(src, dst, nblocks);
    case DType::Q4_1:
      return DequantizeQ4_1(src, dst, nblocks);
    case DType::Q5_0:
      return DequantizeQ5_0(src, dst, nblocks);
    case DType::Q5_1:
      return DequantizeQ5_1(src, dst, nblocks);
    case DType::Q8_0:
      return DequantizeQ8_0(src, dst, nblocks);
    case DType::Q8_1:
      return DequantizeQ8_1(src, dst, nblocks);
    case DType::Q2_K:
      return qi::DequantizeQ2_K(src, dst, nblocks);
    case DType::Q3_K:
      return qi::DequantizeQ3_K(src, dst, nblocks);
    case DType::Q4_K:
      return qi::DequantizeQ4_K(src, dst, nblocks);
    case DType::Q5_K:
      return qi::DequantizeQ5_K(src, dst, nblocks);
    case DType::Q6_K:
      return qi::DequantizeQ6_K(src, dst, nblocks);
    case DType::Q8_K:
      return qi::DequantizeQ8_K(src, dst, nblocks);
    case DType::I8:
    case DType::I16:
    case DType::I32:
    case DType::I64:
      break;
  }
  AssertFailed("convertible dtype", __FILE__, __LINE__);
}

void QuantizeRow(DType type, const float* src, void* dst, int64_t n) {
  const DTypeTraits& traits = Traits(type);
  DZ_ASSERT(CanConvert(type) && n >= 0 && n % traits.block_size == 0);
  const int64_t nblocks = n / traits.block_size;
  namespace qi = quant_internal;
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) Store<uint16_t>(dst, i, F32ToF16(src[i]));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) Store<uint16_t>(dst, i, F32ToBF16(src[i]));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) Store<double>(dst, i, static_cast<double>(src[i]));
      return;
    case DType::Q4_0:
      return QuantizeQ4_0(src, dst, nblocks);
    case DType::Q4_1:
      return QuantizeQ4_1(src, dst, nblocks);
    case DType::Q5_0:
      return QuantizeQ5_0(src, dst, nblocks);
    case DType::Q5_1:
      return QuantizeQ5_1(src, dst, nblocks);
    case DType::Q8_0:
      return QuantizeQ8_0(src, dst, nblocks);
    case DType::Q8_1:
      return QuantizeQ8_1(src, dst, nblocks);
    case DType::Q2_K:
      return qi::QuantizeQ2_K(src, dst, nblocks);
    case DType::Q3_K:
      return qi::QuantizeQ3_K(src, dst, nblocks);
    case DType::Q4_K:
      return qi::QuantizeQ4_K(src, dst, nblocks);
    case DType::Q5_K:
      return qi::QuantizeQ5_K(src, dst, nblocks);
    case DType::Q6_K:
      return qi::QuantizeQ6_K(src, dst, nblocks);
    case DType::Q8_K:
      return qi::QuantizeQ8_K(src, dst, nblocks);
    case DType::I8:
    case DType::I16:
    case DType::I32:
    case DType::I64:
      break;
  }
  AssertFailed("convertible dtype", __FILE__, __LINE__);
}

std::vector<float> Dequantize(DType type, std::span<const uint8_t> src, int64_t n) {
  if (!CanConvert(type)) Fail("cannot convert {} tensors to f32", Name(type));
  const auto bytes = n >= 0 ? RowBytes(type, static_cast<uint64_t>(n)) : std::nullopt;
  if (!bytes) {
    Fail("{} elements is not a whole number of {} blocks of {}", n, Name(type),
         Traits(type).block_size);
  }
  if (*bytes != src.size()) {
    Fail("{} elements of {} need {} bytes, got {}", n, Name(type), *bytes, src.size());
  }
  std::vector<float> out(static_cast<size_t>(n));
  DequantizeRow(type, src.data(), out.data(), n);
  return out;
}

std::vector<uint8_t> Quantize(DType type, std::span<const float> src) {
  if (!CanConvert(type)) Fail("cannot convert f32 to {}", Name(type));
  const auto bytes = RowBytes(type, src.size());
  if (!bytes) {
    Fail("{} elements is not a whole number of {} blocks of {}", src.size(), Name(type),
         Traits(type).block_size);
  }
  std::vector<uint8_t> out(static_cast<size_t>(*bytes));
  QuantizeRow(type, src.data(), out.data(), static_cast<int64_t>(src.size()));
  return out;
}

}  // namespace dizuo
