// ATTENTION over the KV cache, one work item per (token, query head), taken from a shared counter.
//
// Each item makes two passes over the cells: the scores of the visible cells (f16 keys with the
// query rounded to f16, through the ISA's dot kernel) and their maximum, then the softmax weights,
// normalized and (for an f16 V cache) rounded to f16 before they scale the V rows, as core/graph.h
// defines the op. The rounding needs the final sum, so there is no online (one-pass) softmax;
// the scores of one item take C floats of the thread's scratch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/ops.h"
#include "core/quant.h"

namespace dizuo::cpu {

ScratchNeeds AttentionScratch(const Node& node) {
  // Per thread: the scores (then weights) of every cell, the rounded query, the accumulator.
  return {0, static_cast<size_t>(node.src[1]->ne[2] + 2 * node.src[0]->ne[0])};
}

void Attention(const Node& node, const OpContext& ctx) {
  const Tensor& q = *node.src[0];
  const Tensor& kc = *node.src[1];
  const Tensor& vc = *node.src[2];
  const auto* tokens = static_cast<const int32_t*>(node.src[3]->data);
  const auto* cells = static_cast<const int32_t*>(node.src[4]->data);
  const Tensor& out = *node.out;
  const AttentionParams& p = node.params.attention;
  const int64_t d = q.ne[0], hq = q.ne[1], t_count = q.ne[2];
  const int64_t group = hq / kc.ne[1];
  const int64_t c_count = kc.ne[2];
  const bool k_f16 = kc.type == DType::F16;
  const bool v_f16 = vc.type == DType::F16;
  const Kernels& kern = *ctx.kernels;
  constexpr float kHidden = -std::numeric_limits<float>::infinity();

  float* weights = ctx.thread_scratch;
  float* q_rounded = weights + c_count;
  float* acc = q_rounded + d;

  const int64_t items = t_count * hq;
  for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed); item < items;
       item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
    const int64_t t = item / hq;
    const int64_t h = item % hq;
    const int64_t kvh = h / group;
    const int32_t pos = tokens[2 * t];
    const int32_t seq = tokens[2 * t + 1];
    const auto* qrow = reinterpret_cast<const float*>(static_cast<const char*>(q.data) +
                                                      t * q.nb[2] + h * q.nb[1]);
    float* orow = reinterpret_cast<float*>(static_cast<char*>(out.data) + t * out.nb[1]) + h * d;
    if (k_f16) {
      for (int64_t i = 0; i < d; ++i) q_rounded[i] = F16ToF32(F32ToF16(qrow[i]));
      qrow = q_rounded;
    }

    float max = kHidden;
    for (int64_t c = 0; c < c_count; ++c) {
      const int32_t cell_pos = cells[2 * c];
      if (cells[2 * c + 1] != seq || cell_pos > pos ||
          (p.window > 0 && pos - cell_pos >= p.window)) {
        weights[c] = kHidden;
        continue;
      }
      const char* krow = static_cast<const char*>(kc.data) + c * kc.nb[2] + kvh * kc.nb[1];
      float s = k_f16 ? kern.dot_f32_f16(qrow, reinterpret_cast<const uint16_t*>(krow), d)
                      : kern.dot_f32(qrow, reinterpret_cast<const float*>(krow), d);
      s *= p.scale;
      if (p.softcap > 0.0f) s = p.softcap * std::tanh(s / p.softcap);
      weights[c] = s;
      max = std::max(max, s);
    }
    std::fill(acc, acc + d, 0.0f);
    if (max != kHidden) {  // else no visible cell: zeros
      double sum = 0.0;
      for (int64_t c = 0; c < c_count; ++c) {
        weights[c] = weights[c] == kHidden ? 0.0f : std::exp(weights[c] - max);
        sum += weights[c];
      }
      const auto inv = static_cast<float>(1.0 / sum);
      for (int64_t c = 0; c < c_count; ++c) {
        if (weights[c] == 0.0f) continue;
        const char* vrow = static_cast<const char*>(vc.data) + c * vc.nb[2] + kvh * vc.nb[1];
        const float w = weights[c] * inv;
        if (v_f16) {
          kern.axpy_f16(F16ToF32(F32ToF16(w)), reinterpret_cast<const uint16_t*>(vrow), acc, d);
        } else {
          kern.axpy_f32(w, reinterpret_cast<const float*>(vrow), acc, d);
        }
      }
    }
    std::copy(acc, acc + d, orow);
  }
}

}  // namespace dizuo::cpu
