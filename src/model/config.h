// Hyperparameters of a supported architecture, read from GGUF metadata (`<arch>.*` keys).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/graph.h"
#include "gguf/gguf.h"

namespace dizuo::model {

enum class Arch : uint8_t { kLlama, kQwen2, kGemma3 };

// The architecture names dizuo runs, as general.architecture spells them.
const std::vector<std::string>& SupportedArchitectures();

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;
  int n_ctx_train = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_ff = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim_k = 0;  // key (and query) head size
  int head_dim_v = 0;
  int n_vocab = 0;  // rows of token_embd.weight
  float rms_eps = 1e-5f;

  // RoPE on global (full-attention) layers; sliding-window layers use `rope_swa`.
  RopeParams rope;
  RopeParams rope_swa;

  // Attention. Query scaling: llama/qwen2 scale q·k by `attention_scale` inside ATTENTION; gemma3
  // scales Q before attention by `query_scale` and uses 1 inside.
  float attention_scale = 1.0f;
  float query_scale = 1.0f;
  int sliding_window = 0;          // 0: none
  std::vector<bool> layer_is_swa;  // per layer: uses the sliding window and `rope_swa`

  bool IsSlidingWindowLayer(int il) const { return layer_is_swa[static_cast<size_t>(il)]; }
};

// Reads the configuration of the model described by `metadata`. Throws dizuo::Error for an
// unsupported architecture, a missing required key, or a value out of range.
ModelConfig ReadConfig(const gguf::Metadata& metadata);

}  // namespace dizuo::model
