// The OpenCL backend: every op of core/graph.h as OpenCL C 1.2 kernels, on the first GPU or
// accelerator found (else the first OpenCL device of any kind, such as PoCL's CPU device). Device
// memory is not host memory: tensors are addressed by buffer and offset. See
// docs/backends/OPENCL.md.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace dizuo {

// Throws dizuo::Error when no OpenCL device is usable (naming the platforms seen) or when the
// kernels fail to build (with the build log).
std::unique_ptr<Backend> CreateOpenclBackend(const BackendOptions& options);

}  // namespace dizuo
