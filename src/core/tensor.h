// Tensors: a typed, strided view of up to four dimensions over memory a backend owns (or the
// model file's mapping). Shapes use GGUF/ggml order: ne[0] is the innermost, contiguous dimension,
// so a matrix of R rows and C columns has ne = {C, R, 1, 1}.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/dtype.h"

namespace dizuo {

class Buffer;  // backends/backend.h

inline constexpr int kMaxDims = 4;

struct Tensor {
  DType type = DType::F32;
  std::array<int64_t, kMaxDims> ne{1, 1, 1, 1};  // elements per dimension
  std::array<uint64_t, kMaxDims> nb{};           // byte stride per dimension (nb[0] = block size)
  // Where the bytes are. `buffer` is the backend buffer holding them, or nullptr for host memory
  // owned elsewhere (the model file's mapping, a caller's array). `data` is the address of the
  // first byte when the memory is host-visible, else nullptr; `offset` is the byte offset inside
  // `buffer`.
  Buffer* buffer = nullptr;
  uint64_t offset = 0;
  void* data = nullptr;
  // A view shares the storage of `view_of` (never itself a view) at `offset` bytes from its start.
  Tensor* view_of = nullptr;
  std::string name;

  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  uint64_t row_bytes() const;  // bytes of one contiguous row of ne[0] elements
  uint64_t bytes() const;      // bytes spanned, for a contiguous tensor
  bool contiguous() const;
  template <typename T>
  T* host(int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(data) + i1 * nb[1] + i2 * nb[2] + i3 * nb[3]);
  }
};

// Sets contiguous strides for `t.type` and `t.ne`.
void SetContiguousStrides(Tensor& t);
// A contiguous tensor description (no storage yet).
Tensor MakeTensor(DType type, std::initializer_list<int64_t> ne, std::string name = {});
std::string ShapeString(const Tensor& t);

}  // namespace dizuo
