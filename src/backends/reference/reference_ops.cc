// Row-wise reference kernels: GET_ROWS, ADD, MUL, SCALE, RMS_NORM, ROPE, GLU, STORE_KV.
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "backends/reference/reference_kernels.h"
#include "core/error.h"
#include "core/gelu.h"
#include "core/quant.h"

namespace dizuo::reference {
namespace {

float* FloatRow(const Tensor& t, int64_t r) { return reinterpret_cast<float*>(RowAddress(t, r)); }

int32_t I32At(const Tensor& t, int64_t i0, int64_t i1 = 0) {
  int32_t v;
  std::memcpy(&v, static_cast<const char*>(t.data) + i0 * t.nb[0] + i1 * t.nb[1], sizeof v);
  return v;
}

template <typename F>
void Binary(const Node& node, F f) {
  const Tensor& a = *node.src[0];
  const Tensor& b = *node.src[1];
  const Tensor& out = *node.out;
  const bool broadcast = b.rows() == 1;
  for (int64_t r = 0; r < a.rows(); ++r) {
    const float* x = FloatRow(a, r);
    const float* y = FloatRow(b, broadcast ? 0 : r);
    float* z = FloatRow(out, r);
    for (int64_t i = 0; i < a.ne[0]; ++i) z[i] = f(x[i], y[i]);
  }
}

// ggml's YaRN correction dimension: the rotary pair index whose wavelength fits `n_rot_turns`
// turns into the original training context.
float YarnCorrDim(int n_dims, int n_ctx_orig, float n_rot_turns, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) /
                  (n_rot_turns * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

}  // namespace

void GetRows(const Node& node) {
  const Tensor& table = *node.src[0];
  const Tensor& ids = *node.src[1];
  const Tensor& out = *node.out;
  for (int64_t t = 0; t < ids.ne[0]; ++t) {
    const int32_t id = I32At(ids, t);
    DZ_ASSERT(id >= 0 && id < table.ne[1]);
    const char* row = static_cast<const char*>(table.data) + id * table.nb[1];
    DequantizeRow(table.type, row, FloatRow(out, t), table.ne[0]);
  }
}

void Add(const Node& node) {
  Binary(node, [](float a, float b) { return a + b; });
}

void Mul(const Node& node) {
  Binary(node, [](float a, float b) { return a * b; });
}

void Scale(const Node& node) {
  const Tensor& a = *node.src[0];
  const float s = node.params.scale;
  for (int64_t r = 0; r < a.rows(); ++r) {
    const float* x = FloatRow(a, r);
    float* y = FloatRow(*node.out, r);
    for (int64_t i = 0; i < a.ne[0]; ++i) y[i] = x[i] * s;
  }
}

void RmsNorm(const Node& node) {
  const Tensor& x = *node.src[0];
  const Tensor* weight = node.src[1];
  const int64_t n = x.ne[0];
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* in = FloatRow(x, r);
    float* out = FloatRow(*node.out, r);
    double sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(in[i]) * in[i];
    const float mean = static_cast<float>(sum_sq / static_cast<double>(n));
    const float inv_rms = 1.0f / std::sqrt(mean + node.params.eps);
    const float* w = weight ? FloatRow(*weight, 0) : nullptr;
    for (int64_t i = 0; i < n; ++i) out[i] = in[i] * inv_rms * (w ? w[i] : 1.0f);
  }
}

// Angles follow ggml's rope_ext literally, including how theta_i is formed: theta starts at the
// position and is multiplied by freq_base^(-2/n_rot) once per pair, in f32. Matching that order
// keeps our rotations within an ulp of the engines whose outputs we compare against.
void Rope(const Node& node) {
  const Tensor& x = *node.src[0];
  const Tensor& pos = *node.src[1];
  const Tensor* factors = node.src[2];
  const RopeParams& p = node.params.rope;
  const int n_rot = p.n_rot;
  const int64_t head_dim = x.ne[0];

  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(n_rot));
  float corr_low = 0, corr_high = 0;
  if (p.ext_factor != 0.0f) {
    const float start = std::floor(YarnCorrDim(n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base));
    const float end = std::ceil(YarnCorrDim(n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base));
    corr_low = std::max(0.0f, start);
    corr_high = std::min(static_cast<float>(n_rot - 1), end);
  }
  float mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);

  std::vector<float> cos_t(n_rot / 2), sin_t(n_rot / 2);
  for (int64_t t = 0; t < x.ne[2]; ++t) {
    float theta = static_cast<float>(I32At(pos, t));
    for (int i = 0; i < n_rot / 2; ++i) {
      const float factor = factors ? static_cast<const float*>(factors->data)[i] : 1.0f;
      const float extrap = theta / factor;
      const float interp = p.freq_scale * extrap;
      float angle = interp;
      if (p.ext_factor != 0.0f) {
        // Ramp from 1 (below corr_low: extrapolate) to 0 (above corr_high: interpolate).
        const float y = (static_cast<float>(i) - corr_low) / std::max(0.001f, corr_high - corr_low);
        const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
        const float mix = ramp * p.ext_factor;
        angle = interp * (1 - mix) + extrap * mix;
      }
      cos_t[i] = std::cos(angle) * mscale;
      sin_t[i] = std::sin(angle) * mscale;
      theta *= theta_scale;
    }
    for (int64_t i3 = 0; i3 < x.ne[3]; ++i3) {
      for (int64_t h = 0; h < x.ne[1]; ++h) {
        const float* in = x.host<float>(h, t, i3);
        float* out = node.out->host<float>(h, t, i3);
        for (int i = 0; i < n_rot / 2; ++i) {
          // Pair (a, b): adjacent dims in normal mode, dims half a rotation apart in neox mode.
          const int a = p.mode == RopeMode::kNeox ? i : 2 * i;
          const int b = p.mode == RopeMode::kNeox ? i + n_rot / 2 : 2 * i + 1;
          const float x0 = in[a], x1 = in[b];
          out[a] = x0 * cos_t[i] - x1 * sin_t[i];
          out[b] = x0 * sin_t[i] + x1 * cos_t[i];
        }
        for (int64_t i = n_rot; i < head_dim; ++i) out[i] = in[i];
      }
    }
  }
}

// gelu_tanh is the GGUF engines' f16-table definition (core/gelu.h); silu is exact (double).
void Glu(const Node& node) {
  const Tensor& gate = *node.src[0];
  const Tensor& up = *node.src[1];
  const bool silu = node.params.act == Activation::kSilu;
  for (int64_t r = 0; r < gate.rows(); ++r) {
    const float* g = FloatRow(gate, r);
    const float* u = FloatRow(up, r);
    float* out = FloatRow(*node.out, r);
    for (int64_t i = 0; i < gate.ne[0]; ++i) {
      if (silu) {
        const double v = g[i];
        out[i] = static_cast<float>(v / (1.0 + std::exp(-v)) * u[i]);
      } else {
        out[i] = GeluTanhGguf(g[i]) * u[i];
      }
    }
  }
}

void StoreKV(const Node& node) {
  const Tensor& cache = *node.out;
  const Tensor& rows = *node.src[0];
  const Tensor& cells = *node.src[1];
  const int64_t d = cache.ne[0], heads = cache.ne[1];
  const float* src = static_cast<const float*>(rows.data);
  for (int64_t t = 0; t < cells.ne[0]; ++t) {
    const int32_t cell = I32At(cells, t);
    DZ_ASSERT(cell >= 0 && cell < cache.ne[2]);
    for (int64_t h = 0; h < heads; ++h) {
      const float* in = src + (t * heads + h) * d;
      char* dst = static_cast<char*>(cache.data) + cell * cache.nb[2] + h * cache.nb[1];
      if (cache.type == DType::F32) {
        std::memcpy(dst, in, static_cast<size_t>(d) * sizeof(float));
      } else {
        for (int64_t i = 0; i < d; ++i) {
          const uint16_t half = F32ToF16(in[i]);
          std::memcpy(dst + 2 * i, &half, 2);
        }
      }
    }
  }
}

}  // namespace dizuo::reference
