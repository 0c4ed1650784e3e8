// Places a graph's tensors in one backend buffer and runs the graph on that backend.
//
// Allocate gives storage to every tensor the graph created that has none yet: inputs and node
// outputs get a slot in one arena; views take their base's storage plus their offset. Tensors
// that already have storage (weights, KV caches, tensors of an earlier Allocate) are left alone.
// An intermediate's memory is reused once its last reader has run (liveness over node order,
// first-fit, 64-byte aligned slots); a node that may write over a source (core/graph.h
// InPlaceSource) gets that source's slot when no later node reads it. Graph inputs and outputs are
// never reused, so inputs can be uploaded before Compute and outputs downloaded after it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"

namespace dizuo {

inline constexpr uint64_t kArenaAlignment = 64;

// Where one base tensor lives in the arena and the node interval during which it is live:
// from `first` (the producing node, or -1 for inputs) to `last` (its last reader, or the node
// count for inputs and outputs), inclusive.
struct ArenaSlot {
  Tensor* tensor = nullptr;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  int64_t first = 0;
  int64_t last = 0;
  // Index (in the same list) of a slot whose bytes this one takes over when it starts, or -1:
  // that slot's last node is this one's first (the node writes in place over a source it reads
  // last, core/graph.h InPlaceSource) and it is at least as large.
  int64_t takes_over = -1;
};

struct ArenaPlan {
  std::vector<ArenaSlot> slots;
  uint64_t bytes = 0;  // arena size the slots need
};

// Gives every slot an offset such that slots whose live intervals [first, last] overlap never
// share bytes, except that a slot with `takes_over` starts at that slot's offset. `end` is the
// node count; `first` is in [-1, end) and `last` in [first, end]. Returns the arena size: the
// smaller of first-fit in node order (memory returned after a slot's last node) and, for arenas
// of kPackBySizeFrom bytes or more, placement by decreasing size.
inline constexpr uint64_t kPackBySizeFrom = uint64_t{8} << 20;
uint64_t PackSlots(std::span<ArenaSlot> slots, int64_t end);

// Plans the arena for `graph` without touching any tensor.
ArenaPlan PlanArena(Graph& graph);

class Executor {
 public:
  explicit Executor(Backend& backend) : backend_(backend) {}

  // Gives every storage-less tensor of `graph` its place (see above). The arena buffer is kept
  // across calls and replaced by a larger one only when a graph needs more, which invalidates the
  // placements of earlier graphs. Throws dizuo::Error when the device is out of memory.
  void Allocate(Graph& graph);
  // Runs every node of an allocated graph on the backend and waits for it.
  void Compute(const Graph& graph);

  Backend& backend() const { return backend_; }
  // Bytes the last allocated graph needed, and the size of the buffer held.
  uint64_t arena_bytes() const { return arena_bytes_; }
  uint64_t capacity_bytes() const { return buffer_ ? buffer_->size() : 0; }

 private:
  Backend& backend_;
  std::unique_ptr<Buffer> buffer_;
  uint64_t arena_bytes_ = 0;
};

}  // namespace dizuo
