// THE porting surface: the one header a chip vendor implements to run every dizuo model.
//
// A backend is a device plus kernels for the ops of core/graph.h (that header states each op's
// exact semantics). It owns buffers on its device, moves bytes to and from the host, says which
// nodes it supports, and computes segments of a graph (runs of consecutive nodes, so a backend with
// a graph compiler can fuse). Nodes it does not support run on the CPU; the scheduler inserts the
// copies and `--profile` lists what fell back and why. docs/PORTING.md walks through a port.
//
// The frozen surface is this header plus the three data-type headers it includes:
// core/dtype.h (element types, GGUF block layouts), core/tensor.h (Tensor) and core/graph.h
// (Op, OpParams, Node). Their functions live in the dizuo_core library. Any change to these four
// headers that a compiled backend could notice bumps kBackendApiVersion.
//
// Threading: dizuo calls a backend from one thread at a time (the engine's); a backend may use as
// many threads or queues inside as it likes. Failures throw dizuo::Error (core/error.h) with a
// message naming the device and what failed; a backend never aborts the process on bad input.
//
// Version history: 1 — initial op set (GET_ROWS, MATMUL, ADD, MUL, SCALE, RMS_NORM, ROPE, GLU,
// ATTENTION, STORE_KV); WhyUnsupported; the plug-in entry points below. 2 — GLU's output may
// share its gate input's storage (core/graph.h InPlaceSource): its kernel must be correct in place.
// 3 — PrepareWeight (weights repacked at load). 4 — PrepareWeight may make its copy in the
// background: it takes a `copied` callback; FinishPreparing waits for the copies. 5 — PrepareWeight
// takes a WeightCopy: tables that GET_ROWS reads too (get_rows) and the part_copied callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/graph.h"
#include "core/tensor.h"

namespace dizuo {

inline constexpr int kBackendApiVersion = 5;

// What the planner and reports need to know about a device. Unknown figures are 0.
struct DeviceInfo {
  std::string name;         // backend name, as given to --backend ("cpu", "reference", ...)
  std::string description;  // the device, in words ("AMD EPYC, 2 threads, AVX2")
  uint64_t memory_bytes = 0;
  double peak_flops_f32 = 0;  // FLOP/s
  double peak_flops_f16 = 0;
  double memory_bandwidth = 0;  // bytes/s
  // Buffers are host memory: Tensor::data is a valid host address, and this backend's kernels can
  // also read any host-visible tensor (the model file's mapping, other host backends' buffers)
  // without a copy. False for device memory: kernels see only this backend's buffers.
  bool host_memory = false;
};

class Backend;

// A block of device memory. Tensors point into it by offset (and by address when host-visible).
// Owned by whoever called Backend::Allocate; freed by its destructor, always before the backend.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual Backend& backend() const = 0;
  virtual uint64_t size() const = 0;
  // Host address of the first byte, or nullptr when device memory is not host-visible.
  virtual void* host_data() const = 0;
};

// How the caller of Backend::PrepareWeight reads a weight, and when it may let the memory of the
// original go (a weight in a file's mapping: its pages are read again from the file if touched).
struct WeightCopy {
  // GET_ROWS reads the weight too, as its table: an embedding table that is also the output
  // layer. The backend then returns a copy only if GET_ROWS can read rows from it as well.
  bool get_rows = false;
  // Called once, on any thread, when the copy is complete and no Compute reads the original for it
  // any more. Not called if the buffer is destroyed before the copy is complete.
  std::function<void()> copied;
  // Optional: called on any thread as the copy is made, for each part of the original it has been
  // made from (byte offset from weight.data, size). Compute may read those bytes until the copy
  // is complete, so only memory that gives its bytes back when touched again (a file's mapping)
  // may be let go here; then a large weight and its copy are not both in memory at once.
  std::function<void(uint64_t offset, uint64_t size)> part_copied;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Required. Stable for the backend's lifetime.
  virtual const DeviceInfo& device() const = 0;

  // Required. `bytes` of zero-filled device memory (0 is valid and yields a usable buffer). Throws
  // dizuo::Error when the device is out of memory.
  virtual std::unique_ptr<Buffer> Allocate(uint64_t bytes) = 0;
  // Required. Copy `size` bytes between host memory and `tensor`'s storage at byte `offset` from
  // the tensor's start; the tensor lives in a buffer of this backend. Both return only when the
  // copy is complete and are ordered after all work submitted before them.
  virtual void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) = 0;
  virtual void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) = 0;

  // Required. Whether this backend computes `node`: its op, params, dtypes, shapes and strides.
  // Must not depend on where the tensors live or on their contents, must be cheap (called once per
  // node per forward pass) and must not throw. Saying no is always safe: the node then runs on the
  // CPU. Saying yes promises results within the thresholds of `dizuo check`.
  virtual bool Supports(const Node& node) const = 0;
  // Optional. Why `node` is not supported, in words, for the fallback report ("q2_K weights are
  // not implemented"). Empty (the default): the report names the op and dtypes instead.
  virtual std::string WhyUnsupported(const Node& node) const {
    (void)node;
    return {};
  }
  // Required. Computes `nodes` in order. Every node is supported and all of its tensors live in
  // this backend's buffers (or host memory, for host-memory backends). STORE_KV writes its cache in
  // place; every other node writes only its `out` (for GLU that may be its gate input's storage,
  // core/graph.h). May return before the work is done; Synchronize waits for it. Bad index inputs
  // (ids, cells) throw dizuo::Error here or from Synchronize.
  virtual void Compute(std::span<const Node> nodes) = 0;
  // Optional for backends whose Compute is synchronous. Waits for all submitted work.
  virtual void Synchronize() {}

  // Optional, for host-memory backends: weights repacked at load. The model offers each weight
  // that nodes read only as MATMUL's src[1] (or, with options.get_rows, as GET_ROWS' src[0] too)
  // once, before computing with it. The backend may return a buffer that will hold a copy of
  // `weight` in a layout of its own kernels' choosing; until that buffer is destroyed, Compute
  // reads the copy instead for MATMUL nodes whose weight (and, with get_rows, GET_ROWS nodes whose
  // table) has the same data address, type and shape, once the copy is complete. The copy may be
  // made after PrepareWeight returns (in the background); until it is complete, Compute reads the
  // original, so the caller keeps the original's bytes as they are (see WeightCopy for when it
  // may let their memory go). The tensor itself is unchanged, so anything else reading it sees
  // its original bytes; the caller keeps the buffer as long as the weight is used.
  // nullptr (the default): no copy, the weight is read where it is, and no callback is called.
  virtual std::unique_ptr<Buffer> PrepareWeight(const Tensor& weight, WeightCopy options = {}) {
    (void)weight;
    (void)options;
    return nullptr;
  }
  // Optional: waits until every copy PrepareWeight started is complete (and its `copied` called).
  virtual void FinishPreparing() {}
};

struct BackendOptions {
  int threads = 0;  // 0: one per core
};

// A string that differs when a plug-in and dizuo were compiled with a different compiler, C++
// standard library ABI or layout of the types above: C++ classes cross the plug-in boundary, so
// they must agree exactly. Compared by the loader besides kBackendApiVersion.
inline const char* BackendAbiSignature() {
#define DIZUO_STR2(x) #x
#define DIZUO_STR(x) DIZUO_STR2(x)
  static const std::string signature = "api " + std::to_string(kBackendApiVersion) +
#if defined(__clang__)
                                       " clang " __clang_version__
#elif defined(__GNUC__)
                                       " gcc " DIZUO_STR(__GNUC__) "." DIZUO_STR(__GNUC_MINOR__)
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI)
                                       " cxx11abi " DIZUO_STR(_GLIBCXX_USE_CXX11_ABI)
#endif
                                       + " tensor " + std::to_string(sizeof(Tensor)) + " node " +
                                       std::to_string(sizeof(Node)) + " device " +
                                       std::to_string(sizeof(DeviceInfo)) + " options " +
                                       std::to_string(sizeof(BackendOptions));
#undef DIZUO_STR
#undef DIZUO_STR2
  return signature.c_str();
}

}  // namespace dizuo

// Plug-ins: a shared library that dizuo loads with `--backend-lib PATH` exports these C symbols.
// DIZUO_BACKEND_PLUGIN("name", Factory) defines all of them in one line, where Factory is
// `std::unique_ptr<dizuo::Backend> Factory(const dizuo::BackendOptions&)`.
//   int dizuo_backend_api_version()     kBackendApiVersion the library was compiled against
//   const char* dizuo_backend_abi()     BackendAbiSignature() of the library
//   const char* dizuo_backend_name()    the name --backend selects it by
//   dizuo::Backend* dizuo_create_backend(const dizuo::BackendOptions*)
//                                       a new backend, owned by the caller; throws dizuo::Error
//                                       when the device cannot be used
// dizuo deletes the backend through its virtual destructor, whose code (and operator delete) is
// the library's own, so the library frees what it allocated. The library stays loaded until the
// process exits.
#define DIZUO_BACKEND_PLUGIN(NAME, FACTORY)                                                 \
  extern "C" __attribute__((visibility("default"))) int dizuo_backend_api_version() {       \
    return ::dizuo::kBackendApiVersion;                                                     \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) const char* dizuo_backend_abi() {       \
    return ::dizuo::BackendAbiSignature();                                                  \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) const char* dizuo_backend_name() {      \
    return NAME;                                                                            \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) ::dizuo::Backend* dizuo_create_backend( \
      const ::dizuo::BackendOptions* options) {                                             \
    return FACTORY(*options).release();                                                     \
  }
