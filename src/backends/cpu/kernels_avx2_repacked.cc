// AVX2 layouts of the CPU backend's own, into which weights are copied at load (kernels.h
// RepackFns). Compiled with the AVX2 flags of kernels_avx2.cc; MakeAvx2() installs them with
// AddAvx2RepackedKernels(). Helpers live in an anonymous namespace (see kernels_avx512.cc).
//
// q4_0x8: Q4_0 rows in groups of 8 blocks, one 32-bit lane per block. The file's layout (the AVX2
// tile, KernelQ4_0) spends per 32-block two f16 conversions, a broadcast, a nibble unpack with a
// 128-bit insert, a sign fix-up on both operands, vpmaddubsw, vpmaddwd, a conversion and an FMA.
// Here a step of 8 blocks is 4 loads, 12 mask/shift operations, 8 vpmaddubsw of unsigned nibbles
// (q + 8) with the activation (summed in i16: 8 × 2 × 15 × 128 < 2^15, so exact), one vpmaddwd,
// one f16 conversion of the 8 weight scales and one FMA: about a third of the operations. The
// −8·Σa term is computed once per activation block. The AVX2 host this was written on (an EPYC
// Zen 1, family 23 model 1: 256-bit operations split into two 128-bit ones) ran 125m Q4_0
// generation with 1 thread at 26% of the memory-bandwidth limit in the file's layout, so the
// operation count, not memory, set the speed.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_avx2_ops.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {
namespace {

using avx2::Hsum;

// ---- q4_0x8 ---------------------------------------------------------------------------------
//
// Layout (RepackQ4_0x8): a row of nb = k / 32 blocks, nb a multiple of 8 (row_bytes(k) = 0
// otherwise: such rows stay in the file's layout), 18 bytes per block as in the file. Group g of
// blocks 8g .. 8g + 7 at byte 144·g: 4 vectors of 32 bytes, dword l of vector v = block 8g + l's
// quant bytes 4v .. 4v + 3 (low nibbles: elements 4v .. 4v + 3, high nibbles: 16 + 4v ..
// 16 + 4v + 3), then the 8 blocks' f16 scales (16 bytes). A row is read front to back.
constexpr int64_t kX8Blocks = 8;
constexpr int64_t kQ4x8StepBytes = 18 * kX8Blocks;

size_t Q4_0x8RowBytes(int64_t k) {
  return k % (32 * kX8Blocks) == 0 ? static_cast<size_t>(k / 32 * 18) : 0;
}

void RepackQ4_0x8(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  const int64_t nb = k / 32;
  for (int64_t r = 0; r < rows; ++r) {
    const auto* b =
        reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(src) + r * src_stride);
    uint8_t* row = static_cast<uint8_t*>(dst) + r * Q4_0x8RowBytes(k);
    for (int64_t g = 0; g < nb / kX8Blocks; ++g) {
      uint8_t* group = row + kQ4x8StepBytes * g;
      for (int64_t l = 0; l < kX8Blocks; ++l) {
        const BlockQ4_0& blk = b[kX8Blocks * g + l];
        for (int v = 0; v < 4; ++v) std::memcpy(group + 32 * v + 4 * l, blk.qs + 4 * v, 4);
        std::memcpy(group + 128 + 2 * l, &blk.d, 2);
      }
    }
  }
}

// 8 Q8_0 activation blocks in the layout's lane order, kQ4x8ActBytes bytes (no alignment
// assumed): at 32·v, lane l holds block l's elements 4v .. 4v + 3 (v < 4), at 128 + 32·v its
// elements 16 + 4v .. 16 + 4v + 3; at 256, lane l = −8·Σa of block l (i32); at 288, its scale
// (f32).
constexpr int64_t kQ4x8ActBytes = 320;

inline __m256i LoadV(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline void StoreV(uint8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// Dwords 0-3 of x[0..7] (16 bytes each) transposed: lane l of out[v] = dword v of x[l].
inline void TransposeBlocks(const uint8_t* const x[8], __m256i out[4]) {
  __m256i y[4];
  for (int i = 0; i < 4; ++i) {
    y[i] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(x[i + 4]),
                               reinterpret_cast<const __m128i*>(x[i]));
  }
  const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpackhi_epi32(y[0], y[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(y[2], y[3]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

// Activation blocks 8s .. 8s + 7 of a Q8_0 row, prepared at dst.
inline void PrepQ4x8Act(const uint8_t* row, int64_t s, uint8_t* dst) {
  const auto* a = reinterpret_cast<const BlockQ8_0*>(row) + kX8Blocks * s;
  const uint8_t* lo[8];
  const uint8_t* hi[8];
  for (int l = 0; l < 8; ++l) {
    lo[l] = reinterpret_cast<const uint8_t*>(a[l].qs);
    hi[l] = lo[l] + 16;
  }
  __m256i q[8];
  TransposeBlocks(lo, q);
  TransposeBlocks(hi, q + 4);
  const __m256i ones = _mm256_set1_epi8(1);
  __m256i sum16 = _mm256_setzero_si256();  // |Σ| ≤ 8 · 2 · 128 per i16 lane
  for (int v = 0; v < 8; ++v) {
    StoreV(dst + 32 * v, q[v]);
    sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(ones, q[v]));
  }
  const __m256i sum = _mm256_madd_epi16(sum16, _mm256_set1_epi16(1));
  StoreV(dst + 256, _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, 3)));
  const __m256 d = _mm256_cvtph_ps(_mm_setr_epi16(
      static_cast<int16_t>(a[0].d), static_cast<int16_t>(a[1].d), static_cast<int16_t>(a[2].d),
      static_cast<int16_t>(a[3].d), static_cast<int16_t>(a[4].d), static_cast<int16_t>(a[5].d),
      static_cast<int16_t>(a[6].d), static_cast<int16_t>(a[7].d)));
  _mm256_storeu_ps(reinterpret_cast<float*>(dst + 288), d);
}

// One step of a weight row, decoded to unsigned nibbles (q + 8).
struct Q4x8W {
  __m256i lo[4], hi[4];
  __m256 d;
};

inline Q4x8W DecodeQ4x8(const uint8_t* step) {
  const __m256i mask = _mm256_set1_epi8(0x0f);
  Q4x8W w;
  for (int v = 0; v < 4; ++v) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(step + 32 * v));
    w.lo[v] = _mm256_and_si256(raw, mask);
    w.hi[v] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
  }
  w.d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(step + 128)));
  return w;
}

// acc + Σ_l (block l's exact integer sum) · d_w · d_a, one lane per block. Every path (tiles,
// gemv, gemm) runs exactly these operations per (weight row, activation row, step), in step order,
// so their results are bit-identical.
inline __m256 DotQ4x8(const Q4x8W& w, const uint8_t* a, __m256 acc) {
  __m256i s0 = _mm256_maddubs_epi16(w.lo[0], LoadV(a));
  __m256i s1 = _mm256_maddubs_epi16(w.hi[0], LoadV(a + 128));
  for (int v = 1; v < 4; ++v) {
    s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w.lo[v], LoadV(a + 32 * v)));
    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w.hi[v], LoadV(a + 128 + 32 * v)));
  }
  const __m256i s = _mm256_add_epi32(
      _mm256_madd_epi16(_mm256_add_epi16(s0, s1), _mm256_set1_epi16(1)), LoadV(a + 256));
  const __m256 da = _mm256_loadu_ps(reinterpret_cast<const float*>(a + 288));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(w.d, da), acc);
}

// Dot tiles (kernels.h DotTileFn) on Q8_0 activation rows: up to 4 × 4 outputs.
void TileQ4_0x8(int64_t k, const void* w, size_t ws, int nw, const void* a, size_t as, int na,
                float* out, size_t os) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  nw = std::min(nw, kTileRows);
  na = std::min(na, kTileRows);
  __m256 acc[kTileRows][kTileRows];
  for (auto& row : acc) {
    for (auto& x : row) x = _mm256_setzero_ps();
  }
  for (int64_t s = 0; s < k / (32 * kX8Blocks); ++s) {
    alignas(32) uint8_t act[kTileRows][kQ4x8ActBytes];
    for (int c = 0; c < na; ++c) PrepQ4x8Act(ab + c * as, s, act[c]);
    for (int r = 0; r < nw; ++r) {
      const Q4x8W wd = DecodeQ4x8(wb + r * ws + kQ4x8StepBytes * s);
      for (int c = 0; c < na; ++c) acc[r][c] = DotQ4x8(wd, act[c], acc[r][c]);
    }
  }
  for (int r = 0; r < nw; ++r) {
    for (int c = 0; c < na; ++c) out[c * os + r] = Hsum(acc[r][c]);
  }
}

// Generation: the activation row prepared once per MATMUL and thread (RepackFns::gemv_act), then
// each weight row read front to back.
size_t Q4x8ActBytes(int64_t k) { return static_cast<size_t>(k / (32 * kX8Blocks) * kQ4x8ActBytes); }

void PrepareQ4x8Act(int64_t k, const void* a, void* dst) {
  for (int64_t s = 0; s < k / (32 * kX8Blocks); ++s) {
    PrepQ4x8Act(static_cast<const uint8_t*>(a), s, static_cast<uint8_t*>(dst) + s * kQ4x8ActBytes);
  }
}

void GemvQ4_0x8(int64_t k, const void* w, size_t ws, int64_t n, const void* a, float* out) {
  const auto* act = static_cast<const uint8_t*>(a);
  const int64_t steps = k / (32 * kX8Blocks);
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + r * ws;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t s = 0; s < steps; ++s) {
      acc = DotQ4x8(DecodeQ4x8(row + kQ4x8StepBytes * s), act + s * kQ4x8ActBytes, acc);
    }
    out[r] = Hsum(acc);
  }
}

// Prompt batches (kernels.h GemmFns): a quad is, per step, the 4 rows' prepared activations
// (missing rows: zeros). The GEMM takes one weight row against one quad at a time: the row's step
// is decoded once for the 4 activation rows, which come from L1/L2.
size_t Q4x8QuadBytes(int64_t k) { return 4 * Q4x8ActBytes(k); }

void PackQ4x8Quad(int64_t k, const void* a, size_t a_stride, int na, void* dst) {
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int64_t s = 0; s < k / (32 * kX8Blocks); ++s) {
    for (int c = 0; c < 4; ++c) {
      uint8_t* x = static_cast<uint8_t*>(dst) + (4 * s + c) * kQ4x8ActBytes;
      if (c < na) {
        PrepQ4x8Act(ab + c * a_stride, s, x);
      } else {
        std::memset(x, 0, kQ4x8ActBytes);
      }
    }
  }
}

void GemmQ4_0x8(int64_t k, const void* w, size_t ws, int nw, const void* packed, int na, float* out,
                size_t os) {
  const int64_t steps = k / (32 * kX8Blocks);
  for (int q = 0; 4 * q < na; ++q) {
    const auto* act = static_cast<const uint8_t*>(packed) + 4 * steps * q * kQ4x8ActBytes;
    const int nc = std::min(4, na - 4 * q);
    for (int r = 0; r < nw; ++r) {
      const uint8_t* row = static_cast<const uint8_t*>(w) + r * ws;
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                       _mm256_setzero_ps()};
      for (int64_t s = 0; s < steps; ++s) {
        const Q4x8W wd = DecodeQ4x8(row + kQ4x8StepBytes * s);
        for (int c = 0; c < 4; ++c) {
          acc[c] = DotQ4x8(wd, act + (4 * s + c) * kQ4x8ActBytes, acc[c]);
        }
      }
      for (int c = 0; c < nc; ++c) out[(4 * q + c) * os + r] = Hsum(acc[c]);
    }
  }
}

}  // namespace

void AddAvx2RepackedKernels(Kernels* k) {
  k->repacked[static_cast<size_t>(DType::Q4_0)] = {
      "q4_0x8",     Q4_0x8RowBytes, RepackQ4_0x8,
      TileQ4_0x8,   GemvQ4_0x8,     {Q4x8QuadBytes, PackQ4x8Quad, GemmQ4_0x8},
      Q4x8ActBytes, PrepareQ4x8Act};
}

}  // namespace dizuo::cpu
