// CPU op kernels (internal to the CPU backend). Every thread of the pool calls each op with its
// own OpContext; an op splits its work by ctx.ith / ctx.nth (or through ctx.counter) and may call
// ctx.Barrier() between phases, which every thread must then reach.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "backends/cpu/kernels.h"
#include "backends/cpu/thread_pool.h"
#include "core/graph.h"

namespace dizuo::cpu {

// One thread's share of a node's work for OpContext::ForEachOwnedChunk; on its own cache line so
// the owner's claims do not contend with the other threads'.
struct alignas(64) WorkCounter {
  std::atomic<int64_t> next{0};
};

// [begin, end) of `n` items for thread ith of nth (contiguous, balanced).
inline void SplitRange(int64_t n, int ith, int nth, int64_t* begin, int64_t* end) {
  *begin = n * ith / nth;
  *end = n * (ith + 1) / nth;
}

// Calls f(row, begin, end) on this thread's part of `rows` rows of `n` elements: whole rows
// (SplitRange) when there are at least as many rows as threads, otherwise a range of every row's
// elements, cut at multiples of 16 (64-byte lines), so that a generated token's single-row ops
// (ADD, RMS_NORM, GLU, SCALE) keep every thread busy instead of one while the others wait at the
// next barrier. For element-wise ops whose results do not depend on the split.
template <typename F>
inline void ForEachRowPart(int64_t rows, int64_t n, int ith, int nth, F&& f) {
  int64_t begin, end;
  if (rows >= nth) {
    SplitRange(rows, ith, nth, &begin, &end);
    for (int64_t r = begin; r < end; ++r) f(r, int64_t{0}, n);
    return;
  }
  constexpr int64_t kLine = 16;
  SplitRange((n + kLine - 1) / kLine, ith, nth, &begin, &end);
  begin = std::min(n, begin * kLine);
  end = std::min(n, end * kLine);
  if (begin == end) return;
  for (int64_t r = 0; r < rows; ++r) f(r, begin, end);
}

// A MATMUL weight that the backend copied into its kernel table's own layout at load
// (kernels.h RepackFns): the copy's rows are `stride` bytes apart from `data`.
struct RepackedWeight {
  const RepackFns* fns = nullptr;
  const uint8_t* data = nullptr;
  size_t stride = 0;
};

struct OpContext {
  int ith = 0;
  int nth = 1;
  ThreadPool* pool = nullptr;
  const Kernels* kernels = nullptr;
  uint8_t* shared_scratch = nullptr;        // one area for the whole team (per node)
  float* thread_scratch = nullptr;          // this thread's own area
  std::atomic<int64_t>* counter = nullptr;  // zero at the start of the node; for dynamic splits
  WorkCounter* owned = nullptr;             // nth counters, zero at the start of the node
  const RepackedWeight* weight = nullptr;   // MATMUL's weight or GET_ROWS' table's repacked copy
  void Barrier() const { pool->Barrier(); }

  // Calls f(begin, end) on chunks of at most `chunk` of the items [0, n). Each thread owns a
  // contiguous share (SplitRange) and walks it from the front, so it reads one long stream of
  // memory; when its share is done it takes the remaining chunks of the others' shares, so a
  // thread that was descheduled does not hold the team back. Measured on a 2-core EPYC, generation
  // on 125M-parameter models ran 1.4-1.6x faster with 2 threads than when every thread took the
  // next chunk of one shared counter (which interleaves the threads' reads chunk by chunk).
  // Chunks shrink towards the end of a share (a quarter of what is left, down to kMinChunk), so
  // the thread that finishes last holds the other for a short chunk, not a whole one: llama 1b
  // Q4_0 tg128 with 2 threads, time waiting at barriers (instrumented pool, two runs each)
  // 306-345 → 136-205 ms; tokens/s unchanged within the host's noise (bench/ab-dizuo, 8 rounds,
  // A ÷ B: 1b Q4_0 0.96×, Gemma 3 0.99×, 125m Q8_0 1.01×; 1 thread 0.94-1.02×).
  template <typename F>
  void ForEachOwnedChunk(int64_t n, int64_t chunk, F&& f) const {
    for (int v = 0; v < nth; ++v) {
      const int owner = (ith + v) % nth;
      int64_t begin, end;
      SplitRange(n, owner, nth, &begin, &end);
      std::atomic<int64_t>& next = owned[owner].next;
      for (int64_t taken = next.load(std::memory_order_relaxed); begin + taken < end;) {
        const int64_t size =
            std::clamp((end - begin - taken) / kTailParts, std::min(chunk, kMinChunk), chunk);
        if (!next.compare_exchange_weak(taken, taken + size, std::memory_order_relaxed)) continue;
        f(begin + taken, std::min(begin + taken + size, end));
        taken = next.load(std::memory_order_relaxed);
      }
    }
  }
  static constexpr int64_t kTailParts = 4;
  static constexpr int64_t kMinChunk = 4;
};

// Scratch an op needs: bytes shared by the team, and floats for each thread.
struct ScratchNeeds {
  size_t shared_bytes = 0;
  size_t thread_floats = 0;
};
// weight: a MATMUL's weight's or a GET_ROWS' table's repacked copy, if it has one.
ScratchNeeds ScratchFor(const Node& node, const RepackedWeight* weight = nullptr);

// Address of row `r` of `t` (rows numbered over ne[1], ne[2], ne[3] in that order).
inline char* RowPtr(const Tensor& t, int64_t r) {
  const int64_t i1 = r % t.ne[1];
  const int64_t i2 = (r / t.ne[1]) % t.ne[2];
  const int64_t i3 = r / (t.ne[1] * t.ne[2]);
  return static_cast<char*>(t.data) + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

void GetRows(const Node& node, const OpContext& ctx);
void MatMul(const Node& node, const OpContext& ctx);
void Binary(const Node& node, const OpContext& ctx);  // ADD, MUL
void Scale(const Node& node, const OpContext& ctx);
void RmsNorm(const Node& node, const OpContext& ctx);
void Rope(const Node& node, const OpContext& ctx);
void Glu(const Node& node, const OpContext& ctx);
void Attention(const Node& node, const OpContext& ctx);
void StoreKV(const Node& node, const OpContext& ctx);

ScratchNeeds MatMulScratch(const Node& node, const RepackedWeight* weight);
ScratchNeeds RopeScratch(const Node& node);
ScratchNeeds AttentionScratch(const Node& node);

}  // namespace dizuo::cpu
