#include "backends/host_buffer.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace dizuo {

HostBuffer::HostBuffer(Backend& backend, uint64_t bytes) : backend_(backend), size_(bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment; a zero-byte buffer still gets
  // one line so host_data() is a valid address.
  const uint64_t rounded =
      bytes == 0 ? kHostAlignment : (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  if (rounded < bytes) Fail("host buffer: {} bytes is too large", bytes);
  data_ = std::aligned_alloc(kHostAlignment, rounded);
  if (data_ == nullptr) {
    Fail("host buffer: cannot allocate {} bytes ({:.1f} MiB)", bytes,
         static_cast<double>(bytes) / (1024.0 * 1024.0));
  }
  std::memset(data_, 0, rounded);
}

HostBuffer::~HostBuffer() { std::free(data_); }

void HostUpload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) {
  DZ_ASSERT(tensor.data != nullptr);
  DZ_ASSERT(!tensor.contiguous() || offset + size <= tensor.bytes());
  if (size == 0) return;
  std::memcpy(static_cast<char*>(tensor.data) + offset, host, size);
}

void HostDownload(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) {
  DZ_ASSERT(tensor.data != nullptr);
  DZ_ASSERT(!tensor.contiguous() || offset + size <= tensor.bytes());
  if (size == 0) return;
  std::memcpy(host, static_cast<const char*>(tensor.data) + offset, size);
}

}  // namespace dizuo
