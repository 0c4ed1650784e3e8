// quant_dump OUT_DIR: writes, for every convertible type, test inputs with our quantized bytes
// and our f32 decoding of them, for tests/quant_crosscheck.py to compare with independent
// implementations (the gguf Python package, and ggml itself where available).
//
// Files per type NAME (all raw little-endian):
//   NAME.input.f32          f32 inputs: Gaussian rows plus awkward blocks (zeros, large, small,
//                           constant, outlier; IEEE special values for the float types)
//   NAME.quant.bin          QuantizeRow(NAME, input)
//   NAME.dequant.f32        DequantizeRow(NAME, quant)
//   NAME.random.bin         random block bytes (scale fields set to random finite values)
//   NAME.random_dequant.f32 DequantizeRow(NAME, random)
// and manifest.tsv: NAME, GGUF type id, input elements, random elements.
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace dizuo {
namespace {

constexpr DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::F64,
                            DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q8_0, DType::Q8_1, DType::Q2_K, DType::Q3_K,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};

void Write(const std::filesystem::path& path, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) Fail("cannot write {}", path.string());
}

bool IsFloatType(DType type) {
  return type == DType::F32 || type == DType::F16 || type == DType::BF16 || type == DType::F64;
}

// Inputs in 256-element chunks (a multiple of every block size).
std::vector<float> Inputs(DType type, std::mt19937& rng) {
  std::normal_distribution<float> gauss;
  std::vector<float> x;
  auto chunk = [&](float scale) {
    for (int i = 0; i < 256; ++i) x.push_back(scale * gauss(rng));
  };
  for (int r = 0; r < 16; ++r) chunk(1.0f);
  x.insert(x.end(), 256, 0.0f);
  chunk(3000.0f);  // large, yet every f16 scale stays finite
  chunk(1e-3f);    // small: K-quant super-block scales become f16 subnormals
  x.insert(x.end(), 256, -2.5f);
  chunk(0.01f);
  x[x.size() - 100] = 7.0f;  // one outlier
  if (IsFloatType(type)) {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> special = {inf,
                                        -inf,
                                        std::numeric_limits<float>::quiet_NaN(),
                                        -0.0f,
                                        65504.0f,
                                        65519.0f,
                                        65520.0f,
                                        1e10f,
                                        0x1p-24f,
                                        0x1p-25f,
                                        3 * 0x1p-25f,
                                        1023.5f * 0x1p-24f,
                                        1e-8f,
                                        1.0f + 0x1p-11f,
                                        1.0f + 3 * 0x1p-11f,
                                        std::numeric_limits<float>::max(),
                                        std::numeric_limits<float>::denorm_min(),
                                        std::numeric_limits<float>::min(),
                                        1.0f + 0x1p-8f,
                                        1.0f + 3 * 0x1p-8f};
    std::vector<float> block(256, 0.5f);
    std::copy(special.begin(), special.end(), block.begin());
    x.insert(x.end(), block.begin(), block.end());
  }
  return x;
}

// Offsets of the f16 scale fields of each block type (set to finite values in random blocks).
std::vector<size_t> HalfFields(DType type) {
  switch (type) {
    case DType::Q4_0:
      return {offsetof(BlockQ4_0, d)};
    case DType::Q4_1:
      return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case DType::Q5_0:
      return {offsetof(BlockQ5_0, d)};
    case DType::Q5_1:
      return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case DType::Q8_0:
      return {offsetof(BlockQ8_0, d)};
    case DType::Q8_1:
      return {offsetof(BlockQ8_1, d), offsetof(BlockQ8_1, s)};
    case DType::Q2_K:
      return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case DType::Q3_K:
      return {offsetof(BlockQ3_K, d)};
    case DType::Q4_K:
      return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case DType::Q5_K:
      return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case DType::Q6_K:
      return {offsetof(BlockQ6_K, d)};
    default:
      return {};
  }
}

// Random bytes. F16/BF16 get every 16-bit pattern; block types 64 random blocks whose scales
// are random finite values of either sign.
std::vector<uint8_t> RandomBytes(DType type, std::mt19937& rng, int64_t* n) {
  const DTypeTraits& traits = Traits(type);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-2.0f, 2.0f);
  if (type == DType::F16 || type == DType::BF16) {
    std::vector<uint8_t> bytes;
    for (uint32_t h = 0; h < 0x10000; ++h) {
      bytes.push_back(static_cast<uint8_t>(h & 0xff));
      bytes.push_back(static_cast<uint8_t>(h >> 8));
    }
    *n = 0x10000;
    return bytes;
  }
  const int64_t nblocks = traits.block_size == 1 ? 4096 : 64;
  *n = nblocks * traits.block_size;
  std::vector<uint8_t> bytes(static_cast<size_t>(nblocks * traits.type_size));
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(rng));
  for (int64_t b = 0; b < nblocks; ++b) {
    uint8_t* block = bytes.data() + b * traits.type_size;
    for (size_t offset : HalfFields(type)) {
      const uint16_t h = F32ToF16(scale(rng));
      std::memcpy(block + offset, &h, 2);
    }
    if (type == DType::Q8_K) {
      const float d = scale(rng);
      std::memcpy(block + offsetof(BlockQ8_K, d), &d, 4);
    }
    if (type == DType::F32 || type == DType::F64) {  // finite values only
      if (type == DType::F32) {
        const float v = scale(rng) * 1e3f;
        std::memcpy(block, &v, 4);
      } else {
        const double v = scale(rng) * 1e3;
        std::memcpy(block, &v, 8);
      }
    }
  }
  return bytes;
}

int Run(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream manifest(dir / "manifest.tsv");
  std::mt19937 rng(20261125);
  for (DType type : kTypes) {
    const std::string name(Name(type));
    const std::vector<float> x = Inputs(type, rng);
    const auto n = static_cast<int64_t>(x.size());
    const std::vector<uint8_t> quant = Quantize(type, x);
    const std::vector<float> dequant = Dequantize(type, quant, n);
    Write(dir / (name + ".input.f32"), x.data(), x.size() * sizeof(float));
    Write(dir / (name + ".quant.bin"), quant.data(), quant.size());
    Write(dir / (name + ".dequant.f32"), dequant.data(), dequant.size() * sizeof(float));

    int64_t n_random = 0;
    const std::vector<uint8_t> random = RandomBytes(type, rng, &n_random);
    const std::vector<float> random_dequant = Dequantize(type, random, n_random);
    Write(dir / (name + ".random.bin"), random.data(), random.size());
    Write(dir / (name + ".random_dequant.f32"), random_dequant.data(),
          random_dequant.size() * sizeof(float));
    manifest << name << '\t' << static_cast<uint32_t>(type) << '\t' << n << '\t' << n_random
             << '\n';
  }
  if (!manifest) Fail("cannot write {}", (dir / "manifest.tsv").string());
  return 0;
}

}  // namespace
}  // namespace dizuo

int main(int argc, char** argv) {
  const char* usage =
      "usage: %s OUT_DIR\n"
      "Writes test inputs, their quantized bytes and decodings for every convertible type into\n"
      "OUT_DIR (created if missing), for tests/quant_crosscheck.py.\n";
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::printf(usage, argv[0]);
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-') {
    std::fprintf(stderr, usage, argv[0]);
    return 2;
  }
  try {
    return dizuo::Run(argv[1]);
  } catch (const dizuo::Error& e) {
    std::fprintf(stderr, "quant_dump: %s\n", e.what());
    return 1;
  }
}
