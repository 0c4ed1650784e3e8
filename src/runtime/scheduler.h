// The scheduler: runs a graph across the selected backend and a CPU fallback.
//
// Placement: each node runs on the selected backend when its Supports() says yes, otherwise on
// the fallback (the "cpu" backend, or "reference" when cpu is not built), and the fallback is
// recorded with a reason (the backend's WhyUnsupported, or its op and dtypes). Consecutive nodes
// on one backend form a segment, computed with one Backend::Compute call.
//
// Memory: every tensor the graph creates lives on the backend of its producer (inputs: of their
// first reader), in that backend's arena (liveness-based reuse, as in runtime/executor.h). When a
// node reads a tensor that its backend cannot address, the scheduler gives the backend a mirror
// in its own arena and copies the bytes in before the segment; host-memory backends read each
// other's tensors in place, so between them no copy is made. Tensors outside the graph are of two
// kinds, told apart by their storage:
//   - host memory outside any buffer (weights in the model file's mapping) is constant: read in
//     place by host-memory backends; uploaded to a device once, the first time a node placed
//     there reads it, and kept for the scheduler's lifetime;
//   - tensors in a buffer (the KV cache) are state: copied in for each segment elsewhere that
//     reads them, and copied back after a segment elsewhere writes them (STORE_KV).
// Graph inputs are written with Upload after Allocate and outputs read with Download after
// Compute, wherever they were placed.
//
// Profiling: with profiling on, every node is computed alone and synchronized, so its wall time
// is exact (at the cost of the overlap a backend gets from a whole segment); times add up per op
// type and backend, MATMULs also per weight type and shape, and copies are timed on their own.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"

namespace dizuo {

struct OpTiming {
  int64_t count = 0;   // node runs
  double seconds = 0;  // 0 unless profiling
};

// A MATMUL's weight and batch, the key of the profile's per-shape table: out[N,M] = x[K,M] ·
// w[K,N]ᵀ with w of `type`.
struct MatMulShape {
  std::string backend;
  DType type = DType::F32;
  int64_t k = 0, n = 0, m = 0;
  auto operator<=>(const MatMulShape&) const = default;
};

struct MatMulTiming : OpTiming {
  uint64_t weight_bytes = 0;  // of one run: the weight tensor's size
};

// Nodes that fell back, grouped by op, dtypes and reason.
struct FallbackGroup {
  Op op = Op::kAdd;
  std::string types;                  // "f32 · q4_K → f32": source dtypes, then the output's
  std::string reason;                 // "backend 'x' does not support MATMUL with q4_K weights"
  int64_t count = 0;                  // node runs
  std::vector<std::string> examples;  // a few node (output tensor) names
};

struct SchedulerProfile {
  std::string selected;  // backend names
  std::string fallback;  // empty until the fallback is first needed
  bool timed = false;    // per-node times were measured
  int64_t passes = 0;    // graphs computed
  int64_t nodes = 0;
  int64_t fallback_nodes = 0;
  // By (op, backend name).
  std::map<std::pair<Op, std::string>, OpTiming> ops;
  // MATMULs by backend, weight type and shape (only when timed).
  std::map<MatMulShape, MatMulTiming> matmuls;
  OpTiming copies;
  uint64_t copy_bytes = 0;
  uint64_t weight_upload_bytes = 0;  // constants uploaded to devices (once each)
  std::vector<FallbackGroup> fallbacks;

  double seconds() const;           // all nodes and copies
  double fallback_seconds() const;  // nodes on the fallback
  // The table `--profile` prints: per op type and backend the count, time and share of the
  // total, copies, the fallback list with reasons, then the MATMULs by weight type and shape with
  // the rate they read their weights at (GB/s) and computed (GFLOP/s).
  std::string Report() const;
  std::string MatMulReport(double total) const;  // the per-shape part of Report
};

class Scheduler {
 public:
  using BackendFactory = std::function<std::unique_ptr<Backend>()>;

  // `selected` must outlive the scheduler. `make_fallback` creates the fallback backend (host
  // memory, supporting every op) the first time it is needed; it may return nothing when
  // `selected` is itself that backend. The scheduler owns the fallback, the device copies of
  // constants and the arenas, so it must be destroyed after every tensor placed on them is
  // no longer used, and before `selected`.
  Scheduler(Backend& selected, BackendFactory make_fallback);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  Backend& selected() const { return selected_; }
  // The fallback backend (created now if it was not yet): `selected` when the factory gave none.
  Backend& fallback();
  // The backend for host-side data (weights views, a KV cache the selected backend cannot hold):
  // `selected` if its memory is host memory, else the fallback.
  Backend& host_backend();
  // Whether `backend` can hold a KV cache of this shape: host memory, or STORE_KV and ATTENTION
  // on a cache of `type` are supported.
  static bool CanHoldKvCache(const Backend& backend, DType type, int head_dim, int n_head,
                             int n_head_kv, int n_cells);

  void set_profiling(bool on) { profile_.timed = on; }
  const SchedulerProfile& profile() const { return profile_; }

  // Places the nodes, gives every storage-less tensor of `graph` its storage and plans the
  // copies. Invalidates the placements of earlier graphs. Throws dizuo::Error when no backend
  // supports a node or a device is out of memory.
  void Allocate(Graph& graph);
  // Runs an allocated graph: segments in order with their copies; waits for the last one.
  void Compute(const Graph& graph);

  // Host bytes into a graph input / out of a graph output, wherever they were placed.
  static void Upload(const Tensor& t, const void* host, uint64_t bytes);
  static void Download(const Tensor& t, void* host, uint64_t bytes);

 private:
  struct Copy {
    Tensor* from = nullptr;  // base tensors
    Tensor* to = nullptr;
    uint64_t begin = 0, end = 0;  // byte range of both
  };
  struct Segment {
    int backend = 0;  // index into backends_
    int64_t first = 0, last = 0;
    std::vector<Node> nodes;  // the graph's nodes with tensors replaced by this backend's mirrors
    std::vector<Copy> before, after;
  };
  struct DeviceConstant {
    std::unique_ptr<Buffer> buffer;
    Tensor tensor;
  };
  class Planner;

  // The device copy of constant `t` on backend `b`, uploading it the first time.
  Tensor* DeviceConstantOf(int b, Tensor* t);
  void RunCopy(const Copy& copy);
  void RecordFallback(const Node& node);

  Backend& selected_;
  BackendFactory make_fallback_;
  std::unique_ptr<Backend> fallback_;
  std::vector<Backend*> backends_;  // [selected, fallback once created]
  std::map<std::pair<int, const Tensor*>, DeviceConstant> constants_;
  std::vector<std::unique_ptr<Buffer>> arenas_;  // per backend
  std::vector<Segment> segments_;
  std::deque<Tensor> mirrors_;  // this graph's mirror tensors (stable addresses)
  std::vector<uint8_t> staging_;
  SchedulerProfile profile_;
};

}  // namespace dizuo
