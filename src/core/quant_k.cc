// Scalar reference codecs for the K-quants (256-element super-blocks).
//
// Dequantization follows ggml's formulas and float evaluation order exactly. Quantization is our
// own two-level scheme in ggml's spirit, not a bit-exact copy of ggml's: each sub-block gets the
// scale (and min) that minimise its squared error over a small search of candidate scales; the
// sub-block scales are then quantized against one f16 super-block scale, and the quants are
// recomputed with the final, quantized scales. Super-block scales must fit f16: data whose
// sub-block scale exceeds about 65504 * 63 (Q4_K) is not representable and decodes to inf/NaN.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/quant.h"
#include "core/quant_blocks.h"
#include "core/quant_k.h"

namespace dizuo::quant_internal {
namespace {

constexpr int kQK = 256;

// v rounded to nearest (ties to even, as ggml's nearest_int) and clamped to [lo, hi]; NaN -> lo.
int RoundClamp(float v, int lo, int hi) {
  const float r = std::nearbyint(v);
  if (!(r > static_cast<float>(lo))) return lo;
  if (r >= static_cast<float>(hi)) return hi;
  return static_cast<int>(r);
}

// The candidate grids of the scale searches: the span of the data divided into nmax +- 1 steps
// in tenths (fine tuning), then into exactly 1..nmax steps, so that data already on a grid coarser
// than nmax steps (such as our own dequantized output) is recovered exactly.
constexpr int kCandidateSteps = 21;
float CandidateLevels(int c, int nmax) {
  if (c < kCandidateSteps) return static_cast<float>(nmax) + 0.1f * static_cast<float>(c - 10);
  return static_cast<float>(c - kCandidateSteps + 1);
}

// x ~= scale * q - min with q in 0..nmax, scale >= 0 and min >= 0 (K-quants store the min
// unsigned and subtract it, so a sub-block that is all positive uses min = 0).
struct AffineFit {
  float scale = 0.0f;
  float min = 0.0f;
};

double AffineError(const float* x, int n, const int* q, AffineFit fit) {
  double err = 0.0;
  for (int i = 0; i < n; ++i) {
    const double diff = static_cast<double>(fit.scale) * q[i] - fit.min - x[i];
    err += diff * diff;
  }
  return err;
}

// Tries quantization grids slightly finer and coarser than the one spanning [min(x, 0), max(x)];
// for each grid's assignment q solves the least-squares scale and min (min clamped at 0), and
// keeps the fit with the lowest squared error. Writes that fit's q.
AffineFit FitAffine(const float* x, int n, int nmax, int* q) {
  float lo = x[0];
  float hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  if (!(hi > lo)) {  // constant non-positive sub-block (or NaN): q = 0, x = -min
    std::fill(q, q + n, 0);
    return {0.0f, std::isfinite(lo) ? -lo : 0.0f};
  }
  AffineFit best{(hi - lo) / static_cast<float>(nmax), -lo};
  for (int i = 0; i < n; ++i) q[i] = RoundClamp((x[i] - lo) / best.scale, 0, nmax);
  double best_err = AffineError(x, n, q, best);

  int trial[kQK];
  for (int c = 0; c < kCandidateSteps + nmax; ++c) {
    const float iscale = CandidateLevels(c, nmax) / (hi - lo);
    double sum_q = 0, sum_qq = 0, sum_x = 0, sum_qx = 0;
    for (int i = 0; i < n; ++i) {
      trial[i] = RoundClamp((x[i] - lo) * iscale, 0, nmax);
      sum_q += trial[i];
      sum_qq += static_cast<double>(trial[i]) * trial[i];
      sum_x += x[i];
      sum_qx += static_cast<double>(trial[i]) * x[i];
    }
    const double det = n * sum_qq - sum_q * sum_q;
    if (det <= 0) continue;  // every q equal: no information about the scale
    double scale = (n * sum_qx - sum_q * sum_x) / det;
    double offset = (sum_qq * sum_x - sum_q * sum_qx) / det;
    if (offset > 0) {  // the min must be <= 0: refit the scale alone
      offset = 0;
      scale = sum_qx / sum_qq;
    }
    if (!(scale > 0)) continue;
    const AffineFit fit{static_cast<float>(scale), static_cast<float>(-offset)};
    const double err = AffineError(x, n, trial, fit);
    if (err < best_err) {
      best_err = err;
      best = fit;
      std::copy(trial, trial + n, q);
    }
  }
  return best;
}

// x ~= scale * q with q in -nmax..nmax-1. The scale's sign is free, so the element of largest
// magnitude can take the wider side (-nmax). Searches iscale around -nmax / max as FitAffine does
// and returns the least-squares scale of the best assignment, whose q it writes.
float FitSymmetric(const float* x, int n, int nmax, int* q) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  std::fill(q, q + n, 0);
  if (!(amax > 0.0f) || !std::isfinite(amax)) return 0.0f;
  float best_scale = 0.0f;
  double best_err = 0.0;
  for (int i = 0; i < n; ++i) best_err += static_cast<double>(x[i]) * x[i];
  int trial[kQK];
  for (int c = 0; c < kCandidateSteps + nmax; ++c) {
    const float iscale = -CandidateLevels(c, nmax) / max;
    double sum_qq = 0, sum_qx = 0;
    for (int i = 0; i < n; ++i) {
      trial[i] = RoundClamp(x[i] * iscale, -nmax, nmax - 1);
      sum_qq += static_cast<double>(trial[i]) * trial[i];
      sum_qx += static_cast<double>(trial[i]) * x[i];
    }
    if (sum_qq == 0) continue;
    const auto scale = static_cast<float>(sum_qx / sum_qq);
    double err = 0.0;
    for (int i = 0; i < n; ++i) {
      const double diff = static_cast<double>(scale) * trial[i] - x[i];
      err += diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      std::copy(trial, trial + n, q);
    }
  }
  // (scale, q) and (-scale, -q) decode alike; prefer a non-positive scale where -q is in range,
  // so that the sub-block scales of a super-block agree in sign and the f16 super-block scale
  // is found again when our own output is quantized a second time.
  if (best_scale > 0.0f && *std::min_element(q, q + n) > -nmax) {
    best_scale = -best_scale;
    for (int i = 0; i < n; ++i) q[i] = -q[i];
  }
  return best_scale;
}

// A super-block in the affine K-quant form: x = d * sc[j] * q - dmin * mn[j], j = e / sub_size.
struct AffineSuperBlock {
  uint16_t d = 0;
  uint16_t dmin = 0;
  int sc[16] = {};
  int mn[16] = {};
  int q[kQK] = {};
};

// Fits each sub-block, quantizes the sub-block scales and mins to 0..code_max against f16
// super-block scales, then recomputes q with those final scales.
AffineSuperBlock QuantizeAffine(const float* x, int sub_size, int nmax, int code_max) {
  const int nsub = kQK / sub_size;
  AffineSuperBlock out;
  AffineFit fits[16];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < nsub; ++j) {
    fits[j] = FitAffine(x + j * sub_size, sub_size, nmax, out.q + j * sub_size);
    max_scale = std::max(max_scale, fits[j].scale);
    max_min = std::max(max_min, fits[j].min);
  }
  out.d = F32ToF16(max_scale / static_cast<float>(code_max));
  out.dmin = F32ToF16(max_min / static_cast<float>(code_max));
  const float d = F16ToF32(out.d);
  const float dmin = F16ToF32(out.dmin);
  for (int j = 0; j < nsub; ++j) {
    out.sc[j] = d > 0.0f ? RoundClamp(fits[j].scale / d, 0, code_max) : 0;
    out.mn[j] = dmin > 0.0f ? RoundClamp(fits[j].min / dmin, 0, code_max) : 0;
    const float step = d * static_cast<float>(out.sc[j]);
    const float offset = dmin * static_cast<float>(out.mn[j]);
    for (int i = j * sub_size; i < (j + 1) * sub_size; ++i) {
      out.q[i] = step > 0.0f ? RoundClamp((x[i] + offset) / step, 0, nmax) : 0;
    }
  }
  return out;
}

// A super-block in the symmetric form: x = d * ls[j] * q, j = e / 16, q in -nmax..nmax-1 and
// ls in -code_nmax..code_nmax-1.
struct SymmetricSuperBlock {
  uint16_t d = 0;
  int ls[16] = {};
  int q[kQK] = {};
};

SymmetricSuperBlock QuantizeSymmetric(const float* x, int nmax, int code_nmax) {
  SymmetricSuperBlock out;
  float scales[16];
  for (int j = 0; j < 16; ++j) scales[j] = FitSymmetric(x + 16 * j, 16, nmax, out.q + 16 * j);
  int ls0[16];
  out.d = F32ToF16(FitSymmetric(scales, 16, code_nmax, ls0));
  const float d = F16ToF32(out.d);
  for (int j = 0; j < 16; ++j) {
    const float* xs = x + 16 * j;
    // Rounding the scale code is not always best: try the neighbouring codes too, each with its
    // nearest q, measured exactly as the block will decode. (Doing the same for the affine
    // types costs their near-idempotence: see quant_test.cc.)
    double best_err = -1.0;
    int trial[16];
    for (int ls = std::max(ls0[j] - 2, -code_nmax); ls <= std::min(ls0[j] + 2, code_nmax - 1);
         ++ls) {
      const float step = d * static_cast<float>(ls);
      double err = 0.0;
      for (int i = 0; i < 16; ++i) {
        trial[i] = step != 0.0f ? RoundClamp(xs[i] / step, -nmax, nmax - 1) : 0;
        const double diff = static_cast<double>(step * static_cast<float>(trial[i])) - xs[i];
        err += diff * diff;
      }
      if (best_err < 0.0 || err < best_err) {
        best_err = err;
        out.ls[j] = ls;
        std::copy(trial, trial + 16, out.q + 16 * j);
      }
    }
  }
  return out;
}

// Q3_K 6-bit scale j: low nibble in nibble j / 8 of byte j % 8, top 2 bits at bit 2 * (j / 4)
// of byte 8 + j % 4.
int UnpackScaleQ3_K(const uint8_t* in, int j) {
  const int low = (in[j % 8] >> (4 * (j / 8))) & 0x0f;
  const int high = (in[8 + j % 4] >> (2 * (j / 4))) & 0x03;
  return low | (high << 4);
}

void PackScalesQ3_K(const int* s, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 16; ++j) {
    out[j % 8] |= static_cast<uint8_t>((s[j] & 0x0f) << (4 * (j / 8)));
    out[8 + j % 4] |= static_cast<uint8_t>((s[j] >> 4) << (2 * (j / 4)));
  }
}

// Byte and bit of the 2-bit field of element e in Q2_K/Q3_K qs: element 128*h + 32*k + l is
// bits 2k..2k+1 of qs[32*h + l].
int Crumb2Byte(int e) { return 32 * (e / 128) + e % 32; }
int Crumb2Shift(int e) { return 2 * ((e % 128) / 32); }

// Q4_K/Q5_K: element 64*p + 32*n + l is nibble n of qs[32*p + l].
int NibbleByte(int e) { return 32 * (e / 64) + e % 32; }
int NibbleShift(int e) { return 4 * ((e % 64) / 32); }

// Q6_K low nibble of element 128*h + 32*k + l: nibble k / 2 of ql[64*h + 32*(k % 2) + l].
int Q6LowByte(int e) { return 64 * (e / 128) + 32 * ((e % 128) / 32 % 2) + e % 32; }
int Q6LowShift(int e) { return 4 * ((e % 128) / 64); }

}  // namespace

void DequantizeQ2_K(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += kQK) {
    const auto block = Load<BlockQ2_K>(src, b);
    const float d = F16ToF32(block.d);
    const float dmin = F16ToF32(block.dmin);
    for (int e = 0; e < kQK; ++e) {
      const uint8_t s = block.scales[e / 16];
      const float dl = d * static_cast<float>(s & 0x0f);
      const float ml = dmin * static_cast<float>(s >> 4);
      const int q = (block.qs[Crumb2Byte(e)] >> Crumb2Shift(e)) & 3;
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

void DequantizeQ3_K(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += kQK) {
    const auto block = Load<BlockQ3_K>(src, b);
    const float d = F16ToF32(block.d);
    for (int e = 0; e < kQK; ++e) {
      const float dl = d * static_cast<float>(UnpackScaleQ3_K(block.scales, e / 16) - 32);
      const int low = (block.qs[Crumb2Byte(e)] >> Crumb2Shift(e)) & 3;
      const int high = (block.hmask[e % 32] >> (e / 32)) & 1;
      y[e] = dl * static_cast<float>(low + 4 * high - 4);
    }
  }
}

void DequantizeQ4_K(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += kQK) {
    const auto block = Load<BlockQ4_K>(src, b);
    const float d = F16ToF32(block.d);
    const float dmin = F16ToF32(block.dmin);
    for (int e = 0; e < kQK; ++e) {
      int sc = 0, m = 0;
      UnpackScaleMinK4(block.scales, e / 32, &sc, &m);
      const int q = (block.qs[NibbleByte(e)] >> NibbleShift(e)) & 0x0f;
      y[e] = d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
    }
  }
}

void DequantizeQ5_K(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += kQK) {
    const auto block = Load<BlockQ5_K>(src, b);
    const float d = F16ToF32(block.d);
    const float dmin = F16ToF32(block.dmin);
    for (int e = 0; e < kQK; ++e) {
      int sc = 0, m = 0;
      UnpackScaleMinK4(block.scales, e / 32, &sc, &m);
      const int low = (block.qs[NibbleByte(e)] >> NibbleShift(e)) & 0x0f;
      const int high = (block.qh[e % 32] >> (e / 32)) & 1;
      const int q = low | (high << 4);
      y[e] = d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
    }
  }
}

void DequantizeQ6_K(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += kQK) {
    const auto block = Load<BlockQ6_K>(src, b);
    const float d = F16ToF32(block.d);
    for (int e = 0; e < kQK; ++e) {
      const int low = (block.ql[Q6LowByte(e)] >> Q6LowShift(e)) & 0x0f;
      const int high = (block.qh[Crumb2Byte(e)] >> Crumb2Shift(e)) & 3;
      const int q = (low | (high << 4)) - 32;
      y[e] = d * static_cast<float>(block.scales[e / 16]) * static_cast<float>(q);
    }
  }
}

void DequantizeQ8_K(const void* src, float* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, y += kQK) {
    const auto block = Load<BlockQ8_K>(src, b);
    for (int e = 0; e < kQK; ++e) y[e] = block.d * static_cast<float>(block.qs[e]);
  }
}

void QuantizeQ2_K(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += kQK) {
    const AffineSuperBlock s = QuantizeAffine(x, 16, 3, 15);
    BlockQ2_K block{};
    for (int j = 0; j < 16; ++j) block.scales[j] = static_cast<uint8_t>(s.sc[j] | (s.mn[j] << 4));
    for (int e = 0; e < kQK; ++e) {
      block.qs[Crumb2Byte(e)] |= static_cast<uint8_t>(s.q[e] << Crumb2Shift(e));
    }
    block.d = s.d;
    block.dmin = s.dmin;
    Store(dst, b, block);
  }
}

void QuantizeQ3_K(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += kQK) {
    const SymmetricSuperBlock s = QuantizeSymmetric(x, 4, 32);
    BlockQ3_K block{};
    int codes[16];
    for (int j = 0; j < 16; ++j) codes[j] = s.ls[j] + 32;
    PackScalesQ3_K(codes, block.scales);
    for (int e = 0; e < kQK; ++e) {
      const int u = s.q[e] + 4;  // 0..7
      block.qs[Crumb2Byte(e)] |= static_cast<uint8_t>((u & 3) << Crumb2Shift(e));
      block.hmask[e % 32] |= static_cast<uint8_t>((u >> 2) << (e / 32));
    }
    block.d = s.d;
    Store(dst, b, block);
  }
}

void QuantizeQ4_K(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += kQK) {
    const AffineSuperBlock s = QuantizeAffine(x, 32, 15, 63);
    BlockQ4_K block{};
    block.d = s.d;
    block.dmin = s.dmin;
    PackScaleMinK4(s.sc, s.mn, block.scales);
    for (int e = 0; e < kQK; ++e) {
      block.qs[NibbleByte(e)] |= static_cast<uint8_t>(s.q[e] << NibbleShift(e));
    }
    Store(dst, b, block);
  }
}

void QuantizeQ5_K(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += kQK) {
    const AffineSuperBlock s = QuantizeAffine(x, 32, 31, 63);
    BlockQ5_K block{};
    block.d = s.d;
    block.dmin = s.dmin;
    PackScaleMinK4(s.sc, s.mn, block.scales);
    for (int e = 0; e < kQK; ++e) {
      block.qs[NibbleByte(e)] |= static_cast<uint8_t>((s.q[e] & 0x0f) << NibbleShift(e));
      block.qh[e % 32] |= static_cast<uint8_t>((s.q[e] >> 4) << (e / 32));
    }
    Store(dst, b, block);
  }
}

void QuantizeQ6_K(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += kQK) {
    const SymmetricSuperBlock s = QuantizeSymmetric(x, 32, 128);
    BlockQ6_K block{};
    for (int j = 0; j < 16; ++j) block.scales[j] = static_cast<int8_t>(s.ls[j]);
    for (int e = 0; e < kQK; ++e) {
      const int u = s.q[e] + 32;  // 0..63
      block.ql[Q6LowByte(e)] |= static_cast<uint8_t>((u & 0x0f) << Q6LowShift(e));
      block.qh[Crumb2Byte(e)] |= static_cast<uint8_t>((u >> 4) << Crumb2Shift(e));
    }
    block.d = s.d;
    Store(dst, b, block);
  }
}

// As ggml's quantize_row_q8_K: the element of largest magnitude maps to -127 exactly, and
// d = 1 / iscale is kept in f32.
void QuantizeQ8_K(const float* x, void* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += kQK) {
    BlockQ8_K block{};
    float amax = 0.0f;
    float max = 0.0f;
    for (int e = 0; e < kQK; ++e) {
      if (std::fabs(x[e]) > amax) {
        amax = std::fabs(x[e]);
        max = x[e];
      }
    }
    if (amax > 0.0f) {
      const float iscale = -127.0f / max;
      for (int e = 0; e < kQK; ++e) {
        block.qs[e] = static_cast<int8_t>(RoundClamp(iscale * x[e], -128, 127));
      }
      for (int j = 0; j < 16; ++j) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += block.qs[16 * j + i];
        block.bsums[j] = static_cast<int16_t>(sum);
      }
      block.d = 1.0f / iscale;
    }
    Store(dst, b, block);
  }
}

}  // namespace dizuo::quant_internal
