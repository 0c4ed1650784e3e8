#include "model/config.h"

#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace dizuo::model {
namespace {

// Keys of one architecture: `<arch>.<suffix>`.
class Keys {
 public:
  Keys(const gguf::Metadata& metadata, std::string arch) : md_(metadata), arch_(std::move(arch)) {}

  std::string Name(std::string_view suffix) const { return fmt::format("{}.{}", arch_, suffix); }

  std::optional<int64_t> OptInt(std::string_view suffix) const { return md_.GetInt(Name(suffix)); }
  std::optional<double> OptFloat(std::string_view suffix) const {
    return md_.GetFloat(Name(suffix));
  }
  std::optional<std::string> OptString(std::string_view suffix) const {
    return md_.GetString(Name(suffix));
  }

  // A required positive count (layers, heads, sizes), bounded so that later arithmetic on shapes
  // cannot overflow.
  int Count(std::string_view suffix, int64_t max = int64_t{1} << 24) const {
    std::optional<int64_t> v = OptInt(suffix);
    if (!v) Fail("model metadata lacks required key '{}'", Name(suffix));
    return CheckCount(suffix, *v, max);
  }
  int CountOr(std::string_view suffix, int fallback, int64_t max = int64_t{1} << 24) const {
    std::optional<int64_t> v = OptInt(suffix);
    return v ? CheckCount(suffix, *v, max) : fallback;
  }

 private:
  int CheckCount(std::string_view suffix, int64_t v, int64_t max) const {
    if (v <= 0 || v > max) Fail("model metadata '{}' = {} is out of range", Name(suffix), v);
    return static_cast<int>(v);
  }

  const gguf::Metadata& md_;
  std::string arch_;
};

// Reads the RoPE keys shared by all architectures into `rope` (global layers).
void ReadRope(const Keys& keys, const ModelConfig& c, RopeParams& rope) {
  rope.n_rot = keys.CountOr("rope.dimension_count", c.head_dim_k);
  if (rope.n_rot > c.head_dim_k || rope.n_rot % 2 != 0) {
    Fail("model metadata '{}' = {} does not fit head size {}", keys.Name("rope.dimension_count"),
         rope.n_rot, c.head_dim_k);
  }
  rope.freq_base = static_cast<float>(keys.OptFloat("rope.freq_base").value_or(10000.0));
  if (!(rope.freq_base > 0))
    Fail("model metadata '{}' must be positive", keys.Name("rope.freq_base"));

  // As llama.cpp: the scaling type defaults to linear, and a missing or zero factor means none.
  std::string type = keys.OptString("rope.scaling.type").value_or("linear");
  double factor = keys.OptFloat("rope.scaling.factor")
                      .value_or(keys.OptFloat("rope.scale_linear").value_or(0.0));
  if (factor < 0 || !std::isfinite(factor)) {
    Fail("model metadata '{}' = {} is invalid", keys.Name("rope.scaling.factor"), factor);
  }
  rope.freq_scale = factor == 0 ? 1.0f : static_cast<float>(1.0 / factor);
  rope.n_ctx_orig = keys.CountOr("rope.scaling.original_context_length", c.n_ctx_train);
  if (type == "none") {
    rope.freq_scale = 1.0f;
  } else if (type == "linear") {
    // freq_scale as read.
  } else if (type == "yarn") {
    rope.ext_factor =
        static_cast<float>(keys.OptFloat("rope.scaling.yarn_ext_factor").value_or(1.0));
    rope.attn_factor = static_cast<float>(
        keys.OptFloat("rope.scaling.attn_factor")
            .value_or(keys.OptFloat("rope.scaling.yarn_attn_factor").value_or(1.0)));
    rope.beta_fast =
        static_cast<float>(keys.OptFloat("rope.scaling.yarn_beta_fast").value_or(32.0));
    rope.beta_slow = static_cast<float>(keys.OptFloat("rope.scaling.yarn_beta_slow").value_or(1.0));
  } else {
    Fail("unsupported RoPE scaling type '{}' in '{}' (supported: none, linear, yarn)", type,
         keys.Name("rope.scaling.type"));
  }
}

}  // namespace

const std::vector<std::string>& SupportedArchitectures() {
  static const std::vector<std::string> names = {"llama", "qwen2", "gemma3"};
  return names;
}

ModelConfig ReadConfig(const gguf::Metadata& metadata) {
  std::optional<std::string> arch = metadata.GetString("general.architecture");
  if (!arch) Fail("model metadata lacks 'general.architecture'");
  ModelConfig c;
  c.arch_name = *arch;
  if (*arch == "llama") {
    c.arch = Arch::kLlama;
  } else if (*arch == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (*arch == "gemma3") {
    c.arch = Arch::kGemma3;
  } else {
    Fail("unsupported architecture '{}' (supported: {})", *arch,
         fmt::join(SupportedArchitectures(), ", "));
  }

  const Keys keys(metadata, *arch);
  c.n_ctx_train = keys.Count("context_length", int64_t{1} << 30);
  c.n_embd = keys.Count("embedding_length");
  c.n_layer = keys.Count("block_count", 4096);
  c.n_ff = keys.Count("feed_forward_length");
  c.n_head = keys.Count("attention.head_count", 65536);
  c.n_head_kv = keys.CountOr("attention.head_count_kv", c.n_head, 65536);
  if (c.n_head % c.n_head_kv != 0) {
    Fail("model metadata: {} query heads are not a multiple of {} key/value heads", c.n_head,
         c.n_head_kv);
  }
  const int default_head_dim = c.n_embd / c.n_head;
  c.head_dim_k = keys.CountOr("attention.key_length", default_head_dim, 65536);
  c.head_dim_v = keys.CountOr("attention.value_length", default_head_dim, 65536);
  if (c.head_dim_k != c.head_dim_v) {
    Fail("model metadata: key head size {} differs from value head size {} (not supported)",
         c.head_dim_k, c.head_dim_v);
  }
  if (std::optional<int64_t> v = keys.OptInt("vocab_size")) {
    c.n_vocab = keys.Count("vocab_size", int64_t{1} << 26);
  } else if (const gguf::Array* tokens = metadata.GetArray("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<int>(tokens->items.size());
  }
  if (c.n_vocab <= 0) {
    Fail("model metadata gives no vocabulary size ('{}' or 'tokenizer.ggml.tokens')",
         keys.Name("vocab_size"));
  }
  const double eps = keys.OptFloat("attention.layer_norm_rms_epsilon").value_or(-1.0);
  if (!(eps > 0 && eps < 1)) {
    Fail("model metadata lacks a valid '{}'", keys.Name("attention.layer_norm_rms_epsilon"));
  }
  c.rms_eps = static_cast<float>(eps);

  ReadRope(keys, c, c.rope);
  c.rope.mode = c.arch == Arch::kLlama ? RopeMode::kNormal : RopeMode::kNeox;
  c.rope_swa = c.rope;
  c.layer_is_swa.assign(static_cast<size_t>(c.n_layer), false);

  // In float, as llama.cpp computes it.
  const float head_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim_k));
  c.attention_scale = head_scale;

  if (c.arch == Arch::kGemma3) {
    // Gemma 3 (as llama.cpp): Q is scaled by 1/sqrt(head size) before attention (27B, whose 62
    // layers identify it: 1/sqrt(n_embd/n_head)), and ATTENTION itself uses scale 1.
    c.query_scale =
        c.n_layer == 62 ? 1.0f / std::sqrt(static_cast<float>(c.n_embd / c.n_head)) : head_scale;
    c.attention_scale = 1.0f;
    c.sliding_window = keys.CountOr("attention.sliding_window", 0, int64_t{1} << 30);
    if (c.sliding_window > 0) {
      // Every sixth layer (il % 6 == 5) is global; the others use the window with RoPE base 1e4
      // and no frequency scaling.
      for (int il = 0; il < c.n_layer; ++il) c.layer_is_swa[static_cast<size_t>(il)] = il % 6 < 5;
      c.rope_swa.freq_base = 10000.0f;
      c.rope_swa.freq_scale = 1.0f;
    } else if (std::optional<double> softcap = keys.OptFloat("final_logit_softcapping");
               softcap && *softcap != 0) {
      // llama.cpp applies this cap only to Gemma 3 models without sliding-window layers.
      Fail("model metadata '{}' asks for final logit softcapping, which dizuo does not support",
           keys.Name("final_logit_softcapping"));
    }
  }
  return c;
}

}  // namespace dizuo::model
