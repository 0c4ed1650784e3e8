// Host entry points into the block decoders of cuda_blocks.cuh (and the GLU's gelu lookup), for
// cuda_decode_test: the same source the kernels run, executed on the CPU.
#include "backends/cuda/cuda_blocks.cuh"
#include "backends/cuda/cuda_decode_check.h"

namespace dizuo::cuda {
namespace {

template <DType kType>
double RowDot(const uint8_t* w_row, const QuantizedActivations& x, int64_t r) {
  double sum = 0;
  for (int64_t u = 0; u < x.k / kUnit; ++u) {
    WeightUnit unit{};
    DecodeUnit<kType>(w_row, u, unit);
    sum += UnitDot<kType>(unit, x, r, u);
  }
  return sum;
}

}  // namespace

double HostQuantizedRowDot(DType weight_type, const void* w_row, const QuantizedActivations& x,
                           int64_t r) {
  const auto* row = static_cast<const uint8_t*>(w_row);
  switch (weight_type) {
    case DType::Q4_0:
      return RowDot<DType::Q4_0>(row, x, r);
    case DType::Q4_1:
      return RowDot<DType::Q4_1>(row, x, r);
    case DType::Q5_0:
      return RowDot<DType::Q5_0>(row, x, r);
    case DType::Q5_1:
      return RowDot<DType::Q5_1>(row, x, r);
    case DType::Q8_0:
      return RowDot<DType::Q8_0>(row, x, r);
    case DType::Q2_K:
      return RowDot<DType::Q2_K>(row, x, r);
    case DType::Q3_K:
      return RowDot<DType::Q3_K>(row, x, r);
    case DType::Q4_K:
      return RowDot<DType::Q4_K>(row, x, r);
    case DType::Q5_K:
      return RowDot<DType::Q5_K>(row, x, r);
    case DType::Q6_K:
      return RowDot<DType::Q6_K>(row, x, r);
    default:
      return 0;
  }
}

float HostDequantElement(DType type, const void* row, int64_t e) {
  return DequantElement(type, static_cast<const uint8_t*>(row), e);
}

float HostGeluTanh(float x, const uint16_t* table) { return GeluTanhFromTable(x, table); }

}  // namespace dizuo::cuda
