// ATTENTION over the KV cache. With f16 caches, no softcap and a head size that is a multiple of
// 64, tables that have a block kernel (kernels.h AttentionRows) get work items of up to 32 tokens ×
// the query heads of one kv head (the latest tokens first: they see the most cells), so each K and
// V row is converted once for up to 96 query rows: 125M llama Q4_0 pp512, 1 thread, ATTENTION
// 376 → about 42 ms per pass (--profile; whole pp512 846 → ~1450 t/s on a quiet machine).
// Otherwise, one work item per (token, query head), taken from a shared counter, as follows.
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

#include "backends/cpu/kernels.h"
#include "backends/cpu/ops.h"
#include "core/quant.h"

namespace dizuo::cpu {

namespace {

// The table's block kernel (kernels.h AttentionRows) takes f16 caches without softcap; it replaced
// the per-cell loop below for 125M llama Q4_0 pp512 on 1 thread, where ATTENTION was 48% of the
// time (376 of 787 ms per pass).
bool UsesRowsKernel(const Node& node, const Kernels& kern) {
  const int64_t d = node.src[0]->ne[0];
  return kern.attention_f16 != nullptr && node.src[1]->type == DType::F16 &&
         node.src[2]->type == DType::F16 && node.params.attention.softcap == 0.0f && d % 64 == 0 &&
         d <= kAttentionMaxHead;
}

int64_t Round16(int64_t n) { return (n + 15) / 16 * 16; }

// Tokens per work item of the block kernel: up to 32, fewer when their scores (tokens × query
// heads per kv head × cells floats) would pass 256 KB, so they stay in L2.
int64_t TokensPerItem(const Node& node) {
  const int64_t group = node.src[0]->ne[1] / node.src[1]->ne[1];
  return std::clamp<int64_t>((int64_t{1} << 16) / (group * Round16(node.src[1]->ne[2])), 1, 32);
}

}  // namespace

ScratchNeeds AttentionScratch(const Node& node) {
  // Per thread: the scores (then weights) of every cell, the rounded query, the accumulator.
  ScratchNeeds needs{0, static_cast<size_t>(node.src[1]->ne[2] + 2 * node.src[0]->ne[0])};
  if (UsesRowsKernel(node, SelectKernels())) {
    // The visibility bytes of the item's tokens, then the kernel's scratch.
    const int64_t tokens = TokensPerItem(node), c16 = Round16(node.src[1]->ne[2]);
    const int64_t group = node.src[0]->ne[1] / node.src[1]->ne[1];
    needs.thread_floats =
        std::max(needs.thread_floats,
                 static_cast<size_t>((tokens * c16 + 3) / 4) +
                     AttentionRowsScratch(node.src[0]->ne[0], tokens * group, node.src[1]->ne[2]));
  }
  return needs;
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

  if (UsesRowsKernel(node, kern)) {
    const int64_t hkv = kc.ne[1];
    const int64_t tb = TokensPerItem(node);
    const int64_t blocks = (t_count + tb - 1) / tb;
    // Few items for the threads (generation): the query heads of a group go to separate items.
    const int64_t heads = blocks * hkv >= 4 * ctx.nth ? group : 1;
    const int64_t splits = group / heads;
    const int64_t items = blocks * hkv * splits;
    const int64_t c16 = Round16(c_count);
    auto* mask = reinterpret_cast<uint8_t*>(ctx.thread_scratch);
    AttentionRows task;
    task.d = d;
    task.heads = static_cast<int>(heads);
    task.q_token_stride = q.nb[2] / sizeof(float);
    task.q_head_stride = q.nb[1] / sizeof(float);
    task.out_token_stride = out.nb[1] / sizeof(float);
    task.out_head_stride = static_cast<size_t>(d);
    task.visible = mask;
    task.mask_stride = static_cast<size_t>(c16);
    task.k_stride = kc.nb[2] / sizeof(uint16_t);
    task.v_stride = vc.nb[2] / sizeof(uint16_t);
    task.scale = p.scale;
    task.scratch = ctx.thread_scratch + (tb * c16 + 3) / 4;
    for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed); item < items;
         item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
      const int64_t b = blocks - 1 - item / (hkv * splits);  // the latest (largest) blocks first
      const int64_t kvh = (item / splits) % hkv;
      const int64_t h0 = kvh * group + (item % splits) * heads;
      const int64_t t0 = b * tb, nt = std::min(tb, t_count - t0);
      int64_t nc = 0;  // the cells past the last visible one are left out
      for (int64_t t = 0; t < nt; ++t) {
        const int32_t pos = tokens[2 * (t0 + t)], seq = tokens[2 * (t0 + t) + 1];
        uint8_t* m = mask + t * c16;
        for (int64_t c = 0; c < c_count; ++c) {
          const int32_t cell_pos = cells[2 * c];
          const bool seen = cells[2 * c + 1] == seq && cell_pos <= pos &&
                            (p.window <= 0 || pos - cell_pos < p.window);
          m[c] = seen ? 1 : 0;
          if (seen) nc = std::max(nc, c + 1);
        }
        std::fill(m + c_count, m + c16, uint8_t{0});
      }
      task.tokens = static_cast<int>(nt);
      task.q = reinterpret_cast<const float*>(static_cast<const char*>(q.data) + t0 * q.nb[2] +
                                              h0 * q.nb[1]);
      task.out = reinterpret_cast<float*>(static_cast<char*>(out.data) + t0 * out.nb[1]) + h0 * d;
      task.nc = nc;
      task.k =
          reinterpret_cast<const uint16_t*>(static_cast<const char*>(kc.data) + kvh * kc.nb[1]);
      task.v =
          reinterpret_cast<const uint16_t*>(static_cast<const char*>(vc.data) + kvh * vc.nb[1]);
      kern.attention_f16(task);
    }
    return;
  }

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
