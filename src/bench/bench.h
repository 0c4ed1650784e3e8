// The measurements of `dizuo bench`, as llama-bench makes them:
//   pp<P>: one batch of P tokens into an empty cache (split into forward passes of the engine's
//          n_batch), logits for the last token only;
//   tg<N>: N single-token forward passes from an empty cache, logits for each.
// With a depth D ("pp512 @ d4096", llama-bench's -d) the cache first receives D tokens (untimed),
// and the test's tokens follow them at positions D, D + 1, ...
// Token ids are fixed pseudo-random numbers (BenchTokenId), so tokenization and sampling are not
// measured. Each test runs once untimed (warm-up), then `reps` times from an empty cache.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/engine.h"
#include "runtime/scheduler.h"

namespace dizuo::bench {

enum class TestKind { kPrompt, kGeneration };

struct TestSpec {
  TestKind kind = TestKind::kPrompt;
  int n_tokens = 0;
  int reps = 5;
  int depth = 0;             // tokens in the cache before the test
  std::string Name() const;  // "pp512", "tg128", "tg128 @ d4096"
};

struct TestResult {
  TestSpec spec;
  std::vector<double> seconds;  // per repetition
  // Tokens per second of each repetition, then their mean and sample standard deviation.
  std::vector<double> tokens_per_second() const;
  double mean_tps() const;
  double stddev_tps() const;
  double mean_seconds() const;
  double stddev_seconds() const;
};

// The i-th benchmark token id in [0, n_vocab): splitmix64(i) mod n_vocab. bench/compare-llamacpp
// feeds llama.cpp the same ids.
int32_t BenchTokenId(uint64_t i, int n_vocab);

// Runs one test on sequence 0 of `engine`, whose cache must hold spec.depth + spec.n_tokens cells.
// Leaves the cache empty. With `profile`, sets it to the engine's profile of the test's own passes
// (warm-up and repetitions), without the passes that fill the cache to the depth.
TestResult RunTest(Engine& engine, const TestSpec& spec, SchedulerProfile* profile = nullptr);

// `after` minus `before`: the op counts and times of the passes in between (fallback groups are
// those of `after`).
SchedulerProfile ProfileDelta(const SchedulerProfile& after, const SchedulerProfile& before);
// sum += delta: counts and times; the labels, the uploaded bytes and the fallback groups become
// delta's.
void AddProfile(SchedulerProfile& sum, const SchedulerProfile& delta);

}  // namespace dizuo::bench
