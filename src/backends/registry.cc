// The backend registry: name → factory for every backend of this build (the CUDA one loaded from
// its module on first use) and for the plug-ins loaded with --backend-lib.
#include <filesystem>
#include <functional>
#include <mutex>
#include <utility>

#include "backends/backend.h"
#include "backends/plugin.h"
#include "backends/reference/reference_backend.h"
#include "backends/skeleton/skeleton_backend.h"
#include "core/error.h"

#ifdef DIZUO_HAVE_CPU_BACKEND
#include "backends/cpu/cpu_backend.h"
#endif
#ifdef DIZUO_HAVE_OPENCL_BACKEND
#include "backends/opencl/opencl_backend.h"
#endif

namespace dizuo {
namespace {

using Factory = std::function<std::unique_ptr<Backend>(const BackendOptions&)>;

#ifdef DIZUO_HAVE_CUDA_BACKEND
// The CUDA backend is a module (DIZUO_CUDA_MODULE, next to the executable in ../lib) loaded only
// when it is asked for: linking libcudart and cuBLAS into every process costs ~150-200 MiB of
// resident memory before any model is loaded.
std::unique_ptr<Backend> CreateCudaFromModule(const BackendOptions& options) {
  const std::string path = BundledBackendPath(DIZUO_CUDA_MODULE);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    Fail("CUDA backend: its library {} is missing (build the target dizuo_cuda_backend)", path);
  }
  const BackendPlugin plugin = OpenBackendPlugin(path);
  if (plugin.name != "cuda") Fail("{}: expected the 'cuda' backend, found '{}'", path, plugin.name);
  std::unique_ptr<Backend> backend(plugin.create(&options));
  if (backend == nullptr) Fail("{}: returned no backend", path);
  return backend;
}
#endif

// Built-in backends first, then plug-ins in load order. Guarded by RegistryMutex().
std::vector<std::pair<std::string, Factory>>& Registry() {
  static std::vector<std::pair<std::string, Factory>> registry = {
#ifdef DIZUO_HAVE_CPU_BACKEND
      {"cpu", &CreateCpuBackend},
#endif
#ifdef DIZUO_HAVE_OPENCL_BACKEND
      {"opencl", &CreateOpenclBackend},
#endif
#ifdef DIZUO_HAVE_CUDA_BACKEND
      {"cuda", &CreateCudaFromModule},
#endif
      {"reference", &CreateReferenceBackend},
      {"skeleton", &CreateSkeletonBackend},
  };
  return registry;
}

std::mutex& RegistryMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

void RegisterPluginBackend(const std::string& name, PluginCreateFn create) {
  std::lock_guard lock(RegistryMutex());
  for (const auto& [entry, factory] : Registry()) {
    if (entry == name) Fail("a backend named '{}' is already registered", name);
  }
  Registry().emplace_back(name, [create, name](const BackendOptions& options) {
    std::unique_ptr<Backend> backend(create(&options));
    if (backend == nullptr) Fail("backend plug-in '{}' returned no backend", name);
    return backend;
  });
}

std::vector<std::string> BackendNames() {
  std::lock_guard lock(RegistryMutex());
  std::vector<std::string> names;
  for (const auto& [name, factory] : Registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Backend> CreateBackend(const std::string& name, const BackendOptions& options) {
  // The other backends of this build, for messages.
  auto others = [&] {
    std::string list;
    for (const std::string& n : BackendNames()) {
      if (n != name) list += (list.empty() ? "" : ", ") + n;
    }
    return list;
  };
  for (const auto& [entry, factory] : Registry()) {
    if (entry != name) continue;
    try {
      return factory(options);
    } catch (const Error& e) {  // built in, but its device cannot be used here
      Fail("backend '{}' cannot be used: {} (available: {})", name, e.what(), others());
    }
  }
  Fail("unknown backend '{}' (available: {})", name, others());
}

}  // namespace dizuo
