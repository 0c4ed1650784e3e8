// Gemma 3, as llama.cpp builds it: embeddings scaled by sqrt(n_embd); per-head RMS norm of Q and K
// before RoPE (neox pairs); Q scaled by 1/sqrt(head size) and attention scale 1; sandwich norms
// (post-attention and post-FFN RMS norms before each residual add); GeGLU FFN (gelu_tanh).
// Five of every six layers attend within a sliding window with RoPE base 10000; every sixth
// (il % 6 == 5) is global with the file's RoPE base and scaling. Norm weights in GGUF already
// include Gemma's +1.
#include <cmath>

#include <fmt/format.h>

#include "model/forward.h"

namespace dizuo::model {

void BuildGemma3(ForwardContext& ctx, ForwardGraph& out) {
  Graph& g = ctx.graph;
  const ModelConfig& c = ctx.config;
  const int64_t t = ctx.n_tokens;

  Tensor* x = g.GetRows(ctx.weights.tok_embd, ctx.in.token_ids);
  x = g.Scale(x, std::sqrt(static_cast<float>(c.n_embd)));
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& l = ctx.weights.layers[static_cast<size_t>(il)];
    const bool last = il == c.n_layer - 1;
    const bool swa = c.IsSlidingWindowLayer(il);
    const RopeParams& rope = swa ? c.rope_swa : c.rope;
    Tensor* cur = g.RmsNorm(x, l.attn_norm, c.rms_eps);

    const bool cache_only = last && ctx.n_outputs == 0;  // the last layer fills the cache only
    auto [k, v, q] = ProjectKVQ(ctx, cur, l, !cache_only);
    k = g.RmsNorm(g.Reshape(k, {c.head_dim_k, c.n_head_kv, t}), l.k_norm, c.rms_eps);
    k = g.Rope(k, ctx.in.positions, nullptr, rope);
    auto [k_cells, v_cells] = StoreAndView(ctx, il, k, v);
    if (cache_only) return;

    q = g.RmsNorm(g.Reshape(q, {c.head_dim_k, c.n_head, t}), l.q_norm, c.rms_eps);
    q = g.Rope(q, ctx.in.positions, nullptr, rope);
    q = g.Scale(q, c.query_scale);
    AttentionParams attn;
    attn.scale = c.attention_scale;
    attn.window = swa ? c.sliding_window : 0;
    cur = g.Attention(q, k_cells, v_cells, ctx.in.token_info, ctx.in.cell_info, attn);
    cur = g.MatMul(cur, l.wo);

    if (last) {
      cur = SelectOutputRows(ctx, cur);
      x = SelectOutputRows(ctx, x);
    }
    cur = g.RmsNorm(cur, l.post_attn_norm, c.rms_eps);
    Tensor* sa_out = g.Add(cur, x);
    cur = g.RmsNorm(sa_out, l.ffn_norm, c.rms_eps);
    cur = g.Glu(g.MatMul(cur, l.ffn_gate), g.MatMul(cur, l.ffn_up), Activation::kGeluTanh);
    cur = g.MatMul(cur, l.ffn_down);
    cur = g.RmsNorm(cur, l.post_ffn_norm, c.rms_eps);
    x = g.Named(g.Add(cur, sa_out), fmt::format("l_out.{}", il));
  }
  out.logits = OutputLogits(ctx, x);
}

}  // namespace dizuo::model
