// Turning logits into the next token: penalties, then temperature, top-k, top-p, min-p, and a draw
// from a seeded generator (greedy when temperature <= 0).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace dizuo {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy (argmax)
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; applied to the last `penalty_last_n` tokens
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int penalty_last_n = 64;
  uint64_t seed = 0xD1205EEDull;
};

class Sampler {
 public:
  // Throws dizuo::Error when a parameter is out of range (negative temperature is allowed: greedy).
  explicit Sampler(const SamplingParams& params);
  // Picks the next token from `logits` (n_vocab floats). Does not record it; call Accept.
  TokenId Sample(std::span<const float> logits);
  // Records a token for the penalties (prompt tokens too).
  void Accept(TokenId token);
  // Forgets the accepted tokens and reseeds the generator: the state right after construction.
  void Reset();

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<TokenId> history_;
  struct Candidate {
    TokenId id;
    float logit;
    float p;
  };
  void TopPUnsorted(float top_p, float max_logit);

  std::vector<Candidate> candidates_;
  std::vector<float> penalized_;  // logits after penalties (scratch)
  std::vector<TokenId> recent_;   // the penalty window, sorted (scratch)
};

}  // namespace dizuo
