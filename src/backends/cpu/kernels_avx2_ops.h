// 256-bit helpers shared by kernels_avx2.cc and kernels_avx512.cc (the Zen 4 q8_0 GEMV runs the
// AVX2 tile's operations, and must give its results bit for bit).
//
// Include only from files compiled with at least -mavx2 -mfma -mf16c. The functions have internal
// linkage (static), so each file keeps its own copy, built with its own instruction set: an
// out-of-line copy from the AVX-512 file can never stand in for the AVX2 file's.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace dizuo::cpu::avx2 {

static inline float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }

// Sum of the 8 lanes, in a fixed order.
static inline float Hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// Sum of adjacent i16 pairs → 8 × i32.
static inline __m256i PairSums(__m256i x16) { return _mm256_madd_epi16(x16, _mm256_set1_epi16(1)); }

// Σ x·y over 4-element groups of signed int8 x and y → 8 × i32 (exact: |x·y| ≤ 2^14, pairs fit).
static inline __m256i DotI8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return PairSums(_mm256_maddubs_epi16(ax, sy));
}

}  // namespace dizuo::cpu::avx2
