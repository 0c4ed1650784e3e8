#include "model/forward.h"

#include "core/error.h"

namespace dizuo::model {
namespace {

// A view of the first `n` cells of a cache [D, H, C].
Tensor* CellPrefix(Graph& g, Tensor* cache, int n) {
  if (n == cache->ne[2]) return cache;
  Tensor& view = g.tensors().emplace_back(*cache);
  view.ne[2] = n;
  view.view_of = cache;
  view.name = cache->name + ".used";
  return &view;
}

}  // namespace

void CreateInputs(ForwardContext& ctx) {
  Graph& g = ctx.graph;
  const int64_t t = ctx.n_tokens;
  ctx.in.token_ids = g.NewInput(DType::I32, {t}, "token_ids");
  ctx.in.positions = g.NewInput(DType::I32, {t}, "positions");
  ctx.in.token_info = g.NewInput(DType::I32, {2, t}, "token_info");
  ctx.in.cell_info = g.NewInput(DType::I32, {2, ctx.n_kv}, "cell_info");
  ctx.in.store_cells = g.NewInput(DType::I32, {t}, "store_cells");
  if (ctx.n_outputs > 0 && ctx.n_outputs < ctx.n_tokens) {
    ctx.in.output_rows = g.NewInput(DType::I32, {ctx.n_outputs}, "output_rows");
  }
}

std::pair<Tensor*, Tensor*> StoreAndView(ForwardContext& ctx, int il, Tensor* k, Tensor* v) {
  Graph& g = ctx.graph;
  Tensor* k_cache = ctx.cache.k(il);
  Tensor* v_cache = ctx.cache.v(il);
  g.StoreKV(k_cache, k, ctx.in.store_cells);
  g.StoreKV(v_cache, v, ctx.in.store_cells);
  return {CellPrefix(g, k_cache, ctx.n_kv), CellPrefix(g, v_cache, ctx.n_kv)};
}

Tensor* SelectOutputRows(ForwardContext& ctx, Tensor* x) {
  if (ctx.in.output_rows == nullptr) return x;
  return ctx.graph.GetRows(x, ctx.in.output_rows);
}

Tensor* OutputLogits(ForwardContext& ctx, Tensor* x) {
  Graph& g = ctx.graph;
  x = g.RmsNorm(x, ctx.weights.output_norm, ctx.config.rms_eps);
  Tensor* logits = g.Named(g.MatMul(x, ctx.weights.output), "logits");
  g.MarkOutput(logits);
  return logits;
}

Tensor* Linear(Graph& g, Tensor* x, Tensor* w, Tensor* b) {
  Tensor* y = g.MatMul(x, w);
  return b ? g.Add(y, b) : y;
}

Projections ProjectKVQ(ForwardContext& ctx, Tensor* x, const LayerWeights& l, bool with_q) {
  Graph& g = ctx.graph;
  Projections p{g.MatMul(x, l.wk), g.MatMul(x, l.wv), with_q ? g.MatMul(x, l.wq) : nullptr};
  if (l.bk != nullptr) p.k = g.Add(p.k, l.bk);
  if (l.bv != nullptr) p.v = g.Add(p.v, l.bv);
  if (with_q && l.bq != nullptr) p.q = g.Add(p.q, l.bq);
  return p;
}

ForwardGraph Model::BuildForward(Graph& graph, KvCache& cache, int n_tokens, int n_outputs,
                                 int n_kv) const {
  DZ_ASSERT(n_tokens > 0 && n_outputs >= 0 && n_outputs <= n_tokens);
  DZ_ASSERT(n_kv > 0 && n_kv <= cache.n_cells());
  ForwardContext ctx{graph, config_, weights_, cache, {}, n_tokens, n_outputs, n_kv};
  CreateInputs(ctx);
  ForwardGraph out;
  out.inputs = ctx.in;
  switch (config_.arch) {
    case Arch::kLlama:
    case Arch::kQwen2:
      BuildLlama(ctx, out);
      break;
    case Arch::kGemma3:
      BuildGemma3(ctx, out);
      break;
  }
  return out;
}

}  // namespace dizuo::model
