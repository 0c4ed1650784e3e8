#include "runtime/engine.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "backends/backend.h"
#include "core/error.h"
#include "core/graph.h"
#include "gguf/gguf.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/scheduler.h"

namespace dizuo {
namespace {

static_assert(sizeof(model::PosSeq) == 2 * sizeof(int32_t), "PosSeq is the i32 [2, n] layout");

constexpr int kDefaultMaxContext = 4096;

void UploadInts(Tensor* t, const std::vector<int32_t>& values) {
  DZ_ASSERT(static_cast<int64_t>(values.size()) == t->elements());
  Scheduler::Upload(*t, values.data(), values.size() * sizeof(int32_t));
}

// The backend that runs what the selected one does not: "cpu", or "reference" without it.
std::string FallbackBackendName() {
  const std::vector<std::string> names = BackendNames();
  return std::find(names.begin(), names.end(), "cpu") != names.end() ? "cpu" : "reference";
}

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineOptions& options);

  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  const ModelSummary& summary() const override { return summary_; }
  int n_ctx() const override { return cache_->n_cells(); }
  int n_vocab() const override { return model_->config().n_vocab; }
  double load_seconds() const override { return load_seconds_; }
  void WaitForRepackedWeights() override { backend_->FinishPreparing(); }
  const SchedulerProfile& profile() const override { return scheduler_->profile(); }

  std::span<const float> Decode(std::span<const BatchToken> batch) override;
  void RemoveSequence(int32_t seq, int32_t from_pos) override {
    cache_->RemoveSequence(seq, from_pos);
  }
  int32_t SequenceLength(int32_t seq) const override { return cache_->SequenceLength(seq); }

  void set_load_seconds(double s) { load_seconds_ = s; }

 private:
  void CheckBatch(std::span<const BatchToken> batch) const;
  // One forward pass; writes the logits of the marked tokens to `logits`.
  void Forward(std::span<const BatchToken> chunk, float* logits);

  // Declaration order is destruction order reversed: the file outlives the weights that view it,
  // and each backend outlives every buffer it allocated (the scheduler owns the fallback backend,
  // which may hold the cache).
  gguf::File file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<model::KvCache> cache_;
  ModelSummary summary_;
  int n_batch_ = 0;
  double load_seconds_ = 0;
  std::vector<float> logits_;
};

EngineImpl::EngineImpl(const EngineOptions& options) : file_(gguf::File::Open(options.model_path)) {
  if (options.n_batch <= 0) Fail("batch size must be positive, not {}", options.n_batch);
  if (options.n_ctx < 0)
    Fail("context size must be positive (or 0 for the default), not {}", options.n_ctx);
  if (options.threads < 0)
    Fail("thread count must be positive (or 0 for all cores), not {}", options.threads);
  n_batch_ = options.n_batch;
  const gguf::Metadata& md = file_.metadata();
  tokenizer_ = Tokenizer::FromGguf(md);

  BackendOptions backend_options;
  backend_options.threads = options.threads;
  backend_ = CreateBackend(options.backend, backend_options);
  const std::string fallback_name = FallbackBackendName();
  scheduler_ = std::make_unique<Scheduler>(
      *backend_, [fallback_name, backend_options, selected = options.backend] {
        return selected == fallback_name ? nullptr : CreateBackend(fallback_name, backend_options);
      });
  scheduler_->set_profiling(options.profile);
  // Weights stay host views of the file's mapping; the scheduler uploads each to a device the
  // first time a node placed there reads it.
  // Only the selected backend repacks: a fallback's copies would sit unused in memory.
  Backend& host = scheduler_->host_backend();
  model_ = model::Model::Load(file_, host, options.repack_weights && &host == backend_.get());
  const model::ModelConfig& c = model_->config();
  if (tokenizer_->n_vocab() > c.n_vocab) {
    Fail("{}: the tokenizer has {} tokens but the model only {} embeddings", file_.path(),
         tokenizer_->n_vocab(), c.n_vocab);
  }

  // The tokenizer and the model have read the vocabulary; its parsed arrays are not needed again.
  file_.DropMetadata({"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                      "tokenizer.ggml.merges"});

  model::KvCacheShape shape;
  shape.n_layer = c.n_layer;
  shape.head_dim = c.head_dim_k;
  shape.n_head_kv = c.n_head_kv;
  shape.n_cells = options.n_ctx > 0 ? options.n_ctx : std::min(c.n_ctx_train, kDefaultMaxContext);
  shape.n_seq_max = options.n_seq_max;
  shape.type = options.kv_type;
  // The cache lives where STORE_KV and ATTENTION run: on the selected backend when it can.
  Backend& cache_backend = Scheduler::CanHoldKvCache(*backend_, shape.type, shape.head_dim,
                                                     c.n_head, shape.n_head_kv, shape.n_cells)
                               ? *backend_
                               : scheduler_->fallback();
  cache_ = std::make_unique<model::KvCache>(cache_backend, shape);

  summary_.arch = c.arch_name;
  summary_.name = md.GetString("general.name").value_or("");
  summary_.n_params = model_->n_params();
  summary_.weight_bytes = model_->weight_bytes();
  summary_.repacked_tensors = model_->repacked_tensors();
  summary_.repacked_bytes = model_->repacked_bytes();
  summary_.n_vocab = c.n_vocab;
  summary_.n_ctx_train = c.n_ctx_train;
  summary_.n_layer = c.n_layer;
  summary_.n_embd = c.n_embd;
  summary_.chat_template = md.GetString("tokenizer.chat_template").value_or("");
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void EngineImpl::CheckBatch(std::span<const BatchToken> batch) const {
  std::vector<model::PosSeq> cells;
  cells.reserve(batch.size());
  std::map<int32_t, int> per_seq;
  for (const BatchToken& t : batch) {
    if (t.token < 0 || t.token >= n_vocab()) {
      Fail("token id {} is out of range (the vocabulary has {} tokens)", t.token, n_vocab());
    }
    if (t.seq < 0 || t.seq >= cache_->shape().n_seq_max) {
      Fail("sequence id {} is out of range (0 to {})", t.seq, cache_->shape().n_seq_max - 1);
    }
    ++per_seq[t.seq];
    cells.push_back({t.pos, t.seq});
  }
  for (const auto& [seq, count] : per_seq) {
    const int total = cache_->SequenceCells(seq) + count;
    if (total > n_ctx()) {
      Fail(
          "sequence {} would hold {} tokens, more than the context size {} (the prompt is longer "
          "than the context)",
          seq, total, n_ctx());
    }
  }
  cache_->Check(cells);
}

std::span<const float> EngineImpl::Decode(std::span<const BatchToken> batch) {
  CheckBatch(batch);
  const size_t n_out = static_cast<size_t>(
      std::count_if(batch.begin(), batch.end(), [](const BatchToken& t) { return t.logits; }));
  logits_.resize(n_out * static_cast<size_t>(n_vocab()));
  float* out = logits_.data();
  for (size_t start = 0; start < batch.size(); start += static_cast<size_t>(n_batch_)) {
    const size_t n = std::min(batch.size() - start, static_cast<size_t>(n_batch_));
    std::span<const BatchToken> chunk = batch.subspan(start, n);
    Forward(chunk, out);
    for (const BatchToken& t : chunk) out += t.logits ? n_vocab() : 0;
  }
  return {logits_.data(), logits_.size()};
}

void EngineImpl::Forward(std::span<const BatchToken> chunk, float* logits) {
  const int n = static_cast<int>(chunk.size());
  std::vector<model::PosSeq> tokens;
  std::vector<int32_t> ids, positions, token_info, output_rows;
  for (int i = 0; i < n; ++i) {
    const BatchToken& t = chunk[static_cast<size_t>(i)];
    tokens.push_back({t.pos, t.seq});
    ids.push_back(t.token);
    positions.push_back(t.pos);
    token_info.push_back(t.pos);
    token_info.push_back(t.seq);
    if (t.logits) output_rows.push_back(i);
  }
  const int n_out = static_cast<int>(output_rows.size());

  std::vector<int32_t> cells = cache_->Reserve(tokens);
  try {
    const int n_kv = cache_->used_prefix();
    Graph graph;
    model::ForwardGraph fg = model_->BuildForward(graph, *cache_, n, n_out, n_kv);
    scheduler_->Allocate(graph);
    UploadInts(fg.inputs.token_ids, ids);
    UploadInts(fg.inputs.positions, positions);
    UploadInts(fg.inputs.token_info, token_info);
    UploadInts(fg.inputs.store_cells, cells);
    std::span<const model::PosSeq> cell_info = cache_->cells().first(static_cast<size_t>(n_kv));
    Scheduler::Upload(*fg.inputs.cell_info, cell_info.data(), cell_info.size_bytes());
    if (fg.inputs.output_rows) UploadInts(fg.inputs.output_rows, output_rows);
    scheduler_->Compute(graph);
    if (fg.logits) Scheduler::Download(*fg.logits, logits, fg.logits->bytes());
  } catch (...) {
    // The cache keeps no trace of a pass that did not complete.
    cache_->Release(cells);
    throw;
  }
}

}  // namespace

std::unique_ptr<Engine> Engine::Load(const EngineOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  auto engine = std::make_unique<EngineImpl>(options);
  engine->set_load_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return engine;
}

}  // namespace dizuo
