#include "backends/opencl/opencl_backend.h"

#include <algorithm>

#include "backends/opencl/opencl_device.h"
#include "backends/opencl/opencl_ops.h"
#include "core/error.h"

namespace dizuo {
namespace {

using opencl::DeviceBuffer;
using opencl::ErrorName;

[[noreturn]] void Rethrow(const cl::Error& e, std::string_view doing) {
  Fail("opencl: {} failed: {} returned {}", doing, e.what(), ErrorName(e.err()));
}

class OpenclBackend final : public Backend {
 public:
  OpenclBackend() : dev_(opencl::OpenDevice()) {}

  const DeviceInfo& device() const override { return dev_.info; }

  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    if (bytes > dev_.max_alloc_bytes) {
      Fail("opencl: cannot allocate {} bytes on '{}': its largest allocation is {} bytes", bytes,
           dev_.info.description, dev_.max_alloc_bytes);
    }
    try {
      // Zero-filled, as host buffers are: a cache read before it is written holds zeros.
      cl::Buffer mem(dev_.context, CL_MEM_READ_WRITE, std::max<uint64_t>(bytes, 1));
      dev_.queue.enqueueFillBuffer(mem, cl_uchar{0}, 0, std::max<uint64_t>(bytes, 1));
      dev_.queue.finish();
      return std::make_unique<DeviceBuffer>(*this, std::move(mem), bytes);
    } catch (const cl::Error& e) {
      Fail("opencl: out of device memory allocating {} bytes on '{}' ({})", bytes,
           dev_.info.description, ErrorName(e.err()));
    }
  }

  void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) override {
    if (size == 0) return;
    const cl::Buffer& mem = Locate(tensor, offset, size);
    try {
      dev_.queue.enqueueWriteBuffer(mem, CL_TRUE, tensor.offset + offset, size, host);
    } catch (const cl::Error& e) {
      Rethrow(e, fmt::format("uploading '{}'", tensor.name));
    }
  }

  void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) override {
    if (size == 0) return;
    const cl::Buffer& mem = Locate(tensor, offset, size);
    try {
      dev_.queue.enqueueReadBuffer(mem, CL_TRUE, tensor.offset + offset, size, host);
    } catch (const cl::Error& e) {
      Rethrow(e, fmt::format("downloading '{}'", tensor.name));
    }
  }

  bool Supports(const Node& node) const override { return opencl::SupportsNode(node); }

  void Compute(std::span<const Node> nodes) override {
    uint64_t scratch_bytes = 0;
    for (const Node& node : nodes) {
      DZ_ASSERT(opencl::SupportsNode(node));
      CheckResident(node);
      scratch_bytes = std::max(scratch_bytes, opencl::ScratchBytes(node));
    }
    try {
      if (scratch_bytes > scratch_bytes_) {
        dev_.queue.finish();  // earlier kernels may still read the old scratch
        scratch_ = cl::Buffer(dev_.context, CL_MEM_READ_WRITE, scratch_bytes);
        scratch_bytes_ = scratch_bytes;
      }
      for (const Node& node : nodes) opencl::EnqueueNode(dev_, node, scratch_);
      dev_.queue.flush();
    } catch (const cl::Error& e) {
      Rethrow(e, "enqueueing kernels");
    }
  }

  void Synchronize() override {
    try {
      dev_.queue.finish();
    } catch (const cl::Error& e) {
      Rethrow(e, "running kernels");
    }
  }

 private:
  // The device buffer holding `tensor`, checking that [offset, offset + size) lies inside it.
  const cl::Buffer& Locate(const Tensor& tensor, uint64_t offset, uint64_t size) const {
    if (tensor.buffer == nullptr || &tensor.buffer->backend() != this) {
      Fail("opencl: tensor '{}' is not in an OpenCL buffer of this backend", tensor.name);
    }
    const uint64_t end = tensor.offset + offset + size;
    if (end < size || end > tensor.buffer->size()) {
      Fail("opencl: bytes [{}, {}) of tensor '{}' lie outside its buffer of {} bytes",
           tensor.offset + offset, end, tensor.name, tensor.buffer->size());
    }
    return static_cast<const DeviceBuffer*>(tensor.buffer)->mem();
  }

  // Kernels address tensors by buffer, so every tensor of a node must be in device memory.
  void CheckResident(const Node& node) const {
    auto check = [&](const Tensor* t) {
      if (t != nullptr && (t->buffer == nullptr || &t->buffer->backend() != this)) {
        Fail("opencl: {} reads or writes '{}', which is not in this backend's memory",
             OpName(node.op), t->name);
      }
    };
    check(node.out);
    for (const Tensor* t : node.src) check(t);
  }

  opencl::Device dev_;
  cl::Buffer scratch_;
  uint64_t scratch_bytes_ = 0;  // MATMUL's converted activations, grown as needed
};

}  // namespace

std::unique_ptr<Backend> CreateOpenclBackend(const BackendOptions&) {
  try {
    return std::make_unique<OpenclBackend>();
  } catch (const cl::Error& e) {
    Rethrow(e, "opening the device");
  }
}

}  // namespace dizuo
