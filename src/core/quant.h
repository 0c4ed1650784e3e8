// Reference (scalar) conversion between f32 and every stored tensor type.
//
// These are the definitions of the block formats: obviously-correct scalar code that kernels and
// other backends are checked against. They are not the fast path.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"

namespace dizuo {

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);  // round to nearest even
float BF16ToF32(uint16_t h);
uint16_t F32ToBF16(float f);  // round to nearest even; NaN stays NaN

// True for the types Dequantize/Quantize handle (all float and block types in DType; the
// integer types I8..I64 are not convertible).
bool CanConvert(DType type);

// Converts `n` elements (a multiple of the type's block size) from `src` (RowBytes(type, n)
// bytes) to f32.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);
// Converts `n` f32 values to `type`, writing RowBytes(type, n) bytes to `dst`.
void QuantizeRow(DType type, const float* src, void* dst, int64_t n);

// Whole-buffer conveniences.
std::vector<float> Dequantize(DType type, std::span<const uint8_t> src, int64_t n);
std::vector<uint8_t> Quantize(DType type, std::span<const float> src);

}  // namespace dizuo
