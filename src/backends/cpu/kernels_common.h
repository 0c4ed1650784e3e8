// Block-format helpers shared by the ISA kernel files (header-only, no ISA-specific code).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {

// Q3_K: the signed scale (s - 32) of sub-block j (0..15).
inline int ScaleQ3_K(const uint8_t* s, int j) {
  const int low = (s[j % 8] >> (4 * (j / 8))) & 0x0f;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 0x03;
  return (low | (high << 4)) - 32;
}

// Q4_K / Q5_K: the 8 sub-block scales into sc, and Σ_j m_j · (the Q8_K activation's two bsums of
// sub-block j), the integer the block's dot scales by its dmin.
inline int ScalesAndMinSumK4(const uint8_t* scales, const int16_t* bsums, int sc[8]) {
  int mins = 0;
  for (int j = 0; j < 8; ++j) {
    int m;
    UnpackScaleMinK4(scales, j, &sc[j], &m);
    mins += m * (bsums[2 * j] + bsums[2 * j + 1]);
  }
  return mins;
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

// A dot tile (kernels.h DotTileFn) of a block kernel K (K::W and K::A, the weight and activation
// blocks of K::kBlock elements; K::Block(w, a, acc) adds one block pair into an Acc): NW × NA
// outputs, blocks in order, each accumulator seeing the same operations whatever the tile's shape,
// each output Finish::Of(acc). BlockTile dispatches to it. The AVX2 and NEON tables' tiles on the
// file's layouts. Not inlined into BlockTile: inlined, GCC 12 compiled the AVX2 q4_0 tiles 4%
// slower (llama 125m Q4_0 pp64, DIZUO_CPU_ISA=avx2 --no-repack, 8 rounds).
template <typename K, typename Acc, typename Finish, int NW, int NA>
__attribute__((noinline)) void BlockTileFixed(int64_t k, const uint8_t* w, size_t ws,
                                              const uint8_t* a, size_t as, float* out, size_t os) {
  const int64_t nb = k / K::kBlock;
  Acc acc[NW][NA];
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < NW; ++r) {
      const auto* wb = reinterpret_cast<const typename K::W*>(w + r * ws) + b;
      for (int c = 0; c < NA; ++c) {
        K::Block(wb, reinterpret_cast<const typename K::A*>(a + c * as) + b, acc[r][c]);
      }
    }
  }
  for (int r = 0; r < NW; ++r) {
    for (int c = 0; c < NA; ++c) out[c * os + r] = Finish::Of(acc[r][c]);
  }
}

template <typename K, typename Acc, typename Finish>
void BlockTile(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
               float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  WithTileShape(nw, na, [&]<int NW, int NA>() {
    BlockTileFixed<K, Acc, Finish, NW, NA>(k, wb, ws, ab, as, out, os);
  });
}

// Kernels::weighted_rows from a table's own axpy_f16 / axpy_f32 (passed as template arguments so
// they inline): for each cell c in order and each row r < nr, acc[r·d ..] += w · V[c] with
// w = s[r·s_stride + c] · scale[r], rounded to f16 when round_f16 — exactly that sequence of axpy
// calls.
template <auto kAxpyF16, auto kAxpyF32>
void WeightedRowsWith(int64_t d, int64_t n, const float* s, size_t s_stride, const float* scale,
                      int nr, bool round_f16, DType v_type, const void* v, size_t v_stride,
                      float* acc) {
  const auto* bytes = static_cast<const uint8_t*>(v);
  for (int64_t c = 0; c < n; ++c) {
    const uint8_t* row = bytes + c * v_stride;
    for (int r = 0; r < nr; ++r) {
      float w = s[static_cast<size_t>(r) * s_stride + static_cast<size_t>(c)] * scale[r];
      if (round_f16) w = F16ToF32(F32ToF16(w));
      if (v_type == DType::F16) {
        kAxpyF16(w, reinterpret_cast<const uint16_t*>(row), acc + r * d, d);
      } else {
        kAxpyF32(w, reinterpret_cast<const float*>(row), acc + r * d, d);
      }
    }
  }
}

// A Q5_0 block's qh (bit e: the fifth bit of element e) with its bits transposed for the 5-bit
// layouts (q5_0x8, q5_0x16): bit u of byte b is bit 4u + b, the fifth bit of the element in byte b
// of the block's dword in a step's vector u (u < 4: its low nibbles, elements 4u + b; u ≥ 4: the
// high nibbles of vector u − 4, elements 16 + 4(u − 4) + b = 4u + b). One shift then brings a
// vector's fifth bits to bit 4 of every byte.
inline uint32_t SpreadQ5Bits(uint32_t qh) {
  uint32_t out = 0;
  for (int u = 0; u < 8; ++u) {
    for (int b = 0; b < 4; ++b) out |= ((qh >> (4 * u + b)) & 1u) << (8 * b + u);
  }
  return out;
}

// SpreadQ5Bits's inverse, by a 256-entry table (bit u of x at bit 4u): the prompt GEMM's weight
// conversion runs it for every block and row, where a loop over the 32 bits cost Gemma 3 270M's
// pp128 10% (twenty-second session).
inline uint32_t GatherQ5Bits(uint32_t spread) {
  static constexpr auto kTable = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t x = 0; x < 256; ++x) {
      for (int u = 0; u < 8; ++u) t[x] |= ((x >> u) & 1u) << (4 * u);
    }
    return t;
  }();
  uint32_t qh = 0;
  for (int b = 0; b < 4; ++b) qh |= kTable[(spread >> (8 * b)) & 0xff] << b;
  return qh;
}

template <typename T>
inline T LoadUnaligned(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace dizuo::cpu
