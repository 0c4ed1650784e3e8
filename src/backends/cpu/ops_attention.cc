// ATTENTION over the KV cache, one work item per (token, query head), taken from a shared counter.
//
// Each item walks the cells in blocks: scores of the visible cells of a block are computed first
// (f16 keys converted with the ISA's dot kernel), then the block is folded into an online softmax
// (running max and sum; the accumulator is rescaled only when the max grows), so the cost is one
// pass over K and V whatever the context length, and no C-sized buffer is needed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/ops.h"

namespace dizuo::cpu {
namespace {

constexpr int64_t kCellBlock = 64;

}  // namespace

ScratchNeeds AttentionScratch(const Node& node) {
  // Per thread: scores and cell indices of one block, and the D-long accumulator.
  return {0, static_cast<size_t>(2 * kCellBlock + node.src[0]->ne[0])};
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

  float* scores = ctx.thread_scratch;
  auto* index = reinterpret_cast<int32_t*>(scores + kCellBlock);
  float* acc = scores + 2 * kCellBlock;

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

    std::fill(acc, acc + d, 0.0f);
    float max = -std::numeric_limits<float>::infinity();
    float sum = 0.0f;
    for (int64_t c0 = 0; c0 < c_count; c0 += kCellBlock) {
      const int64_t c1 = std::min(c_count, c0 + kCellBlock);
      int n = 0;
      float block_max = -std::numeric_limits<float>::infinity();
      for (int64_t c = c0; c < c1; ++c) {
        const int32_t cell_pos = cells[2 * c];
        if (cells[2 * c + 1] != seq || cell_pos > pos) continue;
        if (p.window > 0 && pos - cell_pos >= p.window) continue;
        const char* krow = static_cast<const char*>(kc.data) + c * kc.nb[2] + kvh * kc.nb[1];
        float s = k_f16 ? kern.dot_f32_f16(qrow, reinterpret_cast<const uint16_t*>(krow), d)
                        : kern.dot_f32(qrow, reinterpret_cast<const float*>(krow), d);
        s *= p.scale;
        if (p.softcap > 0.0f) s = p.softcap * std::tanh(s / p.softcap);
        scores[n] = s;
        index[n] = static_cast<int32_t>(c);
        block_max = std::max(block_max, s);
        ++n;
      }
      if (n == 0) continue;
      if (block_max > max) {
        const float rescale = std::exp(max - block_max);  // 0 on the first block
        sum *= rescale;
        kern.scale_f32(rescale, acc, d);
        max = block_max;
      }
      for (int i = 0; i < n; ++i) {
        const float w = std::exp(scores[i] - max);
        sum += w;
        const char* vrow = static_cast<const char*>(vc.data) + index[i] * vc.nb[2] + kvh * vc.nb[1];
        if (v_f16) {
          kern.axpy_f16(w, reinterpret_cast<const uint16_t*>(vrow), acc, d);
        } else {
          kern.axpy_f32(w, reinterpret_cast<const float*>(vrow), acc, d);
        }
      }
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // no visible cell: zeros
    for (int64_t i = 0; i < d; ++i) orow[i] = acc[i] * inv;
  }
}

}  // namespace dizuo::cpu
