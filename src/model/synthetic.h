// Synthetic GGUF models: random weights with the real shapes of an architecture, complete metadata
// and a working tokenizer, for tests and benchmarks. llama.cpp loads the same files.
//
// Output is a pure function of the options: the random numbers come from a counter-based
// splitmix64 stream per (seed, tensor name, row) and normal samples are built from integer sums
// (Irwin-Hall), so the bytes are identical on every machine and for any thread count. See
// docs/SYNTHETIC.md for the presets, scales, type rules and tokenizer construction.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace dizuo {

struct SyntheticOptions {
  std::string arch = "llama";   // llama | qwen2 | gemma3
  std::string preset = "tiny";  // tiny | 125m | 1b
  std::string type = "f16";     // a weight type name (f32, q4_0, q4_k, ...) or "q4_k_m"
  uint64_t seed = 1;
  int n_vocab = 0;  // 0: the preset's
  int n_ctx = 0;    // 0: the preset's (written as <arch>.context_length)
  int threads = 0;  // 0: one per core; never changes the output
};

// Hyperparameters of a synthetic model after the preset and overrides are applied.
struct SyntheticShape {
  std::string arch;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_vocab = 0;
  int n_ctx = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  int sliding_window = 0;  // gemma3 only: window of the local layers (5 of every 6)
};

// Checks the options and resolves the preset. Throws dizuo::Error naming a bad value.
SyntheticShape ResolveSyntheticShape(const SyntheticOptions& options);

// Called after each tensor is generated: (tensors done, tensors in all, its name).
using SyntheticProgress = std::function<void(int done, int total, std::string_view name)>;

// Builds the model in memory (weights and metadata).
gguf::Writer BuildSyntheticModel(const SyntheticOptions& options,
                                 const SyntheticProgress& progress = {});
// Builds the model and writes it to `path`. Throws dizuo::Error on bad options or I/O failure.
void WriteSyntheticModel(const SyntheticOptions& options, const std::string& path,
                         const SyntheticProgress& progress = {});

// SHA-256 of bytes / of a file, as 64 lowercase hex digits (to pin generated files in goldens).
std::string Sha256Hex(std::span<const uint8_t> bytes);
std::string FileSha256Hex(const std::string& path);

}  // namespace dizuo
