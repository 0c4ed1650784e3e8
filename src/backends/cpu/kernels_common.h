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

// Runs f.template operator()<NW, NA>() with the dot tile's run-time shape as template arguments,
// NW = min(nw, 4) weight rows and NA = min(na, 4) activation rows (nw, na ≥ 1; kernels.h
// kTileRows), so each ISA file writes its fixed-shape tile once:
//   WithTileShape(nw, na, [&]<int NW, int NA>() { TileFixed<K, NW, NA>(...); });
template <typename F>
inline void WithTileShape(int nw, int na, F&& f) {
  auto rows = [&]<int NW>() {
    switch (na) {
      case 1:
        return f.template operator()<NW, 1>();
      case 2:
        return f.template operator()<NW, 2>();
      case 3:
        return f.template operator()<NW, 3>();
      default:
        return f.template operator()<NW, 4>();
    }
  };
  switch (nw) {
    case 1:
      return rows.template operator()<1>();
    case 2:
      return rows.template operator()<2>();
    case 3:
      return rows.template operator()<3>();
    default:
      return rows.template operator()<4>();
  }
}

template <typename T>
inline T LoadUnaligned(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace dizuo::cpu
