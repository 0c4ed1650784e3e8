// ATTENTION: one thread block per (query head, token). The cache is walked in chunks of kChunk
// cells; each warp scores a share of a chunk's visible cells (lanes split the head dimension, so
// K reads are coalesced), then the chunk joins an online softmax (running max and sum) and every
// thread accumulates its own output dimensions over the chunk's V rows (coalesced as well).
// Invisible cells are skipped, never multiplied by a zero weight.
#include <cmath>

#include "backends/cuda/cuda_common.cuh"

namespace dizuo::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarp;
constexpr int kChunk = 64;
constexpr int kDimsPerThread = static_cast<int>(kAttentionMaxHeadDim) / kThreads;

__device__ __forceinline__ float CacheAt(const char* row, bool f16, int64_t i) {
  return f16 ? HalfBits(reinterpret_cast<const uint16_t*>(row)[i])
             : reinterpret_cast<const float*>(row)[i];
}

__device__ __forceinline__ int32_t I32(const DevTensor& t, int64_t i0, int64_t i1) {
  return *reinterpret_cast<const int32_t*>(t.data + i0 * t.nb[0] + i1 * t.nb[1]);
}

__global__ void AttentionKernel(DevTensor q, bool k16, DevTensor k, bool v16, DevTensor v,
                                DevTensor tokens, DevTensor cells, AttentionArgs p, DevTensor out) {
  extern __shared__ float q_row[];  // head_dim floats
  __shared__ float weight[kChunk];  // scores, then softmax numerators, of the current chunk
  const int64_t h = blockIdx.x, t = blockIdx.y;
  const int64_t d = q.ne[0], n_cells = k.ne[2];
  const int64_t kv_head = h / (q.ne[1] / k.ne[1]);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int32_t token_pos = I32(tokens, 0, t), token_seq = I32(tokens, 1, t);

  const float* qh = reinterpret_cast<const float*>(q.data + h * q.nb[1] + t * q.nb[2]);
  for (int64_t i = threadIdx.x; i < d; i += kThreads) q_row[i] = qh[i];
  __syncthreads();

  float running_max = -INFINITY, running_sum = 0.0f;
  float acc[kDimsPerThread];
#pragma unroll
  for (int r = 0; r < kDimsPerThread; ++r) acc[r] = 0.0f;

  for (int64_t c0 = 0; c0 < n_cells; c0 += kChunk) {
    for (int j = warp; j < kChunk; j += kWarps) {
      const int64_t c = c0 + j;
      float score = -INFINITY;
      if (c < n_cells) {
        const int32_t cell_pos = I32(cells, 0, c), cell_seq = I32(cells, 1, c);
        const bool visible = cell_seq >= 0 && cell_seq == token_seq && cell_pos <= token_pos &&
                             (p.window == 0 || token_pos - cell_pos < p.window);
        if (visible) {  // the same for every lane of the warp
          const char* krow = k.data + kv_head * k.nb[1] + c * k.nb[2];
          float dot = 0.0f;
          for (int64_t i = lane; i < d; i += kWarp) dot += q_row[i] * CacheAt(krow, k16, i);
          score = WarpSum(dot) * p.scale;
          if (p.softcap > 0.0f) score = p.softcap * tanhf(score / p.softcap);
        }
      }
      if (lane == 0) weight[j] = score;
    }
    __syncthreads();
    float chunk_max = -INFINITY;
    for (int j = 0; j < kChunk; ++j) chunk_max = fmaxf(chunk_max, weight[j]);
    if (chunk_max == -INFINITY) {  // nothing visible in this chunk (the same for all threads)
      __syncthreads();
      continue;
    }
    const float new_max = fmaxf(running_max, chunk_max);
    const float rescale = expf(running_max - new_max);  // 0 on the first visible chunk
    __syncthreads();                                    // every thread has read the scores
    if (threadIdx.x < kChunk) weight[threadIdx.x] = expf(weight[threadIdx.x] - new_max);
    __syncthreads();
    float chunk_sum = 0.0f;
    for (int j = 0; j < kChunk; ++j) chunk_sum += weight[j];
    running_sum = running_sum * rescale + chunk_sum;
    running_max = new_max;
#pragma unroll
    for (int r = 0; r < kDimsPerThread; ++r) acc[r] *= rescale;
    for (int j = 0; j < kChunk; ++j) {
      const float w = weight[j];
      if (w == 0.0f) continue;  // invisible (or negligible): the same for all threads
      const char* vrow = v.data + kv_head * v.nb[1] + (c0 + j) * v.nb[2];
#pragma unroll
      for (int r = 0; r < kDimsPerThread; ++r) {
        const int64_t i = threadIdx.x + static_cast<int64_t>(r) * kThreads;
        if (i < d) acc[r] += w * CacheAt(vrow, v16, i);
      }
    }
    __syncthreads();  // before the next chunk overwrites `weight`
  }

  float* dst = reinterpret_cast<float*>(out.data + t * out.nb[1]) + h * d;
#pragma unroll
  for (int r = 0; r < kDimsPerThread; ++r) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(r) * kThreads;
    if (i < d) dst[i] = running_sum > 0.0f ? acc[r] / running_sum : 0.0f;
  }
}

}  // namespace

void LaunchAttention(const DevTensor& q, DType k_type, const DevTensor& k, DType v_type,
                     const DevTensor& v, const DevTensor& tokens, const DevTensor& cells,
                     const AttentionArgs& args, const DevTensor& out, cudaStream_t stream) {
  if (q.ne[1] == 0 || q.ne[2] == 0) return;
  const dim3 grid(static_cast<unsigned>(q.ne[1]), static_cast<unsigned>(q.ne[2]));
  const size_t shared = sizeof(float) * static_cast<size_t>(q.ne[0]);
  AttentionKernel<<<grid, kThreads, shared, stream>>>(
      q, k_type == DType::F16, k, v_type == DType::F16, v, tokens, cells, args, out);
}

}  // namespace dizuo::cuda
