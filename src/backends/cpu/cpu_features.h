// Run-time detection of the host CPU's instruction sets and model name.
#pragma once

#include <string>

namespace dizuo::cpu {

struct CpuFeatures {
  bool avx2 = false;    // with FMA and F16C (every AVX2 CPU has them; we require all three)
  bool avx512 = false;  // F, BW, VL
  bool avx512_vnni = false;
  std::string model;  // e.g. "AMD EPYC 9B45", or "unknown CPU"
};

const CpuFeatures& HostCpu();

}  // namespace dizuo::cpu
