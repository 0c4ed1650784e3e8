#include "core/dtype.h"

#include <array>
#include <cctype>
#include <limits>

#include "core/error.h"

namespace dizuo {
namespace {

constexpr std::array kTraits = {
    DTypeTraits{DType::F32, "f32", 1, 4, false},
    DTypeTraits{DType::F16, "f16", 1, 2, false},
    DTypeTraits{DType::Q4_0, "q4_0", 32, 2 + 16, true},
    DTypeTraits{DType::Q4_1, "q4_1", 32, 2 + 2 + 16, true},
    DTypeTraits{DType::Q5_0, "q5_0", 32, 2 + 4 + 16, true},
    DTypeTraits{DType::Q5_1, "q5_1", 32, 2 + 2 + 4 + 16, true},
    DTypeTraits{DType::Q8_0, "q8_0", 32, 2 + 32, true},
    DTypeTraits{DType::Q8_1, "q8_1", 32, 2 + 2 + 32, true},
    DTypeTraits{DType::Q2_K, "q2_K", 256, 16 + 64 + 2 + 2, true},
    DTypeTraits{DType::Q3_K, "q3_K", 256, 32 + 64 + 12 + 2, true},
    DTypeTraits{DType::Q4_K, "q4_K", 256, 2 + 2 + 12 + 128, true},
    DTypeTraits{DType::Q5_K, "q5_K", 256, 2 + 2 + 12 + 32 + 128, true},
    DTypeTraits{DType::Q6_K, "q6_K", 256, 128 + 64 + 16 + 2, true},
    DTypeTraits{DType::Q8_K, "q8_K", 256, 4 + 256 + 2 * 16, true},
    DTypeTraits{DType::I8, "i8", 1, 1, false},
    DTypeTraits{DType::I16, "i16", 1, 2, false},
    DTypeTraits{DType::I32, "i32", 1, 4, false},
    DTypeTraits{DType::I64, "i64", 1, 8, false},
    DTypeTraits{DType::F64, "f64", 1, 8, false},
    DTypeTraits{DType::BF16, "bf16", 1, 2, false},
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<DTypeTraits> FindDType(uint32_t id) {
  for (const auto& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == id) return t;
  }
  return std::nullopt;
}

const DTypeTraits& Traits(DType type) {
  for (const auto& t : kTraits) {
    if (t.type == type) return t;
  }
  AssertFailed("known dtype", __FILE__, __LINE__);
}

std::optional<DType> ParseDType(std::string_view name) {
  for (const auto& t : kTraits) {
    if (EqualsIgnoreCase(t.name, name)) return t.type;
  }
  return std::nullopt;
}

std::optional<uint64_t> RowBytes(DType type, uint64_t n) {
  const DTypeTraits& t = Traits(type);
  const auto block = static_cast<uint64_t>(t.block_size);
  if (n % block != 0) return std::nullopt;
  const uint64_t blocks = n / block;
  const auto size = static_cast<uint64_t>(t.type_size);
  if (blocks > std::numeric_limits<uint64_t>::max() / size) return std::nullopt;
  return blocks * size;
}

}  // namespace dizuo
