// The backend interface (include/dizuo/backend.h, the versioned porting surface) and the registry
// of backends this build knows: the ones compiled in and plug-ins loaded at run time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dizuo/backend.h"

namespace dizuo {

// Creates the backend registered under `name`. Throws dizuo::Error listing the available ones when
// `name` is unknown or its device cannot be used.
std::unique_ptr<Backend> CreateBackend(const std::string& name, const BackendOptions& options);
std::vector<std::string> BackendNames();

}  // namespace dizuo
