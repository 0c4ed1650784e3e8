// One-op test harness: builds a graph of a single node with deterministic operands, runs it on a
// backend through the Executor and returns the output. Used by backend tests and `dizuo check`,
// which compare a backend with the reference on the same operands.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"

namespace dizuo::harness {

// A contiguous tensor in host memory.
struct HostTensor {
  DType type = DType::F32;
  std::array<int64_t, kMaxDims> ne{1, 1, 1, 1};
  std::vector<uint8_t> bytes;

  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // The values as f32 (dequantized; i32 converted).
  std::vector<float> ToFloat() const;
};

// How to fill one operand. Explicit `values` (converted to `type`; quantized with QuantizeRow)
// win; otherwise float types get uniform values in [-range, range] and i32 operands uniform
// integers in [0, int_bound).
struct OperandSpec {
  DType type = DType::F32;
  std::array<int64_t, kMaxDims> ne{1, 1, 1, 1};
  std::vector<float> values;
  float range = 1.0f;
  int32_t int_bound = 1;
};

// One node. `src` follows Node::src order with std::nullopt for an absent optional operand;
// STORE_KV takes {rows, cells, cache}: the cache's initial contents come third.
struct OpSpec {
  Op op = Op::kAdd;
  OpParams params;
  std::vector<std::optional<OperandSpec>> src;
  uint64_t seed = 1;
  // The output placed over src[0]'s storage, as the arena planners do for a node with an in-place
  // source (core/graph.h InPlaceSource: GLU's gate).
  bool in_place = false;

  std::string Describe() const;  // "MATMUL q4_K [256, 4] x [256, 8]", " in place" appended
};

using Operands = std::vector<std::optional<HostTensor>>;

// The operands `spec` describes; the same spec always gives the same bytes.
Operands MakeOperands(const OpSpec& spec);

struct OpRun {
  bool supported = false;     // false: the backend declined the node and nothing ran
  HostTensor out;             // the node's output (for STORE_KV, the updated cache)
  std::vector<float> values;  // `out` as f32
  double seconds = 0;         // Compute + Synchronize wall time
};

// Runs the node on `backend`. Throws dizuo::Error when the spec is invalid for the graph builder.
OpRun RunOp(Backend& backend, const OpSpec& spec, const Operands& operands);
inline OpRun RunOp(Backend& backend, const OpSpec& spec) {
  return RunOp(backend, spec, MakeOperands(spec));
}

// Specs shaped like real models use them. n: output columns, k: inner dimension, m: rows of x.
OpSpec MatMulSpec(DType weight_type, int64_t k, int64_t n, int64_t m);
// Gemma 3 270M's MATMULs in its Q4_K_M file (Q5_0 / Q8_0 where rows of 640 are not whole K-quant
// super-blocks), with 1 to 5 activation rows; the device backends' tests share the list.
std::vector<OpSpec> Gemma3MatMulSpecs();
OpSpec GetRowsSpec(DType table_type, int64_t width, int64_t vocab, int64_t tokens);
OpSpec BinarySpec(Op op, int64_t width, int64_t rows, bool broadcast);
OpSpec ScaleSpec(int64_t width, int64_t rows, float scale);
OpSpec RmsNormSpec(int64_t width, int64_t rows, bool with_weight, float eps);
OpSpec RopeSpec(int64_t head_dim, int64_t heads, int64_t tokens, const RopeParams& params,
                bool with_freq_factors);
OpSpec GluSpec(int64_t width, int64_t rows, Activation act, bool in_place = false);
// Cells hold `sequences` interleaved sequences (cell c: seq c % sequences, pos c / sequences),
// one cell is empty when there is room, and the tokens are the last `tokens` cells.
OpSpec AttentionSpec(int64_t head_dim, int64_t q_heads, int64_t kv_heads, int64_t tokens,
                     int64_t cells, int sequences, DType cache_type, const AttentionParams& params);
// Writes `tokens` rows into distinct, shuffled cells of a cache of `cells` cells.
OpSpec StoreKVSpec(int64_t head_dim, int64_t heads, int64_t tokens, int64_t cells,
                   DType cache_type);

// Normalized mean squared error Σ(a − ref)² / Σ ref². 0 when both are all zeros; +inf when ref is
// all zeros and a is not, or when either holds NaN or Inf.
double Nmse(const float* a, const float* ref, int64_t n);
// Number of NaN and Inf values in `a`.
int64_t CountNonFinite(const float* a, int64_t n);

}  // namespace dizuo::harness
