#include "core/tensor.h"

#include <fmt/format.h>

#include "core/error.h"

namespace dizuo {

uint64_t Tensor::row_bytes() const {
  const DTypeTraits& t = Traits(type);
  return static_cast<uint64_t>(ne[0] / t.block_size) * t.type_size;
}

uint64_t Tensor::bytes() const { return row_bytes() * static_cast<uint64_t>(rows()); }

bool Tensor::contiguous() const {
  const DTypeTraits& t = Traits(type);
  if (nb[0] != static_cast<uint64_t>(t.type_size)) return false;
  uint64_t expect = row_bytes();
  for (int d = 1; d < kMaxDims; ++d) {
    if (ne[d] != 1 && nb[d] != expect) return false;
    expect *= static_cast<uint64_t>(ne[d]);
  }
  return true;
}

void SetContiguousStrides(Tensor& t) {
  const DTypeTraits& traits = Traits(t.type);
  DZ_ASSERT(t.ne[0] % traits.block_size == 0);
  t.nb[0] = static_cast<uint64_t>(traits.type_size);
  t.nb[1] = t.row_bytes();
  for (int d = 2; d < kMaxDims; ++d) t.nb[d] = t.nb[d - 1] * static_cast<uint64_t>(t.ne[d - 1]);
}

Tensor MakeTensor(DType type, std::initializer_list<int64_t> ne, std::string name) {
  DZ_ASSERT(ne.size() >= 1 && ne.size() <= kMaxDims);
  Tensor t;
  t.type = type;
  int d = 0;
  for (int64_t n : ne) t.ne[d++] = n;
  SetContiguousStrides(t);
  t.name = std::move(name);
  return t;
}

std::string ShapeString(const Tensor& t) {
  int dims = kMaxDims;
  while (dims > 1 && t.ne[dims - 1] == 1) --dims;
  std::string s = "[";
  for (int d = 0; d < dims; ++d) s += fmt::format("{}{}", d ? ", " : "", t.ne[d]);
  return s + "]";
}

}  // namespace dizuo
