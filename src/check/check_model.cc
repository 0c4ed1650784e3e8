// Model-level grading: the same tokens through the Engine on the backend and on the reference.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "check/check.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "runtime/engine.h"

namespace dizuo::check {
namespace {

struct Logits {
  std::vector<float> values;  // n_tokens × n_vocab
  double seconds = 0;
};

std::unique_ptr<Engine> LoadEngine(const std::string& path, const std::string& backend,
                                   const BackendOptions& backend_options, int n_tokens) {
  EngineOptions o;
  o.model_path = path;
  o.backend = backend;
  o.threads = backend_options.threads;
  o.n_ctx = n_tokens;
  o.n_batch = n_tokens;
  auto engine = Engine::Load(o);
  // Graded on the weights' final layouts, not on whichever copies the background made in time.
  engine->WaitForRepackedWeights();
  return engine;
}

Logits Run(Engine& engine, std::span<const TokenId> tokens) {
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch.push_back({tokens[i], static_cast<int32_t>(i), 0, true});
  }
  const auto start = std::chrono::steady_clock::now();
  std::span<const float> out = engine.Decode(batch);
  Logits l;
  l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  l.values.assign(out.begin(), out.end());
  return l;
}

// Whether any weight matrix (a tensor of two or more dimensions) is quantized.
bool HasQuantizedWeights(const std::string& path) {
  const gguf::File file = gguf::File::Open(path);
  for (const gguf::TensorInfo& t : file.tensors()) {
    if (t.shape.size() >= 2 && Traits(t.type).quantized) return true;
  }
  return false;
}

// log softmax of one row, in double.
void LogSoftmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  const double log_sum = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - log_sum;
}

void Compare(ModelResult& r, const Logits& ref, const Logits& got, std::span<const TokenId> tokens,
             int64_t n_vocab) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  r.non_finite = 0;
  for (float v : got.values) r.non_finite += std::isfinite(v) ? 0 : 1;
  if (r.non_finite > 0) {
    r.top1 = 0;
    r.mean_kl = r.max_kl = r.ppl_backend = std::numeric_limits<double>::infinity();
    return;
  }
  std::vector<double> lp_ref, lp_got;
  int64_t agree = 0;
  double kl_sum = 0, nll_ref = 0, nll_got = 0;
  for (int64_t t = 0; t < n; ++t) {
    const float* a = ref.values.data() + t * n_vocab;
    const float* b = got.values.data() + t * n_vocab;
    agree += (std::max_element(a, a + n_vocab) - a) == (std::max_element(b, b + n_vocab) - b);
    LogSoftmax(a, n_vocab, lp_ref);
    LogSoftmax(b, n_vocab, lp_got);
    double kl = 0;
    for (int64_t i = 0; i < n_vocab; ++i) kl += std::exp(lp_ref[i]) * (lp_ref[i] - lp_got[i]);
    kl = std::max(kl, 0.0);  // rounding can make an exact match slightly negative
    kl_sum += kl;
    r.max_kl = std::max(r.max_kl, kl);
    if (t + 1 < n) {
      nll_ref -= lp_ref[tokens[t + 1]];
      nll_got -= lp_got[tokens[t + 1]];
    }
  }
  r.top1 = static_cast<double>(agree) / static_cast<double>(n);
  r.mean_kl = kl_sum / static_cast<double>(n);
  r.ppl_reference = std::exp(nll_ref / static_cast<double>(n - 1));
  r.ppl_backend = std::exp(nll_got / static_cast<double>(n - 1));
  r.ppl_delta = r.ppl_backend / r.ppl_reference - 1;
}

}  // namespace

ModelResult CheckModel(const std::string& path, const std::string& text,
                       const ModelCheckOptions& options) {
  if (options.n_tokens < 2)
    Fail("the model check needs at least 2 tokens, not {}", options.n_tokens);
  ModelResult r;
  r.path = path;
  r.name = std::filesystem::path(path).filename().string();

  r.quantized = HasQuantizedWeights(path);
  r.thresholds =
      r.quantized ? options.thresholds.quantized_weights : options.thresholds.float_weights;
  auto reference = LoadEngine(path, "reference", {}, options.n_tokens);
  r.arch = reference->summary().arch;
  std::vector<TokenId> tokens = reference->tokenizer().Encode(text, true, false);
  if (tokens.size() < static_cast<size_t>(options.n_tokens)) {
    Fail("the text has {} tokens for {}, fewer than the {} asked for", tokens.size(), r.name,
         options.n_tokens);
  }
  tokens.resize(static_cast<size_t>(options.n_tokens));
  r.n_tokens = options.n_tokens;
  const Logits ref = Run(*reference, tokens);
  const int64_t n_vocab = reference->n_vocab();
  reference.reset();

  Logits got;
  try {
    auto engine = LoadEngine(path, options.backend, options.backend_options, options.n_tokens);
    // The first pass pays one-time costs (kernel compilation, first touch of the weights); the
    // second is timed and graded.
    Run(*engine, tokens);
    engine->RemoveSequence(0);
    got = Run(*engine, tokens);
  } catch (const Error& e) {
    r.message = fmt::format("{} could not run the model: {}", options.backend, e.what());
    return r;
  }
  r.ref_seconds = ref.seconds;
  r.seconds = got.seconds;
  Compare(r, ref, got, tokens, n_vocab);

  const ModelThresholds& th = r.thresholds;
  std::vector<std::string> problems;
  if (r.non_finite > 0) problems.push_back(fmt::format("{} logits are NaN or Inf", r.non_finite));
  if (!(r.top1 >= th.min_top1)) {
    problems.push_back(
        fmt::format("top-1 agreement {:.2f}% < {:.2f}%", 100 * r.top1, 100 * th.min_top1));
  }
  if (!(r.mean_kl <= th.max_mean_kl)) {
    problems.push_back(fmt::format("mean KL {:.3g} > {:.0e}", r.mean_kl, th.max_mean_kl));
  }
  if (!(std::abs(r.ppl_delta) <= th.max_ppl_delta)) {
    problems.push_back(fmt::format("PPL delta {:+.4f}% exceeds ±{:.2f}%", 100 * r.ppl_delta,
                                   100 * th.max_ppl_delta));
  }
  r.pass = problems.empty();
  for (const std::string& p : problems) r.message += (r.message.empty() ? "" : "; ") + p;
  return r;
}

}  // namespace dizuo::check
