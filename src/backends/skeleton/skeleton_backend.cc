// The skeleton backend. Each op has two marked places to fill: its case in Supports (say yes once
// the kernel exists, for exactly the dtypes and shapes it handles) and its case in ComputeNode
// (launch the kernel). Until then the node runs on the CPU and `--profile` lists it as a fallback.
//
// Memory is device-style on purpose: buffers are plain host allocations, but host_data() returns
// nullptr and host_memory is false, so nothing (kernels, the scheduler, the engine) can reach the
// bytes except through Upload/Download and (buffer, offset) addressing, exactly as on a discrete
// accelerator. Replace SkeletonBuffer's allocation and the two copies with the device's own
// calls. A chip that shares memory with the host (an SoC) may instead return the address from
// host_data() and set host_memory = true: its kernels may then read host tensors (the model
// file's mapping) in place and the scheduler inserts no copies between it and the CPU.
#include "backends/skeleton/skeleton_backend.h"

#include <cstring>
#include <new>

#include <fmt/format.h>

#include "core/error.h"

namespace dizuo {
namespace {

class SkeletonBuffer final : public Buffer {
 public:
  SkeletonBuffer(Backend& backend, uint64_t bytes) : backend_(backend), size_(bytes) {
    // Device memory starts zero-filled (the KV cache relies on it). Replace with the device's
    // allocator; throw dizuo::Error naming the device and the size when it fails.
    bytes_ = new (std::nothrow) uint8_t[bytes == 0 ? 1 : bytes]();
    if (bytes_ == nullptr) Fail("{}: cannot allocate {} bytes", DIZUO_SKELETON_NAME, bytes);
  }
  ~SkeletonBuffer() override { delete[] bytes_; }
  SkeletonBuffer(const SkeletonBuffer&) = delete;
  SkeletonBuffer& operator=(const SkeletonBuffer&) = delete;

  Backend& backend() const override { return backend_; }
  uint64_t size() const override { return size_; }
  void* host_data() const override { return nullptr; }  // device memory: not host-visible
  // The device address of a tensor's byte `offset` (what a kernel launch takes).
  uint8_t* device_address(uint64_t offset) const { return bytes_ + offset; }

 private:
  Backend& backend_;
  uint64_t size_;
  uint8_t* bytes_;
};

class SkeletonBackend final : public Backend {
 public:
  explicit SkeletonBackend(const BackendOptions&) {
    info_.name = DIZUO_SKELETON_NAME;
    info_.description = "skeleton backend (no op implemented; everything falls back to the CPU)";
    info_.host_memory = false;
    // Fill in what the device reports: memory_bytes, peak_flops_f32/f16, memory_bandwidth.
  }

  const DeviceInfo& device() const override { return info_; }

  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    return std::make_unique<SkeletonBuffer>(*this, bytes);
  }

  // Host → device copy (replace the memcpy with the device's DMA; it must be complete on return).
  void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) override {
    if (size == 0) return;
    std::memcpy(Locate(tensor, offset, size), host, size);
  }
  void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) override {
    if (size == 0) return;
    std::memcpy(host, Locate(tensor, offset, size), size);
  }

  // Say yes only for what ComputeNode implements, checking dtypes and shapes (and strides: views
  // may be non-contiguous). core/graph.h states each op's semantics; `dizuo check` grades it.
  bool Supports(const Node& node) const override {
    switch (node.op) {
      case Op::kGetRows:    // unimplemented: GET_ROWS (table dtypes: f32, f16, q8_0, q4_K, ...)
      case Op::kMatMul:     // unimplemented: MATMUL (weight dtypes, one by one; x and out f32)
      case Op::kAdd:        // unimplemented: ADD (f32; b broadcast over rows or same shape)
      case Op::kMul:        // unimplemented: MUL
      case Op::kScale:      // unimplemented: SCALE
      case Op::kRmsNorm:    // unimplemented: RMS_NORM (optional f32 weight)
      case Op::kRope:       // unimplemented: ROPE (normal and neox modes, optional freq factors)
      case Op::kGlu:        // unimplemented: GLU (silu, gelu_tanh)
      case Op::kAttention:  // unimplemented: ATTENTION (f16/f32 cache, GQA, softcap, window)
      case Op::kStoreKV:    // unimplemented: STORE_KV (f32 rows into an f16/f32 cache)
        return false;
    }
    return false;
  }

  // Optional: a reason for the fallback report. Once an op is partly implemented, say what is
  // missing ("MATMUL: q2_K weights not implemented").
  std::string WhyUnsupported(const Node& node) const override {
    return fmt::format("unimplemented: {} (skeleton)", OpName(node.op));
  }

  // Nodes arrive in graph order, a segment at a time; launch each (or fuse neighbours) on the
  // device's queue and return. Synchronize waits for the queue.
  void Compute(std::span<const Node> nodes) override {
    for (const Node& node : nodes) ComputeNode(node);
  }
  void Synchronize() override {}

 private:
  void ComputeNode(const Node& node) {
    // Operands: node.src[i] (nullptr when absent), result: node.out. Address them with
    // Locate(*tensor, 0, bytes): each lies in one of this backend's buffers (the scheduler
    // guarantees it).
    switch (node.op) {
      case Op::kGetRows:    // out[E,T] = table[E,V] rows ids[T]; check ids < V (throw otherwise)
      case Op::kMatMul:     // out[N,M] = x[K,M] · w[K,N]ᵀ with GGUF activation quantization
      case Op::kAdd:        // out = a + b
      case Op::kMul:        // out = a · b
      case Op::kScale:      // out = a · params.scale
      case Op::kRmsNorm:    // out = x / sqrt(mean(x²) + params.eps) [· weight]
      case Op::kRope:       // params.rope: rotate the first n_rot dims of each head
      case Op::kGlu:        // out = act(gate) · up, act = params.act
      case Op::kAttention:  // params.attention: masked softmax(q·kᵀ·scale)·v over the cache
      case Op::kStoreKV:    // cache cell cells[t] ← rows column t, converted to the cache dtype
        Fail("{}: unimplemented: {} for '{}' (Supports must say no until it is written)",
             DIZUO_SKELETON_NAME, OpName(node.op), node.out->name);
    }
  }

  // The bytes [offset, offset + size) of `tensor`, checked to lie in one of this backend's buffers.
  uint8_t* Locate(const Tensor& tensor, uint64_t offset, uint64_t size) const {
    if (tensor.buffer == nullptr || &tensor.buffer->backend() != this) {
      Fail("{}: tensor '{}' is not in a buffer of this backend", DIZUO_SKELETON_NAME, tensor.name);
    }
    const uint64_t end = tensor.offset + offset + size;
    if (end < size || end > tensor.buffer->size()) {
      Fail("{}: bytes [{}, {}) of tensor '{}' lie outside its buffer of {} bytes",
           DIZUO_SKELETON_NAME, tensor.offset + offset, end, tensor.name, tensor.buffer->size());
    }
    return static_cast<const SkeletonBuffer*>(tensor.buffer)
        ->device_address(tensor.offset + offset);
  }

  DeviceInfo info_;
};

}  // namespace

std::unique_ptr<Backend> CreateSkeletonBackend(const BackendOptions& options) {
  return std::make_unique<SkeletonBackend>(options);
}

}  // namespace dizuo
