// Op support and kernel launches of the OpenCL backend (internal).
#pragma once

#include <cstdint>

#include "backends/backend.h"
#include "backends/opencl/opencl_device.h"

namespace dizuo::opencl {

// A block of device memory. Tensors in it are addressed by offset (there is no host address).
class DeviceBuffer final : public Buffer {
 public:
  DeviceBuffer(Backend& backend, cl::Buffer mem, uint64_t size)
      : backend_(backend), mem_(std::move(mem)), size_(size) {}
  Backend& backend() const override { return backend_; }
  uint64_t size() const override { return size_; }
  void* host_data() const override { return nullptr; }
  const cl::Buffer& mem() const { return mem_; }

 private:
  Backend& backend_;
  cl::Buffer mem_;
  uint64_t size_;
};

// Whether the kernels handle `node`: its op, dtypes, strides (rows must be packed) and sizes
// (element counts and indices fit in 32-bit ints; attention heads of at most 256).
bool SupportsNode(const Node& node);
// Device scratch bytes `node` needs (MATMUL's converted activations), 0 for other ops.
uint64_t ScratchBytes(const Node& node);
// Enqueues the kernels of a supported node whose tensors all live in DeviceBuffers of `dev`;
// `scratch` holds at least ScratchBytes(node) bytes.
void EnqueueNode(Device& dev, const Node& node, const cl::Buffer& scratch);

}  // namespace dizuo::opencl
