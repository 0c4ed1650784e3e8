// ATTENTION: one thread block per (query head, token), in two passes over the cache, walked in
// chunks of kChunk cells. Each warp scores a share of a chunk's visible cells (lanes split the head
// dimension, so K reads are coalesced). Pass 1 keeps a running max and sum of exp(score − max);
// pass 2 scores the chunks again (the same arithmetic, so the same bits), turns each score into its
// normalized weight p = exp(score − max) / sum and every thread accumulates p · v over its own
// output dimensions (coalesced V reads). The weights must be final before they are used because
// core/graph.h rounds them to f16 when V is an f16 cache (llama.cpp's CPU numerics); with an f16 K,
// q is rounded to f16 before q·k. Invisible cells are skipped, never multiplied by a zero weight.
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

struct HeadArgs {
  const float* q_row;  // shared memory, d floats (rounded to f16 for an f16 K)
  int64_t kv_head;
  int32_t token_pos, token_seq;
};

// Scores of cells [c0, c0 + kChunk) into weight[0, kChunk): −inf for invisible cells and for cells
// past the cache. Ends with a barrier.
__device__ void ScoreChunk(const HeadArgs& a, bool k16, const DevTensor& k, const DevTensor& cells,
                           const AttentionArgs& p, int64_t c0, float* weight) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t d = k.ne[0], n_cells = k.ne[2];
  for (int j = warp; j < kChunk; j += kWarps) {
    const int64_t c = c0 + j;
    float score = -INFINITY;
    if (c < n_cells) {
      const int32_t cell_pos = I32(cells, 0, c), cell_seq = I32(cells, 1, c);
      const bool visible = cell_seq >= 0 && cell_seq == a.token_seq && cell_pos <= a.token_pos &&
                           (p.window == 0 || a.token_pos - cell_pos < p.window);
      if (visible) {  // the same for every lane of the warp
        const char* krow = k.data + a.kv_head * k.nb[1] + c * k.nb[2];
        float dot = 0.0f;
        for (int64_t i = lane; i < d; i += kWarp) dot += a.q_row[i] * CacheAt(krow, k16, i);
        score = WarpSum(dot) * p.scale;
        if (p.softcap > 0.0f) score = p.softcap * tanhf(score / p.softcap);
      }
    }
    if (lane == 0) weight[j] = score;
  }
  __syncthreads();
}

__global__ void AttentionKernel(DevTensor q, bool k16, DevTensor k, bool v16, DevTensor v,
                                DevTensor tokens, DevTensor cells, AttentionArgs p, DevTensor out) {
  extern __shared__ float q_row[];  // head_dim floats
  __shared__ float weight[kChunk];  // scores, then exponentials or weights, of the current chunk
  const int64_t h = blockIdx.x, t = blockIdx.y;
  const int64_t d = q.ne[0], n_cells = k.ne[2];
  const HeadArgs a{q_row, h / (q.ne[1] / k.ne[1]), I32(tokens, 0, t), I32(tokens, 1, t)};

  const float* qh = reinterpret_cast<const float*>(q.data + h * q.nb[1] + t * q.nb[2]);
  for (int64_t i = threadIdx.x; i < d; i += kThreads) q_row[i] = k16 ? RoundToHalf(qh[i]) : qh[i];
  __syncthreads();

  // Pass 1: max and sum of the softmax (every thread holds the same values).
  float max_score = -INFINITY, sum = 0.0f;
  for (int64_t c0 = 0; c0 < n_cells; c0 += kChunk) {
    ScoreChunk(a, k16, k, cells, p, c0, weight);
    float chunk_max = -INFINITY;
    for (int j = 0; j < kChunk; ++j) chunk_max = fmaxf(chunk_max, weight[j]);
    if (chunk_max == -INFINITY) {  // nothing visible in this chunk (the same for all threads)
      __syncthreads();
      continue;
    }
    const float new_max = fmaxf(max_score, chunk_max);
    __syncthreads();  // every thread has read the scores
    if (threadIdx.x < kChunk) weight[threadIdx.x] = expf(weight[threadIdx.x] - new_max);
    __syncthreads();
    float chunk_sum = 0.0f;
    for (int j = 0; j < kChunk; ++j) chunk_sum += weight[j];
    sum = sum * expf(max_score - new_max) + chunk_sum;  // the first term is 0 at first
    max_score = new_max;
    __syncthreads();  // before the next chunk overwrites `weight`
  }

  // Pass 2: normalized weights (rounded to f16 for an f16 V) times V.
  float acc[kDimsPerThread];
#pragma unroll
  for (int r = 0; r < kDimsPerThread; ++r) acc[r] = 0.0f;
  for (int64_t c0 = 0; sum > 0.0f && c0 < n_cells; c0 += kChunk) {
    ScoreChunk(a, k16, k, cells, p, c0, weight);
    if (threadIdx.x < kChunk) {
      const float w = expf(weight[threadIdx.x] - max_score) / sum;  // 0 for invisible cells
      weight[threadIdx.x] = v16 ? RoundToHalf(w) : w;
    }
    __syncthreads();
    for (int j = 0; j < kChunk; ++j) {
      const float w = weight[j];
      if (w == 0.0f) continue;  // invisible (or negligible): the same for all threads
      const char* vrow = v.data + a.kv_head * v.nb[1] + (c0 + j) * v.nb[2];
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
    if (i < d) dst[i] = acc[r];
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
