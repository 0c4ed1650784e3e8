#include "model/model.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace dizuo::model {
namespace {

std::string ShapeOf(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Shapes compare equal when they differ only by trailing 1s.
bool SameShape(std::vector<int64_t> a, std::vector<int64_t> b) {
  while (a.size() > 1 && a.back() == 1) a.pop_back();
  while (b.size() > 1 && b.back() == 1) b.pop_back();
  return a == b;
}

std::string BlockName(int il, const char* suffix) { return fmt::format("blk.{}.{}", il, suffix); }

}  // namespace

Tensor* Model::Bind(const gguf::File& file, const std::string& name, std::vector<int64_t> shape,
                    bool required, bool f32_only) {
  const gguf::TensorInfo* info = file.FindTensor(name);
  if (info == nullptr) {
    if (required) Fail("{}: missing tensor {}", file.path(), name);
    return nullptr;
  }
  if (!SameShape(info->shape, shape)) {
    Fail("{}: tensor {} has shape {}, expected {}", file.path(), name, ShapeOf(info->shape),
         ShapeOf(shape));
  }
  if (f32_only && info->type != DType::F32) {
    Fail("{}: tensor {} has type {}, expected f32", file.path(), name, Name(info->type));
  }
  if (info->shape.size() > kMaxDims)
    Fail("{}: tensor {} has too many dimensions", file.path(), name);
  Tensor& t = tensors_.emplace_back();
  t.type = info->type;
  for (size_t d = 0; d < info->shape.size(); ++d) t.ne[d] = info->shape[d];
  SetContiguousStrides(t);
  DZ_ASSERT(t.bytes() == info->nbytes);
  // The mapping is read-only; kernels never write weights.
  t.data = const_cast<uint8_t*>(info->data);
  t.name = name;
  return &t;
}

std::unique_ptr<Model> Model::Load(const gguf::File& file, Backend& backend, bool repack_weights) {
  std::unique_ptr<Model> m(new Model());
  m->config_ = ReadConfig(file.metadata());
  const ModelConfig& c = m->config_;
  const int64_t e = c.n_embd, v = c.n_vocab, ff = c.n_ff;
  const int64_t q_dim = int64_t{c.n_head} * c.head_dim_k;
  const int64_t k_dim = int64_t{c.n_head_kv} * c.head_dim_k;
  const int64_t v_dim = int64_t{c.n_head_kv} * c.head_dim_v;
  const bool gemma = c.arch == Arch::kGemma3;
  Weights& w = m->weights_;

  w.tok_embd = m->Bind(file, "token_embd.weight", {e, v}, true, false);
  w.output_norm = m->Bind(file, "output_norm.weight", {e}, true, true);
  w.output = m->Bind(file, "output.weight", {e, v}, false, false);
  if (w.output == nullptr) w.output = w.tok_embd;  // tied embeddings
  if (c.arch == Arch::kLlama) {
    w.rope_freqs = m->Bind(file, "rope_freqs.weight", {c.rope.n_rot / 2}, false, true);
  }

  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& l = w.layers[static_cast<size_t>(il)];
    auto bind = [&](const char* suffix, std::vector<int64_t> shape, bool required, bool f32) {
      return m->Bind(file, BlockName(il, suffix), std::move(shape), required, f32);
    };
    l.attn_norm = bind("attn_norm.weight", {e}, true, true);
    l.wq = bind("attn_q.weight", {e, q_dim}, true, false);
    l.wk = bind("attn_k.weight", {e, k_dim}, true, false);
    l.wv = bind("attn_v.weight", {e, v_dim}, true, false);
    l.wo = bind("attn_output.weight", {int64_t{c.n_head} * c.head_dim_v, e}, true, false);
    if (c.arch != Arch::kGemma3) {
      const bool qwen = c.arch == Arch::kQwen2;
      l.bq = bind("attn_q.bias", {q_dim}, qwen, true);
      l.bk = bind("attn_k.bias", {k_dim}, qwen, true);
      l.bv = bind("attn_v.bias", {v_dim}, qwen, true);
      l.bo = bind("attn_output.bias", {e}, false, true);
    }
    if (gemma) {
      l.q_norm = bind("attn_q_norm.weight", {c.head_dim_k}, true, true);
      l.k_norm = bind("attn_k_norm.weight", {c.head_dim_k}, true, true);
      l.post_attn_norm = bind("post_attention_norm.weight", {e}, true, true);
      l.post_ffn_norm = bind("post_ffw_norm.weight", {e}, true, true);
    }
    l.ffn_norm = bind("ffn_norm.weight", {e}, true, true);
    l.ffn_gate = bind("ffn_gate.weight", {e, ff}, true, false);
    l.ffn_up = bind("ffn_up.weight", {e, ff}, true, false);
    l.ffn_down = bind("ffn_down.weight", {ff, e}, true, false);
  }

  for (const gguf::TensorInfo& info : file.tensors()) {
    m->n_params_ += info.elements();
    m->weight_bytes_ += info.nbytes;
  }

  // Weights repacked at load: every weight the graph reads only as a MATMUL weight, and the
  // embedding table when the output layer shares it (GET_ROWS reads it too, and then its copy).
  if (repack_weights && backend.device().host_memory) {
    struct Offer {
      Tensor* tensor;
      bool get_rows;
    };
    std::vector<Offer> offers;
    for (const LayerWeights& l : w.layers) {
      for (Tensor* t : {l.wq, l.wk, l.wv, l.wo, l.ffn_gate, l.ffn_up, l.ffn_down}) {
        offers.push_back({t, false});
      }
    }
    offers.push_back({w.output, w.output == w.tok_embd});
    // Largest first: the fewer copies exist while the largest is made, the lower the peak.
    std::stable_sort(offers.begin(), offers.end(), [](const Offer& a, const Offer& b) {
      return a.tensor->bytes() > b.tensor->bytes();
    });
    for (const Offer& offer : offers) {
      const Tensor* t = offer.tensor;
      // The copy may complete after Load returns (in the background). The file pages of each
      // part are let go as it is copied (they are read back from the file if a forward pass
      // reads the original before the copy is complete), and all of them once it is.
      const auto* data = static_cast<const char*>(t->data);
      std::unique_ptr<Buffer> copy = backend.PrepareWeight(
          *t, {.get_rows = offer.get_rows,
               .copied = [&file, data, bytes = t->bytes()] { file.ReleasePages(data, bytes); },
               .part_copied = [&file, data](
                                  uint64_t offset,
                                  uint64_t size) { file.ReleasePages(data + offset, size); }});
      if (copy == nullptr) continue;
      m->repacked_bytes_ += t->bytes();
      m->repacked_.push_back(std::move(copy));
    }
  }

  // Devices whose memory the host cannot address get a copy of the weights in one buffer.
  if (!backend.device().host_memory) {
    constexpr uint64_t kAlign = 256;
    uint64_t total = 0;
    for (const Tensor& t : m->tensors_) total += (t.bytes() + kAlign - 1) / kAlign * kAlign;
    m->device_buffer_ = backend.Allocate(total);
    void* base = m->device_buffer_->host_data();
    uint64_t offset = 0;
    for (Tensor& t : m->tensors_) {
      const void* host = t.data;
      t.buffer = m->device_buffer_.get();
      t.offset = offset;
      t.data = base ? static_cast<char*>(base) + offset : nullptr;
      backend.Upload(t, host, 0, t.bytes());
      offset += (t.bytes() + kAlign - 1) / kAlign * kAlign;
    }
  }
  return m;
}

}  // namespace dizuo::model
