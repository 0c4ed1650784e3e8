// Block-format helpers shared by the ISA kernel files (header-only, no ISA-specific code).
#pragma once

#include <cstdint>
#include <cstring>

namespace dizuo::cpu {

// Q3_K: the signed scale (s - 32) of sub-block j (0..15).
inline int ScaleQ3_K(const uint8_t* s, int j) {
  const int low = (s[j % 8] >> (4 * (j / 8))) & 0x0f;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 0x03;
  return (low | (high << 4)) - 32;
}

template <typename T>
inline T LoadUnaligned(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace dizuo::cpu
