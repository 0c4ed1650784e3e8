// Perplexity as llama.cpp's perplexity tool measures it (../shared/golden/perplexity.md), so that
// figures are comparable:
//   the token stream is cut into consecutive non-overlapping windows of n_ctx tokens; the first
//   token of each window becomes BOS (when the tokenizer adds BOS); each window is evaluated from
//   an empty cache; only the second half is scored: for i in [n_ctx/2, n_ctx - 1),
//   NLL_i = -log p(token[i+1] | token[0..i]), n_ctx/2 - 1 predictions per window.
//   PPL = exp(mean NLL); the ± figure is PPL · sqrt(var(NLL) / (N - 1)).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/engine.h"

namespace dizuo {

struct PerplexityResult {
  double ppl = 0;
  double ppl_stderr = 0;
  double mean_nll = 0;
  int64_t n_scored = 0;  // predictions scored
  int n_windows = 0;
  std::vector<double> running_ppl;  // PPL over the first k+1 windows, per window k
  std::vector<double> window_ppl;   // PPL of window k alone
};

// Called after each window: (windows done, windows in all, running PPL).
using PerplexityProgress = std::function<void(int, int, double)>;

// Evaluates `tokens` (the whole text tokenized once, with BOS as the tokenizer says) on sequence 0
// of `engine`, whose context must hold `n_ctx` tokens; it waits for the weights' copies made at
// load (Engine::WaitForRepackedWeights) and removes sequence 0 from the cache before each window.
// `n_windows` <= 0 means every whole window. Throws dizuo::Error when n_ctx is invalid or the text
// is shorter than one window.
PerplexityResult Perplexity(Engine& engine, std::span<const TokenId> tokens, int n_ctx,
                            int n_windows, const PerplexityProgress& progress = {});

}  // namespace dizuo
