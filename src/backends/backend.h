// THE porting surface: what a chip vendor implements to run every dizuo model.
//
// A backend is a device plus kernels for the ops in core/graph.h. It owns buffers on its device,
// moves bytes to and from the host, says which nodes it supports, and computes segments of a graph
// (a contiguous run of nodes, so a backend with a graph compiler can fuse). Nodes it does not
// support run elsewhere (the CPU), and a report shows what fell back.
//
// Version history: 1 — initial op set (GET_ROWS, MATMUL, ADD, MUL, SCALE, RMS_NORM, ROPE, GLU,
// ATTENTION, STORE_KV).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/tensor.h"

namespace dizuo {

inline constexpr int kBackendApiVersion = 1;

// What the planner and reports need to know about a device. Unknown figures are 0.
struct DeviceInfo {
  std::string name;         // backend name, as given to --backend ("cpu", "reference", ...)
  std::string description;  // the device, in words ("AMD EPYC, 2 threads, AVX2")
  uint64_t memory_bytes = 0;
  double peak_flops_f32 = 0;  // FLOP/s
  double peak_flops_f16 = 0;
  double memory_bandwidth = 0;  // bytes/s
  bool host_memory = false;     // buffers are host memory: Tensor::data is a valid host address
};

class Backend;

// A block of device memory. Tensors point into it by offset (and by address when host-visible).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual Backend& backend() const = 0;
  virtual uint64_t size() const = 0;
  // Host address of the first byte, or nullptr when device memory is not host-visible.
  virtual void* host_data() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const DeviceInfo& device() const = 0;

  // Allocates `bytes` of device memory. Throws dizuo::Error when the device is out of memory.
  virtual std::unique_ptr<Buffer> Allocate(uint64_t bytes) = 0;
  // Copies `size` bytes between host memory and `tensor`'s storage at byte `offset` from its start.
  // The tensor lives in a buffer of this backend.
  virtual void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) = 0;
  virtual void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) = 0;

  // Whether this backend computes `node` (its op, dtypes and shapes).
  virtual bool Supports(const Node& node) const = 0;
  // Computes `nodes` in order. Every node is supported and all of its tensors live in this
  // backend's buffers (or host memory, for host-memory backends). May return before the work is
  // done; Synchronize waits for it.
  virtual void Compute(std::span<const Node> nodes) = 0;
  virtual void Synchronize() {}
};

struct BackendOptions {
  int threads = 0;  // 0: one per core
};

// Creates the backend registered under `name`. Throws dizuo::Error listing the available ones when
// `name` is unknown or its device cannot be used.
std::unique_ptr<Backend> CreateBackend(const std::string& name, const BackendOptions& options);
std::vector<std::string> BackendNames();

}  // namespace dizuo
