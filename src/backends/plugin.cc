#include "backends/plugin.h"

#include <dlfcn.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "core/error.h"

namespace dizuo {
namespace {

// A symbol of the library, or an Error naming the file and the symbol.
template <typename Fn>
Fn Lookup(void* library, const std::string& path, const char* symbol) {
  dlerror();
  void* address = dlsym(library, symbol);
  if (address == nullptr) {
    Fail(
        "{}: not a dizuo backend plug-in: entry point {} is missing (define it with "
        "DIZUO_BACKEND_PLUGIN, see docs/PORTING.md)",
        path, symbol);
  }
  return reinterpret_cast<Fn>(address);
}

}  // namespace

BackendPlugin OpenBackendPlugin(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, BackendPlugin> opened;  // canonical path → plug-in
  std::lock_guard lock(mutex);

  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) Fail("{}: no such backend plug-in file", path);
  const std::string canonical = std::filesystem::canonical(path, ec).string();
  if (auto it = opened.find(canonical); it != opened.end()) return it->second;

  // RTLD_LOCAL: the plug-in's own copies of dizuo_core and its dependencies stay private. The
  // handle is never closed: unloading C++ code with live statics and thread-locals is fragile.
  void* library = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    Fail("{}: cannot load the backend plug-in: {}", path, why ? why : "unknown error");
  }
  const auto api_version = Lookup<int (*)()>(library, path, "dizuo_backend_api_version");
  const auto abi = Lookup<const char* (*)()>(library, path, "dizuo_backend_abi");
  const auto name_fn = Lookup<const char* (*)()>(library, path, "dizuo_backend_name");
  const auto create = Lookup<PluginCreateFn>(library, path, "dizuo_create_backend");

  const int version = api_version();
  if (version != kBackendApiVersion) {
    Fail(
        "{}: backend API version mismatch: the plug-in was built for version {}, this dizuo "
        "implements version {} (rebuild the plug-in against this dizuo's headers)",
        path, version, kBackendApiVersion);
  }
  const std::string theirs = abi();
  const std::string ours = BackendAbiSignature();
  if (theirs != ours) {
    Fail(
        "{}: backend ABI mismatch: the plug-in was built as '{}', this dizuo as '{}' (a plug-in "
        "must be built with the same compiler and headers as dizuo)",
        path, theirs, ours);
  }
  const char* name = name_fn();
  if (name == nullptr || *name == '\0') Fail("{}: the plug-in's backend has no name", path);
  const BackendPlugin plugin{name, create};
  opened.emplace(canonical, plugin);
  return plugin;
}

std::string LoadBackendPlugin(const std::string& path) {
  static std::mutex mutex;
  static std::set<std::string> registered;  // canonical paths
  std::lock_guard lock(mutex);
  const BackendPlugin plugin = OpenBackendPlugin(path);
  std::error_code ec;
  const std::string canonical = std::filesystem::canonical(path, ec).string();
  if (!registered.contains(canonical)) {
    RegisterPluginBackend(plugin.name, plugin.create);
    registered.insert(canonical);
  }
  return plugin.name;
}

std::string BundledBackendPath(const std::string& file) {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) Fail("cannot locate the running executable (/proc/self/exe: {})", ec.message());
  return (exe.parent_path().parent_path() / "lib" / file).string();
}

}  // namespace dizuo
