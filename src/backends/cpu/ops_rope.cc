// ROPE (ggml's rope_ext): cos/sin are computed once per token into shared scratch (for a single
// token, by every thread into its own), then every (token, head) row is rotated, rows split across
// threads.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "backends/cpu/ops.h"

namespace dizuo::cpu {
namespace {

// The rotary dimension at which the wavelength equals n_ctx_orig / n_rotations (YaRN).
float YarnCorrDim(int n_rot, int n_ctx_orig, float n_rotations, float base) {
  return static_cast<float>(n_rot) *
         std::log(static_cast<float>(n_ctx_orig) /
                  (n_rotations * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

}  // namespace

ScratchNeeds RopeScratch(const Node& node) {
  // cos and sin for n_rot / 2 pairs per token: shared, or for a single token (generation) in each
  // thread's own area, where every thread computes it (n_rot / 2 cos and sin, about a microsecond)
  // rather than wait at a barrier for one thread to.
  const auto floats = static_cast<size_t>(node.src[0]->ne[2] * node.params.rope.n_rot);
  if (node.src[0]->ne[2] == 1) return {.thread_floats = floats};
  return {.shared_bytes = floats * sizeof(float)};
}

void Rope(const Node& node, const OpContext& ctx) {
  const Tensor& x = *node.src[0];
  const auto* pos = static_cast<const int32_t*>(node.src[1]->data);
  const auto* factors = node.src[2] ? static_cast<const float*>(node.src[2]->data) : nullptr;
  const RopeParams& p = node.params.rope;
  const int half = p.n_rot / 2;
  const int64_t tokens = x.ne[2];
  const bool own_table = tokens == 1;  // see RopeScratch
  // [T][cos half | sin half]
  float* table = own_table ? ctx.thread_scratch : reinterpret_cast<float*>(ctx.shared_scratch);

  int64_t begin = 0, end = 1;
  if (!own_table) SplitRange(tokens, ctx.ith, ctx.nth, &begin, &end);
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  float corr_low = 0.0f, corr_high = 0.0f;
  float mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) {
    corr_low =
        std::max(0.0f, std::floor(YarnCorrDim(p.n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base)));
    corr_high = std::min(static_cast<float>(p.n_rot - 1),
                         std::ceil(YarnCorrDim(p.n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base)));
    mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
  }
  for (int64_t t = begin; t < end; ++t) {
    float* cos_t = table + t * p.n_rot;
    float* sin_t = cos_t + half;
    float theta = static_cast<float>(pos[t]);  // pos · theta_scale^i, by repeated product as ggml
    for (int i = 0; i < half; ++i) {
      const float extrap = theta / (factors ? factors[i] : 1.0f);
      const float interp = p.freq_scale * extrap;
      float angle = interp;
      if (p.ext_factor != 0.0f) {
        const float y = (static_cast<float>(i) - corr_low) / std::max(0.001f, corr_high - corr_low);
        const float mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * p.ext_factor;
        angle = interp * (1 - mix) + extrap * mix;
      }
      cos_t[i] = std::cos(angle) * mscale;
      sin_t[i] = std::sin(angle) * mscale;
      theta *= theta_scale;
    }
  }
  if (!own_table) ctx.Barrier();

  const int64_t heads = x.ne[1];
  const int64_t d = x.ne[0];
  SplitRange(x.rows(), ctx.ith, ctx.nth, &begin, &end);
  const bool neox = p.mode == RopeMode::kNeox;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t t = (r / heads) % tokens;
    const float* cos_t = table + t * p.n_rot;
    const float* sin_t = cos_t + half;
    const auto* in = reinterpret_cast<const float*>(RowPtr(x, r));
    auto* out = reinterpret_cast<float*>(RowPtr(*node.out, r));
    if (neox) {
      for (int i = 0; i < half; ++i) {
        const float x0 = in[i], x1 = in[i + half];
        out[i] = x0 * cos_t[i] - x1 * sin_t[i];
        out[i + half] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float x0 = in[2 * i], x1 = in[2 * i + 1];
        out[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
        out[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    }
    for (int64_t i = p.n_rot; i < d; ++i) out[i] = in[i];
  }
}

}  // namespace dizuo::cpu
