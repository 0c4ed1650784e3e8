// The llama family (Llama 2/3, Mistral, TinyLlama, SmolLM) and qwen2, as llama.cpp builds them:
// pre-norm blocks, RoPE on Q and K (normal pairs for llama, neox for qwen2; optional per-frequency
// factors), grouped-query attention with scale 1/sqrt(head size), SiLU-gated FFN. qwen2 adds
// biases to the Q, K and V projections.
#include <fmt/format.h>

#include "model/forward.h"

namespace dizuo::model {

void BuildLlama(ForwardContext& ctx, ForwardGraph& out) {
  Graph& g = ctx.graph;
  const ModelConfig& c = ctx.config;
  const int64_t t = ctx.n_tokens;

  Tensor* x = g.GetRows(ctx.weights.tok_embd, ctx.in.token_ids);
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& l = ctx.weights.layers[static_cast<size_t>(il)];
    const bool last = il == c.n_layer - 1;
    Tensor* cur = g.RmsNorm(x, l.attn_norm, c.rms_eps);

    const bool cache_only = last && ctx.n_outputs == 0;  // the last layer fills the cache only
    auto [k, v, q] = ProjectKVQ(ctx, cur, l, !cache_only);
    k = g.Rope(g.Reshape(k, {c.head_dim_k, c.n_head_kv, t}), ctx.in.positions,
               ctx.weights.rope_freqs, c.rope);
    auto [k_cells, v_cells] = StoreAndView(ctx, il, k, v);
    if (cache_only) return;

    q = g.Rope(g.Reshape(q, {c.head_dim_k, c.n_head, t}), ctx.in.positions, ctx.weights.rope_freqs,
               c.rope);
    AttentionParams attn;
    attn.scale = c.attention_scale;
    cur = g.Attention(q, k_cells, v_cells, ctx.in.token_info, ctx.in.cell_info, attn);
    cur = Linear(g, cur, l.wo, l.bo);

    if (last) {
      cur = SelectOutputRows(ctx, cur);
      x = SelectOutputRows(ctx, x);
    }
    Tensor* ffn_in = g.Add(cur, x);
    cur = g.RmsNorm(ffn_in, l.ffn_norm, c.rms_eps);
    cur = g.Glu(g.MatMul(cur, l.ffn_gate), g.MatMul(cur, l.ffn_up), Activation::kSilu);
    cur = g.MatMul(cur, l.ffn_down);
    x = g.Named(g.Add(cur, ffn_in), fmt::format("l_out.{}", il));
  }
  out.logits = OutputLogits(ctx, x);
}

}  // namespace dizuo::model
