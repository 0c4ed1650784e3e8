#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"

namespace dizuo {
namespace {

SamplingParams Plain(float temperature = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

std::vector<float> RandomLogits(size_t n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> logits(n);
  for (float& l : logits) l = normal(rng);
  return logits;
}

// Frequencies of `draws` samples.
std::map<TokenId, double> Frequencies(Sampler& sampler, const std::vector<float>& logits,
                                      int draws) {
  std::map<TokenId, double> freq;
  for (int i = 0; i < draws; ++i) freq[sampler.Sample(logits)] += 1.0 / draws;
  return freq;
}

// log(p) for a hand-made distribution: softmax gives back p exactly (up to rounding).
std::vector<float> LogProbs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

TEST(SamplerTest, GreedyIsArgmaxWithTiesToLowestId) {
  const std::vector<float> logits = RandomLogits(1000, 1);
  Sampler sampler(Plain(0.0f));
  const auto best = std::max_element(logits.begin(), logits.end()) - logits.begin();
  EXPECT_EQ(sampler.Sample(logits), best);
  EXPECT_EQ(Sampler(Plain(-1.0f)).Sample(logits), best);  // negative temperature: greedy too

  const std::vector<float> tied = {0.5f, 2.0f, 1.0f, 2.0f};
  EXPECT_EQ(sampler.Sample(tied), 1);
  const std::vector<float> with_nan = {NAN, 1.0f, 3.0f, NAN};
  EXPECT_EQ(sampler.Sample(with_nan), 2);
}

TEST(SamplerTest, TopKOneIsGreedy) {
  SamplingParams p = Plain(1.5f);
  p.top_k = 1;
  Sampler sampler(p);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> logits = RandomLogits(5000, seed, 0.1f);
    EXPECT_EQ(sampler.Sample(logits),
              std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const std::vector<float> logits = RandomLogits(512, 7, 1.0f);
  SamplingParams p;  // the defaults: temperature, top-k, top-p and min-p all active
  p.seed = 1234;
  Sampler a(p), b(p);
  p.seed = 1235;
  Sampler c(p);
  std::vector<TokenId> ta, tb, tc;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(a.Sample(logits));
    tb.push_back(b.Sample(logits));
    tc.push_back(c.Sample(logits));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  a.Reset();
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a.Sample(logits), ta[i]) << i;
}

TEST(SamplerTest, TemperatureOneDrawsTheSoftmax) {
  const std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  Sampler sampler(Plain(1.0f));
  const auto freq = Frequencies(sampler, LogProbs(probs), 40000);
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(freq.at(i), probs[i], 0.01) << i;
}

TEST(SamplerTest, HighTemperatureFlattens) {
  // p ∝ exp(log(p_i) / 2) = sqrt(p_i).
  const std::vector<double> probs = {0.64, 0.16, 0.16, 0.04};
  Sampler sampler(Plain(2.0f));
  const auto freq = Frequencies(sampler, LogProbs(probs), 40000);
  const double norm = 0.8 + 0.4 + 0.4 + 0.2;
  EXPECT_NEAR(freq.at(0), 0.8 / norm, 0.01);
  EXPECT_NEAR(freq.at(3), 0.2 / norm, 0.01);
}

TEST(SamplerTest, TopPKeepsSmallestSetReachingP) {
  const std::vector<double> probs = {0.15, 0.5, 0.05, 0.3};
  SamplingParams p = Plain(1.0f);
  p.top_p = 0.75f;  // 0.5 + 0.3 reaches it: tokens 1 and 3 (0.8 itself is a rounding coin toss)
  Sampler sampler(p);
  const auto freq = Frequencies(sampler, LogProbs(probs), 40000);
  EXPECT_EQ(freq.count(0), 0u);
  EXPECT_EQ(freq.count(2), 0u);
  EXPECT_NEAR(freq.at(1), 0.5 / 0.8, 0.01);
  EXPECT_NEAR(freq.at(3), 0.3 / 0.8, 0.01);

  p.top_p = 0.1f;  // below the best token alone: keep at least one
  Sampler tiny(p);
  const auto only = Frequencies(tiny, LogProbs(probs), 1000);
  EXPECT_EQ(only.size(), 1u);
  EXPECT_EQ(only.begin()->first, 1);
}

TEST(SamplerTest, MinPKeepsTokensNearTheBest) {
  const std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  SamplingParams p = Plain(1.0f);
  p.min_p = 0.25f;  // threshold 0.125: token 3 goes
  Sampler sampler(p);
  const auto freq = Frequencies(sampler, LogProbs(probs), 40000);
  EXPECT_EQ(freq.count(3), 0u);
  EXPECT_NEAR(freq.at(0), 0.5 / 0.95, 0.01);
  EXPECT_NEAR(freq.at(2), 0.15 / 0.95, 0.01);
}

TEST(SamplerTest, TopKLimitsCandidates) {
  const std::vector<double> probs = {0.1, 0.4, 0.2, 0.3};
  SamplingParams p = Plain(1.0f);
  p.top_k = 2;  // tokens 1 and 3
  Sampler sampler(p);
  const auto freq = Frequencies(sampler, LogProbs(probs), 40000);
  EXPECT_EQ(freq.size(), 2u);
  EXPECT_NEAR(freq.at(1), 0.4 / 0.7, 0.01);
}

// A plain implementation of the documented chain (full sort, in the documented order) with the same
// draw: the optimized sampler must pick exactly the same tokens.
TokenId ReferenceSample(const SamplingParams& p, const std::vector<float>& logits,
                        std::mt19937_64& rng) {
  std::vector<std::pair<float, TokenId>> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({logits[i], static_cast<TokenId>(i)});
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) c.resize(p.top_k);
  std::vector<double> prob;
  double sum = 0;
  for (auto& [l, id] : c) {
    prob.push_back(std::exp((l - c[0].first) / p.temperature));
    sum += prob.back();
  }
  for (double& q : prob) q = static_cast<float>(q / sum);
  size_t keep = prob.size();
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (keep = 0; keep < prob.size() && cum < p.top_p;) cum += prob[keep++];
  }
  size_t min_p_keep = 0;
  while (min_p_keep < keep && prob[min_p_keep] >= static_cast<float>(p.min_p * prob[0])) {
    ++min_p_keep;
  }
  keep = std::max<size_t>(1, std::min(keep, min_p_keep));
  c.resize(keep);
  prob.resize(keep);
  // The draw walks the kept candidates in id order.
  std::vector<size_t> order(keep);
  for (size_t i = 0; i < keep; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return c[a].second < c[b].second; });
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += prob[i];
  const double target = static_cast<double>(rng() >> 11) * 0x1.0p-53 * kept;
  double cum = 0;
  for (size_t i : order) {
    cum += prob[i];
    if (target < cum) return c[i].second;
  }
  return c[order.back()].second;
}

TEST(SamplerTest, MatchesPlainFullSortImplementation) {
  const std::vector<float> logits = RandomLogits(65536, 3, 2.0f);
  struct Case {
    float temperature;
    int top_k;
    float top_p, min_p;
  };
  for (const Case& k :
       {Case{0.8f, 40, 0.95f, 0.05f}, Case{1.0f, 0, 0.9f, 0.0f}, Case{1.3f, 0, 1.0f, 0.02f},
        Case{0.7f, 1000, 0.5f, 0.0f}, Case{2.0f, 0, 0.99f, 0.0f}}) {
    SamplingParams p = Plain(k.temperature);
    p.top_k = k.top_k;
    p.top_p = k.top_p;
    p.min_p = k.min_p;
    p.seed = 99;
    Sampler sampler(p);
    std::mt19937_64 rng(p.seed);
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(sampler.Sample(logits), ReferenceSample(p, logits, rng))
          << "temp " << k.temperature << " top_k " << k.top_k << " draw " << i;
    }
  }
}

TokenId GreedyAfter(SamplingParams p, const std::vector<TokenId>& history,
                    const std::vector<float>& logits) {
  p.temperature = 0.0f;
  Sampler sampler(p);
  for (TokenId t : history) sampler.Accept(t);
  return sampler.Sample(logits);
}

TEST(SamplerTest, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingParams p = Plain();
  p.repeat_penalty = 1.5f;  // 2.0 / 1.5 = 1.33 < 1.5
  EXPECT_EQ(GreedyAfter(p, {0}, {2.0f, 1.5f}), 1);
  p.repeat_penalty = 1.3f;  // 2.0 / 1.3 = 1.54 > 1.5
  EXPECT_EQ(GreedyAfter(p, {0}, {2.0f, 1.5f}), 0);
  p.repeat_penalty = 1.5f;  // -1.0 * 1.5 = -1.5 < -1.2
  EXPECT_EQ(GreedyAfter(p, {0}, {-1.0f, -1.2f}), 1);
  p.repeat_penalty = 1.1f;  // -1.1 > -1.2
  EXPECT_EQ(GreedyAfter(p, {0}, {-1.0f, -1.2f}), 0);
  // Counted once however often the token occurred.
  EXPECT_EQ(GreedyAfter(p, {0, 0, 0, 0}, {-1.0f, -1.2f}), 0);
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesSubtract) {
  SamplingParams p = Plain();
  const std::vector<float> logits = {1.0f, 0.5f};
  p.presence_penalty = 0.4f;  // 1.0 - 0.4 = 0.6 > 0.5, whatever the count
  EXPECT_EQ(GreedyAfter(p, {0, 0, 0}, logits), 0);
  p.presence_penalty = 0.6f;
  EXPECT_EQ(GreedyAfter(p, {0}, logits), 1);
  p.presence_penalty = 0.0f;
  p.frequency_penalty = 0.2f;  // 1.0 - 0.2 * 3 = 0.4 < 0.5; twice: 0.6 > 0.5
  EXPECT_EQ(GreedyAfter(p, {0, 0, 0}, logits), 1);
  EXPECT_EQ(GreedyAfter(p, {0, 0}, logits), 0);
  p.presence_penalty = 0.15f;  // 1.0 - 0.15 - 0.2 * 2 = 0.45 < 0.5
  EXPECT_EQ(GreedyAfter(p, {0, 0}, logits), 1);
  // Negative penalties encourage repetition.
  p.presence_penalty = 0.0f;
  p.frequency_penalty = -1.0f;
  EXPECT_EQ(GreedyAfter(p, {1}, logits), 1);
}

TEST(SamplerTest, PenaltiesCountOnlyTheLastNTokens) {
  SamplingParams p = Plain();
  p.frequency_penalty = 1.0f;
  p.penalty_last_n = 2;
  const std::vector<float> logits = {1.0f, 0.5f, -5.0f, -5.0f};
  EXPECT_EQ(GreedyAfter(p, {0, 2, 3}, logits), 0);  // token 0 left the window
  EXPECT_EQ(GreedyAfter(p, {2, 0, 3}, logits), 1);
  // Ids outside the vocabulary in the history are ignored.
  EXPECT_EQ(GreedyAfter(p, {7, 900}, logits), 0);
  p.penalty_last_n = 0;
  EXPECT_EQ(GreedyAfter(p, {0}, logits), 0);
  // A long history keeps working past the bulk trim.
  p.penalty_last_n = 3;
  std::vector<TokenId> history(100, 2);
  history.push_back(0);
  EXPECT_EQ(GreedyAfter(p, history, logits), 1);
  history.insert(history.end(), {2, 2, 2});
  EXPECT_EQ(GreedyAfter(p, history, logits), 0);
}

TEST(SamplerTest, RejectsBadParameters) {
  auto make = [](auto change) {
    SamplingParams p;
    change(p);
    return Sampler(p);
  };
  EXPECT_THROW(make([](SamplingParams& p) { p.top_p = 0.0f; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.top_p = 2.0f; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.min_p = -0.1f; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.min_p = 1.5f; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.top_k = -1; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.repeat_penalty = 0.0f; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.presence_penalty = INFINITY; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.frequency_penalty = NAN; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.penalty_last_n = -1; }), Error);
  EXPECT_THROW(make([](SamplingParams& p) { p.temperature = NAN; }), Error);
  EXPECT_NO_THROW(make([](SamplingParams& p) { p.temperature = -1.0f; }));
  Sampler ok{SamplingParams{}};
  EXPECT_THROW(ok.Sample({}), Error);
}

}  // namespace
}  // namespace dizuo
