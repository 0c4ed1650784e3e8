// A model: its configuration, its weights placed for a backend, and the graph of one forward pass.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace dizuo::model {

// Weights of one block. Optional tensors are nullptr when the architecture or file lacks them.
struct LayerWeights {
  Tensor* attn_norm = nullptr;
  Tensor* wq = nullptr;
  Tensor* wk = nullptr;
  Tensor* wv = nullptr;
  Tensor* wo = nullptr;
  Tensor* bq = nullptr;  // qwen2 (required), llama (optional)
  Tensor* bk = nullptr;
  Tensor* bv = nullptr;
  Tensor* bo = nullptr;      // llama (optional)
  Tensor* q_norm = nullptr;  // gemma3: per-head RMS norm of Q and K
  Tensor* k_norm = nullptr;
  Tensor* post_attn_norm = nullptr;  // gemma3 sandwich norms
  Tensor* ffn_norm = nullptr;
  Tensor* ffn_gate = nullptr;
  Tensor* ffn_up = nullptr;
  Tensor* ffn_down = nullptr;
  Tensor* post_ffn_norm = nullptr;
};

struct Weights {
  Tensor* tok_embd = nullptr;
  Tensor* output_norm = nullptr;
  Tensor* output = nullptr;      // token_embd.weight itself when the file ties them
  Tensor* rope_freqs = nullptr;  // llama: optional per-frequency factors (Llama 3.1 scaling)
  std::vector<LayerWeights> layers;
};

// Inputs of a forward graph that the caller fills before compute. All are i32.
struct ForwardInputs {
  Tensor* token_ids = nullptr;    // [T]
  Tensor* positions = nullptr;    // [T]
  Tensor* token_info = nullptr;   // [2, T]: (pos, seq) per token
  Tensor* cell_info = nullptr;    // [2, n_kv]: (pos, seq) per used cache cell
  Tensor* store_cells = nullptr;  // [T]: the cache cell of each token
  Tensor* output_rows = nullptr;  // [n_out]: tokens whose logits are wanted; nullptr when all
};

struct ForwardGraph {
  ForwardInputs inputs;
  Tensor* logits = nullptr;  // [n_vocab, n_out], nullptr when n_out = 0
};

class Model {
 public:
  // Reads the configuration of `file` and binds its weights for `backend`: zero-copy views into
  // the file's mapping for host-memory backends, otherwise one device buffer filled by Upload.
  // `file` must outlive the model. With `repack_weights`, a host-memory backend is offered every
  // weight that only MATMUL reads, and an embedding table the output layer shares (for MATMUL and
  // GET_ROWS) (Backend::PrepareWeight); the pages of those it copies into its own layout are
  // released from the file's mapping as they are copied, so the copies take their place in memory.
  // Throws dizuo::Error for an unsupported architecture and for a missing or mis-shaped tensor.
  static std::unique_ptr<Model> Load(const gguf::File& file, Backend& backend,
                                     bool repack_weights = true);

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  int64_t n_params() const { return n_params_; }
  // Weights the backend repacked at load, and their bytes in the file.
  int repacked_tensors() const { return static_cast<int>(repacked_.size()); }
  uint64_t repacked_bytes() const { return repacked_bytes_; }
  uint64_t weight_bytes() const { return weight_bytes_; }

  // Builds the forward pass of `n_tokens` tokens whose K/V go to the cache, attending over its
  // first `n_kv` cells, with logits for `n_outputs` of them (all, in order, when n_outputs ==
  // n_tokens; none when 0, in which case the pass only fills the cache).
  ForwardGraph BuildForward(Graph& graph, KvCache& cache, int n_tokens, int n_outputs,
                            int n_kv) const;

 private:
  Model() = default;
  Tensor* Bind(const gguf::File& file, const std::string& name, std::vector<int64_t> shape,
               bool required, bool f32_only);

  ModelConfig config_;
  Weights weights_;
  std::deque<Tensor> tensors_;                     // stable addresses
  std::unique_ptr<Buffer> device_buffer_;          // non-host backends only
  std::vector<std::unique_ptr<Buffer>> repacked_;  // the backend's copies (PrepareWeight)
  uint64_t repacked_bytes_ = 0;
  int64_t n_params_ = 0;
  uint64_t weight_bytes_ = 0;
};

}  // namespace dizuo::model
