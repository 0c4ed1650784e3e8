// The backend registry: name → factory for every backend compiled into this build.
#include <functional>
#include <utility>

#include "backends/backend.h"
#include "backends/reference/reference_backend.h"
#include "core/error.h"

#ifdef DIZUO_HAVE_CPU_BACKEND
#include "backends/cpu/cpu_backend.h"
#endif
#ifdef DIZUO_HAVE_OPENCL_BACKEND
#include "backends/opencl/opencl_backend.h"
#endif

namespace dizuo {
namespace {

using Factory = std::unique_ptr<Backend> (*)(const BackendOptions&);

const std::vector<std::pair<std::string, Factory>>& Registry() {
  static const std::vector<std::pair<std::string, Factory>> registry = {
#ifdef DIZUO_HAVE_CPU_BACKEND
      {"cpu", &CreateCpuBackend},
#endif
#ifdef DIZUO_HAVE_OPENCL_BACKEND
      {"opencl", &CreateOpenclBackend},
#endif
      {"reference", &CreateReferenceBackend},
  };
  return registry;
}

}  // namespace

std::vector<std::string> BackendNames() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Backend> CreateBackend(const std::string& name, const BackendOptions& options) {
  for (const auto& [entry, factory] : Registry()) {
    if (entry == name) return factory(options);
  }
  std::string available;
  for (const std::string& n : BackendNames()) available += (available.empty() ? "" : ", ") + n;
  Fail("unknown backend '{}' (available: {})", name, available);
}

}  // namespace dizuo
