// K-quant and legacy block codecs behind DequantizeRow / QuantizeRow (internal to src/core).
//
// Each function converts `nblocks` whole blocks. Dequantizers evaluate in the same float operation
// order as ggml and gguf-py so that results are bit-identical; quant.cc must be compiled without
// floating-point contraction (see CMakeLists.txt).
#pragma once

#include <cstdint>
#include <cstring>

namespace dizuo::quant_internal {

// Element `i` of an array of T at `base`, which need not be aligned for T (tensor bytes are
// only guaranteed byte alignment here).
template <typename T>
T Load(const void* base, int64_t i) {
  T value;
  std::memcpy(&value, static_cast<const uint8_t*>(base) + i * static_cast<int64_t>(sizeof(T)),
              sizeof(T));
  return value;
}

template <typename T>
void Store(void* base, int64_t i, const T& value) {
  std::memcpy(static_cast<uint8_t*>(base) + i * static_cast<int64_t>(sizeof(T)), &value, sizeof(T));
}

void DequantizeQ2_K(const void* src, float* dst, int64_t nblocks);
void DequantizeQ3_K(const void* src, float* dst, int64_t nblocks);
void DequantizeQ4_K(const void* src, float* dst, int64_t nblocks);
void DequantizeQ5_K(const void* src, float* dst, int64_t nblocks);
void DequantizeQ6_K(const void* src, float* dst, int64_t nblocks);
void DequantizeQ8_K(const void* src, float* dst, int64_t nblocks);

void QuantizeQ2_K(const float* src, void* dst, int64_t nblocks);
void QuantizeQ3_K(const float* src, void* dst, int64_t nblocks);
void QuantizeQ4_K(const float* src, void* dst, int64_t nblocks);
void QuantizeQ5_K(const float* src, void* dst, int64_t nblocks);
void QuantizeQ6_K(const float* src, void* dst, int64_t nblocks);
void QuantizeQ8_K(const float* src, void* dst, int64_t nblocks);

}  // namespace dizuo::quant_internal
