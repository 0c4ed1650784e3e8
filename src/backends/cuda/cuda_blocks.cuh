// Block decoding shared by the kernels and by cuda_decode_test (which runs it on the host against
// the reference, so the bit fiddling is checked on machines without a GPU).
#pragma once

#include "backends/cuda/cuda_common.cuh"

namespace dizuo::cuda {

inline constexpr int kUnit = 32;  // elements per MATMUL unit (see cuda_matmul.cu)

// ---- GET_ROWS ----

DZ_HD int Nibble(const uint8_t* qs, int i) { return i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4; }
DZ_HD int HighBit(const uint8_t* qh, int i) { return (qh[i / 8] >> (i % 8)) & 1; }

// Element e of a row of `type`, computed as core/quant.cc's DequantizeRow computes it.
DZ_HD float DequantElement(DType type, const uint8_t* row, int64_t e) {
  switch (type) {
    case DType::F32:
      return reinterpret_cast<const float*>(row)[e];
    case DType::F16:
      return HalfBits(reinterpret_cast<const uint16_t*>(row)[e]);
    case DType::BF16:
      return Bf16Bits(reinterpret_cast<const uint16_t*>(row)[e]);
    case DType::Q4_0: {
      const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(row)[e / 32];
      return HalfBits(b.d) * static_cast<float>(Nibble(b.qs, e % 32) - 8);
    }
    case DType::Q4_1: {
      const BlockQ4_1& b = reinterpret_cast<const BlockQ4_1*>(row)[e / 32];
      return HalfBits(b.d) * static_cast<float>(Nibble(b.qs, e % 32)) + HalfBits(b.m);
    }
    case DType::Q5_0: {
      const BlockQ5_0& b = reinterpret_cast<const BlockQ5_0*>(row)[e / 32];
      const int i = e % 32;
      return HalfBits(b.d) * static_cast<float>((Nibble(b.qs, i) | HighBit(b.qh, i) << 4) - 16);
    }
    case DType::Q5_1: {
      const BlockQ5_1& b = reinterpret_cast<const BlockQ5_1*>(row)[e / 32];
      const int i = e % 32;
      return HalfBits(b.d) * static_cast<float>(Nibble(b.qs, i) | HighBit(b.qh, i) << 4) +
             HalfBits(b.m);
    }
    case DType::Q8_0: {
      const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[e / 32];
      return HalfBits(b.d) * static_cast<float>(b.qs[e % 32]);
    }
    case DType::Q8_1: {
      const BlockQ8_1& b = reinterpret_cast<const BlockQ8_1*>(row)[e / 32];
      return HalfBits(b.d) * static_cast<float>(b.qs[e % 32]);
    }
    case DType::Q2_K: {
      const BlockQ2_K& b = reinterpret_cast<const BlockQ2_K*>(row)[e / 256];
      const int i = e % 256, h = i / 128, k = (i % 128) / 32, l = i % 32;
      const uint8_t s = b.scales[i / 16];
      const float dl = HalfBits(b.d) * static_cast<float>(s & 0xF);
      const float ml = HalfBits(b.dmin) * static_cast<float>(s >> 4);
      return dl * static_cast<float>((b.qs[32 * h + l] >> (2 * k)) & 3) - ml;
    }
    case DType::Q3_K: {
      const BlockQ3_K& b = reinterpret_cast<const BlockQ3_K*>(row)[e / 256];
      const int i = e % 256, h = i / 128, k = (i % 128) / 32, l = i % 32;
      const float dl = HalfBits(b.d) * static_cast<float>(ScaleQ3K(b.scales, i / 16) - 32);
      const int low = (b.qs[32 * h + l] >> (2 * k)) & 3;
      const int high = (b.hmask[l] >> (i / 32)) & 1;
      return dl * static_cast<float>(low + 4 * high - 4);
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool five = type == DType::Q5_K;
      const uint8_t* block = row + (e / 256) * (five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
      // Both start with d, dmin, scales[12]; Q5_K then has qh[32] before qs.
      const auto* head = reinterpret_cast<const BlockQ4_K*>(block);
      const uint8_t* qs = five ? reinterpret_cast<const BlockQ5_K*>(block)->qs : head->qs;
      const int i = e % 256, p = i / 64, n = (i % 64) / 32, l = i % 32;
      int sc = 0, m = 0;
      ScaleMinK4(head->scales, i / 32, &sc, &m);
      int q = (qs[32 * p + l] >> (4 * n)) & 0xF;
      if (five) q |= ((reinterpret_cast<const BlockQ5_K*>(block)->qh[l] >> (i / 32)) & 1) << 4;
      return HalfBits(head->d) * static_cast<float>(sc) * static_cast<float>(q) -
             HalfBits(head->dmin) * static_cast<float>(m);
    }
    case DType::Q6_K: {
      const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(row)[e / 256];
      const int i = e % 256, h = i / 128, k = (i % 128) / 32, l = i % 32;
      const int low = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
      const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
      return HalfBits(b.d) * static_cast<float>(b.scales[i / 16]) *
             static_cast<float>((low | high << 4) - 32);
    }
    case DType::Q8_K: {
      const BlockQ8_K& b = reinterpret_cast<const BlockQ8_K*>(row)[e / 256];
      return b.d * static_cast<float>(b.qs[e % 256]);
    }
    default:
      return 0.0f;  // Supports() admits only the types above
  }
}

// ---- weight units ----

// Unit u (32 elements) of a weight row: q[j] packs elements 4j .. 4j + 3 as signed bytes.
struct WeightUnit {
  int q[8];
  float d;
  float m;                 // Q4_1 / Q5_1: the block offset; K-quants with mins: dmin
  int sc0, sc1, mn0, mn1;  // K-quants: integer scales (and mins) of the unit's sub-blocks
};

// The 4-bit field of each byte of a 4-bit group: element 4j + b sits in bit 4b of `bits`.
DZ_HD int SpreadBits(uint32_t bits) {
  return static_cast<int>(((bits & 1) << 4) | ((bits & 2) << 11) | ((bits & 4) << 18) |
                          ((bits & 8) << 25));
}

template <DType kType>
DZ_HD void DecodeUnit(const uint8_t* row, int64_t u, WeightUnit& w) {
  constexpr uint32_t kLow4 = 0x0F0F0F0Fu;
  if constexpr (kType == DType::Q4_0 || kType == DType::Q4_1 || kType == DType::Q5_0 ||
                kType == DType::Q5_1) {
    const uint8_t* qs;
    uint32_t qh = 0;
    if constexpr (kType == DType::Q4_0) {
      const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(row)[u];
      qs = b.qs;
      w.d = HalfBits(b.d);
    } else if constexpr (kType == DType::Q4_1) {
      const BlockQ4_1& b = reinterpret_cast<const BlockQ4_1*>(row)[u];
      qs = b.qs;
      w.d = HalfBits(b.d);
      w.m = HalfBits(b.m);
    } else if constexpr (kType == DType::Q5_0) {
      const BlockQ5_0& b = reinterpret_cast<const BlockQ5_0*>(row)[u];
      qs = b.qs;
      qh = Load4(b.qh);
      w.d = HalfBits(b.d);
    } else {
      const BlockQ5_1& b = reinterpret_cast<const BlockQ5_1*>(row)[u];
      qs = b.qs;
      qh = Load4(b.qh);
      w.d = HalfBits(b.d);
      w.m = HalfBits(b.m);
    }
    constexpr bool kFive = kType == DType::Q5_0 || kType == DType::Q5_1;
    constexpr bool kSymmetric = kType == DType::Q4_0 || kType == DType::Q5_0;
    constexpr uint32_t kOffset = kType == DType::Q4_0 ? 0x08080808u : 0x10101010u;
    DZ_UNROLL
    for (int j = 0; j < 4; ++j) {
      const uint32_t word = Load4(qs + 4 * j);
      uint32_t lo = word & kLow4, hi = (word >> 4) & kLow4;
      if constexpr (kFive) {
        lo |= SpreadBits(qh >> (4 * j));
        hi |= SpreadBits(qh >> (16 + 4 * j));
      }
      if constexpr (kSymmetric) {
        lo = Vsub4(lo, kOffset);
        hi = Vsub4(hi, kOffset);
      }
      w.q[j] = static_cast<int>(lo);
      w.q[4 + j] = static_cast<int>(hi);
    }
  } else if constexpr (kType == DType::Q8_0) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[u];
    DZ_UNROLL
    for (int j = 0; j < 8; ++j)
      w.q[j] = static_cast<int>(Load4(reinterpret_cast<const uint8_t*>(b.qs) + 4 * j));
    w.d = HalfBits(b.d);
  } else if constexpr (kType == DType::Q2_K) {
    const BlockQ2_K& b = reinterpret_cast<const BlockQ2_K*>(row)[u / 8];
    const int p = static_cast<int>(u % 8), h = p / 4, k = p % 4;
    DZ_UNROLL
    for (int j = 0; j < 8; ++j) {
      w.q[j] = static_cast<int>((Load4(b.qs + 32 * h + 4 * j) >> (2 * k)) & 0x03030303u);
    }
    w.sc0 = b.scales[2 * p] & 0xF;
    w.mn0 = b.scales[2 * p] >> 4;
    w.sc1 = b.scales[2 * p + 1] & 0xF;
    w.mn1 = b.scales[2 * p + 1] >> 4;
    w.d = HalfBits(b.d);
    w.m = HalfBits(b.dmin);
  } else if constexpr (kType == DType::Q3_K) {
    const BlockQ3_K& b = reinterpret_cast<const BlockQ3_K*>(row)[u / 8];
    const int p = static_cast<int>(u % 8), h = p / 4, k = p % 4;
    DZ_UNROLL
    for (int j = 0; j < 8; ++j) {
      const uint32_t low = (Load4(b.qs + 32 * h + 4 * j) >> (2 * k)) & 0x03030303u;
      const uint32_t high = (Load4(b.hmask + 4 * j) >> (4 * h + k)) & 0x01010101u;
      w.q[j] = static_cast<int>(Vsub4(low | (high << 2), 0x04040404u));
    }
    w.sc0 = ScaleQ3K(b.scales, 2 * p) - 32;
    w.sc1 = ScaleQ3K(b.scales, 2 * p + 1) - 32;
    w.d = HalfBits(b.d);
  } else if constexpr (kType == DType::Q4_K || kType == DType::Q5_K) {
    constexpr bool kFive = kType == DType::Q5_K;
    const uint8_t* block =
        row + (u / 8) * static_cast<int64_t>(kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
    const auto& head = *reinterpret_cast<const BlockQ4_K*>(block);  // d, dmin, scales: shared
    const uint8_t* qs = kFive ? reinterpret_cast<const BlockQ5_K*>(block)->qs : head.qs;
    const int p = static_cast<int>(u % 8);
    DZ_UNROLL
    for (int j = 0; j < 8; ++j) {
      uint32_t word = (Load4(qs + 32 * (p / 2) + 4 * j) >> (4 * (p % 2))) & kLow4;
      if constexpr (kFive) {
        const uint8_t* qh = reinterpret_cast<const BlockQ5_K*>(block)->qh;
        word |= ((Load4(qh + 4 * j) >> p) & 0x01010101u) << 4;
      }
      w.q[j] = static_cast<int>(word);
    }
    ScaleMinK4(head.scales, p, &w.sc0, &w.mn0);
    w.d = HalfBits(head.d);
    w.m = HalfBits(head.dmin);
  } else if constexpr (kType == DType::Q6_K) {
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(row)[u / 8];
    const int p = static_cast<int>(u % 8), h = p / 4, k = p % 4;
    DZ_UNROLL
    for (int j = 0; j < 8; ++j) {
      const uint32_t low = (Load4(b.ql + 64 * h + 32 * (k % 2) + 4 * j) >> (4 * (k / 2))) & kLow4;
      const uint32_t high = (Load4(b.qh + 32 * h + 4 * j) >> (2 * k)) & 0x03030303u;
      w.q[j] = static_cast<int>(Vsub4(low | (high << 4), 0x20202020u));
    }
    w.sc0 = b.scales[2 * p];
    w.sc1 = b.scales[2 * p + 1];
    w.d = HalfBits(b.d);
  }
}

// The unit's contribution to one output: its integer dot product with activation row `r`
// scaled as core/quant's reference product scales it.
template <DType kType>
DZ_HD float UnitDot(const WeightUnit& w, const QuantizedActivations& x, int64_t r, int64_t u) {
  const int4* xq = reinterpret_cast<const int4*>(x.qs + r * x.k + u * kUnit);
  const int4 a = xq[0], b = xq[1];
  const int xs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
  int lo = 0, hi = 0;  // elements 0..15 and 16..31
  DZ_UNROLL
  for (int j = 0; j < 4; ++j) lo = Dp4a(w.q[j], xs[j], lo);
  DZ_UNROLL
  for (int j = 4; j < 8; ++j) hi = Dp4a(w.q[j], xs[j], hi);
  const int64_t unit = r * (x.k / kUnit) + u;
  const float xd = x.d[unit];
  if constexpr (kType == DType::Q4_0 || kType == DType::Q5_0 || kType == DType::Q8_0) {
    return w.d * xd * static_cast<float>(lo + hi);
  } else if constexpr (kType == DType::Q4_1 || kType == DType::Q5_1) {
    return w.d * xd * static_cast<float>(lo + hi) + w.m * x.sum[unit];
  } else if constexpr (kType == DType::Q4_K || kType == DType::Q5_K) {
    const int scaled = w.sc0 * (lo + hi);
    const int mins = w.mn0 * static_cast<int>(x.sum[unit]);
    return xd * w.d * static_cast<float>(scaled) - xd * w.m * static_cast<float>(mins);
  } else if constexpr (kType == DType::Q2_K) {
    const int32_t* bsum = x.bsum16 + r * (x.k / 16) + 2 * u;
    const int scaled = w.sc0 * lo + w.sc1 * hi;
    const int mins = w.mn0 * bsum[0] + w.mn1 * bsum[1];
    return xd * w.d * static_cast<float>(scaled) - xd * w.m * static_cast<float>(mins);
  } else {  // Q3_K, Q6_K: symmetric sub-blocks of 16
    return xd * w.d * static_cast<float>(w.sc0 * lo + w.sc1 * hi);
  }
}

}  // namespace dizuo::cuda
