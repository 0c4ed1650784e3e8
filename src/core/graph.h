// The compute graph: a list of op nodes over tensors, built once per forward batch by a model and
// executed, in node order, by one or more backends.
//
// Op semantics (shapes in ne order, innermost first; every float input and output is f32 unless
// stated; row = one ne[0]-long vector):
//   GET_ROWS   out[E,T]      = table[E,V] rows ids[T] (i32), table of any convertible dtype.
//   MATMUL     out[N,M]      = x[K,M] · w[K,N]ᵀ. For a quantized w, each row of x is first
//                              quantized to w's activation type (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1
//                              for Q4_1/Q5_1, Q8_K for K-quants) and the dot products are exact
//                              integer sums per block scaled by the block factors; for F16/BF16
//                              w, x is rounded to that type first. This is how GGUF engines define
//                              the product, so results match them up to float summation order.
//   ADD, MUL   out = a ∘ b   b has a's ne[0] and either one row (broadcast) or a's row count.
//   SCALE      out = a · params.scale
//   RMS_NORM   out = x / sqrt(mean(x²) + eps) [· weight[E]], per row.
//   ROPE       x[D,H,T], pos[T] (i32), optional freq_factors[n_rot/2]: rotates the first n_rot
//              dims of each head; normal mode pairs (2i, 2i+1), neox mode pairs (i, i+n_rot/2).
//              theta_i = pos · freq_base^(-2i/n_rot) / freq_factor_i, then YaRN-style scaling with
//              freq_scale, ext_factor, attn_factor, beta_fast/slow, n_ctx_orig (ggml's rope_ext).
//   GLU        out = act(gate) · up, act ∈ {silu, gelu_tanh}. gelu_tanh is the GGUF engines' CPU
//              definition (core/gelu.h): x rounded to f16, gelu_tanh of that (f32 formula)
//              rounded to f16; 0 for x ≤ -10 and x for x ≥ 10. llama.cpp reads it from an f16
//              table, so matching its logits needs the same roundings. `out` may share
//              gate's storage (see InPlaceSource): out[i] depends only on gate[i] and up[i], so a
//              kernel that reads an index's inputs before it writes that index's output is
//              correct in place (no `restrict` on gate and out).
//   ATTENTION  q[D,Hq,T]; k, v caches [D,Hkv,C] (f16 or f32); tokens[2,T] = (pos, seq) per token;
//              cells[2,C] = (pos, seq) per cache cell (seq -1: empty). Query head h reads kv head
//              h / (Hq/Hkv). Token t sees cell c iff seq equal, cell pos ≤ token pos, and (window
//              = 0 or token pos − cell pos < window). s = q·k · scale, s = softcap·tanh(s/softcap)
//              when softcap > 0, p = softmax over visible cells, out[D·Hq, T] = Σ p·v. An f16
//              cache rounds its operand as MATMUL does for f16 weights: with an f16 K, q is
//              rounded to f16 before q·k; with an f16 V, each normalized p is rounded to f16
//              before Σ p·v (sums in f32 or wider). This is llama.cpp's CPU attention (two f16
//              matrix products around an f32 softmax), whose outputs we match.
//   STORE_KV   cache[D,H,C] (f16 or f32): cell cells[t] (i32) ← rows[D·H,T] column t, converted.
//              The node's output is the cache itself (updated in place).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace dizuo {

enum class Op : uint8_t {
  kGetRows,
  kMatMul,
  kAdd,
  kMul,
  kScale,
  kRmsNorm,
  kRope,
  kGlu,
  kAttention,
  kStoreKV,
};
inline constexpr int kOpCount = 10;
std::string_view OpName(Op op);

enum class Activation : uint8_t { kSilu, kGeluTanh };
enum class RopeMode : uint8_t { kNormal, kNeox };

struct RopeParams {
  int32_t n_rot = 0;
  RopeMode mode = RopeMode::kNormal;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // 1 / linear scaling factor
  float ext_factor = 0.0f;   // YaRN extrapolation mix (0: off)
  float attn_factor = 1.0f;  // YaRN magnitude scaling
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int32_t n_ctx_orig = 0;  // training context for YaRN corrections
};

struct AttentionParams {
  float scale = 1.0f;
  float softcap = 0.0f;  // 0: off
  int32_t window = 0;    // sliding window in positions; 0: full causal
};

struct OpParams {
  float eps = 0.0f;    // RMS_NORM
  float scale = 1.0f;  // SCALE
  Activation act = Activation::kSilu;
  RopeParams rope;
  AttentionParams attention;
};

inline constexpr int kMaxSrc = 5;

struct Node {
  Op op;
  Tensor* out = nullptr;
  std::array<Tensor*, kMaxSrc> src{};  // unused slots are nullptr
  OpParams params;
};

// The source whose storage the node's output may take over (the arena planners do so when no
// later node reads the source and both live on the same backend), or nullptr. Today: GLU's gate,
// when it is a contiguous base tensor (not a view) of out's type and shape. In a prompt batch the
// FFN's gate, up and GLU outputs are the largest activations (llama 1b, 512 tokens: 16 MB each),
// so this removes one of them from the peak.
Tensor* InPlaceSource(const Node& node);

// Builds a graph. Every builder checks shapes and types and throws dizuo::Error on a mismatch
// (models are assembled from file metadata, so a bad file shows up here with a clear message).
// Tensors created by the graph live as long as the graph; weights and caches are owned elsewhere
// and passed in by pointer.
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // A tensor whose contents the caller provides before compute (token ids, positions, ...).
  Tensor* NewInput(DType type, std::initializer_list<int64_t> ne, std::string name);
  // A contiguous view of `x` with a new shape of the same element count.
  Tensor* Reshape(Tensor* x, std::initializer_list<int64_t> ne);

  Tensor* GetRows(Tensor* table, Tensor* ids);
  Tensor* MatMul(Tensor* x, Tensor* w);
  Tensor* Add(Tensor* a, Tensor* b);
  Tensor* Mul(Tensor* a, Tensor* b);
  Tensor* Scale(Tensor* a, float scale);
  Tensor* RmsNorm(Tensor* x, Tensor* weight, float eps);  // weight may be nullptr
  Tensor* Rope(Tensor* x, Tensor* pos, Tensor* freq_factors, const RopeParams& params);
  Tensor* Glu(Tensor* gate, Tensor* up, Activation act);
  Tensor* Attention(Tensor* q, Tensor* k_cache, Tensor* v_cache, Tensor* tokens, Tensor* cells,
                    const AttentionParams& params);
  Tensor* StoreKV(Tensor* cache, Tensor* rows, Tensor* cells);

  // Names the tensor and returns it (for profiles and debugging).
  Tensor* Named(Tensor* t, std::string name);
  // Marks `t` as a graph output: its storage stays valid after compute.
  void MarkOutput(Tensor* t) { outputs_.push_back(t); }

  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& nodes() { return nodes_; }
  const std::vector<Tensor*>& inputs() const { return inputs_; }
  const std::vector<Tensor*>& outputs() const { return outputs_; }
  // Tensors the graph created (inputs, views and node outputs), in creation order.
  std::deque<Tensor>& tensors() { return tensors_; }

 private:
  Tensor* NewTensor(DType type, const std::array<int64_t, kMaxDims>& ne, std::string name);
  Tensor* AddNode(Op op, Tensor* out, std::initializer_list<Tensor*> src, const OpParams& params);

  std::deque<Tensor> tensors_;  // stable addresses
  std::vector<Node> nodes_;
  std::vector<Tensor*> inputs_;
  std::vector<Tensor*> outputs_;
};

}  // namespace dizuo
