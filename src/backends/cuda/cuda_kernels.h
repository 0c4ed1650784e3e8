// The boundary between the host side of the CUDA backend (cuda_backend.cc, C++20, all API calls
// and error checks) and the kernels (*.cu, C++17). Launchers only enqueue on `stream`; the caller
// checks cudaGetLastError() after each node.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace dizuo::cuda {

// A tensor as kernels see it: device address of its first byte, shape and byte strides.
struct DevTensor {
  char* data = nullptr;
  int64_t ne[4] = {1, 1, 1, 1};
  int64_t nb[4] = {0, 0, 0, 0};
};

// Bits of the device error word, set by kernels that meet indices out of range (the host reports
// them at Synchronize).
inline constexpr int kErrorRowId = 1;   // GET_ROWS id outside the table
inline constexpr int kErrorCellId = 2;  // STORE_KV cell outside the cache

// Activations quantized for the integer dot products, in a layout of the backend's own (not the
// GGUF block layout) so that quants are 16-byte aligned. Row r of M: qs[r * k .. r * k + k),
// d[r * k / 32 + b] the scale of 32-element block b (for Q8_K every 8 consecutive entries repeat
// the super-block's scale), sum[r * k / 32 + b] per block: Q8_1's s = fp16(d · Σq) as f32, Q8_K's
// Σq of the block (bsums[2b] + bsums[2b + 1]); bsum16[r * k / 16 + j] Q8_K's bsums.
struct QuantizedActivations {
  int8_t* qs = nullptr;
  float* d = nullptr;
  float* sum = nullptr;
  int32_t* bsum16 = nullptr;
  int64_t k = 0;
  int64_t rows = 0;
};
// Bytes of scratch QuantizedActivations needs, and how it is carved from `base` (256-aligned).
uint64_t QuantizedActivationBytes(int64_t k, int64_t rows);
QuantizedActivations CarveQuantizedActivations(void* base, int64_t k, int64_t rows);

DType ActivationTypeOf(DType weight_type);  // Q8_0, Q8_1, Q8_K, or the float weight type itself

// ---- MATMUL ----
// x[K, M] rows → act_type (Q8_0, Q8_1 or Q8_K) with the reference quantizers' arithmetic.
void LaunchQuantize(DType act_type, const DevTensor& x, const QuantizedActivations& q,
                    cudaStream_t stream);
// out[N, M] = w[K, N]ᵀ · q for a quantized w (integer dot products per block, dp4a).
void LaunchMatMulQuantized(DType weight_type, const DevTensor& w, const QuantizedActivations& q,
                           const DevTensor& out, cudaStream_t stream);
// out = w ᵀ· x for F32/F16/BF16 w and few rows of x (x rounded to w's type on the fly).
void LaunchMatMulFloat(DType weight_type, const DevTensor& w, const DevTensor& x,
                       const DevTensor& out, cudaStream_t stream);
// Packs the rows of x into a contiguous [K, M] array of `type` (F32, F16 or BF16), rounding to
// nearest even: the cuBLAS operand.
void LaunchPackRows(DType type, const DevTensor& x, void* dst, cudaStream_t stream);

// ---- the other ops ----
void LaunchGetRows(DType table_type, const DevTensor& table, const DevTensor& ids,
                   const DevTensor& out, int* error, cudaStream_t stream);
// op: 0 add, 1 mul, 2 scale (b unused).
void LaunchElementwise(int op, const DevTensor& a, const DevTensor& b, float scale,
                       const DevTensor& out, cudaStream_t stream);
void LaunchRmsNorm(const DevTensor& x, const float* weight, float eps, const DevTensor& out,
                   cudaStream_t stream);

struct RopeArgs {
  int n_rot = 0;
  bool neox = false;
  float theta_scale = 1.0f;  // freq_base^(-2/n_rot), computed on the host as the reference does
  float freq_scale = 1.0f;
  float ext_factor = 0.0f;
  float attn_factor = 1.0f;
  float corr_low = 0.0f;  // YaRN ramp bounds, computed on the host
  float corr_high = 0.0f;
  float mscale = 1.0f;
};
void LaunchRope(const DevTensor& x, const DevTensor& pos, const float* freq_factors,
                const RopeArgs& args, const DevTensor& out, cudaStream_t stream);
// gelu_table: device copy of core/gelu.h's GeluTanhF16Table (65,536 entries), used by gelu_tanh.
void LaunchGlu(bool silu, const uint16_t* gelu_table, const DevTensor& gate, const DevTensor& up,
               const DevTensor& out, cudaStream_t stream);

struct AttentionArgs {
  float scale = 1.0f;
  float softcap = 0.0f;
  int window = 0;
};
inline constexpr int64_t kAttentionMaxHeadDim = 512;
void LaunchAttention(const DevTensor& q, DType k_type, const DevTensor& k, DType v_type,
                     const DevTensor& v, const DevTensor& tokens, const DevTensor& cells,
                     const AttentionArgs& args, const DevTensor& out, cudaStream_t stream);
void LaunchStoreKV(DType cache_type, const DevTensor& cache, const DevTensor& rows,
                   const DevTensor& cells, int* error, cudaStream_t stream);

}  // namespace dizuo::cuda
