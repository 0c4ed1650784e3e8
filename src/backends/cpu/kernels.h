// The CPU backend's kernel table: one entry per (weight type) dot product and per vector primitive,
// filled by an ISA-specific file (kernels_generic.cc, kernels_avx2.cc, ...) and chosen at run time.
//
// Each ISA has a file kernels_<isa>.cc that starts from the table below it (generic for AVX2 and
// NEON, AVX2 for AVX-512) and overrides the entries it accelerates; KernelsNamed() knows which
// tables the host can run, and SelectKernels() picks the best one. A new ISA adds one more file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/graph.h"

namespace dizuo::cpu {

// The most weight rows and activation rows one dot-tile call handles.
inline constexpr int kTileRows = 4;

// out[c * out_stride + r] = dot(weight row r, activation row c) for r < nw, c < na, where weight
// row r starts at w + r * w_stride and activation row c (already converted to the weight's
// activation type) at a + c * a_stride; k is the row length in elements. Every output is
// computed with the same operations in the same order whatever nw and na are, so results do not
// depend on how the work was tiled or split across threads.
using DotTileFn = void (*)(int64_t k, const void* w, size_t w_stride, int nw, const void* a,
                           size_t a_stride, int na, float* out, size_t out_stride);
// Generation: out[r] = dot(weight row r, activation row a) for r < n, computed with the same
// operations in the same order as the dot tile with na = 1 (bit for bit), so results do not depend
// on how rows are split across calls. The activation is prepared once per call, not per tile.
using GemvFn = void (*)(int64_t k, const void* w, size_t w_stride, int64_t n, const void* a,
                        float* out);
// Converts n f32 values to an activation type (as QuantizeRow, bit for bit).
using ConvertRowFn = void (*)(const float* x, void* dst, int64_t n);

inline constexpr int kDTypeSlots = 32;  // DType values are < 32

// Optional prompt-batch path for one weight type. Activation rows (already converted to the
// weight's activation type) are packed in quads of 4 rows, `pack_bytes(k)` bytes per quad, by
// `pack` (na ≤ 4 rows; missing rows are zeros). `gemm` then computes out[c * out_stride + r] for
// r < nw ≤ `rows` weight rows and c < na activation rows taken from consecutive packed quads (na ≤
// 4 · quads). Every output is Σ over blocks of (exact integer block sum) · (block factors), added
// in block order (float weights: the same f32 operations in the same order), so it does not depend
// on the tiling; it may differ from the dot tiles' result by float summation order.
struct GemmFns {
  size_t (*pack_bytes)(int64_t k) = nullptr;
  void (*pack)(int64_t k, const void* a, size_t a_stride, int na, void* dst) = nullptr;
  void (*gemm)(int64_t k, const void* w, size_t w_stride, int nw, const void* packed, int na,
               float* out, size_t out_stride) = nullptr;
  // The most weight rows one gemm call takes (MATMUL hands it up to this many of a work item's
  // rows at once; a multiple of kTileRows that divides the work item's 32). With pack_weights: the
  // weight rows of a work item.
  int rows = kTileRows;
  // Optional weight repacking. When set, MATMUL converts each work item's weight rows (nw ≤
  // `rows`) once with `pack_weights` into its thread's scratch (`weight_pack_bytes(k)` bytes) and
  // hands that area to `gemm` as w (w_stride 0) together with all the item's activation rows (a
  // group of 256, or group_bytes' worth), so the conversion is paid once per weight chunk and
  // activation group, not in the inner loop. MATMUL takes this path only for batches of at least
  // `min_rows` activation rows (below, the dot tiles).
  size_t (*weight_pack_bytes)(int64_t k) = nullptr;
  void (*pack_weights)(int64_t k, const void* w, size_t w_stride, int nw, void* dst) = nullptr;
  int min_rows = 0;
  // With pack_weights: the packed activation bytes a work item may cover (its group is then the
  // most multiples of 256 rows within this, at least 256 rows); 0: groups of 256 rows. A kernel
  // whose weight conversion costs much (f16 to f32) converts each chunk fewer times this way.
  size_t group_bytes = 0;
};

// Optional layout of the table's own for one weight type, into which the CPU backend copies
// weights at load (Backend::PrepareWeight) when the table has one. `repack` writes `rows` rows of
// k elements, read from src (rows src_stride bytes apart, in the file's layout), to dst, rows
// row_bytes(k) apart; row_bytes(k) = 0 means the layout does not take rows of k elements (such
// weights stay in the file's layout). dot, gemv and gemm are the type's functions for weights in
// that layout (w and w_stride point into the copy), with the contracts above. Results may differ
// from the file layout's by float summation order.
struct RepackFns {
  const char* name = nullptr;  // the layout, for reports ("q4_0x16", "q4_Kx16")
  size_t (*row_bytes)(int64_t k) = nullptr;
  void (*repack)(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) = nullptr;
  DotTileFn dot = nullptr;
  GemvFn gemv = nullptr;
  GemmFns gemm;
  // Optional: gemv's activation in a form of the layout's own, made once per MATMUL and thread
  // from the converted row `a` into `dst` (gemv_act_bytes(k) bytes, 64-byte aligned); gemv then
  // takes that instead of the converted row, with the same results.
  size_t (*gemv_act_bytes)(int64_t k) = nullptr;
  void (*gemv_act)(int64_t k, const void* a, void* dst) = nullptr;
  // Optional: row r of a copy of `rows` rows at data (this layout, rows row_bytes(k) apart) back
  // in the file's layout at dst (the file's row bytes), byte for byte the row `repack` read.
  // GET_ROWS reads the rows of an embedding table's copy with it (Backend::PrepareWeight with
  // get_rows); layouts without it are not given tables that GET_ROWS reads.
  void (*unpack_row)(int64_t k, const void* data, size_t stride, int64_t rows, int64_t r,
                     void* dst) = nullptr;
  // Optional: rows of k elements are stored in groups of row_group(k) (nullptr: 1): group i, rows
  // G·i .. G·i + G − 1, takes the G·row_bytes(k) bytes from row G·i's place, its rows' data
  // interleaved as the layout says; the last group holds the rows left (rows mod G, if not 0).
  // Every call into the copy (repack, dot, gemv, gemm's pack_weights) then starts at a group's
  // first row and ends at a group's end or at the last row, as MATMUL's calls (whole tile quads,
  // work items of 32 rows) and the backend's copy pieces do.
  int (*row_group)(int64_t k) = nullptr;
};

// unpack_row for a layout that stores each row on its own: F(k, row r's bytes, dst).
template <void (*F)(int64_t k, const void* src, void* dst)>
void UnpackRowAt(int64_t k, const void* data, size_t stride, int64_t /*rows*/, int64_t r,
                 void* dst) {
  F(k, static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * stride, dst);
}

// ATTENTION (core/graph.h) with f16 K and V caches and no softcap, for the query rows of
// `tokens` tokens × `heads` heads that read one kv head, over the cells 0 .. nc − 1. Query row
// (t, h) is q + t·q_token_stride + h·q_head_stride (floats), its output out + t·out_token_stride +
// h·out_head_stride; cell c's key and value rows are k + c·k_stride and v + c·v_stride (f16
// elements). visible[t · mask_stride + c] is 1 where token t sees cell c (mask_stride ≥ nc rounded
// up to 16, the padding 0). Every output is computed with the same operations in the same order
// whatever the other rows of the call are, so results do not depend on how the work was split.
struct AttentionRows {
  int64_t d = 0;  // head size: a multiple of 64, at most kAttentionMaxHead
  int tokens = 0, heads = 0;
  const float* q = nullptr;
  size_t q_token_stride = 0, q_head_stride = 0;
  float* out = nullptr;
  size_t out_token_stride = 0, out_head_stride = 0;
  int64_t nc = 0;
  const uint8_t* visible = nullptr;
  size_t mask_stride = 0;
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  size_t k_stride = 0, v_stride = 0;
  float scale = 1.0f;
  float* scratch = nullptr;  // AttentionRowsScratch(d, tokens · heads, nc) floats
  // attention_f16_part only: the area a team of threads shares for one call,
  // AttentionPartsShared(tokens · heads, nc) floats.
  float* shared = nullptr;

  // Row i of the call (token i / heads, head i % heads): its query, its output, its token's mask.
  const float* query(int i) const {
    return q + (i / heads) * q_token_stride + (i % heads) * q_head_stride;
  }
  float* output(int i) const {
    return out + (i / heads) * out_token_stride + (i % heads) * out_head_stride;
  }
  const uint8_t* mask(int i) const { return visible + (i / heads) * mask_stride; }
};
inline constexpr int64_t kAttentionMaxHead = 256;
// The query rows (in groups of 4), their scores and a scaled copy, 16 converted key rows and a
// byte per cell.
inline size_t AttentionRowsScratch(int64_t d, int64_t rows, int64_t nc) {
  const int64_t nc16 = (nc + 15) / 16 * 16;
  return static_cast<size_t>((rows + 3) / 4 * 4 * d + 2 * rows * nc16 + 16 * d + nc16 / 4);
}
// One call of attention_f16 in three parts, so that a team of threads can share it when there
// are fewer calls than threads (generation with fewer KV heads than threads: Gemma 3 has one):
//   kScores:  the scores of every row for cells [begin, end) (begin a multiple of 16, end too or
//             nc), into task.shared (row i's, unscaled, at shared[i · nc16 + c], nc16 = nc
//             rounded up to 16);
//   kSoftmax: rows [begin, end), from those scores (all cells' must be done);
//   kValues:  elements [begin, end) of every output row (multiples of 32), from the weights (all
//             rows' softmax must be done).
// Parts of one kind touch disjoint data, so the threads may run them at once; between kinds the
// team waits for every part of the previous one. The results are bit-identical to attention_f16
// over the whole call, however the parts were split.
enum class AttentionPart { kScores, kSoftmax, kValues };
// Scores and weights of every row and a bit per cell per row.
inline size_t AttentionPartsShared(int64_t rows, int64_t nc) {
  const int64_t nc16 = (nc + 15) / 16 * 16;
  return static_cast<size_t>(2 * rows * nc16 + rows * nc16 / 32);
}

struct Kernels {
  const char* isa = "generic";
  DotTileFn dot[kDTypeSlots] = {};               // by weight type; nullptr: unsupported
  ConvertRowFn to_activation[kDTypeSlots] = {};  // by activation type (Q8_0, Q8_1, Q8_K, F16, BF16)
  GemmFns gemm[kDTypeSlots] = {};                // by weight type; empty: prompts use dot tiles
  // Quantized dot tiles with one activation row read their weight rows one after another (not
  // interleaved), so MATMUL may hand them several rows at once during generation.
  bool gemv_reads_rows_in_turn = false;
  GemvFn gemv[kDTypeSlots] = {};         // by weight type; optional, M = 1 (else dot tiles)
  RepackFns repacked[kDTypeSlots] = {};  // by weight type; optional (see RepackFns)

  // Attention and cache primitives.
  void (*axpy_f32)(float alpha, const float* x, float* y, int64_t n) = nullptr;  // y += alpha·x
  void (*axpy_f16)(float alpha, const uint16_t* x, float* y, int64_t n) = nullptr;
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n) = nullptr;
  void (*scale_f32)(float alpha, float* y, int64_t n) = nullptr;  // y *= alpha
  // Softmax numerators: x[i] = exp(x[i] − max) (0 where x[i] is −∞); returns their sum. The
  // generic table uses std::exp; vector tables a polynomial within a few ulp of it.
  float (*exp_sum)(float* x, int64_t n, float max) = nullptr;
  // Attention's weighted sum of V rows: for r < nr ≤ 4 and each cell c < n in order,
  //   acc[r·d + i] += w · V[c][i] (i < d),  w = s[r·s_stride + c] · scale[r], rounded to f16
  //   when round_f16,
  // with V[c] at v + c·v_stride bytes (f16 or f32 per `v_type`). Each output element sees one
  // multiply-add per cell in cell order, exactly as a sequence of axpy_f16 / axpy_f32 calls.
  void (*weighted_rows)(int64_t d, int64_t n, const float* s, size_t s_stride, const float* scale,
                        int nr, bool round_f16, DType v_type, const void* v, size_t v_stride,
                        float* acc) = nullptr;
  // out[i] = act(gate[i]) · up[i], each element the same whatever its place in [0, n): ops split a
  // row into parts (ops.h ForEachRowPart).
  void (*glu)(Activation act, const float* gate, const float* up, float* out, int64_t n) = nullptr;
  // Optional: ATTENTION on f16 caches for a block of query rows (else ops_attention.cc's own loop).
  void (*attention_f16)(const AttentionRows& task) = nullptr;
  // Optional, with attention_f16: the same call in parts (AttentionPart); task.scratch is the
  // calling thread's own, AttentionRowsScratch floats.
  void (*attention_f16_part)(const AttentionRows& task, AttentionPart part, int64_t begin,
                             int64_t end) = nullptr;
  // Optional: the dot tiles of that loop's q · k on f16 caches (else dot[F16]), where the weight
  // tiles' form does not pay off on the cache's short rows.
  DotTileFn kv_dot_f16 = nullptr;
};

// The activation type a weight type's dot product consumes (F32 for F32 weights).
DType ActivationType(DType weight);

// For every weight type that has a dot tile and no layout of its own in `k`, a RepackFns that
// copies the weight as it is (the file's layout, named "<type> copy") and runs the type's own
// kernels. On the benchmark VM, generation reads such copies of 1B models 1.1-1.3× faster than the
// file's pages (docs/benchmarks/HISTORY.md, seventh session).
// Call it last: the entries take the table's dot, gemv and gemm as they are then.
void AddFileLayoutCopies(Kernels* k);

const Kernels& GenericKernels();
#if defined(__x86_64__)
const Kernels& Avx2Kernels();
const Kernels& Avx512Kernels();  // AVX-512 F/BW/VL + VNNI
#elif defined(__aarch64__)
const Kernels& NeonKernels();         // Advanced SIMD of the base ARMv8-A (kernels_neon.cc)
const Kernels& NeonDotprodKernels();  // the same with SDOT (ARMv8.2-A dotprod)
#endif
// The table named `isa` ("generic", "avx2", "avx512", "neon", "neon-dotprod") if this build has
// it and the host can run it; nullptr otherwise.
const Kernels* KernelsNamed(std::string_view isa);
// Every table the host can run, slowest first (for tests and benchmarks).
std::vector<const Kernels*> AvailableKernels();
// The best table for the host CPU, or the one named by $DIZUO_CPU_ISA (a name KernelsNamed
// takes), which tests use to run every path; an unknown or unavailable name throws dizuo::Error.
const Kernels& SelectKernels();

}  // namespace dizuo::cpu
