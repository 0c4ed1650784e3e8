// Reference kernels, one per op (internal to the reference backend). Each takes a node whose
// tensors are host-addressable and whose support was checked (see reference::Supports).
#pragma once

#include <cstdint>

#include "core/graph.h"

namespace dizuo::reference {

// Address of row `r` of `t` (rows numbered over ne[1], ne[2], ne[3] in that order).
inline char* RowAddress(const Tensor& t, int64_t r) {
  const int64_t i1 = r % t.ne[1];
  const int64_t i2 = (r / t.ne[1]) % t.ne[2];
  const int64_t i3 = r / (t.ne[1] * t.ne[2]);
  return static_cast<char*>(t.data) + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

// Whether the elements of each row of `t` are packed (nb[0] is one block).
bool RowsPacked(const Tensor& t);

void GetRows(const Node& node);
void MatMul(const Node& node);
void Add(const Node& node);
void Mul(const Node& node);
void Scale(const Node& node);
void RmsNorm(const Node& node);
void Rope(const Node& node);
void Glu(const Node& node);
void Attention(const Node& node);
void StoreKV(const Node& node);

// MATMUL support: whether `type` is a weight type the reference multiplies, and the dot product
// of one weight row with one activation row already converted to that weight's activation type
// (ActivationType), both `k` elements long.
bool IsMatMulWeightType(DType type);
DType ActivationType(DType weight_type);
double DotRow(DType weight_type, const void* w_row, const void* x_row, int64_t k);

}  // namespace dizuo::reference
