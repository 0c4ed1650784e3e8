// Host-memory buffers for backends whose device memory is ordinary RAM (reference, cpu).
//
// Memory is 64-byte aligned (a cache line, and the widest SIMD register any kernel here uses) and
// zero-filled, so a cache or arena read before it is written holds zeros, never garbage.
#pragma once

#include <cstdint>

#include "backends/backend.h"

namespace dizuo {

inline constexpr uint64_t kHostAlignment = 64;

class HostBuffer final : public Buffer {
 public:
  // Throws dizuo::Error when `bytes` cannot be allocated.
  HostBuffer(Backend& backend, uint64_t bytes);
  ~HostBuffer() override;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  Backend& backend() const override { return backend_; }
  uint64_t size() const override { return size_; }
  void* host_data() const override { return data_; }

 private:
  Backend& backend_;
  uint64_t size_;
  void* data_;
};

// Backend::Upload / Download for tensors whose storage is host memory (`tensor.data` set).
void HostUpload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size);
void HostDownload(const Tensor& tensor, void* host, uint64_t offset, uint64_t size);

}  // namespace dizuo
