#include "cli/engine_options.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <thread>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "backends/backend.h"
#include "backends/plugin.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace dizuo::cli {

void AddModelFlags(CLI::App& app, ModelFlags& flags) {
  app.add_option("-m,--model", flags.model, "GGUF model file")->required();
  app.add_option("--backend", flags.backend, "Backend to run on (cpu, reference, ...)")
      ->capture_default_str()
      ->each([&flags](const std::string&) { flags.backend_given = true; });
  app.add_option("--backend-lib", flags.backend_lib,
                 "Load a backend plug-in (shared library) and run on it unless --backend names "
                 "another backend");
  app.add_flag("--profile", flags.profile,
               "Time every node and print, per op type, count, time, share and backend, the nodes "
               "that fell back to the CPU and why, and the MATMULs by weight type and shape with "
               "their weight GB/s and GFLOP/s (to stderr)");
  app.add_option("-t,--threads", flags.threads, "Threads (0: one per core)")->capture_default_str();
  app.add_option("-c,--ctx-size", flags.n_ctx,
                 "Context size in tokens (0: the training context, at most 4096)")
      ->capture_default_str();
  app.add_option("-b,--batch", flags.n_batch, "Most tokens per forward pass")
      ->capture_default_str();
  app.add_flag("--no-repack", flags.no_repack, kNoRepackHelp);
}

std::string ResolveBackend(const ModelFlags& flags) {
  if (flags.backend_lib.empty()) return flags.backend;
  const std::string name = LoadBackendPlugin(flags.backend_lib);
  return flags.backend_given ? flags.backend : name;
}

void PrintProfile(const Engine& engine, const ModelFlags& flags) {
  if (flags.profile) fmt::print(stderr, "{}", engine.profile().Report());
}

std::unique_ptr<Engine> LoadEngine(const ModelFlags& flags) {
  if (flags.threads < 0) Fail("--threads must be >= 0 (0: one per core), not {}", flags.threads);
  if (flags.n_ctx < 0)
    Fail("--ctx-size must be >= 0 (0: the model's default), not {}", flags.n_ctx);
  if (flags.n_batch <= 0) Fail("--batch must be positive, not {}", flags.n_batch);
  const std::string backend = ResolveBackend(flags);
  const std::vector<std::string> backends = BackendNames();
  if (std::find(backends.begin(), backends.end(), backend) == backends.end()) {
    Fail("unknown backend '{}' (available: {})", backend, fmt::join(backends, ", "));
  }
  std::error_code ec;
  if (!std::filesystem::exists(flags.model, ec)) Fail("{}: no such model file", flags.model);
  EngineOptions options;
  options.model_path = flags.model;
  options.backend = backend;
  options.profile = flags.profile;
  options.threads = flags.threads;
  options.n_ctx = flags.n_ctx;
  options.n_batch = flags.n_batch;
  options.repack_weights = !flags.no_repack;
  return Engine::Load(options);
}

std::string WaitForCopies(Engine& engine, std::chrono::steady_clock::time_point load_start) {
  engine.WaitForRepackedWeights();
  const int copies = engine.summary().repacked_tensors;
  if (copies == 0) return "";
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - load_start;
  return fmt::format(", {} weights repacked by {:.1f} ms", copies, elapsed.count() * 1e3);
}

std::string ThreadsText(int threads) {
  if (threads > 0) return fmt::format("{}", threads);
  return fmt::format("{} (auto)", std::max(1u, std::thread::hardware_concurrency()));
}

void AddSamplingFlags(CLI::App& app, SamplingFlags& flags) {
  SamplingParams& p = flags.params;
  app.add_option("--temp", p.temperature, "Temperature (<= 0: greedy)")->capture_default_str();
  app.add_option("--top-k", p.top_k, "Keep the K most likely tokens (0: off)")
      ->capture_default_str();
  app.add_option("--top-p", p.top_p,
                 "Nucleus sampling: smallest set with probability >= P (1: off)")
      ->capture_default_str();
  app.add_option("--min-p", p.min_p, "Drop tokens less likely than P times the best one (0: off)")
      ->capture_default_str();
  app.add_option("--repeat-penalty", p.repeat_penalty,
                 "Penalize tokens seen in the last --repeat-last-n tokens (1: off)")
      ->capture_default_str();
  app.add_option("--repeat-last-n", p.penalty_last_n, "Tokens the penalties look back over")
      ->capture_default_str();
  app.add_option("--presence-penalty", p.presence_penalty,
                 "Subtract P from the logit of every token seen (0: off)")
      ->capture_default_str();
  app.add_option("--frequency-penalty", p.frequency_penalty,
                 "Subtract P times its count from the logit of every token seen (0: off)")
      ->capture_default_str();
  app.add_option("-s,--seed", flags.seed, "Random seed (default: random; printed in the stats)");
}

SamplingParams ResolveSampling(const SamplingFlags& flags) {
  SamplingParams params = flags.params;
  if (flags.seed) {
    params.seed = *flags.seed;
  } else {
    std::random_device device;
    params.seed = (static_cast<uint64_t>(device()) << 32) ^ device();
  }
  Sampler check(params);  // throws on out-of-range values
  return params;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEndOfGeneration:
      return "eos";
    case StopReason::kLength:
      return "length";
    case StopReason::kContextFull:
      return "context";
  }
  return "?";
}

Generation Generate(Engine& engine, Sampler& sampler, std::span<const TokenId> prompt,
                    size_t cached, int max_tokens,
                    const std::function<void(const std::string&)>& on_text) {
  DZ_ASSERT(cached < prompt.size());
  const size_t n_ctx = static_cast<size_t>(engine.n_ctx());
  if (prompt.size() > n_ctx) {
    Fail("the prompt has {} tokens, more than the context size {} (raise it with -c)",
         prompt.size(), n_ctx);
  }
  const Tokenizer& tokenizer = engine.tokenizer();
  Generation g;
  auto start = std::chrono::steady_clock::now();
  std::vector<BatchToken> batch;
  for (size_t i = cached; i < prompt.size(); ++i) {
    batch.push_back({prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size()});
    sampler.Accept(prompt[i]);
  }
  std::span<const float> logits = engine.Decode(batch);
  g.prompt_tokens = static_cast<int>(batch.size());
  g.prompt_seconds = SecondsSince(start);

  start = std::chrono::steady_clock::now();
  StreamDecoder decoder(tokenizer);
  size_t pos = prompt.size();
  while (true) {
    if (max_tokens >= 0 && g.tokens.size() >= static_cast<size_t>(max_tokens)) {
      g.stop = StopReason::kLength;
      break;
    }
    const TokenId token = sampler.Sample(logits);
    if (tokenizer.IsEndOfGeneration(token)) {
      g.stop = StopReason::kEndOfGeneration;
      break;
    }
    sampler.Accept(token);
    g.tokens.push_back(token);
    if (on_text) on_text(decoder.Push(token));
    const bool last = max_tokens >= 0 && g.tokens.size() >= static_cast<size_t>(max_tokens);
    if (last) continue;  // no need to evaluate a token nothing follows
    if (pos >= n_ctx) {
      g.stop = StopReason::kContextFull;
      break;
    }
    const BatchToken next{token, static_cast<int32_t>(pos), 0, true};
    logits = engine.Decode(std::span(&next, 1));
    ++pos;
    ++g.n_cached_generated;
  }
  if (on_text) on_text(decoder.Flush());
  g.gen_seconds = SecondsSince(start);
  return g;
}

}  // namespace dizuo::cli
