// Row and element kernels: GET_ROWS, ADD, MUL, SCALE, RMS_NORM, ROPE, GLU, STORE_KV.
//
// This file is compiled with --fmad=false: each expression rounds as the reference's f32 code
// does (no fused multiply-adds), so GET_ROWS, the elementwise ops and STORE_KV are bit-identical
// to the reference, and ROPE differs only by the device's sin/cos.
#include <cmath>

#include "backends/cuda/cuda_blocks.cuh"

namespace dizuo::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);  // grid-stride loops cover the rest
}

// One block per id.
__global__ void GetRowsKernel(DType type, DevTensor table, DevTensor ids, DevTensor out,
                              int* error) {
  const int64_t t = blockIdx.x;
  const int32_t id = *reinterpret_cast<const int32_t*>(ids.data + t * ids.nb[0]);
  float* dst = reinterpret_cast<float*>(out.data + t * out.nb[1]);
  const bool valid = id >= 0 && id < table.ne[1];
  if (!valid && threadIdx.x == 0) atomicOr(error, kErrorRowId);
  const auto* row = reinterpret_cast<const uint8_t*>(table.data + (valid ? id : 0) * table.nb[1]);
  for (int64_t e = threadIdx.x; e < table.ne[0]; e += blockDim.x) {
    dst[e] = valid ? DequantElement(type, row, e) : 0.0f;
  }
}

__global__ void ElementwiseKernel(int op, DevTensor a, DevTensor b, float scale, DevTensor out) {
  const int64_t n0 = a.ne[0];
  const int64_t total = n0 * Rows(a);
  const bool broadcast = Rows(b) == 1;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n0, i = idx % n0;
    const float x = reinterpret_cast<const float*>(RowPtr(a, r))[i];
    float y;
    if (op == 2) {
      y = x * scale;
    } else {
      const float v = reinterpret_cast<const float*>(RowPtr(b, broadcast ? 0 : r))[i];
      y = op == 0 ? x + v : x * v;
    }
    reinterpret_cast<float*>(RowPtr(out, r))[i] = y;
  }
}

// One block per row. Rows of up to kThreads * kNormPerThread elements are read once into
// registers, all loads issued before the first use (a generation pass normalizes single rows, so
// the kernel's time is its memory latency); longer rows are read twice. Each thread sums its
// elements in the same order either way.
constexpr int kNormPerThread = 32;

__global__ void RmsNormKernel(DevTensor x, const float* weight, float eps, DevTensor out) {
  __shared__ float partial[kThreads / kWarp];
  const int64_t r = blockIdx.x;
  const int64_t n = x.ne[0];
  const float* in = reinterpret_cast<const float*>(RowPtr(x, r));
  float* dst = reinterpret_cast<float*>(RowPtr(out, r));
  const bool held = n <= static_cast<int64_t>(blockDim.x) * kNormPerThread;
  float v[kNormPerThread];
  float sum = 0;
  if (held) {
#pragma unroll
    for (int j = 0; j < kNormPerThread; ++j) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      v[j] = i < n ? in[i] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kNormPerThread; ++j) {
      if (threadIdx.x + static_cast<int64_t>(j) * blockDim.x < n) sum += v[j] * v[j];
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += in[i] * in[i];
  }
  sum = WarpSum(sum);
  if (threadIdx.x % kWarp == 0) partial[threadIdx.x / kWarp] = sum;
  __syncthreads();
  if (threadIdx.x < kWarp) {
    float s = threadIdx.x < blockDim.x / kWarp ? partial[threadIdx.x] : 0.0f;
    s = WarpSum(s);
    if (threadIdx.x == 0) partial[0] = s;
  }
  __syncthreads();
  const float mean = partial[0] / static_cast<float>(n);
  const float inv_rms = 1.0f / sqrtf(mean + eps);
  if (held) {
#pragma unroll
    for (int j = 0; j < kNormPerThread; ++j) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      if (i < n) dst[i] = weight ? v[j] * inv_rms * weight[i] : v[j] * inv_rms;
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      dst[i] = weight ? in[i] * inv_rms * weight[i] : in[i] * inv_rms;
    }
  }
}

// Blocks of kRopeThreads threads over (token, i3, a chunk of the token's heads). Each block forms
// the angles of the n_rot / 2 pairs as the reference forms them (theta multiplied by theta_scale
// once per pair, in f32), then each thread takes kRopeItems items of the chunk: a rotated pair,
// both of whose elements it writes (so x may be out), or one element past n_rot, copied.
constexpr int kRopeThreads = 128;
constexpr int kRopeItems = 2;

__global__ void RopeKernel(DevTensor x, DevTensor pos, const float* factors, RopeArgs p,
                           DevTensor out) {
  extern __shared__ float table[];  // cos[n_rot / 2], then sin[n_rot / 2]
  const int64_t t = blockIdx.x, i3 = blockIdx.y;
  const int half = p.n_rot / 2;
  const int32_t position = *reinterpret_cast<const int32_t*>(pos.data + t * pos.nb[0]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float theta = static_cast<float>(position);
    for (int j = 0; j < i; ++j) theta *= p.theta_scale;
    const float factor = factors ? factors[i] : 1.0f;
    const float extrap = theta / factor;
    const float interp = p.freq_scale * extrap;
    float angle = interp;
    if (p.ext_factor != 0.0f) {
      const float y =
          (static_cast<float>(i) - p.corr_low) / fmaxf(0.001f, p.corr_high - p.corr_low);
      const float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
      const float mix = ramp * p.ext_factor;
      angle = interp * (1 - mix) + extrap * mix;
    }
    table[i] = cosf(angle) * p.mscale;
    table[half + i] = sinf(angle) * p.mscale;
  }
  __syncthreads();
  const int d = static_cast<int>(x.ne[0]);
  const int per_head = half + (d - p.n_rot);  // pairs, then the elements past n_rot
  const int items = per_head * static_cast<int>(x.ne[1]);
  const int first = static_cast<int>(blockIdx.z) * kRopeThreads * kRopeItems;
#pragma unroll
  for (int k = 0; k < kRopeItems; ++k) {
    const int item = first + k * kRopeThreads + static_cast<int>(threadIdx.x);
    if (item >= items) break;
    const int h = item / per_head, j = item % per_head;
    const float* in =
        reinterpret_cast<const float*>(x.data + h * x.nb[1] + t * x.nb[2] + i3 * x.nb[3]);
    float* dst =
        reinterpret_cast<float*>(out.data + h * out.nb[1] + t * out.nb[2] + i3 * out.nb[3]);
    if (j >= half) {
      const int e = p.n_rot + (j - half);
      dst[e] = in[e];
      continue;
    }
    const int a = p.neox ? j : 2 * j;
    const int b = p.neox ? j + half : 2 * j + 1;
    const float c = table[j], s = table[half + j];
    const float x0 = in[a], x1 = in[b];
    dst[a] = x0 * c - x1 * s;
    dst[b] = x0 * s + x1 * c;
  }
}

__global__ void GluKernel(bool silu, const uint16_t* gelu_table, DevTensor gate, DevTensor up,
                          DevTensor out) {
  const int64_t n0 = gate.ne[0];
  const int64_t total = n0 * Rows(gate);
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n0, i = idx % n0;
    const float v = reinterpret_cast<const float*>(RowPtr(gate, r))[i];
    const float u = reinterpret_cast<const float*>(RowPtr(up, r))[i];
    const float act = silu ? v / (1.0f + expf(-v)) : GeluTanhFromTable(v, gelu_table);
    reinterpret_cast<float*>(RowPtr(out, r))[i] = act * u;
  }
}

// rows[D·H, T] (contiguous) column t → cache cell cells[t].
__global__ void StoreKVKernel(bool f16, DevTensor cache, const float* rows, DevTensor cells,
                              int* error) {
  const int64_t d = cache.ne[0], heads = cache.ne[1];
  const int64_t per_token = d * heads;
  const int64_t total = per_token * cells.ne[0];
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / per_token, h = (idx % per_token) / d, i = idx % d;
    const int32_t cell = *reinterpret_cast<const int32_t*>(cells.data + t * cells.nb[0]);
    if (cell < 0 || cell >= cache.ne[2]) {
      atomicOr(error, kErrorCellId);
      continue;
    }
    char* dst = cache.data + cell * cache.nb[2] + h * cache.nb[1];
    if (f16) {
      reinterpret_cast<__half*>(dst)[i] = __float2half_rn(rows[idx]);
    } else {
      reinterpret_cast<float*>(dst)[i] = rows[idx];
    }
  }
}

}  // namespace

void LaunchGetRows(DType table_type, const DevTensor& table, const DevTensor& ids,
                   const DevTensor& out, int* error, cudaStream_t stream) {
  if (ids.ne[0] == 0) return;
  GetRowsKernel<<<static_cast<unsigned>(ids.ne[0]), kThreads, 0, stream>>>(table_type, table, ids,
                                                                           out, error);
}

void LaunchElementwise(int op, const DevTensor& a, const DevTensor& b, float scale,
                       const DevTensor& out, cudaStream_t stream) {
  const int64_t total = a.ne[0] * a.ne[1] * a.ne[2] * a.ne[3];
  if (total == 0) return;
  ElementwiseKernel<<<Blocks(total), kThreads, 0, stream>>>(op, a, b, scale, out);
}

void LaunchRmsNorm(const DevTensor& x, const float* weight, float eps, const DevTensor& out,
                   cudaStream_t stream) {
  const int64_t rows = x.ne[1] * x.ne[2] * x.ne[3];
  if (rows == 0) return;
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, eps, out);
}

void LaunchRope(const DevTensor& x, const DevTensor& pos, const float* freq_factors,
                const RopeArgs& args, const DevTensor& out, cudaStream_t stream) {
  if (x.ne[2] == 0 || x.ne[3] == 0) return;
  const int64_t items = (args.n_rot / 2 + x.ne[0] - args.n_rot) * x.ne[1];
  const int64_t chunks = (items + kRopeThreads * kRopeItems - 1) / (kRopeThreads * kRopeItems);
  const dim3 grid(static_cast<unsigned>(x.ne[2]), static_cast<unsigned>(x.ne[3]),
                  static_cast<unsigned>(chunks));
  const size_t shared = sizeof(float) * static_cast<size_t>(args.n_rot);
  RopeKernel<<<grid, kRopeThreads, shared, stream>>>(x, pos, freq_factors, args, out);
}

void LaunchGlu(bool silu, const uint16_t* gelu_table, const DevTensor& gate, const DevTensor& up,
               const DevTensor& out, cudaStream_t stream) {
  const int64_t total = gate.ne[0] * gate.ne[1] * gate.ne[2] * gate.ne[3];
  if (total == 0) return;
  GluKernel<<<Blocks(total), kThreads, 0, stream>>>(silu, gelu_table, gate, up, out);
}

void LaunchStoreKV(DType cache_type, const DevTensor& cache, const DevTensor& rows,
                   const DevTensor& cells, int* error, cudaStream_t stream) {
  const int64_t total = cache.ne[0] * cache.ne[1] * cells.ne[0];
  if (total == 0) return;
  StoreKVKernel<<<Blocks(total), kThreads, 0, stream>>>(
      cache_type == DType::F16, cache, reinterpret_cast<const float*>(rows.data), cells, error);
}

}  // namespace dizuo::cuda
