#include "bench/bench.h"

#include <chrono>
#include <cmath>
#include <numeric>

#include <fmt/core.h>

#include "core/error.h"

namespace dizuo::bench {
namespace {

double Mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double SampleStddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double mean = Mean(v);
  double sum = 0;
  for (double x : v) sum += (x - mean) * (x - mean);
  return std::sqrt(sum / static_cast<double>(v.size() - 1));
}

// Evaluates the test's tokens once; returns the seconds the forward passes took. With `profile`,
// adds to it the profile of the timed passes (not the depth's).
double RunOnce(Engine& engine, const TestSpec& spec, SchedulerProfile* profile) {
  engine.RemoveSequence(0);
  const int n = spec.n_tokens;
  const int d = spec.depth;
  const int n_vocab = engine.n_vocab();
  if (d > 0) {
    std::vector<BatchToken> context(static_cast<size_t>(d));
    for (int i = 0; i < d; ++i)
      context[static_cast<size_t>(i)] = {BenchTokenId(i, n_vocab), i, 0, i == d - 1};
    engine.Decode(context);
  }
  const SchedulerProfile before = profile ? engine.profile() : SchedulerProfile{};
  double seconds = 0;
  if (spec.kind == TestKind::kPrompt) {
    std::vector<BatchToken> batch(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      batch[static_cast<size_t>(i)] = {BenchTokenId(d + i, n_vocab), d + i, 0, i == n - 1};
    const auto start = std::chrono::steady_clock::now();
    engine.Decode(batch);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } else {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      const BatchToken token{BenchTokenId(d + i, n_vocab), d + i, 0, true};
      engine.Decode(std::span(&token, 1));
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (profile) AddProfile(*profile, ProfileDelta(engine.profile(), before));
  engine.RemoveSequence(0);
  return seconds;
}

}  // namespace

std::string TestSpec::Name() const {
  const std::string name = fmt::format("{}{}", kind == TestKind::kPrompt ? "pp" : "tg", n_tokens);
  return depth > 0 ? fmt::format("{} @ d{}", name, depth) : name;
}

std::vector<double> TestResult::tokens_per_second() const {
  std::vector<double> tps;
  for (double s : seconds) tps.push_back(s > 0 ? spec.n_tokens / s : 0);
  return tps;
}
double TestResult::mean_tps() const { return Mean(tokens_per_second()); }
double TestResult::stddev_tps() const { return SampleStddev(tokens_per_second()); }
double TestResult::mean_seconds() const { return Mean(seconds); }
double TestResult::stddev_seconds() const { return SampleStddev(seconds); }

int32_t BenchTokenId(uint64_t i, int n_vocab) {
  DZ_ASSERT(n_vocab > 0);
  uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<int32_t>(z % static_cast<uint64_t>(n_vocab));
}

TestResult RunTest(Engine& engine, const TestSpec& spec, SchedulerProfile* profile) {
  if (spec.n_tokens <= 0) Fail("a benchmark test needs at least one token, not {}", spec.n_tokens);
  if (spec.reps <= 0) Fail("repetitions must be positive, not {}", spec.reps);
  if (spec.depth < 0) Fail("a benchmark depth must not be negative, not {}", spec.depth);
  TestResult result;
  result.spec = spec;
  if (profile) *profile = SchedulerProfile{};
  RunOnce(engine, spec, profile);  // warm-up: page faults, first-touch allocation, caches
  for (int r = 0; r < spec.reps; ++r) result.seconds.push_back(RunOnce(engine, spec, profile));
  return result;
}

namespace {

// to += sign · from per key (OpTiming count and seconds; keys missing from `to` are added with
// from's other fields); keys left with no runs are dropped.
template <typename Map>
void CombineTimings(Map& to, const Map& from, int sign) {
  for (const auto& [key, timing] : from) {
    auto [it, added] = to.try_emplace(key, timing);
    if (added) it->second.count = it->second.seconds = 0;
    it->second.count += sign * timing.count;
    it->second.seconds += sign * timing.seconds;
  }
  std::erase_if(to, [](const auto& entry) { return entry.second.count == 0; });
}

}  // namespace

SchedulerProfile ProfileDelta(const SchedulerProfile& after, const SchedulerProfile& before) {
  SchedulerProfile d = after;
  d.passes -= before.passes;
  d.nodes -= before.nodes;
  d.fallback_nodes -= before.fallback_nodes;
  CombineTimings(d.ops, before.ops, -1);
  CombineTimings(d.matmuls, before.matmuls, -1);
  d.copies.count -= before.copies.count;
  d.copies.seconds -= before.copies.seconds;
  d.copy_bytes -= before.copy_bytes;
  return d;
}

void AddProfile(SchedulerProfile& sum, const SchedulerProfile& delta) {
  sum.selected = delta.selected;
  sum.fallback = delta.fallback;
  sum.timed = delta.timed;
  sum.weight_upload_bytes = delta.weight_upload_bytes;
  sum.passes += delta.passes;
  sum.nodes += delta.nodes;
  sum.fallback_nodes += delta.fallback_nodes;
  CombineTimings(sum.ops, delta.ops, 1);
  CombineTimings(sum.matmuls, delta.matmuls, 1);
  sum.copies.count += delta.copies.count;
  sum.copies.seconds += delta.copies.seconds;
  sum.copy_bytes += delta.copy_bytes;
  sum.fallbacks = delta.fallbacks;
}

}  // namespace dizuo::bench
