// The CUDA backend's block decoders, run on the host (no GPU needed): GET_ROWS's element decoder
// must reproduce core/quant's DequantizeRow bit for bit, and the MATMUL kernel's per-unit integer
// dot products (dp4a words, sub-block scales, mins against activation sums) must reproduce the
// reference's DotRow on the same quantized operands up to float summation order. Activations are
// quantized by the reference quantizer and laid out as cuda_kernels.h's QuantizedActivations,
// which is what the device quantizer is specified to produce. The GLU kernel's gelu_tanh lookup
// must give core/gelu.h's GeluTanhGguf bit for bit.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cuda/cuda_decode_check.h"
#include "backends/reference/reference_kernels.h"
#include "core/gelu.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo {
namespace {

constexpr DType kQuantizedTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                     DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                                     DType::Q5_K, DType::Q6_K};

std::vector<float> RandomValues(int64_t n, uint32_t seed, float range = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-range, range);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Host copy of QuantizedActivations for `rows` rows quantized to `act` by the reference.
struct HostActivations {
  std::vector<int8_t> qs;
  std::vector<float> d, sum;
  std::vector<int32_t> bsum16;
  std::vector<uint8_t> blocks;  // the GGUF blocks, for the reference's DotRow
  uint64_t row_bytes = 0;

  HostActivations(DType act, const std::vector<float>& x, int64_t k, int64_t rows)
      : qs(static_cast<size_t>(k * rows)),
        d(static_cast<size_t>(k * rows / 32)),
        sum(d.size()),
        bsum16(static_cast<size_t>(k * rows / 16)) {
    row_bytes = *RowBytes(act, static_cast<uint64_t>(k));
    blocks.resize(row_bytes * static_cast<uint64_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* row = blocks.data() + r * row_bytes;
      QuantizeRow(act, x.data() + r * k, row, k);
      for (int64_t u = 0; u < k / 32; ++u) {
        const size_t unit = static_cast<size_t>(r * (k / 32) + u);
        int8_t* q = qs.data() + r * k + u * 32;
        if (act == DType::Q8_K) {
          BlockQ8_K b;
          std::memcpy(&b, row + (u / 8) * sizeof(BlockQ8_K), sizeof b);
          std::memcpy(q, b.qs + (u % 8) * 32, 32);
          d[unit] = b.d;
          const int j = static_cast<int>(u % 8) * 2;
          sum[unit] = static_cast<float>(b.bsums[j] + b.bsums[j + 1]);
          bsum16[static_cast<size_t>(r * (k / 16) + 2 * u)] = b.bsums[j];
          bsum16[static_cast<size_t>(r * (k / 16) + 2 * u + 1)] = b.bsums[j + 1];
        } else if (act == DType::Q8_1) {
          BlockQ8_1 b;
          std::memcpy(&b, row + u * sizeof(BlockQ8_1), sizeof b);
          std::memcpy(q, b.qs, 32);
          d[unit] = F16ToF32(b.d);
          sum[unit] = F16ToF32(b.s);
        } else {
          BlockQ8_0 b;
          std::memcpy(&b, row + u * sizeof(BlockQ8_0), sizeof b);
          std::memcpy(q, b.qs, 32);
          d[unit] = F16ToF32(b.d);
        }
      }
    }
  }

  cuda::QuantizedActivations View(int64_t k, int64_t rows) {
    cuda::QuantizedActivations v;
    v.qs = qs.data();
    v.d = d.data();
    v.sum = sum.data();
    v.bsum16 = bsum16.data();
    v.k = k;
    v.rows = rows;
    return v;
  }
};

TEST(CudaDecodeTest, DequantElementIsBitIdenticalToDequantizeRow) {
  std::vector<DType> types(std::begin(kQuantizedTypes), std::end(kQuantizedTypes));
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_1, DType::Q8_K})
    types.push_back(t);
  constexpr int64_t kN = 512;
  for (DType type : types) {
    SCOPED_TRACE(std::string(Name(type)));
    const std::vector<float> x = RandomValues(kN, 7, 3.0f);
    std::vector<uint8_t> row(*RowBytes(type, kN));
    QuantizeRow(type, x.data(), row.data(), kN);
    std::vector<float> expected(kN);
    DequantizeRow(type, row.data(), expected.data(), kN);
    int mismatches = 0;
    for (int64_t e = 0; e < kN; ++e) {
      const float got = cuda::HostDequantElement(type, row.data(), e);
      if (std::memcmp(&got, &expected[e], 4) != 0 && ++mismatches <= 3) {
        ADD_FAILURE() << "element " << e << ": " << got << " vs " << expected[e];
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(CudaDecodeTest, UnitDotsReproduceTheReferenceProduct) {
  constexpr int64_t kK = 1024, kRows = 3, kWeightRows = 5;
  for (DType type : kQuantizedTypes) {
    SCOPED_TRACE(std::string(Name(type)));
    const DType act = reference::ActivationType(type);
    const std::vector<float> x = RandomValues(kK * kRows, 11);
    HostActivations acts(act, x, kK, kRows);
    const cuda::QuantizedActivations view = acts.View(kK, kRows);
    const std::vector<float> w = RandomValues(kK * kWeightRows, 23, 0.5f);
    const uint64_t w_row_bytes = *RowBytes(type, kK);
    std::vector<uint8_t> weights(w_row_bytes * kWeightRows);
    for (int64_t n = 0; n < kWeightRows; ++n) {
      QuantizeRow(type, w.data() + n * kK, weights.data() + n * w_row_bytes, kK);
    }
    for (int64_t n = 0; n < kWeightRows; ++n) {
      const uint8_t* w_row = weights.data() + n * w_row_bytes;
      for (int64_t r = 0; r < kRows; ++r) {
        const double expected =
            reference::DotRow(type, w_row, acts.blocks.data() + r * acts.row_bytes, kK);
        const double got = cuda::HostQuantizedRowDot(type, w_row, view, r);
        // Same integer sums and scale products; only the float summation order differs.
        EXPECT_NEAR(got, expected, 1e-5 * (1 + std::abs(expected)))
            << "weight row " << n << ", activation row " << r;
      }
    }
  }
}

TEST(CudaDecodeTest, GeluLookupIsBitIdenticalToGeluTanhGguf) {
  const std::array<uint16_t, 65536>& table = GeluTanhF16Table();
  std::vector<float> inputs = {0.0f,  -0.0f, 9.999f, 10.0f, -10.0f, -9.999f, 1e-8f,
                               65504, -1e6f, 1e6f,   0.5f,  -3.25f, 2.0e-5f};
  for (uint32_t bits = 0; bits < 65536; ++bits) {  // every f16 value, and the f32s beside it
    const float x = F16ToF32(static_cast<uint16_t>(bits));
    if (!std::isfinite(x)) continue;
    inputs.push_back(x);
    inputs.push_back(std::nextafter(x, 1e9f));
    inputs.push_back(std::nextafter(x, -1e9f));
  }
  int mismatches = 0;
  for (float x : inputs) {
    const float got = cuda::HostGeluTanh(x, table.data());
    const float expected = GeluTanhGguf(x);
    if (std::memcmp(&got, &expected, 4) != 0 && ++mismatches <= 3) {
      ADD_FAILURE() << "x = " << x << ": " << got << " vs " << expected;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace dizuo
