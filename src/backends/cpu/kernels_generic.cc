// Portable scalar kernels: every weight type, every primitive. The fallback table and the base the
// ISA tables start from. Block layouts are documented in core/quant_blocks.h.
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/kernels.h"
#include "backends/cpu/kernels_common.h"
#include "core/dtype.h"
#include "core/gelu.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {
namespace {

using DotFn = float (*)(const void* w, const void* a, int64_t nblocks);

float H(uint16_t h) { return F16ToF32(h); }

// Quants of a 32-element legacy block: 4-bit nibbles (low nibbles first), optional bit 4.
void Nibbles(const uint8_t* qs, int* q) {
  for (int i = 0; i < 16; ++i) {
    q[i] = qs[i] & 0x0f;
    q[i + 16] = qs[i] >> 4;
  }
}
void AddHighBits(const uint8_t* qh, int* q) {
  const uint32_t bits = LoadUnaligned<uint32_t>(qh);
  for (int i = 0; i < 32; ++i) q[i] |= static_cast<int>((bits >> i) & 1u) << 4;
}
int DotInt(const int* q, const int8_t* a, int n, int offset) {
  int sum = 0;
  for (int i = 0; i < n; ++i) sum += (q[i] - offset) * a[i];
  return sum;
}

float DotQ4_0(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int q[32];
    Nibbles(x[b].qs, q);
    sum += static_cast<float>(DotInt(q, y[b].qs, 32, 8)) * (H(x[b].d) * H(y[b].d));
  }
  return sum;
}

float DotQ4_1(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int q[32];
    Nibbles(x[b].qs, q);
    sum += static_cast<float>(DotInt(q, y[b].qs, 32, 0)) * (H(x[b].d) * H(y[b].d)) +
           H(x[b].m) * H(y[b].s);
  }
  return sum;
}

float DotQ5_0(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int q[32];
    Nibbles(x[b].qs, q);
    AddHighBits(x[b].qh, q);
    sum += static_cast<float>(DotInt(q, y[b].qs, 32, 16)) * (H(x[b].d) * H(y[b].d));
  }
  return sum;
}

float DotQ5_1(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int q[32];
    Nibbles(x[b].qs, q);
    AddHighBits(x[b].qh, q);
    sum += static_cast<float>(DotInt(q, y[b].qs, 32, 0)) * (H(x[b].d) * H(y[b].d)) +
           H(x[b].m) * H(y[b].s);
  }
  return sum;
}

float DotQ8_0(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int s = 0;
    for (int i = 0; i < 32; ++i) s += x[b].qs[i] * y[b].qs[i];
    sum += static_cast<float>(s) * (H(x[b].d) * H(y[b].d));
  }
  return sum;
}

float DotQ2_K(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int isum = 0, mins = 0;
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int e = 16 * j; e < 16 * j + 16; ++e) {
        const int q = (x[b].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        s += q * y[b].qs[e];
      }
      isum += (x[b].scales[j] & 0x0f) * s;
      mins += (x[b].scales[j] >> 4) * y[b].bsums[j];
    }
    sum += y[b].d * H(x[b].d) * static_cast<float>(isum) -
           y[b].d * H(x[b].dmin) * static_cast<float>(mins);
  }
  return sum;
}

float DotQ3_K(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int e = 16 * j; e < 16 * j + 16; ++e) {
        const int low = (x[b].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const int high = (x[b].hmask[e % 32] >> (e / 32)) & 1;
        s += (low + 4 * high - 4) * y[b].qs[e];
      }
      isum += ScaleQ3_K(x[b].scales, j) * s;
    }
    sum += y[b].d * H(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K and Q5_K (kHigh: 5-bit quants with bit 4 in qh).
template <typename Block, bool kHigh>
float DotQ45_K(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int isum = 0, mins = 0;
    for (int j = 0; j < 8; ++j) {
      int sc = 0, m = 0;
      UnpackScaleMinK4(x[b].scales, j, &sc, &m);
      int s = 0;
      for (int e = 32 * j; e < 32 * j + 32; ++e) {
        int q = (x[b].qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0x0f;
        if constexpr (kHigh) q |= ((x[b].qh[e % 32] >> (e / 32)) & 1) << 4;
        s += q * y[b].qs[e];
      }
      isum += sc * s;
      mins += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    sum += y[b].d * H(x[b].d) * static_cast<float>(isum) -
           y[b].d * H(x[b].dmin) * static_cast<float>(mins);
  }
  return sum;
}

float DotQ6_K(const void* w, const void* a, int64_t nb) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int e = 16 * j; e < 16 * j + 16; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int low = (x[b].ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
        const int high = (x[b].qh[32 * h + l] >> (2 * k)) & 3;
        s += ((low | (high << 4)) - 32) * y[b].qs[e];
      }
      isum += x[b].scales[j] * s;
    }
    sum += y[b].d * H(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

float DotF32(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float DotF16(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += F16ToF32(x[i]) * F16ToF32(y[i]);
  return sum;
}

float DotBF16(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += BF16ToF32(x[i]) * BF16ToF32(y[i]);
  return sum;
}

template <DotFn kDot, int64_t kBlock>
void Tile(int64_t k, const void* w, size_t w_stride, int nw, const void* a, size_t a_stride, int na,
          float* out, size_t out_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int r = 0; r < nw; ++r) {
    for (int c = 0; c < na; ++c) {
      out[c * out_stride + r] = kDot(wb + r * w_stride, ab + c * a_stride, k / kBlock);
    }
  }
}

template <DType kType>
void ConvertRow(const float* x, void* dst, int64_t n) {
  QuantizeRow(kType, x, dst, n);
}

void AxpyF32(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void AxpyF16(float alpha, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * F16ToF32(x[i]);
}

void F32ToF16Row(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = F32ToF16(x[i]);
}

float ExpSum(float* x, int64_t n, float max) {
  constexpr float kHidden = -std::numeric_limits<float>::infinity();
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = x[i] == kHidden ? 0.0f : std::exp(x[i] - max);
    sum += x[i];
  }
  return static_cast<float>(sum);
}

void ScaleF32(float alpha, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

// silu(x) = x / (1 + e^-x); gelu_tanh is the GGUF engines' f16-table definition (core/gelu.h).
void Glu(Activation act, const float* gate, const float* up, float* out, int64_t n) {
  const uint16_t* gelu = act == Activation::kGeluTanh ? GeluTanhF16Table().data() : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    float g;
    if (act == Activation::kSilu) {
      g = x / (1.0f + std::exp(-x));
    } else {
      g = x <= -10.0f ? 0.0f : x >= 10.0f ? x : F16ToF32(gelu[F32ToF16(x)]);
    }
    out[i] = g * up[i];
  }
}

Kernels MakeGeneric() {
  Kernels k;
  k.isa = "generic";
  auto slot = [](DType t) { return static_cast<size_t>(t); };
  k.dot[slot(DType::F32)] = Tile<DotF32, 1>;
  k.dot[slot(DType::F16)] = Tile<DotF16, 1>;
  k.dot[slot(DType::BF16)] = Tile<DotBF16, 1>;
  k.dot[slot(DType::Q4_0)] = Tile<DotQ4_0, 32>;
  k.dot[slot(DType::Q4_1)] = Tile<DotQ4_1, 32>;
  k.dot[slot(DType::Q5_0)] = Tile<DotQ5_0, 32>;
  k.dot[slot(DType::Q5_1)] = Tile<DotQ5_1, 32>;
  k.dot[slot(DType::Q8_0)] = Tile<DotQ8_0, 32>;
  k.dot[slot(DType::Q2_K)] = Tile<DotQ2_K, 256>;
  k.dot[slot(DType::Q3_K)] = Tile<DotQ3_K, 256>;
  k.dot[slot(DType::Q4_K)] = Tile<DotQ45_K<BlockQ4_K, false>, 256>;
  k.dot[slot(DType::Q5_K)] = Tile<DotQ45_K<BlockQ5_K, true>, 256>;
  k.dot[slot(DType::Q6_K)] = Tile<DotQ6_K, 256>;
  k.to_activation[slot(DType::Q8_0)] = ConvertRow<DType::Q8_0>;
  k.to_activation[slot(DType::Q8_1)] = ConvertRow<DType::Q8_1>;
  k.to_activation[slot(DType::Q8_K)] = ConvertRow<DType::Q8_K>;
  k.to_activation[slot(DType::F16)] = ConvertRow<DType::F16>;
  k.to_activation[slot(DType::BF16)] = ConvertRow<DType::BF16>;
  k.axpy_f32 = AxpyF32;
  k.axpy_f16 = AxpyF16;
  k.f32_to_f16 = F32ToF16Row;
  k.scale_f32 = ScaleF32;
  k.exp_sum = ExpSum;
  k.weighted_rows = WeightedRowsWith<AxpyF16, AxpyF32>;
  k.glu = Glu;
  return k;
}

template <DType T>
size_t FileRowBytes(int64_t k) {
  return RowBytes(T, static_cast<uint64_t>(k)).value_or(0);
}

template <DType T>
void CopyFileRows(int64_t k, const void* src, size_t src_stride, int64_t rows, void* dst) {
  const size_t row = FileRowBytes<T>(k);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(static_cast<uint8_t*>(dst) + r * row,
                static_cast<const uint8_t*>(src) + r * src_stride, row);
  }
}

template <DType T>
void CopyFileRow(int64_t k, const void* src, void* dst) {
  std::memcpy(dst, src, FileRowBytes<T>(k));
}

struct FileCopy {
  DType type;
  const char* name;
  size_t (*row_bytes)(int64_t);
  void (*repack)(int64_t, const void*, size_t, int64_t, void*);
  void (*unpack_row)(int64_t, const void*, size_t, int64_t, int64_t, void*);
};

template <DType T>
constexpr FileCopy MakeFileCopy(const char* name) {
  return {T, name, FileRowBytes<T>, CopyFileRows<T>, UnpackRowAt<CopyFileRow<T>>};
}

constexpr FileCopy kFileCopies[] = {
    MakeFileCopy<DType::F32>("f32 copy"),   MakeFileCopy<DType::F16>("f16 copy"),
    MakeFileCopy<DType::BF16>("bf16 copy"), MakeFileCopy<DType::Q4_0>("q4_0 copy"),
    MakeFileCopy<DType::Q4_1>("q4_1 copy"), MakeFileCopy<DType::Q5_0>("q5_0 copy"),
    MakeFileCopy<DType::Q5_1>("q5_1 copy"), MakeFileCopy<DType::Q8_0>("q8_0 copy"),
    MakeFileCopy<DType::Q2_K>("q2_K copy"), MakeFileCopy<DType::Q3_K>("q3_K copy"),
    MakeFileCopy<DType::Q4_K>("q4_K copy"), MakeFileCopy<DType::Q5_K>("q5_K copy"),
    MakeFileCopy<DType::Q6_K>("q6_K copy"),
};

}  // namespace

void AddFileLayoutCopies(Kernels* k) {
  for (const FileCopy& copy : kFileCopies) {
    const auto slot = static_cast<size_t>(copy.type);
    if (k->dot[slot] == nullptr || k->repacked[slot].repack != nullptr) continue;
    RepackFns& f = k->repacked[slot];
    f.name = copy.name;
    f.row_bytes = copy.row_bytes;
    f.repack = copy.repack;
    f.unpack_row = copy.unpack_row;
    f.dot = k->dot[slot];
    f.gemv = k->gemv[slot];
    f.gemm = k->gemm[slot];
  }
}

DType ActivationType(DType weight) {
  switch (weight) {
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
    case DType::F16:
      return DType::F16;
    case DType::BF16:
      return DType::BF16;
    default:
      return DType::F32;
  }
}

const Kernels& GenericKernels() {
  static const Kernels kernels = MakeGeneric();
  return kernels;
}

}  // namespace dizuo::cpu
