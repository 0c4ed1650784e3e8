// Host entry points into the CUDA backend's block decoders (cuda_decode_check.cu), for tests.
#pragma once

#include <cstdint>

#include "backends/cuda/cuda_kernels.h"

namespace dizuo::cuda {

// Σ over units of the MATMUL kernel's per-unit integer dot products (DecodeUnit + UnitDot) of one
// weight row with activation row `r` of `x` (host memory, QuantizedActivations layout).
double HostQuantizedRowDot(DType weight_type, const void* w_row, const QuantizedActivations& x,
                           int64_t r);
// Element `e` of a row, as GET_ROWS decodes it.
float HostDequantElement(DType type, const void* row, int64_t e);
// GLU's gelu_tanh as the GLU kernel computes it from the uploaded table.
float HostGeluTanh(float x, const uint16_t* table);

}  // namespace dizuo::cuda
