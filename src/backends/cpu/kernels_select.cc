// Run-time choice of the kernel table.
#include <cstdlib>
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
    Fail("DIZUO_CPU_ISA={}: unknown, or this CPU cannot run it (use generic, avx2 or avx512)",
         forced);
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
#endif
  return nullptr;
}

std::vector<const Kernels*> AvailableKernels() {
  std::vector<const Kernels*> tables;
  for (std::string_view isa : {"generic", "avx2", "avx512"}) {
    if (const Kernels* k = KernelsNamed(isa)) tables.push_back(k);
  }
  return tables;
}

const Kernels& SelectKernels() {
  static const Kernels& kernels = Choose();
  return kernels;
}

}  // namespace dizuo::cpu
