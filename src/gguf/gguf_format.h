// Facts about the GGUF encoding shared by the reader and the writer (internal to src/gguf).
#pragma once

#include <cstdint>
#include <string_view>

#include "gguf/gguf.h"

namespace dizuo::gguf {

inline constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
// magic, u32 version, u64 tensor count, u64 key/value count.
inline constexpr uint64_t kHeaderSize = 4 + 4 + 8 + 8;
// The smallest key/value pair: an empty-length key (u64), a value type (u32), a one-byte value.
// Used to bound counts by the bytes that exist, never as a statement of what is valid.
inline constexpr uint64_t kMinKeyValueSize = 8 + 4 + 1;
// The smallest tensor info: name length (u64), n_dims (u32), one dimension (u64), type (u32),
// offset (u64).
inline constexpr uint64_t kMinTensorInfoSize = 8 + 4 + 8 + 4 + 8;
// GGML_MAX_DIMS.
inline constexpr uint32_t kMaxDims = 4;
// Arrays of arrays are legal GGUF; deeper nesting than this is treated as hostile.
inline constexpr int kMaxArrayDepth = 8;
inline constexpr std::string_view kAlignmentKey = "general.alignment";

inline bool IsValidValueType(uint32_t id) {
  return id <= static_cast<uint32_t>(ValueType::kFloat64);
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace dizuo::gguf
