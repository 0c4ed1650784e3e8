// Tensor element types and their GGUF block layouts.
//
// The numeric values are GGUF's (ggml_type), so a type id read from a file maps directly. Quantized
// types store `block_size` elements in `type_size` bytes; layouts are bit-identical to GGUF's so
// files are used in place (mmap), without conversion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dizuo {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeTraits {
  DType type;
  std::string_view name;  // as GGUF tools print it: "f32", "q4_K", ...
  int64_t block_size;     // elements per block (1 for plain types)
  int64_t type_size;      // bytes per block
  bool quantized;
};

// Traits of a type dizuo knows, or nullopt for an id it does not (an unknown or unsupported
// GGUF type such as the IQ families).
std::optional<DTypeTraits> FindDType(uint32_t id);
// Traits of a known type; `type` must be a valid enumerator.
const DTypeTraits& Traits(DType type);
inline std::string_view Name(DType type) { return Traits(type).name; }
// Parses a type name, case-insensitively ("q4_k", "Q4_K", "f16").
std::optional<DType> ParseDType(std::string_view name);

// Bytes of one row of `n` elements, or nullopt if `n` is not a multiple of the block size or the
// size overflows. Untrusted shapes go through this.
std::optional<uint64_t> RowBytes(DType type, uint64_t n);

// The K-quant super-block size.
inline constexpr int64_t kQK_K = 256;

}  // namespace dizuo
