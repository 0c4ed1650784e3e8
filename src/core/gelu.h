// gelu_tanh as the GGUF engines define it on the CPU (GLU's gelu_tanh, see core/graph.h).
//
// ggml's CPU path (GGML_GELU_FP16) does not evaluate gelu_tanh on f32 inputs: it rounds the input
// to f16 and reads a 65,536-entry table of f16 results, filled once with the f32 formula
//   gelu(h) = (0.5·h) · (1 + tanh((sqrt(2/π)·h) · (0.044715·h·h + 1)))
// (the inner a·b + c fused into one FMA by the compiler); inputs ≤ -10 give 0 and inputs ≥ 10
// give x itself. We define the activation the same way so that Gemma's logits (and greedy
// tokens at near-ties) match llama.cpp's. GeluTanhF16 below reproduces llama.cpp's table bit for
// bit on every input it is used for (|x| < 10; tests/llamacpp_match_test checks all 37,376 of
// them against the table read out of llama-cpp-python's libggml-cpu). tanh is taken in double and
// rounded to f32, which makes the result independent of the platform's tanhf, and every step is
// written so that no compiler can fuse another multiply-add into it.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "core/quant.h"

namespace dizuo {

// gelu_tanh of the f16 value `h` (bits), computed as above and rounded to f16 (bits).
inline uint16_t GeluTanhF16(uint16_t h) {
  const float x = F16ToF32(h);
  const float inner = std::fma(0.044715f * x, x, 1.0f);
  const float u = (0.79788456080286535587989211986876f * x) * inner;
  const auto t = static_cast<float>(std::tanh(static_cast<double>(u)));
  return F32ToF16((0.5f * x) * (1.0f + t));
}

// GeluTanhF16 for every f16 bit pattern (128 KiB, built on first use; thread-safe).
inline const std::array<uint16_t, 65536>& GeluTanhF16Table() {
  static const std::array<uint16_t, 65536> table = [] {
    std::array<uint16_t, 65536> t{};
    for (uint32_t i = 0; i < t.size(); ++i) t[i] = GeluTanhF16(static_cast<uint16_t>(i));
    return t;
  }();
  return table;
}

// The activation itself: 0 for x ≤ -10, x for x ≥ 10, else GeluTanhF16 of x rounded to f16.
inline float GeluTanhGguf(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return F16ToF32(GeluTanhF16(F32ToF16(x)));
}

}  // namespace dizuo
