#include "model/synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"
#include "model/synthetic_vocab.h"

namespace dizuo {
namespace {

// ---- Presets ----------------------------------------------------------------------------------

struct Preset {
  std::string_view arch, name;
  int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
  float rms_eps, rope_base;
  int sliding_window;
};

// Sizes follow the families' real models; every matrix row length is a multiple of 256 so that
// every block type (K-quants included) applies to every weight.
constexpr Preset kPresets[] = {
    {"llama", "tiny", 256, 4, 8, 4, 32, 768, 4096, 2048, 1e-5f, 10000.0f, 0},
    {"llama", "125m", 768, 12, 12, 4, 64, 3072, 32000, 2048, 1e-5f, 10000.0f, 0},
    {"llama", "1b", 2048, 16, 32, 8, 64, 8192, 32000, 4096, 1e-5f, 10000.0f, 0},
    {"qwen2", "tiny", 256, 4, 8, 2, 32, 768, 4096, 4096, 1e-6f, 1000000.0f, 0},
    {"qwen2", "125m", 768, 12, 12, 2, 64, 3072, 32000, 4096, 1e-6f, 1000000.0f, 0},
    {"qwen2", "1b", 2048, 16, 16, 2, 128, 8192, 32000, 4096, 1e-6f, 1000000.0f, 0},
    {"gemma3", "tiny", 256, 6, 4, 2, 64, 768, 4096, 2048, 1e-6f, 1000000.0f, 16},
    {"gemma3", "125m", 768, 12, 4, 1, 256, 3072, 32000, 8192, 1e-6f, 1000000.0f, 512},
    {"gemma3", "1b", 2048, 18, 8, 2, 256, 8192, 32000, 8192, 1e-6f, 1000000.0f, 512},
};

// llama.cpp's file types (llama_ftype), recorded as general.file_type.
uint32_t FileType(std::string_view type) {
  static constexpr std::pair<std::string_view, uint32_t> kTypes[] = {
      {"f32", 0},   {"f16", 1},   {"q4_0", 2},  {"q4_1", 3},   {"q8_0", 7},
      {"q5_0", 8},  {"q5_1", 9},  {"q2_k", 10}, {"q3_k", 11},  {"q4_k", 14},
      {"q5_k", 16}, {"q6_k", 18}, {"bf16", 32}, {"q4_k_m", 15}};
  for (const auto& [name, id] : kTypes) {
    if (name == type) return id;
  }
  return UINT32_MAX;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ---- Deterministic random numbers -------------------------------------------------------------

uint64_t SplitMix64(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  return h;
}

// A standard-normal-like sample from one 64-bit output: the sum of four 16-bit uniforms
// (Irwin-Hall, n = 4: mean 2, variance 1/3), centred and scaled to unit variance. Integer sums and
// one double multiply: no libm, so every machine gets the same bits. Tails end at ±3.46.
float NormalSample(uint64_t r) {
  const uint64_t sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
  const double u = (static_cast<double>(sum) + 2.0) / 65536.0 - 2.0;
  return static_cast<float>(u * 1.7320508075688772);
}

// ---- Tensors ----------------------------------------------------------------------------------

struct TensorSpec {
  TensorSpec(std::string name, std::vector<int64_t> shape, DType type, float mean, float stddev)
      : name(std::move(name)), shape(std::move(shape)), type(type), mean(mean), stddev(stddev) {}
  std::string name;
  std::vector<int64_t> shape;  // GGUF order
  DType type;
  float mean;  // values are mean + stddev * N(0, 1)
  float stddev;
  // With a source: row r's N(0, 1) is sqrt(1 - w²)·(its own sample) + w·(the sample that drew row
  // (r + source_shift) mod rows of tensor `source`), w = source_weight: a correlation with another
  // tensor's rows that keeps unit variance.
  std::string source;
  float source_weight = 0.0f;
  int64_t source_shift = 0;
};

// Quantization of the 2-D weights. "q4_k_m" follows llama.cpp's Q4_K_M rule: Q4_K everywhere
// except Q6_K for the output matrix (the token embedding when tied) and for attn_v and ffn_down in
// the layers where use_more_bits holds (first and last eighth, every third in between).
class TypeRule {
 public:
  explicit TypeRule(std::string_view type) : mixture_(type == "q4_k_m") {
    if (!mixture_) {
      const std::optional<DType> t = ParseDType(type);
      DZ_ASSERT(t.has_value());
      type_ = *t;
    }
  }
  DType base() const { return mixture_ ? DType::Q4_K : type_; }
  DType For(std::string_view role, int layer, int n_layer, bool is_output) const {
    if (!mixture_) return type_;
    if (is_output) return DType::Q6_K;
    if ((role == "attn_v" || role == "ffn_down") && UseMoreBits(layer, n_layer)) return DType::Q6_K;
    return DType::Q4_K;
  }

 private:
  static bool UseMoreBits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  }
  bool mixture_;
  DType type_ = DType::F32;
};

// Scales (see docs/SYNTHETIC.md): projections N(0, 1/fan_in) keep every matmul output near unit
// variance, so attention scores are O(1) and the residual stream grows slowly; the output matrix
// gives logits a standard deviation of kLogitStd, so next-token distributions are peaked but not
// one-hot.
constexpr float kLogitStd = 4.0f;
constexpr float kNormNoise = 0.05f;
constexpr float kBiasStd = 0.1f;
// Random logits alone make flat next-token distributions full of near-ties (tiny models: mean
// top-1 probability ~0.4, smallest top-1/top-2 margins ~0.01); trained models are peakier, and a
// test of agreement on the top token should mostly ask about clear winners. Two knobs, tuned on the
// tiny presets for a mean top-1 probability of ~0.6-0.8 (docs/SYNTHETIC.md, TensorSpecs):
//  * llama / qwen2: output row j correlates with the embedding row of token j − 1 with weight
//    kSuccessorCorrelation / sqrt(n_embd), so each token favours its successor (a bigram model);
//  * gemma3 (tied): the input token's own logit stands kSelfSignal logit stds above the mean.
constexpr float kSuccessorCorrelation = 6.5f;
constexpr float kSelfSignal = 4.3f;

std::vector<TensorSpec> TensorSpecs(const SyntheticShape& s, const TypeRule& rule) {
  const bool gemma = s.arch == "gemma3";
  const bool qwen = s.arch == "qwen2";
  const int64_t d = s.n_embd, q_dim = int64_t{s.n_head} * s.head_dim,
                kv_dim = int64_t{s.n_head_kv} * s.head_dim, ff = s.n_ff, vocab = s.n_vocab;
  const auto inv_sqrt = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  std::vector<TensorSpec> specs;
  const auto norm = [&](std::string name, int64_t n) {
    specs.push_back({std::move(name), {n}, DType::F32, 1.0f, kNormNoise});
  };
  const auto matrix = [&](std::string name, std::string_view role, int layer, int64_t in,
                          int64_t out, float stddev, bool is_output = false) {
    specs.push_back(
        {std::move(name), {in, out}, rule.For(role, layer, s.n_layer, is_output), 0.0f, stddev});
  };
  // A trained model's final hidden state points at the output row of its next token. Here each
  // token's own embedding, which the residual stream carries to the end, does that (see
  // kSuccessorCorrelation). gemma3 ties output and embedding, so each token favours itself. The
  // input embedding enters scaled by sqrt(n_embd) (per-dimension std kLogitStd) and alone would put
  // its logit ~sqrt(n_embd) std above the rest; Gemma's post-norms set the scale g of what each of
  // the 2·n_layer sublayers adds, and rms(residual)² ≈ kLogitStd² + 2·n_layer·g² puts the input
  // token's logit at sqrt(n_embd)·kLogitStd² / rms = kSelfSignal·kLogitStd.
  const float post_gain =
      kLogitStd * std::sqrt((static_cast<float>(d) / (kSelfSignal * kSelfSignal) - 1.0f) /
                            (2.0f * static_cast<float>(s.n_layer)));
  const auto post_norm = [&](std::string name) {
    specs.push_back({std::move(name), {d}, DType::F32, post_gain, post_gain * kNormNoise});
  };
  // Gemma ties the output to the embedding and scales the input embedding by sqrt(n_embd): one
  // table serves both, sized for the logits. The others get unit-variance embeddings.
  matrix("token_embd.weight", "token_embd", 0, d, vocab, gemma ? kLogitStd * inv_sqrt(d) : 1.0f,
         gemma);
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    norm(p + "attn_norm.weight", d);
    matrix(p + "attn_q.weight", "attn_q", i, d, q_dim, inv_sqrt(d));
    matrix(p + "attn_k.weight", "attn_k", i, d, kv_dim, inv_sqrt(d));
    matrix(p + "attn_v.weight", "attn_v", i, d, kv_dim, inv_sqrt(d));
    if (qwen) {
      specs.push_back({p + "attn_q.bias", {q_dim}, DType::F32, 0.0f, kBiasStd});
      specs.push_back({p + "attn_k.bias", {kv_dim}, DType::F32, 0.0f, kBiasStd});
      specs.push_back({p + "attn_v.bias", {kv_dim}, DType::F32, 0.0f, kBiasStd});
    }
    if (gemma) {
      norm(p + "attn_q_norm.weight", s.head_dim);
      norm(p + "attn_k_norm.weight", s.head_dim);
    }
    matrix(p + "attn_output.weight", "attn_output", i, q_dim, d, inv_sqrt(q_dim));
    if (gemma) post_norm(p + "post_attention_norm.weight");
    norm(p + "ffn_norm.weight", d);
    matrix(p + "ffn_gate.weight", "ffn_gate", i, d, ff, inv_sqrt(d));
    matrix(p + "ffn_up.weight", "ffn_up", i, d, ff, inv_sqrt(d));
    matrix(p + "ffn_down.weight", "ffn_down", i, ff, d, inv_sqrt(ff));
    if (gemma) post_norm(p + "post_ffw_norm.weight");
  }
  norm("output_norm.weight", d);
  if (!gemma) {
    matrix("output.weight", "output", 0, d, vocab, kLogitStd * inv_sqrt(d), true);
    specs.back().source = "token_embd.weight";
    specs.back().source_weight = std::min(1.0f, kSuccessorCorrelation * inv_sqrt(d));
    specs.back().source_shift = vocab - 1;
  }
  return specs;
}

// The stream state that draws row r of the tensor with key `tensor_key`.
uint64_t RowState(uint64_t tensor_key, int64_t r) {
  uint64_t state = tensor_key ^ (static_cast<uint64_t>(r) * 0xA0761D6478BD642Full);
  SplitMix64(state);
  return state;
}

// Generates one tensor, row by row; row r's numbers depend only on (seed, name, r), so threads
// may split the rows any way.
std::vector<uint8_t> GenerateTensor(const TensorSpec& spec, uint64_t seed, int threads) {
  const int64_t row_len = spec.shape[0];
  int64_t rows = 1;
  for (size_t i = 1; i < spec.shape.size(); ++i) rows *= spec.shape[i];
  const uint64_t row_bytes = *RowBytes(spec.type, static_cast<uint64_t>(row_len));
  std::vector<uint8_t> out(row_bytes * static_cast<uint64_t>(rows));
  const auto key = [seed](std::string_view name) {
    return Fnv1a(name) ^ (seed * 0xD1342543DE82EF95ull);
  };
  const uint64_t tensor_key = key(spec.name);
  const uint64_t source_key = spec.source.empty() ? 0 : key(spec.source);
  const float own_weight = std::sqrt(1.0f - spec.source_weight * spec.source_weight);

  const auto work = [&](int64_t begin, int64_t end) {
    std::vector<float> values(static_cast<size_t>(row_len));
    for (int64_t r = begin; r < end; ++r) {
      uint64_t state = RowState(tensor_key, r);
      if (spec.source.empty()) {
        for (float& v : values) v = spec.mean + spec.stddev * NormalSample(SplitMix64(state));
      } else {
        uint64_t source_state = RowState(source_key, (r + spec.source_shift) % rows);
        for (float& v : values) {
          const float own = NormalSample(SplitMix64(state));
          const float source = NormalSample(SplitMix64(source_state));
          v = spec.mean + spec.stddev * (own_weight * own + spec.source_weight * source);
        }
      }
      QuantizeRow(spec.type, values.data(), out.data() + row_bytes * static_cast<uint64_t>(r),
                  row_len);
    }
  };
  const int64_t n_threads = std::clamp<int64_t>(threads, 1, std::max<int64_t>(rows / 64, 1));
  if (n_threads == 1) {
    work(0, rows);
    return out;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < n_threads; ++t) {
    pool.emplace_back(work, rows * t / n_threads, rows * (t + 1) / n_threads);
  }
  for (std::thread& th : pool) th.join();
  return out;
}

// ---- Metadata ---------------------------------------------------------------------------------

void SetTokenizer(gguf::Writer& w, const SyntheticShape& s) {
  const bool bpe = s.arch == "qwen2";
  const SyntheticVocab v =
      bpe ? BuildBpeVocab(s.n_vocab) : BuildSpmVocab(s.n_vocab, s.arch == "gemma3");
  DZ_ASSERT(static_cast<int>(v.tokens.size()) == s.n_vocab);
  const auto id = [](int32_t t) { return gguf::Value(static_cast<uint32_t>(t)); };
  w.Set("tokenizer.ggml.model", gguf::Value(bpe ? "gpt2" : "llama"));
  w.Set("tokenizer.ggml.pre", gguf::Value(bpe ? "qwen2" : "default"));
  w.Set("tokenizer.ggml.tokens", gguf::Value::StringArray(v.tokens));
  if (!bpe) w.Set("tokenizer.ggml.scores", gguf::Value::Float32Array(v.scores));
  w.Set("tokenizer.ggml.token_type", gguf::Value::Int32Array(v.types));
  if (bpe) w.Set("tokenizer.ggml.merges", gguf::Value::StringArray(v.merges));
  w.Set("tokenizer.ggml.bos_token_id", id(v.bos));
  w.Set("tokenizer.ggml.eos_token_id", id(v.eos));
  if (v.unk >= 0) w.Set("tokenizer.ggml.unknown_token_id", id(v.unk));
  if (v.pad >= 0) w.Set("tokenizer.ggml.padding_token_id", id(v.pad));
  w.Set("tokenizer.ggml.add_bos_token", gguf::Value(!bpe));
  w.Set("tokenizer.ggml.add_eos_token", gguf::Value(false));
  if (s.arch == "gemma3") {
    w.Set("tokenizer.ggml.add_space_prefix", gguf::Value(false));
    w.Set("tokenizer.chat_template",
          gguf::Value("{{ bos_token }}{% for m in messages %}<start_of_turn>"
                      "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
                      "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
                      "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"));
  } else if (bpe) {
    w.Set("tokenizer.chat_template",
          gguf::Value("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                      "<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"));
  }
}

void SetHyperparameters(gguf::Writer& w, const SyntheticShape& s) {
  const std::string a = s.arch;
  const auto u32 = [](int v) { return gguf::Value(static_cast<uint32_t>(v)); };
  w.Set(a + ".context_length", u32(s.n_ctx));
  w.Set(a + ".embedding_length", u32(s.n_embd));
  w.Set(a + ".block_count", u32(s.n_layer));
  w.Set(a + ".feed_forward_length", u32(s.n_ff));
  w.Set(a + ".attention.head_count", u32(s.n_head));
  w.Set(a + ".attention.head_count_kv", u32(s.n_head_kv));
  w.Set(a + ".attention.layer_norm_rms_epsilon", gguf::Value(s.rms_eps));
  w.Set(a + ".rope.freq_base", gguf::Value(s.rope_base));
  if (a == "llama") {
    w.Set(a + ".rope.dimension_count", u32(s.head_dim));
    w.Set(a + ".vocab_size", u32(s.n_vocab));
  }
  if (a == "gemma3") {
    // llama.cpp derives the layer pattern (5 sliding, 1 global) and the local RoPE base (10000)
    // from the architecture; only the window is stored.
    w.Set(a + ".attention.key_length", u32(s.head_dim));
    w.Set(a + ".attention.value_length", u32(s.head_dim));
    w.Set(a + ".attention.sliding_window", u32(s.sliding_window));
  }
}

}  // namespace

SyntheticShape ResolveSyntheticShape(const SyntheticOptions& options) {
  const std::string arch = Lower(options.arch), preset = Lower(options.preset);
  const Preset* found = nullptr;
  bool arch_known = false;
  for (const Preset& p : kPresets) {
    arch_known |= p.arch == arch;
    if (p.arch == arch && p.name == preset) found = &p;
  }
  if (!arch_known)
    Fail("unknown architecture '{}' (expected llama, qwen2 or gemma3)", options.arch);
  if (found == nullptr) Fail("unknown preset '{}' (expected tiny, 125m or 1b)", options.preset);
  const std::string type = Lower(options.type);
  if (FileType(type) == UINT32_MAX) {
    Fail(
        "unsupported weight type '{}' (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, "
        "q2_k, q3_k, q4_k, q5_k, q6_k or q4_k_m)",
        options.type);
  }
  SyntheticShape s;
  s.arch = arch;
  s.n_embd = found->n_embd;
  s.n_layer = found->n_layer;
  s.n_head = found->n_head;
  s.n_head_kv = found->n_head_kv;
  s.head_dim = found->head_dim;
  s.n_ff = found->n_ff;
  s.n_vocab = found->n_vocab;
  s.n_ctx = found->n_ctx;
  s.rms_eps = found->rms_eps;
  s.rope_base = found->rope_base;
  s.sliding_window = found->sliding_window;
  constexpr int kMaxVocab = 1 << 20, kMaxCtx = 1 << 20;
  if (options.n_vocab != 0) {
    if (options.n_vocab < kMinSyntheticVocab || options.n_vocab > kMaxVocab) {
      Fail("vocabulary size {} out of range [{}, {}]", options.n_vocab, kMinSyntheticVocab,
           kMaxVocab);
    }
    s.n_vocab = options.n_vocab;
  }
  if (options.n_ctx != 0) {
    if (options.n_ctx < 1 || options.n_ctx > kMaxCtx) {
      Fail("context length {} out of range [1, {}]", options.n_ctx, kMaxCtx);
    }
    s.n_ctx = options.n_ctx;
  }
  return s;
}

gguf::Writer BuildSyntheticModel(const SyntheticOptions& options,
                                 const SyntheticProgress& progress) {
  const SyntheticShape s = ResolveSyntheticShape(options);
  const std::string type = Lower(options.type);
  const TypeRule rule(type);
  const std::vector<TensorSpec> specs = TensorSpecs(s, rule);
  for (const TensorSpec& spec : specs) {
    if (!RowBytes(spec.type, static_cast<uint64_t>(spec.shape[0]))) {
      Fail("type {} needs rows of a multiple of {} elements; {} has {}", Name(spec.type),
           Traits(spec.type).block_size, spec.name, spec.shape[0]);
    }
  }

  gguf::Writer w;
  w.Set("general.architecture", gguf::Value(s.arch));
  w.Set("general.type", gguf::Value("model"));
  w.Set("general.name", gguf::Value(fmt::format("dizuo synthetic {} {} {} seed {}", s.arch,
                                                Lower(options.preset), type, options.seed)));
  w.Set("general.file_type", gguf::Value(FileType(type)));
  w.Set("general.quantization_version", gguf::Value(uint32_t{2}));
  w.Set("dizuo.synthetic.preset", gguf::Value(Lower(options.preset)));
  w.Set("dizuo.synthetic.seed", gguf::Value(options.seed));
  SetHyperparameters(w, s);
  SetTokenizer(w, s);

  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int done = 0;
  for (const TensorSpec& spec : specs) {
    const std::vector<uint8_t> data = GenerateTensor(spec, options.seed, threads);
    w.AddTensor(spec.name, spec.type, spec.shape, data);
    if (progress) progress(++done, static_cast<int>(specs.size()), spec.name);
  }
  return w;
}

void WriteSyntheticModel(const SyntheticOptions& options, const std::string& path,
                         const SyntheticProgress& progress) {
  BuildSyntheticModel(options, progress).WriteFile(path);
}

// ---- SHA-256 (FIPS 180-4) ---------------------------------------------------------------------

namespace {

class Sha256 {
 public:
  void Update(const uint8_t* p, size_t n) {
    total_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_t{64} - fill_);
      std::memcpy(block_.data() + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ == 64) {
        Compress();
        fill_ = 0;
      }
    }
  }
  std::string HexDigest() {
    const uint64_t bits = total_ * 8;
    const uint8_t one = 0x80, zero = 0;
    Update(&one, 1);
    while (fill_ != 56) Update(&zero, 1);
    for (int i = 7; i >= 0; --i) {
      const uint8_t b = static_cast<uint8_t>(bits >> (8 * i));
      Update(&b, 1);
    }
    std::string hex;
    for (uint32_t h : h_) hex += fmt::format("{:08x}", h);
    return hex;
  }

 private:
  static uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void Compress() {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = (uint32_t{block_[4 * i]} << 24) | (uint32_t{block_[4 * i + 1]} << 16) |
             (uint32_t{block_[4 * i + 2]} << 8) | uint32_t{block_[4 * i + 3]};
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 =
          h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    const uint32_t add[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; ++i) h_[i] += add[i];
  }

  std::array<uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  size_t fill_ = 0;
  uint64_t total_ = 0;
};

}  // namespace

std::string Sha256Hex(std::span<const uint8_t> bytes) {
  Sha256 sha;
  sha.Update(bytes.data(), bytes.size());
  return sha.HexDigest();
}

std::string FileSha256Hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("{}: cannot open for hashing", path);
  Sha256 sha;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    sha.Update(reinterpret_cast<const uint8_t*>(buffer.data()), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) Fail("{}: read error while hashing", path);
  return sha.HexDigest();
}

}  // namespace dizuo
