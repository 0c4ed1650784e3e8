// ATTENTION over the KV cache, in two ways.
//
// With f16 caches, no softcap and a head size that is a multiple of 64, tables that have a block
// kernel (kernels.h AttentionRows; the AVX-512 and AVX2 tables) get work items of up to 32 tokens
// × the query heads of one kv head (the latest tokens first: they see the most cells), so each K
// and V row is converted once for up to 96 query rows: 125M llama Q4_0 pp512, 1 thread, ATTENTION
// 376 → about 42 ms per pass (AVX-512, --profile; whole pp512 846 → ~1450 t/s on a quiet machine).
// When there are too few such items for the threads (generation with fewer KV heads than threads)
// and the table runs the kernel in parts (attention_f16_part), the whole team shares each call
// instead (see the team path below).
//
// Otherwise (other tables, f32 caches, softcap, other head sizes) a work item is a block of query
// rows that read the same KV head: up to kRowsPerItem rows made of a few tokens × the query heads
// of one KV group (fewer heads when that leaves too few items for the threads). Per item:
//   1. scores: the query rows (rounded to f16 for an f16 K cache, as core/graph.h defines the op)
//      against the visible cells' K rows, through the table's F16/F32 MATMUL dot tiles (or its
//      kv_dot_f16 tiles for an f16 K cache, where it has them), so each
//      K row is loaded once for all rows of the block and 4 × 4 dot products share their
//      horizontal sums; groups of 4 cells that no token of the block sees are skipped;
//   2. per row: scale, soft-cap, mask, maximum, and the exponentials and their sum (exp_sum);
//   3. the V rows, each loaded once per 4 rows of the block (weighted_rows), scaled into every
//      row's accumulator by its weight normalized and (for an f16 V cache) rounded to f16.
// The rounding needs the final sum, so there is no online (one-pass) softmax; the scores of an item
// take rows × C floats of the thread's scratch. Every output row sees the same operations in the
// same order whatever the block it lands in (the dot tiles guarantee it for the scores).
// 125M llama Q8_0 pp2048, 1 thread (machine loaded): 241-352 t/s with one item per (token, head)
// and a dot call per cell, 517-667 t/s with these blocks (the AVX-512 block kernel: ~1000).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/kernels.h"
#include "backends/cpu/ops.h"
#include "core/quant.h"

namespace dizuo::cpu {
namespace {

constexpr int64_t kRowsPerItem = 16;

// Whether the token at `pos` of sequence `seq` sees cache cell c (core/graph.h: same sequence, not
// in the future, inside the sliding window when there is one).
inline bool Sees(const int32_t* cells, int64_t c, int32_t pos, int32_t seq, int32_t window) {
  const int32_t cell_pos = cells[2 * c];
  return cells[2 * c + 1] == seq && cell_pos <= pos && (window <= 0 || pos - cell_pos < window);
}

// The table's block kernel (kernels.h AttentionRows) takes f16 caches without softcap; it replaced
// the per-cell loop below for 125M llama Q4_0 pp512 on 1 thread, where ATTENTION was 48% of the
// time (376 of 787 ms per pass).
bool UsesRowsKernel(const Node& node, const Kernels& kern) {
  const int64_t d = node.src[0]->ne[0];
  return kern.attention_f16 != nullptr && node.src[1]->type == DType::F16 &&
         node.src[2]->type == DType::F16 && node.params.attention.softcap == 0.0f && d % 64 == 0 &&
         d <= kAttentionMaxHead;
}

int64_t Round16(int64_t n) { return (n + 15) / 16 * 16; }

// Tokens per work item of the block kernel: up to 32, fewer when their scores (tokens × query
// heads per kv head × cells floats) would pass 256 KB, so they stay in L2.
int64_t TokensPerItem(const Node& node) {
  const int64_t group = node.src[0]->ne[1] / node.src[1]->ne[1];
  return std::clamp<int64_t>((int64_t{1} << 16) / (group * Round16(node.src[1]->ne[2])), 1, 32);
}

struct Blocking {
  int64_t heads;   // query heads per item (a divisor of the KV group)
  int64_t tokens;  // tokens per item
};

// The whole KV group (or its largest divisor up to kRowsPerItem) and as many tokens as fit in
// kRowsPerItem rows, shrunk (tokens first, then heads by halves) until there are at least two items
// per thread.
Blocking BlockingFor(int64_t group, int64_t n_kv, int64_t t_count, int nth) {
  Blocking b;
  b.heads = std::min(group, kRowsPerItem);
  while (group % b.heads != 0) --b.heads;
  b.tokens = std::max<int64_t>(1, std::min(t_count, kRowsPerItem / b.heads));
  auto items = [&] { return (t_count + b.tokens - 1) / b.tokens * n_kv * (group / b.heads); };
  while (b.tokens > 1 && items() < 2 * nth) b.tokens = (b.tokens + 1) / 2;
  while (b.heads % 2 == 0 && items() < 2 * nth) b.heads /= 2;
  return b;
}

}  // namespace

ScratchNeeds AttentionScratch(const Node& node) {
  const int64_t d = node.src[0]->ne[0];
  const int64_t c_count = node.src[1]->ne[2];
  if (UsesRowsKernel(node, SelectKernels())) {
    // The visibility bytes of the item's tokens, then the kernel's scratch.
    const int64_t tokens = TokensPerItem(node), c16 = Round16(c_count);
    const int64_t group = node.src[0]->ne[1] / node.src[1]->ne[1];
    // The team path (AttentionTeam) shares one call's scores and weights; whether it runs depends
    // on the thread count, which the scratch is sized without.
    const size_t shared = SelectKernels().attention_f16_part != nullptr
                              ? AttentionPartsShared(tokens * group, c_count) * sizeof(float)
                              : 0;
    return {shared, static_cast<size_t>((tokens * c16 + 3) / 4) +
                        AttentionRowsScratch(d, tokens * group, c_count)};
  }
  // Per thread, for each row of an item: the scores (then weights) of every cell, the query as
  // f32 or f16, the accumulator; and per token the visibility of each cell.
  return {0, static_cast<size_t>(kRowsPerItem * (c_count + 2 * d) + (c_count + 3) / 4 * 4)};
}

void Attention(const Node& node, const OpContext& ctx) {
  const Tensor& q = *node.src[0];
  const Tensor& kc = *node.src[1];
  const Tensor& vc = *node.src[2];
  const auto* tokens = static_cast<const int32_t*>(node.src[3]->data);
  const auto* cells = static_cast<const int32_t*>(node.src[4]->data);
  const Tensor& out = *node.out;
  const AttentionParams& p = node.params.attention;
  const int64_t d = q.ne[0], hq = q.ne[1], t_count = q.ne[2];
  const int64_t n_kv = kc.ne[1];
  const int64_t group = hq / n_kv;
  const int64_t c_count = kc.ne[2];
  const bool k_f16 = kc.type == DType::F16;
  const bool v_f16 = vc.type == DType::F16;
  const Kernels& kern = *ctx.kernels;
  const DotTileFn dot = k_f16 && kern.kv_dot_f16 != nullptr
                            ? kern.kv_dot_f16
                            : kern.dot[static_cast<size_t>(k_f16 ? DType::F16 : DType::F32)];
  constexpr float kHidden = -std::numeric_limits<float>::infinity();

  if (UsesRowsKernel(node, kern)) {
    const int64_t hkv = kc.ne[1];
    const int64_t tb = TokensPerItem(node);
    const int64_t blocks = (t_count + tb - 1) / tb;
    // Few items for the threads (generation): the query heads of a group are split over items,
    // but only as far as the threads need: each item converts its K and V rows once for all its
    // rows, so a split multiplies that work (on the AVX2 Zen 1, 125M llama tg32 @ d2048 with 2
    // threads, the first AVX2 kernel with one head per item ran at 0.73× of the generic loop,
    // which kept a group's 3 heads together). The largest divisor of the group that gives the
    // threads equal shares (or at least 4 items each) is taken.
    auto items_with = [&](int64_t h) { return blocks * hkv * (group / h); };
    int64_t heads = group;
    while (heads > 1 && items_with(heads) < 4 * ctx.nth &&
           (items_with(heads) < ctx.nth || items_with(heads) % ctx.nth != 0)) {
      do {
        --heads;
      } while (group % heads != 0);
    }
    const int64_t splits = group / heads;
    const int64_t items = blocks * hkv * splits;
    const int64_t c16 = Round16(c_count);
    auto* mask = reinterpret_cast<uint8_t*>(ctx.thread_scratch);
    AttentionRows task;
    task.d = d;
    task.q_token_stride = q.nb[2] / sizeof(float);
    task.q_head_stride = q.nb[1] / sizeof(float);
    task.out_token_stride = out.nb[1] / sizeof(float);
    task.out_head_stride = static_cast<size_t>(d);
    task.mask_stride = static_cast<size_t>(c16);
    task.k_stride = kc.nb[2] / sizeof(uint16_t);
    task.v_stride = vc.nb[2] / sizeof(uint16_t);
    task.scale = p.scale;
    task.scratch = ctx.thread_scratch + (tb * c16 + 3) / 4;
    // The visibility of a token block is the same for every head: a thread keeps the last one it
    // built (items of a block are consecutive). In generation it was rebuilt for each of a 125M
    // llama's 12 KV heads, over every cell of the cache. The kernel gets only the cells from the
    // first one a token of the block sees (rounded down to a multiple of 16, so every cell keeps
    // its vector lane and results do not depend on the block) to the last: a sliding window
    // (Gemma 3: 512 of a long context) leaves the cells before it out.
    int64_t mask_block = -1;
    int64_t lo = 0, hi = 0;  // the block's cells [lo, hi)
    // Sets task's rows (block b, the `nh` heads from h0 of KV head kvh) and cells.
    auto prepare = [&](int64_t b, int64_t kvh, int64_t h0, int64_t nh) {
      const int64_t t0 = b * tb, nt = std::min(tb, t_count - t0);
      if (b != mask_block) {
        mask_block = b;
        lo = c_count;
        hi = 0;
        for (int64_t t = 0; t < nt; ++t) {
          const int32_t pos = tokens[2 * (t0 + t)], seq = tokens[2 * (t0 + t) + 1];
          uint8_t* m = mask + t * c16;
          for (int64_t c = 0; c < c_count; ++c) {
            const bool seen = Sees(cells, c, pos, seq, p.window);
            m[c] = seen ? 1 : 0;
            if (seen) {
              lo = std::min(lo, c);
              hi = std::max(hi, c + 1);
            }
          }
          std::fill(m + c_count, m + c16, uint8_t{0});
        }
        // The kernel reads the mask rows from lo on, up to Round16(hi) ≤ c16.
        lo = hi > lo ? lo / 16 * 16 : 0;
      }
      task.visible = mask + lo;
      task.tokens = static_cast<int>(nt);
      task.heads = static_cast<int>(nh);
      task.q = reinterpret_cast<const float*>(static_cast<const char*>(q.data) + t0 * q.nb[2] +
                                              h0 * q.nb[1]);
      task.out = reinterpret_cast<float*>(static_cast<char*>(out.data) + t0 * out.nb[1]) + h0 * d;
      task.nc = hi - lo;
      task.k = reinterpret_cast<const uint16_t*>(static_cast<const char*>(kc.data) +
                                                 kvh * kc.nb[1] + lo * kc.nb[2]);
      task.v = reinterpret_cast<const uint16_t*>(static_cast<const char*>(vc.data) +
                                                 kvh * vc.nb[1] + lo * vc.nb[2]);
    };
    if (splits > 1 && kern.attention_f16_part != nullptr) {
      // Too few KV heads for the threads (generation on Gemma 3, whose one KV head made 2 threads
      // convert every K and V row twice): the team takes one (block, KV head) call at a time in
      // parts. The scores are split by cells, the softmax by rows and the weighted V rows by
      // elements, so each K and V element is converted once, and the results are the single
      // call's (kernels.h AttentionPart). Between the parts the team waits at a barrier; a part's
      // items are handed out by one counter whose value after each part is known (every thread
      // takes exactly one item past the end), so no counter needs resetting.
      task.shared = reinterpret_cast<float*>(ctx.shared_scratch);
      int64_t base = 0;  // the counter's value at the start of the part
      auto for_each = [&](int64_t n, bool barrier, auto&& f) {
        for (int64_t i = ctx.counter->fetch_add(1, std::memory_order_relaxed) - base; i < n;
             i = ctx.counter->fetch_add(1, std::memory_order_relaxed) - base) {
          f(i);
        }
        base += n + ctx.nth;
        if (barrier) ctx.Barrier();
      };
      constexpr int64_t kCellsPerPart = 64;
      for (int64_t call = 0; call < blocks * hkv; ++call) {
        prepare(blocks - 1 - call / hkv, call % hkv, (call % hkv) * group, group);
        const int64_t nc = task.nc;
        for_each((nc + kCellsPerPart - 1) / kCellsPerPart, true, [&](int64_t i) {
          kern.attention_f16_part(task, AttentionPart::kScores, i * kCellsPerPart,
                                  std::min(nc, (i + 1) * kCellsPerPart));
        });
        for_each(task.tokens * group, true, [&](int64_t i) {
          kern.attention_f16_part(task, AttentionPart::kSoftmax, i, i + 1);
        });
        // A barrier before the next call reuses the shared area; after the last, the op's end.
        for_each(d / 32, call + 1 < blocks * hkv, [&](int64_t i) {
          kern.attention_f16_part(task, AttentionPart::kValues, 32 * i, 32 * i + 32);
        });
      }
      return;
    }
    for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed); item < items;
         item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
      const int64_t b = blocks - 1 - item / (hkv * splits);  // the latest (largest) blocks first
      const int64_t kvh = (item / splits) % hkv;
      prepare(b, kvh, kvh * group + (item % splits) * heads, heads);
      kern.attention_f16(task);
    }
    return;
  }

  const Blocking b = BlockingFor(group, n_kv, t_count, ctx.nth);
  const int64_t head_blocks = hq / b.heads;
  const int64_t token_blocks = (t_count + b.tokens - 1) / b.tokens;
  float* const scores = ctx.thread_scratch;             // [rows][c_count]
  float* const qbuf = scores + kRowsPerItem * c_count;  // [rows][d] (f32 or f16)
  float* const acc = qbuf + kRowsPerItem * d;           // [rows][d]
  auto* const visible = reinterpret_cast<uint8_t*>(acc + kRowsPerItem * d);  // [c_count]
  const size_t q_stride = static_cast<size_t>(d) * (k_f16 ? sizeof(uint16_t) : sizeof(float));
  const size_t k_stride = kc.nb[2], v_stride = vc.nb[2];

  const int64_t items = token_blocks * head_blocks;
  for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed); item < items;
       item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
    const int64_t t0 = (item / head_blocks) * b.tokens;
    const int64_t nt = std::min(b.tokens, t_count - t0);
    const int64_t h0 = (item % head_blocks) * b.heads;
    const int64_t kvh = h0 / group;
    const int64_t rows = nt * b.heads;  // row r: token t0 + r / heads, head h0 + r % heads

    // Query rows, converted once.
    for (int64_t r = 0; r < rows; ++r) {
      const auto* qrow = reinterpret_cast<const float*>(static_cast<const char*>(q.data) +
                                                        (t0 + r / b.heads) * q.nb[2] +
                                                        (h0 + r % b.heads) * q.nb[1]);
      char* dst = reinterpret_cast<char*>(qbuf) + r * q_stride;
      if (k_f16) {
        kern.f32_to_f16(qrow, reinterpret_cast<uint16_t*>(dst), d);
      } else {
        std::memcpy(dst, qrow, static_cast<size_t>(d) * sizeof(float));
      }
    }

    // Which cells each token sees (bit j: token t0 + j; blocks have at most 16 tokens).
    static_assert(kRowsPerItem <= 16);
    auto* vis = reinterpret_cast<uint16_t*>(visible);
    for (int64_t c = 0; c < c_count; ++c) {
      uint16_t bits = 0;
      for (int64_t j = 0; j < nt; ++j) {
        if (Sees(cells, c, tokens[2 * (t0 + j)], tokens[2 * (t0 + j) + 1], p.window)) {
          bits |= static_cast<uint16_t>(1u << j);
        }
      }
      vis[c] = bits;
    }

    // 1. Scores of every 4-cell group some token sees, 4 query rows per tile.
    const char* k_base = static_cast<const char*>(kc.data) + kvh * kc.nb[1];
    for (int64_t c = 0; c < c_count; c += kTileRows) {
      const int nw = static_cast<int>(std::min<int64_t>(kTileRows, c_count - c));
      bool any = false;
      for (int i = 0; i < nw; ++i) any = any || vis[c + i] != 0;
      if (!any) continue;
      for (int64_t r = 0; r < rows; r += kTileRows) {
        const int na = static_cast<int>(std::min<int64_t>(kTileRows, rows - r));
        dot(d, k_base + c * k_stride, k_stride, nw,
            reinterpret_cast<const char*>(qbuf) + r * q_stride, q_stride, na,
            scores + r * c_count + c, static_cast<size_t>(c_count));
      }
    }

    // 2. Softmax numerators per row.
    float inv[kRowsPerItem];
    bool any_row = false;
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores + r * c_count;
      const uint16_t bit = static_cast<uint16_t>(1u << (r / b.heads));
      float max = kHidden;
      for (int64_t c = 0; c < c_count; ++c) {
        if ((vis[c] & bit) == 0) {
          s[c] = kHidden;
          continue;
        }
        float x = s[c] * p.scale;
        if (p.softcap > 0.0f) x = p.softcap * std::tanh(x / p.softcap);
        s[c] = x;
        max = std::max(max, x);
      }
      if (max == kHidden) {  // no visible cell: the output row is zeros
        std::fill(s, s + c_count, 0.0f);
        inv[r] = 0.0f;
        continue;
      }
      any_row = true;
      inv[r] = 1.0f / kern.exp_sum(s, c_count, max);
    }

    // 3. Weighted V rows, in cell order for every output row, over each run of cells that some
    // token of the block sees (the others may hold stale or unwritten rows).
    std::fill(acc, acc + rows * d, 0.0f);
    if (any_row) {
      const char* v_base = static_cast<const char*>(vc.data) + kvh * vc.nb[1];
      for (int64_t c = 0; c < c_count;) {
        if (vis[c] == 0) {
          ++c;
          continue;
        }
        int64_t c_end = c + 1;
        while (c_end < c_count && vis[c_end] != 0) ++c_end;
        for (int64_t r = 0; r < rows; r += kTileRows) {
          const int nr = static_cast<int>(std::min<int64_t>(kTileRows, rows - r));
          kern.weighted_rows(d, c_end - c, scores + r * c_count + c, static_cast<size_t>(c_count),
                             inv + r, nr, v_f16, vc.type, v_base + c * v_stride, v_stride,
                             acc + r * d);
        }
        c = c_end;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* orow =
          reinterpret_cast<float*>(static_cast<char*>(out.data) + (t0 + r / b.heads) * out.nb[1]) +
          (h0 + r % b.heads) * d;
      std::copy(acc + r * d, acc + (r + 1) * d, orow);
    }
  }
}

}  // namespace dizuo::cpu
