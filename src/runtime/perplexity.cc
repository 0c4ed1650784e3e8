#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dizuo {
namespace {

// -log softmax(logits)[target], in double as llama.cpp computes it.
double NegativeLogLikelihood(std::span<const float> logits, TokenId target) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max_logit));
  return -static_cast<double>(logits[static_cast<size_t>(target)] - max_logit) + std::log(sum);
}

}  // namespace

PerplexityResult Perplexity(Engine& engine, std::span<const TokenId> tokens, int n_ctx,
                            int n_windows, const PerplexityProgress& progress) {
  if (n_ctx < 4 || n_ctx % 2 != 0)
    Fail("perplexity: n_ctx must be an even number >= 4, not {}", n_ctx);
  if (n_ctx > engine.n_ctx()) {
    Fail("perplexity: n_ctx {} exceeds the engine's context size {}", n_ctx, engine.n_ctx());
  }
  // Every window on the weights' final layouts: copies made at load sum in another order than the
  // file's layout, and which of them the background had completed would otherwise change the
  // result from run to run (Gemma 3 270M Q4_K_M, 4 windows of 512: PPL 15.3660 with all copies,
  // 15.2762 with none, 15.3926 in a run that had some).
  engine.WaitForRepackedWeights();
  const int available = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
  if (available == 0) {
    Fail("perplexity: the text has {} tokens, fewer than one window of {}", tokens.size(), n_ctx);
  }
  const int windows = n_windows > 0 ? std::min(n_windows, available) : available;
  const Tokenizer& tok = engine.tokenizer();
  const bool set_bos = tok.add_bos() && tok.bos() >= 0;
  const int first = n_ctx / 2;
  const size_t n_vocab = static_cast<size_t>(engine.n_vocab());

  PerplexityResult r;
  double nll_sum = 0, nll2_sum = 0;
  std::vector<BatchToken> batch(static_cast<size_t>(n_ctx));
  for (int w = 0; w < windows; ++w) {
    const size_t start = static_cast<size_t>(w) * static_cast<size_t>(n_ctx);
    for (int i = 0; i < n_ctx; ++i) {
      BatchToken& t = batch[static_cast<size_t>(i)];
      t.token = tokens[start + static_cast<size_t>(i)];
      t.pos = i;
      t.seq = 0;
      t.logits = i >= first && i < n_ctx - 1;
    }
    if (set_bos) batch[0].token = tok.bos();
    engine.RemoveSequence(0);
    std::span<const float> logits = engine.Decode(batch);
    engine.RemoveSequence(0);

    double window_nll = 0;
    for (int i = first; i < n_ctx - 1; ++i) {
      std::span<const float> row =
          logits.subspan(static_cast<size_t>(i - first) * n_vocab, n_vocab);
      const double v = NegativeLogLikelihood(row, tokens[start + static_cast<size_t>(i) + 1]);
      window_nll += v;
      nll_sum += v;
      nll2_sum += v * v;
    }
    r.n_scored += n_ctx - 1 - first;
    r.window_ppl.push_back(std::exp(window_nll / (n_ctx - 1 - first)));
    r.running_ppl.push_back(std::exp(nll_sum / static_cast<double>(r.n_scored)));
    if (progress) progress(w + 1, windows, r.running_ppl.back());
  }
  r.n_windows = windows;
  const double n = static_cast<double>(r.n_scored);
  r.mean_nll = nll_sum / n;
  r.ppl = std::exp(r.mean_nll);
  const double variance = nll2_sum / n - r.mean_nll * r.mean_nll;
  r.ppl_stderr = variance > 0 && n > 1 ? r.ppl * std::sqrt(variance / (n - 1)) : 0.0;
  return r;
}

}  // namespace dizuo
