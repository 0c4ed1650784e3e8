// Run-time choice of the kernel table.
#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "core/error.h"

namespace dizuo::cpu {
namespace {

const Kernels& Choose() {
  const char* forced = std::getenv("DIZUO_CPU_ISA");
  if (forced != nullptr && *forced != '\0') {
    if (const Kernels* k = KernelsNamed(forced)) return *k;
    std::string runs;
    for (const Kernels* k : AvailableKernels()) {
      runs += std::string(runs.empty() ? "" : ", ") + k->isa;
    }
    Fail("DIZUO_CPU_ISA={}: unknown, or this CPU cannot run it (it runs: {})", forced, runs);
  }
  return *AvailableKernels().back();
}

}  // namespace

const Kernels* KernelsNamed(std::string_view isa) {
  if (isa == "generic") return &GenericKernels();
#if defined(__x86_64__)
  const CpuFeatures& cpu = HostCpu();
  if (isa == "avx2" && cpu.avx2) return &Avx2Kernels();
  if (isa == "avx512" && cpu.avx2 && cpu.avx512_vnni) return &Avx512Kernels();
#elif defined(__aarch64__)
  if (isa == "neon") return &NeonKernels();
  if (isa == "neon-dotprod" && HostCpu().neon_dotprod) return &NeonDotprodKernels();
#endif
  return nullptr;
}

std::vector<const Kernels*> AvailableKernels() {
  std::vector<const Kernels*> tables;
  for (std::string_view isa : {"generic", "avx2", "avx512", "neon", "neon-dotprod"}) {
    if (const Kernels* k = KernelsNamed(isa)) tables.push_back(k);
  }
  return tables;
}

const Kernels& SelectKernels() {
  static const Kernels& kernels = Choose();
  return kernels;
}

}  // namespace dizuo::cpu
