// Run-time choice of the kernel table.
#include <cstdlib>
#include <string_view>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "core/error.h"

namespace dizuo::cpu {
namespace {

const Kernels& Choose() {
  const CpuFeatures& cpu = HostCpu();
  const char* forced = std::getenv("DIZUO_CPU_ISA");
  const std::string_view want = forced ? forced : "";
  if (want == "generic") return GenericKernels();
#if defined(__x86_64__)
  if (want == "avx2" && !cpu.avx2) Fail("DIZUO_CPU_ISA=avx2, but this CPU lacks AVX2/FMA/F16C");
  if (cpu.avx2) return Avx2Kernels();
#endif
  if (!want.empty() && want != "generic") {
    Fail("DIZUO_CPU_ISA={}: unknown or unavailable (use generic or avx2)", want);
  }
  (void)cpu;
  return GenericKernels();
}

}  // namespace

const Kernels& SelectKernels() {
  static const Kernels& kernels = Choose();
  return kernels;
}

}  // namespace dizuo::cpu
