// The KV cache: per layer K and V tensors of shape [head_dim, n_kv_head, n_cells] in a backend
// buffer, and host-side metadata (pos, seq) per cell, shared by up to n_seq_max sequences. The
// tensors are head-major (nb[2] = one row, nb[1] = n_cells rows): a KV head's cells are
// consecutive rows, so attention reads each head's keys and values as one stream. Backends index
// them through nb[1] and nb[2], as every op does.
//
// Each token of a forward batch gets a free cell (lowest index first) before the graph runs;
// STORE_KV writes its K/V there and ATTENTION reads the used prefix of cells, seeing only the
// cells of the token's own sequence at positions up to its own. Cells are freed by
// RemoveSequence, so several sequences of different lengths share the cache (continuous batching).
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"

namespace dizuo::model {

// (pos, seq) of a token or a cache cell; seq -1 marks a free cell. The layout is the i32 [2, n]
// token/cell info ATTENTION reads.
struct PosSeq {
  int32_t pos = 0;
  int32_t seq = -1;
};

struct KvCacheShape {
  int n_layer = 0;
  int head_dim = 0;
  int n_head_kv = 0;
  int n_cells = 0;
  int n_seq_max = 1;
  DType type = DType::F16;  // F16 or F32
};

class KvCache {
 public:
  // Allocates the cache in one zero-filled buffer of `backend`. Throws dizuo::Error for a shape
  // out of range or an unsupported type.
  KvCache(Backend& backend, const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  int n_cells() const { return shape_.n_cells; }
  int n_free() const { return n_cells() - n_used_; }
  Tensor* k(int layer) { return &k_[static_cast<size_t>(layer)]; }
  Tensor* v(int layer) { return &v_[static_cast<size_t>(layer)]; }
  uint64_t bytes() const;

  // Checks that `tokens` can be added: sequence ids in range, positions non-negative and neither
  // cached already for their sequence nor repeated in `tokens`, and enough free cells. Throws
  // dizuo::Error naming the problem.
  void Check(std::span<const PosSeq> tokens) const;
  // Check()s, then gives each token a free cell (lowest first) and records its (pos, seq).
  // Returns the cells in token order.
  std::vector<int32_t> Reserve(std::span<const PosSeq> tokens);
  // Frees cells (undoing a Reserve whose forward pass failed).
  void Release(std::span<const int32_t> cells);

  // Frees the cells of `seq` at positions >= from_pos.
  void RemoveSequence(int32_t seq, int32_t from_pos = 0);
  void Clear();
  // Highest cached position of `seq` plus one (0 when it has none).
  int32_t SequenceLength(int32_t seq) const;
  // Cells of `seq` currently cached.
  int SequenceCells(int32_t seq) const;

  // 1 + the highest occupied cell: ATTENTION needs only this prefix.
  int used_prefix() const;
  std::span<const PosSeq> cells() const { return cells_; }

 private:
  void CheckSeq(int32_t seq) const;

  KvCacheShape shape_;
  std::unique_ptr<Buffer> buffer_;
  std::vector<Tensor> k_, v_;
  std::vector<PosSeq> cells_;
  std::vector<std::set<int32_t>> positions_;  // per sequence, its cached positions
  int n_used_ = 0;
};

}  // namespace dizuo::model
