// ATTENTION over the KV cache, computed per (token, query head) in double precision, with the
// f16 roundings core/graph.h prescribes for f16 caches (q before q·k, the weights before Σ p·v).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/reference/reference_kernels.h"
#include "core/quant.h"

namespace dizuo::reference {
namespace {

struct PosSeq {
  int32_t pos;
  int32_t seq;
};

PosSeq ReadPosSeq(const Tensor& t, int64_t i) {
  PosSeq v;
  const char* at = static_cast<const char*>(t.data) + i * t.nb[1];
  std::memcpy(&v.pos, at, 4);
  std::memcpy(&v.seq, at + t.nb[0], 4);
  return v;
}

// Element i of the cache vector for (head, cell), as f32.
void ReadCacheVector(const Tensor& cache, int64_t head, int64_t cell, std::vector<double>& out) {
  const char* at = static_cast<const char*>(cache.data) + head * cache.nb[1] + cell * cache.nb[2];
  for (int64_t i = 0; i < cache.ne[0]; ++i) {
    if (cache.type == DType::F32) {
      float f;
      std::memcpy(&f, at + 4 * i, 4);
      out[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, at + 2 * i, 2);
      out[i] = F16ToF32(h);
    }
  }
}

bool Visible(PosSeq token, PosSeq cell, int32_t window) {
  if (cell.seq < 0 || cell.seq != token.seq || cell.pos > token.pos) return false;
  return window == 0 || token.pos - cell.pos < window;
}

}  // namespace

// A token that sees no cell (never the case when its own cell was stored first) gets zeros.
void Attention(const Node& node) {
  const Tensor& q = *node.src[0];
  const Tensor& k_cache = *node.src[1];
  const Tensor& v_cache = *node.src[2];
  const Tensor& tokens = *node.src[3];
  const Tensor& cells = *node.src[4];
  const AttentionParams& p = node.params.attention;
  const int64_t d = q.ne[0], n_head = q.ne[1], n_tokens = q.ne[2];
  const int64_t n_cells = k_cache.ne[2];
  const int64_t group = n_head / k_cache.ne[1];
  const bool k_f16 = k_cache.type == DType::F16;
  const bool v_f16 = v_cache.type == DType::F16;

  std::vector<double> qv(d), kv(d), acc(d), scores;
  std::vector<int64_t> visible;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const PosSeq token = ReadPosSeq(tokens, t);
    visible.clear();
    for (int64_t c = 0; c < n_cells; ++c) {
      if (Visible(token, ReadPosSeq(cells, c), p.window)) visible.push_back(c);
    }
    float* out = reinterpret_cast<float*>(static_cast<char*>(node.out->data) + t * node.out->nb[1]);
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kv_head = h / group;
      const float* qh = q.host<float>(h, t);
      for (int64_t i = 0; i < d; ++i) qv[i] = k_f16 ? F16ToF32(F32ToF16(qh[i])) : qh[i];

      scores.assign(visible.size(), 0.0);
      double max_score = -std::numeric_limits<double>::infinity();
      for (size_t j = 0; j < visible.size(); ++j) {
        ReadCacheVector(k_cache, kv_head, visible[j], kv);
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += qv[i] * kv[i];
        s *= p.scale;
        if (p.softcap > 0) s = p.softcap * std::tanh(s / p.softcap);
        scores[j] = s;
        max_score = std::max(max_score, s);
      }
      double total = 0;
      for (double& s : scores) {
        s = std::exp(s - max_score);
        total += s;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t j = 0; j < visible.size(); ++j) {
        const auto p_f32 = static_cast<float>(scores[j] / total);
        const double p = v_f16 ? F16ToF32(F32ToF16(p_f32)) : scores[j] / total;
        ReadCacheVector(v_cache, kv_head, visible[j], kv);
        for (int64_t i = 0; i < d; ++i) acc[i] += p * kv[i];
      }
      for (int64_t i = 0; i < d; ++i) out[h * d + i] = static_cast<float>(acc[i]);
    }
  }
}

}  // namespace dizuo::reference
