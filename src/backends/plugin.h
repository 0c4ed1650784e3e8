// Backends loaded at run time from shared libraries (--backend-lib PATH). The library exports the
// entry points that DIZUO_BACKEND_PLUGIN defines (dizuo/backend.h); once loaded, its backend is
// created by name like a built-in one (CreateBackend, BackendNames).
#pragma once

#include <string>

#include "backends/backend.h"

namespace dizuo {

// Registry hook for the loader: adds `name` with `create` (the plug-in's dizuo_create_backend).
using PluginCreateFn = Backend* (*)(const BackendOptions*);
void RegisterPluginBackend(const std::string& name, PluginCreateFn create);

// A loaded and checked plug-in, not yet registered.
struct BackendPlugin {
  std::string name;
  PluginCreateFn create = nullptr;
};

// Loads the plug-in at `path` and checks its API version and ABI signature against this build's;
// registers nothing. Opening the same file again returns the same plug-in. Throws dizuo::Error as
// LoadBackendPlugin does.
BackendPlugin OpenBackendPlugin(const std::string& path);

// Where a backend module shipped with dizuo lives: <directory of the running executable>/../lib/
// `file` (build/bin → build/lib, and <prefix>/bin → <prefix>/lib once installed).
std::string BundledBackendPath(const std::string& file);

// Loads the plug-in at `path`, checks its API version and ABI signature against this build's, and
// registers its backend. Returns the backend's name. Loading the same file again returns the same
// name. Throws dizuo::Error naming the file for a missing or unloadable file, a missing entry
// point, a version or ABI mismatch (both values named), or a name already taken.
std::string LoadBackendPlugin(const std::string& path);

}  // namespace dizuo
