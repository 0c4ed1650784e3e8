// The CPU backend: multithreaded kernels over host memory, with SIMD chosen at run time.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace dizuo {

std::unique_ptr<Backend> CreateCpuBackend(const BackendOptions& options);

}  // namespace dizuo
