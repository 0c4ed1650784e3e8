// The measurements of `dizuo bench`, as llama-bench makes them:
//   pp<P>: one batch of P tokens into an empty cache (split into forward passes of the engine's
//          n_batch), logits for the last token only;
//   tg<N>: N single-token forward passes from an empty cache, logits for each.
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
  std::string Name() const;  // "pp512", "tg128"
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

// Runs one test on sequence 0 of `engine`, whose cache must hold spec.n_tokens cells. Leaves the
// cache empty.
TestResult RunTest(Engine& engine, const TestSpec& spec);

// `after` minus `before`: the op counts and times of the passes in between (fallback groups are
// those of `after`).
SchedulerProfile ProfileDelta(const SchedulerProfile& after, const SchedulerProfile& before);

}  // namespace dizuo::bench
