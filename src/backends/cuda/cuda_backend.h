// The CUDA backend: every op of core/graph.h as CUDA kernels (cuBLAS for float GEMMs with many
// activation rows) on the first CUDA device. Device memory is not host memory: tensors are
// addressed by buffer and offset. Kernels are enqueued on one stream per backend; Compute returns
// once they are enqueued and Synchronize waits. See docs/backends/CUDA.md.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace dizuo {

// Throws dizuo::Error when no CUDA device is usable ("CUDA backend: no usable GPU
// (cudaGetDeviceCount: <reason>)"), or when the device cannot be initialised.
std::unique_ptr<Backend> CreateCudaBackend(const BackendOptions& options);

}  // namespace dizuo
