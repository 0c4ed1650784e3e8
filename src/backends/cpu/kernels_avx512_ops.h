// 512-bit helpers shared by kernels_avx512.cc and kernels_avx512_f16.cc.
//
// Include only from files compiled with the AVX-512 table's flags. The functions have internal
// linkage (static), as in kernels_avx2_ops.h.
#pragma once

#include <immintrin.h>

namespace dizuo::cpu::avx512 {

// In place: v[j]'s 128-bit block b becomes v[b]'s block j (a 4 × 4 transpose of 128-bit blocks).
static inline void TransposeBlocks(__m512& v0, __m512& v1, __m512& v2, __m512& v3) {
  const __m512 c0 = _mm512_shuffle_f32x4(v0, v1, 0x88);  // v0.b0 v0.b2 v1.b0 v1.b2
  const __m512 c1 = _mm512_shuffle_f32x4(v0, v1, 0xDD);  // v0.b1 v0.b3 v1.b1 v1.b3
  const __m512 c2 = _mm512_shuffle_f32x4(v2, v3, 0x88);
  const __m512 c3 = _mm512_shuffle_f32x4(v2, v3, 0xDD);
  v0 = _mm512_shuffle_f32x4(c0, c2, 0x88);
  v1 = _mm512_shuffle_f32x4(c1, c3, 0x88);
  v2 = _mm512_shuffle_f32x4(c0, c2, 0xDD);
  v3 = _mm512_shuffle_f32x4(c1, c3, 0xDD);
}

}  // namespace dizuo::cpu::avx512
