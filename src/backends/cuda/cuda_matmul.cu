// MATMUL kernels.
//
// Quantized weights: the activation rows are first quantized on the device to the weight's
// activation type with the reference quantizers' arithmetic (Q8_0 / Q8_1: d = amax / 127, quants
// roundf(x / d); Q8_K: iscale = -127 / (signed max), quants rint(iscale · x)), into the layout of
// QuantizedActivations. Then one warp per weight row walks the row in units of 32 elements (a
// legacy block, or an eighth of a K-quant super-block); each lane decodes its unit into eight
// words of four signed 8-bit quants and multiplies them with up to kRowsPerTile activation rows
// by __dp4a. Integer sums are exact; they are scaled by the block factors as the reference does.
//
// Float weights with few activation rows: one warp per weight row, x rounded to the weight's type
// on the fly. With many rows the host calls cuBLAS instead (operands packed by LaunchPackRows).
#include <cmath>

#include "backends/cuda/cuda_blocks.cuh"

namespace dizuo::cuda {
namespace {

constexpr int kRowsPerTile = 8;
constexpr int kWarpsPerBlock = 4;

uint64_t Align256(uint64_t n) { return (n + 255) / 256 * 256; }

int GridFor(int64_t n, int per_block) {
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// ---- activation quantization ----

// One warp per 32-element block; lane i holds element i.
__global__ void QuantizeQ8Kernel(bool with_sum, DevTensor x, QuantizedActivations q) {
  const int lane = threadIdx.x % kWarp;
  const int64_t blocks_per_row = q.k / kUnit;
  const int64_t total = blocks_per_row * q.rows;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x / kWarp) + threadIdx.x / kWarp;
       b < total; b += warps) {
    const int64_t r = b / blocks_per_row, i = b % blocks_per_row;
    const float v = reinterpret_cast<const float*>(RowPtr(x, r))[i * kUnit + lane];
    const float amax = WarpMax(fabsf(v));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float rounded = roundf(v * id);  // ties away from zero, as std::round
    const int quant = !(rounded > -128.0f) ? -128 : (rounded >= 127.0f ? 127 : int(rounded));
    q.qs[r * q.k + i * kUnit + lane] = static_cast<int8_t>(quant);
    const int sum = WarpSumInt(quant);
    if (lane == 0) {
      q.d[b] = RoundToHalf(d);
      q.sum[b] = with_sum ? RoundToHalf(static_cast<float>(sum) * d) : 0.0f;
    }
  }
}

// One warp per 256-element super-block; lane l holds elements 8l .. 8l + 7.
__global__ void QuantizeQ8KKernel(DevTensor x, QuantizedActivations q) {
  const int lane = threadIdx.x % kWarp;
  const int64_t supers_per_row = q.k / 256;
  const int64_t total = supers_per_row * q.rows;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x / kWarp) + threadIdx.x / kWarp;
       b < total; b += warps) {
    const int64_t r = b / supers_per_row, s = b % supers_per_row;
    const float* src = reinterpret_cast<const float*>(RowPtr(x, r)) + s * 256 + lane * 8;
    float v[8];
    float amax = 0.0f, max = 0.0f;
    int first = 256;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      v[e] = src[e];
      if (fabsf(v[e]) > amax) {
        amax = fabsf(v[e]);
        max = v[e];
        first = lane * 8 + e;
      }
    }
    // The first element of largest magnitude over the warp, with its sign.
#pragma unroll
    for (int o = kWarp / 2; o > 0; o /= 2) {
      const float other_amax = __shfl_xor_sync(0xffffffffu, amax, o);
      const float other_max = __shfl_xor_sync(0xffffffffu, max, o);
      const int other_first = __shfl_xor_sync(0xffffffffu, first, o);
      if (other_amax > amax || (other_amax == amax && other_first < first)) {
        amax = other_amax;
        max = other_max;
        first = other_first;
      }
    }
    int8_t* qs = q.qs + r * q.k + s * 256 + lane * 8;
    int sum8 = 0;
    float d = 0.0f;
    if (amax > 0.0f) {
      const float iscale = -127.0f / max;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float rounded = rintf(iscale * v[e]);  // ties to even, as nearbyint
        const int quant = !(rounded > -128.0f) ? -128 : (rounded >= 127.0f ? 127 : int(rounded));
        qs[e] = static_cast<int8_t>(quant);
        sum8 += quant;
      }
      d = 1.0f / iscale;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) qs[e] = 0;
    }
    const int sum16 = sum8 + __shfl_xor_sync(0xffffffffu, sum8, 1);
    const int sum32 = sum16 + __shfl_xor_sync(0xffffffffu, sum16, 2);
    const int64_t unit0 = r * (q.k / kUnit) + s * 8;
    if (lane % 2 == 0) q.bsum16[r * (q.k / 16) + s * 16 + lane / 2] = sum16;
    if (lane % 4 == 0) q.sum[unit0 + lane / 4] = static_cast<float>(sum32);
    if (lane < 8) q.d[unit0 + lane] = d;
  }
}

// Grid: (weight rows / kWarpsPerBlock, activation rows / kRowsPerTile); one warp per weight row.
template <DType kType>
__global__ void __launch_bounds__(kWarpsPerBlock* kWarp)
    MatMulQuantizedKernel(DevTensor w, QuantizedActivations x, DevTensor out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kRowsPerTile;
  if (n >= w.ne[1]) return;  // the whole warp
  const int64_t rows = min(static_cast<int64_t>(kRowsPerTile), x.rows - m0);
  const auto* row = reinterpret_cast<const uint8_t*>(w.data + n * w.nb[1]);
  const int64_t units = x.k / kUnit;
  float acc[kRowsPerTile];
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) acc[r] = 0.0f;
  // K-quants take two units per lane per step, both decoded (their loads issued) before either is
  // used: their decode is long enough that overlapping two pays (H200, 1b Q4_K_M: tg128 1.07-1.15x,
  // pp512 1.15x). Q4_0 and Q8_0 ran pp512 0.95x that way, so the legacy types take one unit per
  // step. The sums are added in unit order either way. The one-unit body is written out twice
  // on purpose: as a shared helper (or lambda) it compiles the legacy kernels to different PTX
  // than the code that was measured and tested on the GPU.
  constexpr bool kPaired = kType == DType::Q2_K || kType == DType::Q3_K || kType == DType::Q4_K ||
                           kType == DType::Q5_K || kType == DType::Q6_K;
  int64_t u = lane;
  if constexpr (kPaired) {
    for (; u + kWarp < units; u += 2 * kWarp) {
      WeightUnit first, second;
      DecodeUnit<kType>(row, u, first);
      DecodeUnit<kType>(row, u + kWarp, second);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r < rows) {
          acc[r] += UnitDot<kType>(first, x, m0 + r, u);
          acc[r] += UnitDot<kType>(second, x, m0 + r, u + kWarp);
        }
      }
    }
    if (u < units) {
      WeightUnit unit;
      DecodeUnit<kType>(row, u, unit);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r < rows) acc[r] += UnitDot<kType>(unit, x, m0 + r, u);
      }
    }
  } else {
    for (; u < units; u += kWarp) {
      WeightUnit unit;
      DecodeUnit<kType>(row, u, unit);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r < rows) acc[r] += UnitDot<kType>(unit, x, m0 + r, u);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    const float sum = WarpSum(acc[r]);
    if (lane == 0 && r < rows) reinterpret_cast<float*>(RowPtr(out, m0 + r))[n] = sum;
  }
}

// Float weights, few rows: x rounded to the weight's type element by element. One warp per weight
// row. kVector: each lane reads 16 bytes of the row per step (8 f16/bf16 or 4 f32 elements) and
// the matching float4s of each activation row, so a warp moves 512 bytes of weights per load
// instead of 64-128; the host picks it when k is a multiple of that width and every row starts on
// a 16-byte boundary.
template <DType kType>
__device__ __forceinline__ float WeightValue(const char* row, int64_t i) {
  if constexpr (kType == DType::F32) {
    return reinterpret_cast<const float*>(row)[i];
  } else if constexpr (kType == DType::F16) {
    return HalfBits(reinterpret_cast<const uint16_t*>(row)[i]);
  } else {
    return Bf16Bits(reinterpret_cast<const uint16_t*>(row)[i]);
  }
}

template <DType kType>
__device__ __forceinline__ float ActivationValue(float x) {
  if constexpr (kType == DType::F16) return RoundToHalf(x);
  if constexpr (kType == DType::BF16) return RoundToBf16(x);
  return x;
}

template <DType kType>
constexpr int kFloatVector = kType == DType::F32 ? 4 : 8;  // elements in 16 bytes

template <DType kType>
__device__ __forceinline__ void UnpackWeights(const uint4& raw, float* wv) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (kType == DType::F32) {
      wv[j] = __uint_as_float(words[j]);
    } else if constexpr (kType == DType::F16) {
      wv[2 * j] = HalfBits(static_cast<uint16_t>(words[j] & 0xffffu));
      wv[2 * j + 1] = HalfBits(static_cast<uint16_t>(words[j] >> 16));
    } else {
      wv[2 * j] = Bf16Bits(static_cast<uint16_t>(words[j] & 0xffffu));
      wv[2 * j + 1] = Bf16Bits(static_cast<uint16_t>(words[j] >> 16));
    }
  }
}

template <DType kType, bool kVector>
__global__ void __launch_bounds__(kWarpsPerBlock* kWarp)
    MatMulFloatKernel(DevTensor w, DevTensor x, DevTensor out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kRowsPerTile;
  if (n >= w.ne[1]) return;
  const int64_t rows = min(static_cast<int64_t>(kRowsPerTile), Rows(x) - m0);
  const int64_t k = w.ne[0];
  const char* row = w.data + n * w.nb[1];
  const float* xr[kRowsPerTile];
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    xr[r] = reinterpret_cast<const float*>(RowPtr(x, m0 + (r < rows ? r : 0)));
  }
  float acc[kRowsPerTile];
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) acc[r] = 0.0f;
  if constexpr (kVector) {
    constexpr int kV = kFloatVector<kType>;
    constexpr int kBytes = kType == DType::F32 ? 4 : 2;
#pragma unroll 2
    for (int64_t i = static_cast<int64_t>(lane) * kV; i < k; i += kWarp * kV) {
      float wv[kV];
      UnpackWeights<kType>(__ldg(reinterpret_cast<const uint4*>(row + i * kBytes)), wv);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r >= rows) break;
#pragma unroll
        for (int h = 0; h < kV / 4; ++h) {
          const float4 v = *reinterpret_cast<const float4*>(xr[r] + i + 4 * h);
          acc[r] += wv[4 * h] * ActivationValue<kType>(v.x);
          acc[r] += wv[4 * h + 1] * ActivationValue<kType>(v.y);
          acc[r] += wv[4 * h + 2] * ActivationValue<kType>(v.z);
          acc[r] += wv[4 * h + 3] * ActivationValue<kType>(v.w);
        }
      }
    }
  } else {
    for (int64_t i = lane; i < k; i += kWarp) {
      const float wv = WeightValue<kType>(row, i);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r >= rows) break;
        acc[r] += wv * ActivationValue<kType>(xr[r][i]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    const float sum = WarpSum(acc[r]);
    if (lane == 0 && r < rows) reinterpret_cast<float*>(RowPtr(out, m0 + r))[n] = sum;
  }
}

__global__ void PackRowsKernel(DType type, DevTensor x, void* dst) {
  const int64_t k = x.ne[0];
  const int64_t total = k * Rows(x);
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = reinterpret_cast<const float*>(RowPtr(x, idx / k))[idx % k];
    if (type == DType::F16) {
      static_cast<__half*>(dst)[idx] = __float2half_rn(v);
    } else if (type == DType::BF16) {
      static_cast<__nv_bfloat16*>(dst)[idx] = __float2bfloat16_rn(v);
    } else {
      static_cast<float*>(dst)[idx] = v;
    }
  }
}

template <DType kType>
void LaunchQuantizedFor(const DevTensor& w, const QuantizedActivations& q, const DevTensor& out,
                        cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((w.ne[1] + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  static_cast<unsigned>((q.rows + kRowsPerTile - 1) / kRowsPerTile));
  MatMulQuantizedKernel<kType><<<grid, kWarpsPerBlock * kWarp, 0, stream>>>(w, q, out);
}

template <DType kType>
void LaunchFloatFor(const DevTensor& w, const DevTensor& x, const DevTensor& out,
                    cudaStream_t stream) {
  const int64_t rows = x.ne[1] * x.ne[2] * x.ne[3];
  const dim3 grid(static_cast<unsigned>((w.ne[1] + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  static_cast<unsigned>((rows + kRowsPerTile - 1) / kRowsPerTile));
  auto aligned = [](const void* p, int64_t stride) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && stride % 16 == 0;
  };
  const bool vector = w.ne[0] % kFloatVector<kType> == 0 && aligned(w.data, w.nb[1]) &&
                      aligned(x.data, x.nb[1]) && x.nb[2] % 16 == 0 && x.nb[3] % 16 == 0;
  if (vector) {
    MatMulFloatKernel<kType, true><<<grid, kWarpsPerBlock * kWarp, 0, stream>>>(w, x, out);
  } else {
    MatMulFloatKernel<kType, false><<<grid, kWarpsPerBlock * kWarp, 0, stream>>>(w, x, out);
  }
}

}  // namespace

DType ActivationTypeOf(DType weight_type) {
  switch (weight_type) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1:
      return DType::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      return weight_type;
  }
}

uint64_t QuantizedActivationBytes(int64_t k, int64_t rows) {
  const auto n = static_cast<uint64_t>(k) * static_cast<uint64_t>(rows);
  return Align256(n) + 2 * Align256(n / kUnit * sizeof(float)) + Align256(n / 16 * sizeof(int32_t));
}

QuantizedActivations CarveQuantizedActivations(void* base, int64_t k, int64_t rows) {
  const auto n = static_cast<uint64_t>(k) * static_cast<uint64_t>(rows);
  char* p = static_cast<char*>(base);
  QuantizedActivations q;
  q.k = k;
  q.rows = rows;
  q.qs = reinterpret_cast<int8_t*>(p);
  p += Align256(n);
  q.d = reinterpret_cast<float*>(p);
  p += Align256(n / kUnit * sizeof(float));
  q.sum = reinterpret_cast<float*>(p);
  p += Align256(n / kUnit * sizeof(float));
  q.bsum16 = reinterpret_cast<int32_t*>(p);
  return q;
}

void LaunchQuantize(DType act_type, const DevTensor& x, const QuantizedActivations& q,
                    cudaStream_t stream) {
  if (q.rows == 0 || q.k == 0) return;
  constexpr int kWarpsPerQuantBlock = 8;
  if (act_type == DType::Q8_K) {
    const int64_t supers = q.k / 256 * q.rows;
    QuantizeQ8KKernel<<<GridFor(supers, kWarpsPerQuantBlock), kWarpsPerQuantBlock * kWarp, 0,
                        stream>>>(x, q);
  } else {
    const int64_t blocks = q.k / kUnit * q.rows;
    QuantizeQ8Kernel<<<GridFor(blocks, kWarpsPerQuantBlock), kWarpsPerQuantBlock * kWarp, 0,
                       stream>>>(act_type == DType::Q8_1, x, q);
  }
}

void LaunchMatMulQuantized(DType weight_type, const DevTensor& w, const QuantizedActivations& q,
                           const DevTensor& out, cudaStream_t stream) {
  if (q.rows == 0 || w.ne[1] == 0) return;
  switch (weight_type) {
    case DType::Q4_0:
      return LaunchQuantizedFor<DType::Q4_0>(w, q, out, stream);
    case DType::Q4_1:
      return LaunchQuantizedFor<DType::Q4_1>(w, q, out, stream);
    case DType::Q5_0:
      return LaunchQuantizedFor<DType::Q5_0>(w, q, out, stream);
    case DType::Q5_1:
      return LaunchQuantizedFor<DType::Q5_1>(w, q, out, stream);
    case DType::Q8_0:
      return LaunchQuantizedFor<DType::Q8_0>(w, q, out, stream);
    case DType::Q2_K:
      return LaunchQuantizedFor<DType::Q2_K>(w, q, out, stream);
    case DType::Q3_K:
      return LaunchQuantizedFor<DType::Q3_K>(w, q, out, stream);
    case DType::Q4_K:
      return LaunchQuantizedFor<DType::Q4_K>(w, q, out, stream);
    case DType::Q5_K:
      return LaunchQuantizedFor<DType::Q5_K>(w, q, out, stream);
    case DType::Q6_K:
      return LaunchQuantizedFor<DType::Q6_K>(w, q, out, stream);
    default:
      return;  // Supports() admits only the types above
  }
}

void LaunchMatMulFloat(DType weight_type, const DevTensor& w, const DevTensor& x,
                       const DevTensor& out, cudaStream_t stream) {
  if (x.ne[1] * x.ne[2] * x.ne[3] == 0 || w.ne[1] == 0) return;
  switch (weight_type) {
    case DType::F32:
      return LaunchFloatFor<DType::F32>(w, x, out, stream);
    case DType::F16:
      return LaunchFloatFor<DType::F16>(w, x, out, stream);
    case DType::BF16:
      return LaunchFloatFor<DType::BF16>(w, x, out, stream);
    default:
      return;
  }
}

void LaunchPackRows(DType type, const DevTensor& x, void* dst, cudaStream_t stream) {
  const int64_t total = x.ne[0] * x.ne[1] * x.ne[2] * x.ne[3];
  if (total == 0) return;
  PackRowsKernel<<<GridFor(total, 256), 256, 0, stream>>>(type, x, dst);
}

}  // namespace dizuo::cuda
