// MATMUL as GGUF engines define it: activations are converted to the weight's activation type and
// each block contributes an exact integer sum scaled by the block factors.
//
// Every weight block is first decoded into integers (IntBlock): element e of the block is
//   d · scale[e / sub] · q[e] − dmin · min[e / sub]          (K-quants)
//   d · q[e] (+ m for Q4_1 / Q5_1, kept in `dmin`)           (legacy 32-element blocks)
// so one generic integer dot product per activation type covers all weight types. The bit
// layouts decoded here are documented in core/quant_blocks.h.
#include <cstring>
#include <vector>

#include "backends/reference/reference_kernels.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo::reference {
namespace {

struct IntBlock {
  int sub = 32;  // elements per sub-block
  int8_t q[256] = {};
  int scale[16] = {};  // per sub-block integer scale
  int min[16] = {};    // per sub-block integer min (K-quants with mins)
  float d = 0;
  float dmin = 0;  // K-quants: super-block min factor; Q4_1/Q5_1: the block offset m
};

template <typename T>
T LoadBlock(const void* base, int64_t i) {
  T block;
  std::memcpy(&block, static_cast<const char*>(base) + i * static_cast<int64_t>(sizeof(T)),
              sizeof(T));
  return block;
}

int Nibble(const uint8_t* qs, int i) { return i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4; }
int HighBit(const uint8_t qh[4], int i) { return (qh[i / 8] >> (i % 8)) & 1; }

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
void ScaleMinK4(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// The 6-bit scale of sub-block j (0..15) of a Q3_K super-block, before subtracting 32.
int ScaleQ3K(const uint8_t* s, int j) {
  const int low = (s[j % 8] >> (4 * (j / 8))) & 0xF;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | (high << 4);
}

IntBlock Decode(DType type, const void* row, int64_t i) {
  IntBlock out;
  switch (type) {
    case DType::Q4_0: {
      const auto b = LoadBlock<BlockQ4_0>(row, i);
      for (int e = 0; e < 32; ++e) out.q[e] = static_cast<int8_t>(Nibble(b.qs, e) - 8);
      out.d = F16ToF32(b.d);
      break;
    }
    case DType::Q4_1: {
      const auto b = LoadBlock<BlockQ4_1>(row, i);
      for (int e = 0; e < 32; ++e) out.q[e] = static_cast<int8_t>(Nibble(b.qs, e));
      out.d = F16ToF32(b.d);
      out.dmin = F16ToF32(b.m);
      break;
    }
    case DType::Q5_0: {
      const auto b = LoadBlock<BlockQ5_0>(row, i);
      for (int e = 0; e < 32; ++e) {
        out.q[e] = static_cast<int8_t>((Nibble(b.qs, e) | HighBit(b.qh, e) << 4) - 16);
      }
      out.d = F16ToF32(b.d);
      break;
    }
    case DType::Q5_1: {
      const auto b = LoadBlock<BlockQ5_1>(row, i);
      for (int e = 0; e < 32; ++e)
        out.q[e] = static_cast<int8_t>(Nibble(b.qs, e) | HighBit(b.qh, e) << 4);
      out.d = F16ToF32(b.d);
      out.dmin = F16ToF32(b.m);
      break;
    }
    case DType::Q8_0: {
      const auto b = LoadBlock<BlockQ8_0>(row, i);
      for (int e = 0; e < 32; ++e) out.q[e] = b.qs[e];
      out.d = F16ToF32(b.d);
      break;
    }
    case DType::Q2_K: {
      const auto b = LoadBlock<BlockQ2_K>(row, i);
      out.sub = 16;
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        out.q[e] = static_cast<int8_t>((b.qs[32 * h + l] >> (2 * k)) & 3);
      }
      for (int j = 0; j < 16; ++j) {
        out.scale[j] = b.scales[j] & 0xF;
        out.min[j] = b.scales[j] >> 4;
      }
      out.d = F16ToF32(b.d);
      out.dmin = F16ToF32(b.dmin);
      break;
    }
    case DType::Q3_K: {
      const auto b = LoadBlock<BlockQ3_K>(row, i);
      out.sub = 16;
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int low = (b.qs[32 * h + l] >> (2 * k)) & 3;
        const int high = (b.hmask[l] >> (4 * h + k)) & 1;
        out.q[e] = static_cast<int8_t>((low | high << 2) - 4);
      }
      for (int j = 0; j < 16; ++j) out.scale[j] = ScaleQ3K(b.scales, j) - 32;
      out.d = F16ToF32(b.d);
      break;
    }
    case DType::Q4_K: {
      const auto b = LoadBlock<BlockQ4_K>(row, i);
      for (int e = 0; e < 256; ++e) {
        const int p = e / 64, n = (e % 64) / 32, l = e % 32;
        out.q[e] = static_cast<int8_t>((b.qs[32 * p + l] >> (4 * n)) & 0xF);
      }
      for (int j = 0; j < 8; ++j) ScaleMinK4(b.scales, j, &out.scale[j], &out.min[j]);
      out.d = F16ToF32(b.d);
      out.dmin = F16ToF32(b.dmin);
      break;
    }
    case DType::Q5_K: {
      const auto b = LoadBlock<BlockQ5_K>(row, i);
      for (int e = 0; e < 256; ++e) {
        const int p = e / 64, n = (e % 64) / 32, l = e % 32;
        const int low = (b.qs[32 * p + l] >> (4 * n)) & 0xF;
        const int high = (b.qh[l] >> (e / 32)) & 1;
        out.q[e] = static_cast<int8_t>(low | high << 4);
      }
      for (int j = 0; j < 8; ++j) ScaleMinK4(b.scales, j, &out.scale[j], &out.min[j]);
      out.d = F16ToF32(b.d);
      out.dmin = F16ToF32(b.dmin);
      break;
    }
    case DType::Q6_K: {
      const auto b = LoadBlock<BlockQ6_K>(row, i);
      out.sub = 16;
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int low = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
        const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
        out.q[e] = static_cast<int8_t>((low | high << 4) - 32);
      }
      for (int j = 0; j < 16; ++j) out.scale[j] = b.scales[j];
      out.d = F16ToF32(b.d);
      break;
    }
    default:
      DZ_ASSERT(false);
  }
  return out;
}

// Legacy weights against Q8_0 (symmetric types) or Q8_1 (types with an offset m, which meets the
// activation block's stored s = d · Σq).
double DotLegacy(DType type, const void* w, const void* x, int64_t blocks) {
  double sum = 0;
  const bool with_offset = type == DType::Q4_1 || type == DType::Q5_1;
  for (int64_t i = 0; i < blocks; ++i) {
    const IntBlock wb = Decode(type, w, i);
    int32_t isum = 0;
    if (with_offset) {
      const auto xb = LoadBlock<BlockQ8_1>(x, i);
      for (int e = 0; e < 32; ++e) isum += wb.q[e] * xb.qs[e];
      sum += wb.d * F16ToF32(xb.d) * static_cast<float>(isum) + wb.dmin * F16ToF32(xb.s);
    } else {
      const auto xb = LoadBlock<BlockQ8_0>(x, i);
      for (int e = 0; e < 32; ++e) isum += wb.q[e] * xb.qs[e];
      sum += wb.d * F16ToF32(xb.d) * static_cast<float>(isum);
    }
  }
  return sum;
}

// K-quant weights against Q8_K: per sub-block integer sums weighted by the integer scales, and the
// mins against the activation's per-sub-block sums.
double DotK(DType type, const void* w, const void* x, int64_t blocks) {
  double sum = 0;
  for (int64_t i = 0; i < blocks; ++i) {
    const IntBlock wb = Decode(type, w, i);
    const auto xb = LoadBlock<BlockQ8_K>(x, i);
    int32_t scaled = 0, mins = 0;
    for (int j = 0; j < 256 / wb.sub; ++j) {
      int32_t qsum = 0, xsum = 0;
      for (int e = j * wb.sub; e < (j + 1) * wb.sub; ++e) {
        qsum += wb.q[e] * xb.qs[e];
        xsum += xb.qs[e];
      }
      scaled += wb.scale[j] * qsum;
      mins += wb.min[j] * xsum;
    }
    sum += xb.d * wb.d * static_cast<float>(scaled) - xb.d * wb.dmin * static_cast<float>(mins);
  }
  return sum;
}

template <float (*ToF32)(uint16_t)>
double DotHalf(const void* w, const void* x, int64_t k) {
  double sum = 0;
  for (int64_t e = 0; e < k; ++e) {
    uint16_t a, b;
    std::memcpy(&a, static_cast<const char*>(w) + 2 * e, 2);
    std::memcpy(&b, static_cast<const char*>(x) + 2 * e, 2);
    sum += static_cast<double>(ToF32(a)) * ToF32(b);
  }
  return sum;
}

}  // namespace

bool IsMatMulWeightType(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

DType ActivationType(DType weight_type) {
  switch (weight_type) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1:
      return DType::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      return weight_type;  // F32, F16, BF16: x is rounded to the weight's own type
  }
}

double DotRow(DType weight_type, const void* w_row, const void* x_row, int64_t k) {
  const int64_t blocks = k / Traits(weight_type).block_size;
  switch (weight_type) {
    case DType::F32: {
      double sum = 0;
      for (int64_t e = 0; e < k; ++e) {
        float a, b;
        std::memcpy(&a, static_cast<const char*>(w_row) + 4 * e, 4);
        std::memcpy(&b, static_cast<const char*>(x_row) + 4 * e, 4);
        sum += static_cast<double>(a) * b;
      }
      return sum;
    }
    case DType::F16:
      return DotHalf<F16ToF32>(w_row, x_row, k);
    case DType::BF16:
      return DotHalf<BF16ToF32>(w_row, x_row, k);
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
      return DotLegacy(weight_type, w_row, x_row, blocks);
    default:
      return DotK(weight_type, w_row, x_row, blocks);
  }
}

void MatMul(const Node& node) {
  const Tensor& x = *node.src[0];
  const Tensor& w = *node.src[1];
  const Tensor& out = *node.out;
  const int64_t k = x.ne[0];
  const int64_t n = w.ne[1];
  const DType act = ActivationType(w.type);
  std::vector<uint8_t> x_converted(*RowBytes(act, static_cast<uint64_t>(k)));
  for (int64_t r = 0; r < x.rows(); ++r) {
    QuantizeRow(act, reinterpret_cast<const float*>(RowAddress(x, r)), x_converted.data(), k);
    float* y = reinterpret_cast<float*>(RowAddress(out, r));
    for (int64_t j = 0; j < n; ++j) {
      const char* w_row = static_cast<const char*>(w.data) + j * w.nb[1];
      y[j] = static_cast<float>(DotRow(w.type, w_row, x_converted.data(), k));
    }
  }
}

}  // namespace dizuo::reference
