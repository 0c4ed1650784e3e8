// The engine: a loaded model on a backend, its KV cache, and forward passes over batches that may
// mix several independent sequences (each with its own positions). Front ends (CLI, server, bench)
// use this and never a backend directly.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace dizuo {

struct EngineOptions {
  std::string model_path;
  std::string backend = "cpu";
  int threads = 0;    // 0: one per core
  int n_ctx = 0;      // KV cache cells shared by all sequences; 0: min(training context, 4096)
  int n_batch = 512;  // most tokens in one forward pass; longer batches are split
  int n_seq_max = 1;  // most sequences alive at once
  DType kv_type = DType::F16;
  // Time every node (one Synchronize each) for profile(); off, only counts and fallbacks are kept.
  bool profile = false;
  // Let the selected backend repack MATMUL weights into its kernels' layout at load, when it runs
  // on host memory (Backend::PrepareWeight). Off: weights are read in the file's layout.
  bool repack_weights = true;
};

// One token of a forward batch.
struct BatchToken {
  TokenId token = 0;
  int32_t pos = 0;      // position within its sequence
  int32_t seq = 0;      // sequence id in [0, n_seq_max)
  bool logits = false;  // return this token's logits
};

struct ModelSummary {
  std::string arch;           // general.architecture
  std::string name;           // general.name, if any
  int64_t n_params = 0;       // elements in all weight tensors
  uint64_t weight_bytes = 0;  // bytes of all weight tensors
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_layer = 0;
  int n_embd = 0;
  std::string chat_template;  // tokenizer.chat_template, if any
  int repacked_tensors = 0;   // weights the backend repacked at load (EngineOptions)
  uint64_t repacked_bytes = 0;
};

class Engine {
 public:
  // Loads the model and creates the backend and cache. Throws dizuo::Error with a clear message
  // (missing file, unsupported architecture, missing tensor, unknown backend, ...).
  static std::unique_ptr<Engine> Load(const EngineOptions& options);
  virtual ~Engine() = default;

  virtual const Tokenizer& tokenizer() const = 0;
  virtual const ModelSummary& summary() const = 0;
  virtual int n_ctx() const = 0;
  virtual int n_vocab() const = 0;
  virtual double load_seconds() const = 0;
  // Waits until the weights the backend repacks at load (ModelSummary::repacked_tensors) are all
  // in its layout. They are copied in the background after Load returns, and until each is, the
  // file's layout is read: results are the same up to float summation order, speed is not, so
  // benchmarks call this before timing.
  virtual void WaitForRepackedWeights() = 0;
  // Where nodes ran, what fell back to the CPU and why, and (with EngineOptions::profile) how long
  // each op type took, over all forward passes so far. profile().selected names the backend.
  virtual const SchedulerProfile& profile() const = 0;

  // Runs the model over `batch` (split into forward passes of at most n_batch tokens) and returns
  // the logits of the tokens marked `logits`, in batch order, n_vocab floats each. The span stays
  // valid until the next call. Throws dizuo::Error when a token id, sequence id or position is
  // invalid or the cache has no room.
  virtual std::span<const float> Decode(std::span<const BatchToken> batch) = 0;

  // Forgets the cached positions of `seq` at or after `from_pos` (all of them by default).
  virtual void RemoveSequence(int32_t seq, int32_t from_pos = 0) = 0;
  // Number of positions of `seq` in the cache (its next position).
  virtual int32_t SequenceLength(int32_t seq) const = 0;
};

}  // namespace dizuo
