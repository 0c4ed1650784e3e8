// Run-time detection of the host CPU's instruction sets and model name.
#pragma once

#include <string>

namespace dizuo::cpu {

struct CpuFeatures {
  bool avx2 = false;    // with FMA and F16C (every AVX2 CPU has them; we require all three)
  bool avx512 = false;  // F, BW, VL
  bool avx512_vnni = false;
  // 512-bit instructions run as two halves on 256-bit units (AMD Zen 4, family 0x19); kernels
  // tuned on full-width AVX-512 cores may lose to AVX2 ones there (kernels_avx512.cc).
  bool avx512_on_256bit_units = false;
  bool neon_dotprod = false;  // AArch64 SDOT/UDOT (HWCAP_ASIMDDP)
  std::string model;          // e.g. "AMD EPYC 9B45", or "unknown CPU"
};

const CpuFeatures& HostCpu();

}  // namespace dizuo::cpu
