// Options that the model-running subcommands (run, chat, perplexity) share, and the generation
// loop that run and chat share.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "runtime/engine.h"
#include "runtime/sampler.h"

namespace dizuo::cli {

struct ModelFlags {
  std::string model;
  std::string backend = "cpu";
  bool backend_given = false;  // --backend was on the command line
  std::string backend_lib;     // --backend-lib: a backend plug-in to load
  bool profile = false;        // --profile
  int threads = 0;
  int n_ctx = 0;
  int n_batch = 512;
  bool no_repack = false;  // --no-repack
};

inline constexpr const char* kNoRepackHelp =
    "Read weights where they are in the mapped file: the backend makes no copies of them at load "
    "(the cpu backend repacks q4_0, q5_0, q8_0, q4_K and q6_K into layouts of its own on AVX2 and "
    "AVX-512 CPUs, and copies the other types, and every type on ARM, as they are); for "
    "comparisons";

// For run and chat: waits until the backend's copies of the weights are complete
// (Engine::WaitForRepackedWeights), so the same command gives the same text: every token is
// computed on the weights' final layouts, not on whichever copies the background completed in
// time (their sums differ in float rounding, which can flip a greedy choice: Gemma 3 270M changed
// its fourth token). Returns ", N weights repacked by T ms" (T from `load_start`), or "" when the
// backend repacked nothing.
std::string WaitForCopies(Engine& engine, std::chrono::steady_clock::time_point load_start);

// -m, --backend, --backend-lib, --profile, --threads, -c, --batch, --no-repack.
void AddModelFlags(CLI::App& app, ModelFlags& flags);
// Loads the --backend-lib plug-in, if any, and returns the backend to use: --backend, or the
// plug-in's backend when --backend was not given.
std::string ResolveBackend(const ModelFlags& flags);
// Checks the flags (clear errors for bad values, an unknown backend or a missing model file) and
// loads the engine.
std::unique_ptr<Engine> LoadEngine(const ModelFlags& flags);
// With --profile: prints the engine's profile (per op type, fallbacks) to stderr.
void PrintProfile(const Engine& engine, const ModelFlags& flags);
// "N (auto)" when the engine chose the thread count.
std::string ThreadsText(int threads);

struct SamplingFlags {
  SamplingParams params;
  std::optional<uint64_t> seed;
};

// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, --presence-penalty,
// --frequency-penalty, --seed.
void AddSamplingFlags(CLI::App& app, SamplingFlags& flags);
// The parameters with the seed filled in (random unless --seed was given); validated.
SamplingParams ResolveSampling(const SamplingFlags& flags);

double SecondsSince(std::chrono::steady_clock::time_point start);

enum class StopReason { kEndOfGeneration, kLength, kContextFull };
const char* StopReasonName(StopReason reason);

struct Generation {
  std::vector<TokenId> tokens;  // generated, without the end-of-generation token
  StopReason stop = StopReason::kLength;
  double prompt_seconds = 0;  // evaluating the new prompt tokens
  double gen_seconds = 0;     // sampling and evaluating the generated tokens
  int prompt_tokens = 0;      // evaluated (not reused from the cache)
  // Generated tokens now in the cache (the last sampled token is not evaluated when generation
  // stops for length or a full context).
  size_t n_cached_generated = 0;
};

// Evaluates `prompt` on sequence 0 from position `cached` (the first `cached` tokens are already
// in the cache), then samples up to `max_tokens` tokens (-1: until the end of generation or the
// context is full), calling `on_text` with each piece of text as it becomes complete. Throws
// dizuo::Error when the prompt does not fit the context.
Generation Generate(Engine& engine, Sampler& sampler, std::span<const TokenId> prompt,
                    size_t cached, int max_tokens,
                    const std::function<void(const std::string&)>& on_text);

}  // namespace dizuo::cli
