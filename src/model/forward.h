// Shared pieces of the forward-pass builders (internal to src/model).
#pragma once

#include "core/graph.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace dizuo::model {

// State shared by the layers of one forward graph.
struct ForwardContext {
  Graph& graph;
  const ModelConfig& config;
  const Weights& weights;
  KvCache& cache;
  ForwardInputs in;
  int n_tokens = 0;
  int n_outputs = 0;
  int n_kv = 0;
};

// Creates the graph inputs of `ctx` (ctx.in).
void CreateInputs(ForwardContext& ctx);

// Writes layer `il`'s K [head_dim, n_head_kv, T] and V [head_dim·n_head_kv, T] rows to the cache
// and returns the views of the first n_kv cells that ATTENTION reads, as {k, v}.
std::pair<Tensor*, Tensor*> StoreAndView(ForwardContext& ctx, int il, Tensor* k, Tensor* v);

// At the last layer: keeps only the rows whose logits are wanted (no-op when all are).
Tensor* SelectOutputRows(ForwardContext& ctx, Tensor* x);

// Final norm and output projection of the selected rows; marks the logits as the graph output.
Tensor* OutputLogits(ForwardContext& ctx, Tensor* x);

// x·w (+ b when b is not null).
Tensor* Linear(Graph& g, Tensor* x, Tensor* w, Tensor* b);

// The K, V and (when `with_q`) Q projections of a layer's normalized input, unshaped, as {k, v, q}
// (q is null without `with_q`). The MATMULs come first and the biases after them, so the three
// products sit next to each other in the graph and the CPU backend runs them without a barrier
// between them (cpu_backend.cc BarriersAfter). llama 125M generation: 183 → 159 barriers per
// token. tg64 with 2 threads on the EPYC Zen 4 (bench/ab-dizuo, 4-6 rounds, before ÷ after): 1b
// Q4_0 1.00× (a first A/B 0.90×, rounds 0.80-1.00), 1b Q8_0 1.01×, 125m Q4_0 0.97×, Gemma 3
// 0.99×: no change beyond the host's noise.
struct Projections {
  Tensor* k;
  Tensor* v;
  Tensor* q;
};
Projections ProjectKVQ(ForwardContext& ctx, Tensor* x, const LayerWeights& l, bool with_q);

void BuildLlama(ForwardContext& ctx, ForwardGraph& out);  // llama and qwen2
void BuildGemma3(ForwardContext& ctx, ForwardGraph& out);

}  // namespace dizuo::model
