// MATMUL: out[N, M] = x[K, M] · w[K, N]ᵀ on the weight's bytes in place, or on the backend's copy
// of them in its kernel table's own layout when the weight was repacked at load (OpContext::weight,
// kernels.h RepackFns).
//
// Phase 1 converts each activation row once to the weight's activation type (Q8_0 / Q8_1 / Q8_K,
// f16 / bf16 rounding), rows split across threads; a single row (generation) is converted by every
// thread into its own scratch instead, which saves a barrier. Phase 2 computes dot-product tiles
// of up to kTileRows weight rows × kTileRows activation rows, so each decoded weight block is
// reused for several activation rows while it is in registers/L1. Generation gives each thread a
// contiguous share of the weight rows (OpContext::ForEachOwnedChunk, with stealing at the end);
// prompt batches take work items (a chunk of weight rows × a block of activation rows) from a
// shared counter. The tile kernels make every output independent of the split.
#include <algorithm>
#include <cstring>

#include "backends/cpu/ops.h"
#include "core/error.h"

namespace dizuo::cpu {
namespace {

// Activation rows per work item for prompt batches: the converted rows of one block stay in L2
// while a chunk of weight rows sweeps them.
constexpr int64_t kActivationBlock = 64;

bool UniformRows(const Tensor& t) {
  return t.nb[2] == t.nb[1] * static_cast<uint64_t>(t.ne[1]) &&
         t.nb[3] == t.nb[2] * static_cast<uint64_t>(t.ne[2]);
}

// Whether phase 1 must write converted activations to scratch (always, unless the weight is f32
// and x's rows are evenly strided, in which case the dot products read x directly).
bool NeedsConversion(const Node& node) {
  return ActivationType(node.src[1]->type) != DType::F32 || !UniformRows(*node.src[0]);
}

uint64_t ActivationRowBytes(const Node& node) {
  return *RowBytes(ActivationType(node.src[1]->type), static_cast<uint64_t>(node.src[0]->ne[0]));
}

// Weight rows per work item of a prompt batch (a multiple of the tile height and of every
// GemmFns::rows).
constexpr int64_t kWeightChunk = 32;
static_assert(kWeightChunk % kTileRows == 0);

// Activation rows of one GEMM work item: 8 packed quads, 20-80 KB per 1k of K, stay in L2 while a
// chunk of weight rows sweeps them.
constexpr int64_t kGemmActivationBlock = 32;

// Prompt GEMM work order. Walking all weight chunks for one activation block, then the next block,
// re-reads the whole weight matrix once per 32 activation rows: from DRAM when it does not fit L3
// (llama 1b f16: the 2048 × 8192 ffn weights are 32 MB, 16 passes per pp512 MATMUL). For weight
// matrices over kGemmGroupMinBytes, groups of kGemmActivationGroup blocks (256 rows) pass over each
// chunk (32 rows, 128-512 KB of f16, stays in L2) before the next chunk is taken; the packed
// activations come from L2/L3 instead. Smaller matrices (in L3 anyway) keep groups of 1: grouping
// all matrices made 125m pp512 (1 thread) 2-4% slower in f16 and 5-10% slower in q4_0/q8_0/q4_k_m.
// Measured pp512, alternated with the previous order (1 and 2 threads, EPYC Zen 5, another
// benchmark running at times): llama 1b f16 1t 108-113 vs 95-99 tokens/s, 2t 210-214 vs 186-192;
// 1b q8_0 1t 170-174 vs 137-149; 125m q4_0/q8_0/f16 unchanged. Groups of 4 measured close to 8,
// all 16 blocks of pp512 ~8% below 4 (1b f16, 1 thread, busy machine).
constexpr int64_t kGemmActivationGroup = 8;
constexpr uint64_t kGemmGroupMinBytes = uint64_t{16} << 20;
constexpr int64_t kGemmMinRows = 4;

// The packed-quad GEMM (kernels.h GemmFns) for prompt batches, when the table has one for the
// weight type; nullptr: dot tiles.
const GemmFns* PromptGemm(const Kernels& kernels, const Node& node,
                          const RepackedWeight* repacked = nullptr) {
  const GemmFns& g =
      repacked ? repacked->fns->gemm : kernels.gemm[static_cast<size_t>(node.src[1]->type)];
  return g.gemm != nullptr && node.src[0]->rows() >= std::max<int64_t>(kGemmMinRows, g.min_rows)
             ? &g
             : nullptr;
}

// A repacked layout's prepared activation (RepackFns::gemv_act) sits in the thread's scratch at
// the first 64-byte boundary after the converted row; MatMulScratch reserves kPreparedAlign more
// bytes for that.
constexpr uint64_t kPreparedAlign = 64;
uint8_t* PreparedActivation(float* thread_scratch, uint64_t row_bytes) {
  const uintptr_t end = reinterpret_cast<uintptr_t>(thread_scratch) + row_bytes;
  return reinterpret_cast<uint8_t*>((end + kPreparedAlign - 1) / kPreparedAlign * kPreparedAlign);
}

uint64_t PackedBytes(const GemmFns& g, const Node& node) {
  return g.pack_bytes(node.src[0]->ne[0]) * static_cast<uint64_t>((node.src[0]->rows() + 3) / 4);
}

}  // namespace

ScratchNeeds MatMulScratch(const Node& node, const RepackedWeight* weight) {
  ScratchNeeds needs;
  auto floats = [](uint64_t bytes) { return static_cast<size_t>((bytes + 3) / 4); };
  if (const GemmFns* g = PromptGemm(SelectKernels(), node, weight)) {
    // The packed quads are shared; a quad's rows are converted in the thread's own scratch just
    // before they are packed, and a repacked weight chunk reuses that scratch afterwards.
    needs.shared_bytes = PackedBytes(*g, node);
    if (NeedsConversion(node)) needs.thread_floats = floats(4 * ActivationRowBytes(node));
    if (g->pack_weights != nullptr) {
      needs.thread_floats =
          std::max(needs.thread_floats, floats(g->weight_pack_bytes(node.src[0]->ne[0])));
    }
  } else if (NeedsConversion(node) && node.src[0]->rows() == 1) {
    needs.thread_floats = floats(ActivationRowBytes(node));
    // A repacked layout's generation path prepares the converted row once more, after it.
    if (weight != nullptr && weight->fns->gemv_act_bytes != nullptr) {
      needs.thread_floats = floats(ActivationRowBytes(node) + kPreparedAlign +
                                   weight->fns->gemv_act_bytes(node.src[0]->ne[0]));
    }
  } else if (NeedsConversion(node)) {
    needs.shared_bytes = ActivationRowBytes(node) * static_cast<uint64_t>(node.src[0]->rows());
  }
  return needs;
}

void MatMul(const Node& node, const OpContext& ctx) {
  const Tensor& x = *node.src[0];
  const Tensor& w = *node.src[1];
  const Tensor& out = *node.out;
  const int64_t k = x.ne[0];
  const int64_t n = w.ne[1];
  const int64_t m = x.rows();
  const DType act = ActivationType(w.type);
  // A weight repacked at load is read from its copy, with the layout's own functions.
  const RepackedWeight* repacked = ctx.weight;
  const DotTileFn dot =
      repacked ? repacked->fns->dot : ctx.kernels->dot[static_cast<size_t>(w.type)];
  DZ_ASSERT(dot != nullptr);

  const bool convert = NeedsConversion(node);
  // Activation row r converted to the weight's activation type at dst.
  auto convert_row = [&](int64_t r, uint8_t* dst) {
    const auto* src = reinterpret_cast<const float*>(RowPtr(x, r));
    if (act == DType::F32) {
      std::memcpy(dst, src, static_cast<size_t>(k) * sizeof(float));
    } else {
      ctx.kernels->to_activation[static_cast<size_t>(act)](src, dst, k);
    }
  };
  const GemmFns* gemm = PromptGemm(*ctx.kernels, node, repacked);
  const uint8_t* a_base = nullptr;
  size_t a_stride = 0;
  if (gemm != nullptr && convert) {
    // Converted quad by quad while packing (below): no shared copy of the converted rows.
  } else if (convert && m == 1) {
    // One row: every thread converts it into its own scratch, which costs less than making the
    // others wait at a barrier while one thread does it.
    auto* dst = reinterpret_cast<uint8_t*>(ctx.thread_scratch);
    convert_row(0, dst);
    a_base = dst;
    a_stride = ActivationRowBytes(node);
  } else if (convert) {
    const uint64_t row_bytes = ActivationRowBytes(node);
    int64_t begin, end;
    SplitRange(m, ctx.ith, ctx.nth, &begin, &end);
    for (int64_t r = begin; r < end; ++r) convert_row(r, ctx.shared_scratch + r * row_bytes);
    ctx.Barrier();
    a_base = ctx.shared_scratch;
    a_stride = row_bytes;
  } else {
    a_base = static_cast<const uint8_t*>(x.data);
    a_stride = x.nb[1];
  }

  const auto* w_base = repacked ? repacked->data : static_cast<const uint8_t*>(w.data);
  const size_t w_stride = repacked ? repacked->stride : w.nb[1];
  // Output rows are evenly strided: out is created contiguous by the graph.
  auto* o_base = static_cast<uint8_t*>(out.data);
  const size_t o_stride_floats = out.nb[1] / sizeof(float);
  DZ_ASSERT(UniformRows(out) && out.nb[0] == sizeof(float));

  if (gemm != nullptr) {
    // Quads of 4 activation rows, packed once into the shared scratch. Converted rows go through
    // the thread's own scratch (4 rows, 35 KB for a Q8_0 row of 8192), so the shared area holds
    // only the packed quads: llama 1b pp512 needed 9.25 MiB of it for ffn_down, now 5.0 MiB.
    uint8_t* packed = ctx.shared_scratch;
    const size_t quad_bytes = gemm->pack_bytes(k);
    const int64_t quads = (m + 3) / 4;
    const uint64_t row_bytes = ActivationRowBytes(node);
    int64_t begin, end;
    SplitRange(quads, ctx.ith, ctx.nth, &begin, &end);
    for (int64_t q = begin; q < end; ++q) {
      const int na = static_cast<int>(std::min<int64_t>(4, m - 4 * q));
      if (convert) {
        auto* rows = reinterpret_cast<uint8_t*>(ctx.thread_scratch);
        for (int c = 0; c < na; ++c) convert_row(4 * q + c, rows + c * row_bytes);
        gemm->pack(k, rows, row_bytes, na, packed + q * quad_bytes);
      } else {
        gemm->pack(k, a_base + 4 * q * a_stride, a_stride, na, packed + q * quad_bytes);
      }
    }
    ctx.Barrier();
    const int64_t chunk = kWeightChunk;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    if (gemm->pack_weights != nullptr) {
      // Repacked weights (kernels.h): a work item is one chunk of gemm->rows weight rows × one
      // group of kGemmActivationGroup activation blocks (256 rows), or of as many such groups as
      // gemm->group_bytes of packed activations hold, for every matrix size, so a chunk is
      // converted once per group into the thread's scratch; groups outer, chunks inner (the
      // threads share a group's packed activations in L3). See kernels_avx512_f16.cc.
      const int64_t base_rows = kGemmActivationGroup * kGemmActivationBlock;
      const size_t base_bytes = static_cast<size_t>(base_rows / 4) * quad_bytes;
      const int64_t group_rows =
          base_rows * std::max<int64_t>(1, static_cast<int64_t>(gemm->group_bytes / base_bytes));
      const int64_t n_groups = (m + group_rows - 1) / group_rows;
      const int64_t wchunk = gemm->rows;
      const int64_t n_wchunks = (n + wchunk - 1) / wchunk;
      for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed);
           item < n_groups * n_wchunks;
           item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
        const int64_t r0 = (item % n_wchunks) * wchunk;
        const int nw = static_cast<int>(std::min(n, r0 + wchunk) - r0);
        const int64_t c0 = (item / n_wchunks) * group_rows;
        const int na = static_cast<int>(std::min(m, c0 + group_rows) - c0);
        gemm->pack_weights(k, w_base + r0 * w_stride, w_stride, nw, ctx.thread_scratch);
        float* o = reinterpret_cast<float*>(o_base) + c0 * o_stride_floats + r0;
        gemm->gemm(k, ctx.thread_scratch, 0, nw, packed + (c0 / 4) * quad_bytes, na, o,
                   o_stride_floats);
      }
      return;
    }
    const int64_t n_ablocks = (m + kGemmActivationBlock - 1) / kGemmActivationBlock;
    const int64_t items = n_chunks * n_ablocks;
    // Items in order: groups of kGemmActivationGroup activation blocks (outer), weight chunks,
    // the group's blocks (inner); see kGemmActivationGroup.
    const int64_t group = static_cast<uint64_t>(n) * w_stride > kGemmGroupMinBytes
                              ? std::min(kGemmActivationGroup, n_ablocks)
                              : 1;
    for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed); item < items;
         item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
      const int64_t g0 = item / (n_chunks * group) * group;  // the group's first block
      const int64_t g_blocks = std::min(group, n_ablocks - g0);
      const int64_t in_group = item - g0 * n_chunks;
      const int64_t r0 = (in_group / g_blocks) * chunk;
      const int64_t r1 = std::min(n, r0 + chunk);
      const int64_t c0 = (g0 + in_group % g_blocks) * kGemmActivationBlock;
      const int na = static_cast<int>(std::min(m, c0 + kGemmActivationBlock) - c0);
      for (int64_t r = r0; r < r1; r += gemm->rows) {
        const int nw = static_cast<int>(std::min<int64_t>(gemm->rows, r1 - r));
        float* o = reinterpret_cast<float*>(o_base) + c0 * o_stride_floats + r;
        gemm->gemm(k, w_base + r * w_stride, w_stride, nw, packed + (c0 / 4) * quad_bytes, na, o,
                   o_stride_floats);
      }
    }
    return;
  }

  // Generation (one activation row) on block-quantized weights must read weight rows one after
  // another: one sequential stream per thread measured 1.2-2.5× faster than interleaving 4 rows
  // (q8_0 … q6_K). Tables whose tiles do that themselves get 4 rows per call (the activation
  // prepared once for them); the others get one row per call. Float weights always get 4 rows:
  // the AVX2 f16 tile interleaves them (12% faster than one row per call when the weights sat in
  // L3), the AVX-512 one reads them in turn (kernels_avx512_f16.cc).
  const bool float_weight = act == DType::F32 || act == DType::F16 || act == DType::BF16;
  const int64_t tile_w =
      m == 1 && !float_weight && !ctx.kernels->gemv_reads_rows_in_turn ? 1 : kTileRows;
  if (m == 1) {
    // Generation: each thread streams its own contiguous share of the weight rows (quads of
    // kTileRows rows, about 8 chunks per share for balance).
    const int64_t quads = (n + kTileRows - 1) / kTileRows;
    const int64_t chunk = std::clamp<int64_t>(quads / (8 * ctx.nth), 1, 32);
    auto* o = reinterpret_cast<float*>(o_base);
    const GemvFn gemv =
        repacked ? repacked->fns->gemv : ctx.kernels->gemv[static_cast<size_t>(w.type)];
    if (repacked != nullptr && repacked->fns->gemv_act != nullptr) {
      // The layout's gemv takes the row prepared once here, not once per call (chunk).
      DZ_ASSERT(convert);
      uint8_t* prepared = PreparedActivation(ctx.thread_scratch, ActivationRowBytes(node));
      repacked->fns->gemv_act(k, a_base, prepared);
      a_base = prepared;
    }
    ctx.ForEachOwnedChunk(quads, chunk, [&](int64_t q0, int64_t q1) {
      const int64_t r1 = std::min(n, q1 * kTileRows);
      if (gemv != nullptr) {
        const int64_t r0 = q0 * kTileRows;
        gemv(k, w_base + r0 * w_stride, w_stride, r1 - r0, a_base, o + r0);
        return;
      }
      for (int64_t r = q0 * kTileRows; r < r1; r += tile_w) {
        const int nw = static_cast<int>(std::min<int64_t>(tile_w, r1 - r));
        dot(k, w_base + r * w_stride, w_stride, nw, a_base, a_stride, 1, o + r, o_stride_floats);
      }
    });
    return;
  }
  const int64_t chunk = kWeightChunk;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  const int64_t a_block = kActivationBlock;
  const int64_t n_ablocks = (m + a_block - 1) / a_block;
  const int64_t items = n_chunks * n_ablocks;
  for (int64_t item = ctx.counter->fetch_add(1, std::memory_order_relaxed); item < items;
       item = ctx.counter->fetch_add(1, std::memory_order_relaxed)) {
    const int64_t r0 = (item % n_chunks) * chunk;
    const int64_t r1 = std::min(n, r0 + chunk);
    const int64_t c0 = (item / n_chunks) * a_block;
    const int64_t c1 = std::min(m, c0 + a_block);
    for (int64_t r = r0; r < r1; r += tile_w) {
      const int nw = static_cast<int>(std::min<int64_t>(tile_w, r1 - r));
      for (int64_t c = c0; c < c1; c += kTileRows) {
        const int na = static_cast<int>(std::min<int64_t>(kTileRows, c1 - c));
        float* o = reinterpret_cast<float*>(o_base) + c * o_stride_floats + r;
        dot(k, w_base + r * w_stride, w_stride, nw, a_base + c * a_stride, a_stride, na, o,
            o_stride_floats);
      }
    }
  }
}

}  // namespace dizuo::cpu
