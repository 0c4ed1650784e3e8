// Row-wise ops: GET_ROWS, ADD / MUL, SCALE, RMS_NORM, GLU, STORE_KV. Each splits rows (or
// tokens, or (token, head) pairs) into one contiguous range per thread; with fewer rows than
// threads the element-wise ones split each row's elements instead (ops.h ForEachRowPart).
#include <cmath>
#include <cstring>

#include "backends/cpu/ops.h"
#include "core/quant.h"

namespace dizuo::cpu {
namespace {

// Σ x[i]² with each square rounded to f32 and summed in f64, as llama.cpp does, but in
// kSumLanes independent sums (added pairwise at the end) instead of one chain of dependent f64
// additions, which cost 4 cycles per element. EPYC Zen 4, 1 thread, `--profile` RMS_NORM per pp512
// pass: llama 1b F16 32 → 10 ms; whole pp512 alternated 4 rounds (bench/ab-dizuo): Gemma 3 270M
// 1.04× (0.95-0.98 A ÷ B; its per-head Q/K norms), 125m Q8_0 1.01×, llama 1b F16 1.00×. The f64
// sums of f32 squares carry 29 more bits than the f32 mean they round to, so the order seldom
// changes that mean's last bit.
constexpr int64_t kSumLanes = 8;
double SumOfSquares(const float* x, int64_t n) {
  double lanes[kSumLanes] = {};
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes) {
    for (int64_t j = 0; j < kSumLanes; ++j) lanes[j] += static_cast<double>(x[i + j] * x[i + j]);
  }
  for (int64_t j = 0; i < n; ++i, ++j) lanes[j] += static_cast<double>(x[i] * x[i]);
  for (int64_t width = kSumLanes / 2; width > 0; width /= 2) {
    for (int64_t j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  }
  return lanes[0];
}

}  // namespace

void GetRows(const Node& node, const OpContext& ctx) {
  const Tensor& table = *node.src[0];
  const Tensor& ids = *node.src[1];
  const Tensor& out = *node.out;
  int64_t begin, end;
  SplitRange(ids.ne[0], ctx.ith, ctx.nth, &begin, &end);
  const auto* id = static_cast<const int32_t*>(ids.data);
  for (int64_t t = begin; t < end; ++t) {
    // Ids were checked against the table size before the graph ran (CpuBackend::Compute).
    const char* row = static_cast<const char*>(table.data) + id[t] * table.nb[1];
    if (ctx.weight != nullptr) {  // the table's repacked copy: its row back in the file's layout
      ctx.weight->fns->unpack_row(table.ne[0], ctx.weight->data, ctx.weight->stride, table.ne[1],
                                  id[t], ctx.thread_scratch);
      row = reinterpret_cast<const char*>(ctx.thread_scratch);
    }
    DequantizeRow(table.type, row, reinterpret_cast<float*>(RowPtr(out, t)), table.ne[0]);
  }
}

void Binary(const Node& node, const OpContext& ctx) {
  const Tensor& a = *node.src[0];
  const Tensor& b = *node.src[1];
  const bool broadcast = b.rows() == 1;
  const bool mul = node.op == Op::kMul;
  ForEachRowPart(a.rows(), a.ne[0], ctx.ith, ctx.nth, [&](int64_t r, int64_t i0, int64_t i1) {
    const auto* x = reinterpret_cast<const float*>(RowPtr(a, r));
    const auto* y = reinterpret_cast<const float*>(RowPtr(b, broadcast ? 0 : r));
    auto* o = reinterpret_cast<float*>(RowPtr(*node.out, r));
    if (mul) {
      for (int64_t i = i0; i < i1; ++i) o[i] = x[i] * y[i];
    } else {
      for (int64_t i = i0; i < i1; ++i) o[i] = x[i] + y[i];
    }
  });
}

void Scale(const Node& node, const OpContext& ctx) {
  const Tensor& a = *node.src[0];
  const float s = node.params.scale;
  ForEachRowPart(a.rows(), a.ne[0], ctx.ith, ctx.nth, [&](int64_t r, int64_t i0, int64_t i1) {
    const auto* x = reinterpret_cast<const float*>(RowPtr(a, r));
    auto* o = reinterpret_cast<float*>(RowPtr(*node.out, r));
    for (int64_t i = i0; i < i1; ++i) o[i] = x[i] * s;
  });
}

// As ggml: the mean square accumulates in double; out = (x · 1/sqrt(mean + eps)) · weight. With
// fewer rows than threads every thread sums a whole row and writes its part of it.
void RmsNorm(const Node& node, const OpContext& ctx) {
  const Tensor& x = *node.src[0];
  const Tensor* weight = node.src[1];
  const int64_t n = x.ne[0];
  const auto* w = weight ? static_cast<const float*>(weight->data) : nullptr;
  ForEachRowPart(x.rows(), n, ctx.ith, ctx.nth, [&](int64_t r, int64_t i0, int64_t i1) {
    const auto* in = reinterpret_cast<const float*>(RowPtr(x, r));
    auto* o = reinterpret_cast<float*>(RowPtr(*node.out, r));
    const float mean = static_cast<float>(SumOfSquares(in, n) / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + node.params.eps);
    if (w) {
      for (int64_t i = i0; i < i1; ++i) o[i] = (in[i] * scale) * w[i];
    } else {
      for (int64_t i = i0; i < i1; ++i) o[i] = in[i] * scale;
    }
  });
}

// The kernels compute each element with the same formula wherever it sits in the range
// (kernels.h glu), so a row's parts give what the whole row would.
void Glu(const Node& node, const OpContext& ctx) {
  const Tensor& gate = *node.src[0];
  const Tensor& up = *node.src[1];
  ForEachRowPart(gate.rows(), gate.ne[0], ctx.ith, ctx.nth, [&](int64_t r, int64_t i0, int64_t i1) {
    ctx.kernels->glu(node.params.act, reinterpret_cast<const float*>(RowPtr(gate, r)) + i0,
                     reinterpret_cast<const float*>(RowPtr(up, r)) + i0,
                     reinterpret_cast<float*>(RowPtr(*node.out, r)) + i0, i1 - i0);
  });
}

// rows[D·H, T] column t → cache cell cells[t] ([D, H] at cell stride nb[2]).
void StoreKV(const Node& node, const OpContext& ctx) {
  const Tensor& cache = *node.out;
  const Tensor& rows = *node.src[0];
  const auto* cells = static_cast<const int32_t*>(node.src[1]->data);
  const int64_t d = cache.ne[0];
  const int64_t h = cache.ne[1];
  // (token, head) pairs split across threads: a generated token's heads are stored by all.
  int64_t begin, end;
  SplitRange(node.src[1]->ne[0] * h, ctx.ith, ctx.nth, &begin, &end);
  for (int64_t pair = begin; pair < end; ++pair) {
    const int64_t t = pair / h, head = pair % h;
    const float* src = static_cast<const float*>(rows.data) + (t * h + head) * d;
    char* dst = static_cast<char*>(cache.data) + cells[t] * cache.nb[2] + head * cache.nb[1];
    if (cache.type == DType::F16) {
      ctx.kernels->f32_to_f16(src, reinterpret_cast<uint16_t*>(dst), d);
    } else {
      std::memcpy(dst, src, static_cast<size_t>(d) * sizeof(float));
    }
  }
}

}  // namespace dizuo::cpu
