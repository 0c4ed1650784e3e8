// Model configuration, weight binding (and its errors) and the KV cache, on small GGUF files
// built in memory.
#include "model/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "backends/backend.h"
#include "core/error.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace dizuo::model {
namespace {

using ::testing::HasSubstr;

// A tiny model of `arch` (f32 zeros), with hooks to drop a tensor or change a shape.
struct TinySpec {
  std::string arch = "llama";
  int n_embd = 16, n_layer = 2, n_ff = 24, n_head = 4, n_head_kv = 2, n_vocab = 32;
  std::string omit;                                   // tensor name to leave out
  std::map<std::string, std::vector<int64_t>> shape;  // shape overrides by tensor name
  bool tied_output = false;
};

std::vector<uint8_t> TinyModel(const TinySpec& s) {
  gguf::Writer w;
  const std::string a = s.arch;
  w.Set("general.architecture", gguf::Value(a));
  w.Set(a + ".context_length", gguf::Value(uint32_t{128}));
  w.Set(a + ".embedding_length", gguf::Value(uint32_t(s.n_embd)));
  w.Set(a + ".block_count", gguf::Value(uint32_t(s.n_layer)));
  w.Set(a + ".feed_forward_length", gguf::Value(uint32_t(s.n_ff)));
  w.Set(a + ".attention.head_count", gguf::Value(uint32_t(s.n_head)));
  w.Set(a + ".attention.head_count_kv", gguf::Value(uint32_t(s.n_head_kv)));
  w.Set(a + ".attention.layer_norm_rms_epsilon", gguf::Value(1e-6f));
  w.Set(a + ".vocab_size", gguf::Value(uint32_t(s.n_vocab)));
  if (a == "gemma3") w.Set(a + ".attention.sliding_window", gguf::Value(uint32_t{8}));

  const int64_t e = s.n_embd, hd = s.n_embd / s.n_head, q = s.n_head * hd, kv = s.n_head_kv * hd;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    if (name == s.omit) return;
    if (auto it = s.shape.find(name); it != s.shape.end()) shape = it->second;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<uint8_t> zeros(static_cast<size_t>(n) * 4, 0);
    w.AddTensor(name, DType::F32, shape, zeros);
  };
  add("token_embd.weight", {e, s.n_vocab});
  add("output_norm.weight", {e});
  if (!s.tied_output) add("output.weight", {e, s.n_vocab});
  for (int il = 0; il < s.n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", {e});
    add(b + "attn_q.weight", {e, q});
    add(b + "attn_k.weight", {e, kv});
    add(b + "attn_v.weight", {e, kv});
    add(b + "attn_output.weight", {q, e});
    if (a == "qwen2") {
      add(b + "attn_q.bias", {q});
      add(b + "attn_k.bias", {kv});
      add(b + "attn_v.bias", {kv});
    }
    if (a == "gemma3") {
      add(b + "attn_q_norm.weight", {hd});
      add(b + "attn_k_norm.weight", {hd});
      add(b + "post_attention_norm.weight", {e});
      add(b + "post_ffw_norm.weight", {e});
    }
    add(b + "ffn_norm.weight", {e});
    add(b + "ffn_gate.weight", {e, s.n_ff});
    add(b + "ffn_up.weight", {e, s.n_ff});
    add(b + "ffn_down.weight", {s.n_ff, e});
  }
  return w.Serialize();
}

class ModelTest : public ::testing::Test {
 protected:
  std::unique_ptr<Model> Load(const TinySpec& spec) {
    bytes_ = TinyModel(spec);
    file_.emplace(gguf::File::Parse(bytes_, "tiny.gguf"));
    return Model::Load(*file_, *backend_);
  }
  std::string LoadError(const TinySpec& spec) {
    try {
      Load(spec);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  }

  std::unique_ptr<Backend> backend_ = CreateBackend("reference", {});
  std::vector<uint8_t> bytes_;
  std::optional<gguf::File> file_;
};

TEST_F(ModelTest, LoadsEachArchitecture) {
  for (const char* arch : {"llama", "qwen2", "gemma3"}) {
    TinySpec spec;
    spec.arch = arch;
    auto m = Load(spec);
    EXPECT_EQ(m->config().arch_name, arch);
    EXPECT_EQ(m->config().head_dim_k, 4);
    EXPECT_EQ(m->config().n_vocab, 32);
    EXPECT_NE(m->weights().layers[1].ffn_down, nullptr);
    // Zero-copy: weights on a host-memory backend point into the file's bytes.
    EXPECT_GE(static_cast<uint8_t*>(m->weights().tok_embd->data), bytes_.data());
    EXPECT_LT(static_cast<uint8_t*>(m->weights().tok_embd->data), bytes_.data() + bytes_.size());
  }
}

// A device whose memory the host cannot address (as far as the model knows): weights must be
// copied into its buffers with Upload.
class DeviceOnlyBackend final : public Backend {
 public:
  DeviceOnlyBackend() { info_.name = "device-only"; }
  const DeviceInfo& device() const override { return info_; }
  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    return std::make_unique<Memory>(*this, bytes);
  }
  void Upload(const Tensor& t, const void* host, uint64_t offset, uint64_t size) override {
    ASSERT_EQ(t.data, nullptr);
    auto* m = static_cast<Memory*>(t.buffer);
    ASSERT_LE(t.offset + offset + size, m->bytes.size());
    std::memcpy(m->bytes.data() + t.offset + offset, host, size);
    uploaded += size;
  }
  void Download(const Tensor&, void*, uint64_t, uint64_t) override {}
  bool Supports(const Node&) const override { return false; }
  void Compute(std::span<const Node>) override {}

  struct Memory final : Buffer {
    Memory(Backend& b, uint64_t n) : owner(b), bytes(n) {}
    Backend& backend() const override { return owner; }
    uint64_t size() const override { return bytes.size(); }
    void* host_data() const override { return nullptr; }
    Backend& owner;
    std::vector<uint8_t> bytes;
  };
  uint64_t uploaded = 0;

 private:
  DeviceInfo info_;
};

TEST(ModelPlacementTest, CopiesWeightsToDevicesWithoutHostMemory) {
  DeviceOnlyBackend device;
  const std::vector<uint8_t> bytes = TinyModel(TinySpec{});
  const gguf::File file = gguf::File::Parse(bytes, "tiny.gguf");
  auto m = Model::Load(file, device);
  const Tensor* wq = m->weights().layers[1].wq;
  ASSERT_NE(wq->buffer, nullptr);
  EXPECT_EQ(wq->data, nullptr);
  const auto* memory = static_cast<const DeviceOnlyBackend::Memory*>(wq->buffer);
  const gguf::TensorInfo* info = file.FindTensor("blk.1.attn_q.weight");
  EXPECT_EQ(std::memcmp(memory->bytes.data() + wq->offset, info->data, info->nbytes), 0);
  EXPECT_EQ(device.uploaded, m->weight_bytes());

  KvCacheShape s;
  s.n_layer = 2;
  s.head_dim = 4;
  s.n_head_kv = 2;
  s.n_cells = 8;
  KvCache cache(device, s);
  EXPECT_EQ(cache.k(1)->data, nullptr);
  EXPECT_NE(cache.k(1)->buffer, nullptr);
}

TEST_F(ModelTest, TiesOutputToEmbeddingsWhenAbsent) {
  TinySpec spec;
  spec.tied_output = true;
  auto m = Load(spec);
  EXPECT_EQ(m->weights().output, m->weights().tok_embd);
}

TEST_F(ModelTest, RopeModeAndScalesPerArchitecture) {
  TinySpec spec;
  EXPECT_EQ(Load(spec)->config().rope.mode, RopeMode::kNormal);
  EXPECT_FLOAT_EQ(Load(spec)->config().attention_scale, 0.5f);
  spec.arch = "qwen2";
  EXPECT_EQ(Load(spec)->config().rope.mode, RopeMode::kNeox);
  spec.arch = "gemma3";
  spec.n_layer = 7;
  auto m = Load(spec);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.rope.mode, RopeMode::kNeox);
  EXPECT_FLOAT_EQ(c.attention_scale, 1.0f);
  EXPECT_FLOAT_EQ(c.query_scale, 0.5f);
  EXPECT_EQ(c.sliding_window, 8);
  const std::vector<bool> swa = {true, true, true, true, true, false, true};
  EXPECT_EQ(c.layer_is_swa, swa);
  EXPECT_FLOAT_EQ(c.rope_swa.freq_base, 10000.0f);
}

TEST_F(ModelTest, UnsupportedArchitectureIsNamed) {
  TinySpec spec;
  spec.arch = "xyz";
  EXPECT_EQ(LoadError(spec), "unsupported architecture 'xyz' (supported: llama, qwen2, gemma3)");
}

TEST_F(ModelTest, MissingTensorIsNamed) {
  TinySpec spec;
  spec.omit = "blk.1.attn_q.weight";
  EXPECT_THAT(LoadError(spec), HasSubstr("missing tensor blk.1.attn_q.weight"));
  spec.arch = "qwen2";
  spec.omit = "blk.0.attn_k.bias";
  EXPECT_THAT(LoadError(spec), HasSubstr("missing tensor blk.0.attn_k.bias"));
  spec.arch = "gemma3";
  spec.omit = "blk.1.post_ffw_norm.weight";
  EXPECT_THAT(LoadError(spec), HasSubstr("missing tensor blk.1.post_ffw_norm.weight"));
}

TEST_F(ModelTest, MisShapedTensorIsNamed) {
  TinySpec spec;
  spec.shape["blk.0.ffn_up.weight"] = {16, 25};
  EXPECT_THAT(LoadError(spec),
              HasSubstr("tensor blk.0.ffn_up.weight has shape [16, 25], expected [16, 24]"));
}

TEST_F(ModelTest, MissingKeyIsNamed) {
  gguf::Writer w;
  w.Set("general.architecture", gguf::Value("llama"));
  w.Set("llama.context_length", gguf::Value(uint32_t{128}));
  bytes_ = w.Serialize();
  file_.emplace(gguf::File::Parse(bytes_, "tiny.gguf"));
  try {
    Model::Load(*file_, *backend_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("lacks required key 'llama.embedding_length'"));
  }
}

TEST(RopeConfigTest, ReadsScaling) {
  gguf::Metadata md;
  md.Set("general.architecture", gguf::Value("llama"));
  md.Set("llama.context_length", gguf::Value(uint32_t{8192}));
  md.Set("llama.embedding_length", gguf::Value(uint32_t{64}));
  md.Set("llama.block_count", gguf::Value(uint32_t{1}));
  md.Set("llama.feed_forward_length", gguf::Value(uint32_t{128}));
  md.Set("llama.attention.head_count", gguf::Value(uint32_t{4}));
  md.Set("llama.attention.layer_norm_rms_epsilon", gguf::Value(1e-5f));
  md.Set("llama.vocab_size", gguf::Value(uint32_t{10}));
  md.Set("llama.rope.freq_base", gguf::Value(500000.0f));
  ModelConfig c = ReadConfig(md);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.rope.n_rot, 16);
  EXPECT_FLOAT_EQ(c.rope.freq_base, 500000.0f);
  EXPECT_FLOAT_EQ(c.rope.freq_scale, 1.0f);

  md.Set("llama.rope.scaling.type", gguf::Value("linear"));
  md.Set("llama.rope.scaling.factor", gguf::Value(4.0f));
  EXPECT_FLOAT_EQ(ReadConfig(md).rope.freq_scale, 0.25f);
  EXPECT_FLOAT_EQ(ReadConfig(md).rope.ext_factor, 0.0f);

  md.Set("llama.rope.scaling.type", gguf::Value("yarn"));
  md.Set("llama.rope.scaling.original_context_length", gguf::Value(uint32_t{2048}));
  c = ReadConfig(md);
  EXPECT_FLOAT_EQ(c.rope.freq_scale, 0.25f);
  EXPECT_FLOAT_EQ(c.rope.ext_factor, 1.0f);
  EXPECT_EQ(c.rope.n_ctx_orig, 2048);

  md.Set("llama.rope.scaling.type", gguf::Value("longrope"));
  EXPECT_THROW(ReadConfig(md), Error);
  md.Set("llama.rope.scaling.type", gguf::Value("none"));
  EXPECT_FLOAT_EQ(ReadConfig(md).rope.freq_scale, 1.0f);
}

class KvCacheTest : public ::testing::Test {
 protected:
  KvCache MakeCache(int n_cells, int n_seq) {
    KvCacheShape s;
    s.n_layer = 2;
    s.head_dim = 4;
    s.n_head_kv = 2;
    s.n_cells = n_cells;
    s.n_seq_max = n_seq;
    return KvCache(*backend_, s);
  }
  static std::string ErrorOf(const std::function<void()>& f) {
    try {
      f();
    } catch (const dizuo::Error& e) {
      return e.what();
    }
    return "no error";
  }
  std::unique_ptr<Backend> backend_ = CreateBackend("reference", {});
};

TEST_F(KvCacheTest, AllocatesLowestFreeCellsAndReusesRemovedOnes) {
  KvCache cache = MakeCache(8, 2);
  EXPECT_EQ(cache.k(1)->ne[0], 4);
  EXPECT_EQ(cache.k(1)->ne[2], 8);
  EXPECT_EQ(cache.k(0)->type, DType::F16);
  std::vector<PosSeq> a = {{0, 0}, {1, 0}, {0, 1}, {2, 0}};
  EXPECT_EQ(cache.Reserve(a), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(cache.SequenceLength(0), 3);
  EXPECT_EQ(cache.SequenceLength(1), 1);
  EXPECT_EQ(cache.used_prefix(), 4);
  cache.RemoveSequence(0, 1);  // frees cells 1 and 3
  EXPECT_EQ(cache.SequenceLength(0), 1);
  EXPECT_EQ(cache.n_free(), 6);
  std::vector<PosSeq> b = {{1, 1}, {2, 1}, {3, 1}};
  EXPECT_EQ(cache.Reserve(b), (std::vector<int32_t>{1, 3, 4}));
  EXPECT_EQ(cache.cells()[3].seq, 1);
  EXPECT_EQ(cache.cells()[3].pos, 2);
  cache.RemoveSequence(1);
  EXPECT_EQ(cache.SequenceLength(1), 0);
  EXPECT_EQ(cache.used_prefix(), 1);
  cache.Clear();
  EXPECT_EQ(cache.n_free(), 8);
  EXPECT_EQ(cache.used_prefix(), 0);
}

// Head-major: a KV head's cells are consecutive rows, heads follow each other, and K and V of a
// layer do not overlap.
TEST_F(KvCacheTest, KeepsEachHeadsCellsTogether) {
  KvCache cache = MakeCache(8, 1);
  for (int il = 0; il < 2; ++il) {
    for (const Tensor* t : {cache.k(il), cache.v(il)}) {
      EXPECT_EQ(t->nb[0], 2u);
      EXPECT_EQ(t->nb[2], 4u * 2);
      EXPECT_EQ(t->nb[1], 8u * 4 * 2);
      EXPECT_EQ(t->bytes(), 2u * 8 * 4 * 2);
    }
    const auto* k = static_cast<const char*>(cache.k(il)->data);
    const auto* v = static_cast<const char*>(cache.v(il)->data);
    EXPECT_GE(v - k, static_cast<std::ptrdiff_t>(cache.k(il)->bytes()));
  }
}

TEST_F(KvCacheTest, RejectsBadBatchesWithoutChangingState) {
  KvCache cache = MakeCache(4, 2);
  std::vector<PosSeq> a = {{0, 0}, {1, 0}};
  cache.Reserve(a);
  std::vector<PosSeq> bad_seq = {{0, 2}};
  EXPECT_EQ(ErrorOf([&] { cache.Reserve(bad_seq); }), "sequence id 2 is out of range (0 to 1)");
  std::vector<PosSeq> cached = {{2, 0}, {1, 0}};
  EXPECT_THAT(ErrorOf([&] { cache.Reserve(cached); }),
              HasSubstr("position 1 of sequence 0 is already in the KV cache"));
  std::vector<PosSeq> twice = {{5, 1}, {5, 1}};
  EXPECT_THAT(ErrorOf([&] { cache.Reserve(twice); }), HasSubstr("appears twice"));
  std::vector<PosSeq> too_many = {{0, 1}, {1, 1}, {2, 1}};
  EXPECT_THAT(ErrorOf([&] { cache.Reserve(too_many); }), HasSubstr("2 free cells of 4"));
  std::vector<PosSeq> negative = {{-1, 1}};
  EXPECT_THAT(ErrorOf([&] { cache.Reserve(negative); }), HasSubstr("out of range"));
  EXPECT_EQ(cache.n_free(), 2);
  EXPECT_EQ(cache.SequenceLength(1), 0);
  std::vector<int32_t> cells = cache.Reserve(std::vector<PosSeq>{{0, 1}, {1, 1}});
  cache.Release(cells);
  EXPECT_EQ(cache.n_free(), 2);
  EXPECT_EQ(cache.SequenceLength(1), 0);
}

TEST_F(KvCacheTest, RejectsBadShapes) {
  EXPECT_THROW(MakeCache(0, 1), dizuo::Error);
  EXPECT_THROW(MakeCache(4, 5), dizuo::Error);
  KvCacheShape s;
  s.n_layer = 1;
  s.head_dim = 4;
  s.n_head_kv = 1;
  s.n_cells = 4;
  s.type = DType::Q8_0;
  EXPECT_THAT(ErrorOf([&] { KvCache c(*backend_, s); }), HasSubstr("f16 or f32"));
}

}  // namespace
}  // namespace dizuo::model
