#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace dizuo {
namespace {

// Orders candidates best first; equal logits go to the lower id so every result is deterministic.
bool Better(TokenId a_id, float a_logit, TokenId b_id, float b_logit) {
  return a_logit > b_logit || (a_logit == b_logit && a_id < b_id);
}

// NaN logits never win: they count as -infinity.
float Clean(float logit) {
  return std::isnan(logit) ? -std::numeric_limits<float>::infinity() : logit;
}

TokenId Argmax(std::span<const float> logits) {
  TokenId best = 0;
  float best_logit = Clean(logits[0]);
  for (size_t i = 1; i < logits.size(); ++i) {
    const float logit = Clean(logits[i]);
    if (logit > best_logit) {
      best_logit = logit;
      best = static_cast<TokenId>(i);
    }
  }
  return best;
}

// A uniform double in [0, 1) from the top 53 bits of one raw draw: the same on every standard
// library, unlike std::uniform_real_distribution.
double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  const SamplingParams& p = params_;
  if (std::isnan(p.temperature)) Fail("temperature must be a number (got NaN)");
  if (p.top_k < 0) Fail("top-k must be >= 0 (0 turns it off), got {}", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    Fail("top-p must be in (0, 1] (1 turns it off), got {}", p.top_p);
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    Fail("min-p must be in [0, 1] (0 turns it off), got {}", p.min_p);
  }
  if (!(p.repeat_penalty > 0.0f && std::isfinite(p.repeat_penalty))) {
    Fail("repeat penalty must be a positive number (1 turns it off), got {}", p.repeat_penalty);
  }
  if (!std::isfinite(p.presence_penalty)) Fail("presence penalty must be a finite number");
  if (!std::isfinite(p.frequency_penalty)) Fail("frequency penalty must be a finite number");
  if (p.penalty_last_n < 0) {
    Fail("penalty window must be >= 0 tokens (0 turns penalties off), got {}", p.penalty_last_n);
  }
}

void Sampler::Accept(TokenId token) {
  if (params_.penalty_last_n == 0) return;
  history_.push_back(token);
  // Trimmed in bulk so that Accept stays O(1) amortized.
  const size_t limit = static_cast<size_t>(params_.penalty_last_n);
  if (history_.size() >= 2 * limit) history_.erase(history_.begin(), history_.end() - limit);
}

void Sampler::Reset() {
  history_.clear();
  rng_.seed(params_.seed);
}

TokenId Sampler::Sample(std::span<const float> input_logits) {
  if (input_logits.empty()) Fail("cannot sample from an empty set of logits");
  const SamplingParams& p = params_;
  const size_t n_vocab = input_logits.size();

  // Penalties: every penalty counts the last `penalty_last_n` accepted tokens (as llama.cpp does).
  // Repetition (llama.cpp): positive logits are divided by the penalty, negative ones multiplied.
  // Presence/frequency (OpenAI): logit -= presence * [count > 0] + frequency * count.
  std::span<const float> logits = input_logits;
  const bool penalize =
      p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (penalize && !history_.empty()) {
    penalized_.assign(input_logits.begin(), input_logits.end());
    const size_t window = std::min(history_.size(), static_cast<size_t>(p.penalty_last_n));
    recent_.assign(history_.end() - window, history_.end());
    std::sort(recent_.begin(), recent_.end());
    for (size_t i = 0; i < recent_.size();) {
      size_t j = i;
      while (j < recent_.size() && recent_[j] == recent_[i]) ++j;
      const TokenId id = recent_[i];
      const auto count = static_cast<float>(j - i);
      i = j;
      if (id < 0 || static_cast<size_t>(id) >= n_vocab) continue;
      float& logit = penalized_[id];
      logit = logit > 0.0f ? logit / p.repeat_penalty : logit * p.repeat_penalty;
      logit -= p.presence_penalty + p.frequency_penalty * count;
    }
    logits = penalized_;
  }

  if (p.temperature <= 0.0f) return Argmax(logits);

  // Top-k: a bounded heap keeps the k best in one pass; otherwise every token is a candidate.
  candidates_.clear();
  const auto worse = [](const Candidate& a, const Candidate& b) {
    return Better(a.id, a.logit, b.id, b.logit);
  };
  bool sorted = false;
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n_vocab) {
    const auto k = static_cast<size_t>(p.top_k);
    candidates_.reserve(k);
    for (size_t i = 0; i < n_vocab; ++i) {
      const Candidate c{static_cast<TokenId>(i), Clean(logits[i]), 0.0f};
      if (candidates_.size() < k) {
        candidates_.push_back(c);
        std::push_heap(candidates_.begin(), candidates_.end(), worse);
      } else if (Better(c.id, c.logit, candidates_.front().id, candidates_.front().logit)) {
        std::pop_heap(candidates_.begin(), candidates_.end(), worse);
        candidates_.back() = c;
        std::push_heap(candidates_.begin(), candidates_.end(), worse);
      }
    }
    std::sort_heap(candidates_.begin(), candidates_.end(), worse);  // best first
    sorted = true;
  } else {
    candidates_.resize(n_vocab);
    for (size_t i = 0; i < n_vocab; ++i) {
      candidates_[i] = {static_cast<TokenId>(i), Clean(logits[i]), 0.0f};
    }
  }

  float max_logit = -std::numeric_limits<float>::infinity();
  for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.logit);
  // Nothing finite to weigh (all -inf, or +inf present): the best token is the only sensible one.
  if (!std::isfinite(max_logit)) return Argmax(logits);

  // Softmax with temperature.
  double sum = 0.0;
  for (Candidate& c : candidates_) {
    c.p = std::exp((c.logit - max_logit) / p.temperature);
    sum += c.p;
  }
  for (Candidate& c : candidates_) c.p = static_cast<float>(c.p / sum);
  const float p_max = static_cast<float>(1.0 / sum);

  // Top-p and min-p each keep a prefix of the candidates in descending order, so applying min-p
  // first (an O(n) filter) gives the same set and leaves fewer candidates to sort for top-p.
  if (p.min_p > 0.0f) {
    const float threshold = p.min_p * p_max;
    std::erase_if(candidates_, [threshold](const Candidate& c) { return c.p < threshold; });
  }
  if (p.top_p < 1.0f) {
    if (sorted) {
      double cumulative = 0.0;
      size_t keep = 0;
      while (keep < candidates_.size() && cumulative < p.top_p) cumulative += candidates_[keep++].p;
      candidates_.resize(std::max<size_t>(keep, 1));
    } else {
      TopPUnsorted(p.top_p, max_logit);
    }
  }

  // Draw from the kept candidates, renormalized, walking them in id order (a fixed convention that
  // needs no sort of the full vocabulary when nothing was filtered).
  if (sorted || p.top_p < 1.0f) {
    std::sort(candidates_.begin(), candidates_.end(),
              [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
  }
  double kept = 0.0;
  for (const Candidate& c : candidates_) kept += c.p;
  const double target = Uniform01(rng_) * kept;
  double cumulative = 0.0;
  for (const Candidate& c : candidates_) {
    cumulative += c.p;
    if (target < cumulative) return c.id;
  }
  return candidates_.back().id;
}

// Top-p over unsorted candidates without sorting them all: candidates are bucketed by logit, the
// bucket where the cumulative mass (best buckets first) reaches top_p is found, every better bucket
// is kept whole, and only that bucket is sorted to find the exact cut.
void Sampler::TopPUnsorted(float top_p, float max_logit) {
  constexpr int kBuckets = 1024;
  constexpr float kRange = 40.0f;  // in units of (logit - max) / temperature; lower: last bucket
  const float scale = kBuckets / kRange / params_.temperature;
  const auto bucket_of = [&](const Candidate& c) {
    const float b = (max_logit - c.logit) * scale;
    return b < kBuckets - 1 ? static_cast<int>(b) : kBuckets - 1;
  };
  std::vector<double> mass(kBuckets, 0.0);
  for (const Candidate& c : candidates_) mass[bucket_of(c)] += c.p;
  int cut = 0;
  double before = 0.0;  // mass of the buckets better than `cut`
  while (cut < kBuckets - 1 && before + mass[cut] < top_p) before += mass[cut++];

  const auto better_end = std::partition(candidates_.begin(), candidates_.end(),
                                         [&](const Candidate& c) { return bucket_of(c) < cut; });
  const auto cut_end = std::partition(better_end, candidates_.end(),
                                      [&](const Candidate& c) { return bucket_of(c) == cut; });
  std::sort(better_end, cut_end, [](const Candidate& a, const Candidate& b) {
    return Better(a.id, a.logit, b.id, b.logit);
  });
  auto end = better_end;
  double cumulative = before;
  while (end != cut_end && (cumulative < top_p || end == candidates_.begin())) {
    cumulative += end->p;
    ++end;
  }
  candidates_.erase(end, candidates_.end());
}

}  // namespace dizuo
