#include "runtime/executor.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dizuo {
namespace {

bool HasStorage(const Tensor& t) { return t.buffer != nullptr || t.data != nullptr; }
Tensor* Base(Tensor* t) { return t->view_of ? t->view_of : t; }

uint64_t AlignUp(uint64_t n) {
  return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

// First-fit allocator over [0, end) with coalescing free blocks; the arena grows at its end.
class FreeList {
 public:
  uint64_t Take(uint64_t bytes) {
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < bytes) continue;
      const uint64_t offset = it->first;
      const uint64_t rest = it->second - bytes;
      free_.erase(it);
      if (rest > 0) free_.emplace(offset + bytes, rest);
      return offset;
    }
    // No block fits: grow, starting inside a free block that ends at the current end.
    uint64_t offset = end_;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == end_) {
        offset = last->first;
        free_.erase(last);
      }
    }
    end_ = offset + bytes;
    high_water_ = std::max(high_water_, end_);
    return offset;
  }

  void Give(uint64_t offset, uint64_t bytes) {
    auto [it, inserted] = free_.emplace(offset, bytes);
    DZ_ASSERT(inserted);
    auto next = std::next(it);
    if (next != free_.end() && offset + bytes == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
  }

  uint64_t high_water() const { return high_water_; }

 private:
  std::map<uint64_t, uint64_t> free_;  // offset → size
  uint64_t end_ = 0;
  uint64_t high_water_ = 0;
};

// Greedy by size (the offline planner of TFLite's arena, among others): the largest slot first,
// each at the lowest offset where it fits between the slots already placed that are live at the
// same time. A slot and the heirs that take its bytes over are placed as one, over their joint
// interval. Writes every slot's offset to offsets[] and returns the arena size.
uint64_t PackBySize(std::span<const ArenaSlot> slots, std::vector<uint64_t>& offsets) {
  const size_t n = slots.size();
  std::vector<size_t> root(n);
  std::vector<int64_t> first(n), last(n);
  for (size_t s = 0; s < n; ++s) {
    size_t r = s;
    while (slots[r].takes_over >= 0) r = static_cast<size_t>(slots[r].takes_over);
    root[s] = r;
    first[s] = slots[s].first;
    last[s] = slots[s].last;
  }
  for (size_t s = 0; s < n; ++s) {
    first[root[s]] = std::min(first[root[s]], slots[s].first);
    last[root[s]] = std::max(last[root[s]], slots[s].last);
  }
  std::vector<size_t> order;
  for (size_t s = 0; s < n; ++s) {
    if (root[s] == s) order.push_back(s);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return slots[a].bytes != slots[b].bytes ? slots[a].bytes > slots[b].bytes : first[a] < first[b];
  });
  std::vector<uint64_t> at(n, 0);
  std::vector<size_t> placed;
  std::vector<std::pair<uint64_t, uint64_t>> busy;  // [begin, end) of live placed slots
  uint64_t size = 0;
  for (size_t g : order) {
    busy.clear();
    for (size_t p : placed) {
      if (first[p] <= last[g] && first[g] <= last[p])
        busy.emplace_back(at[p], at[p] + slots[p].bytes);
    }
    std::sort(busy.begin(), busy.end());
    uint64_t offset = 0;
    for (const auto& [b, e] : busy) {
      if (b >= offset + slots[g].bytes) break;  // the gap before this slot fits
      offset = std::max(offset, e);
    }
    at[g] = offset;
    size = std::max(size, offset + slots[g].bytes);
    placed.push_back(g);
  }
  for (size_t s = 0; s < n; ++s) offsets[s] = at[root[s]];
  return size;
}

// First-fit in node order: before node i runs, its outputs get memory; after it, tensors it was
// the last reader of give theirs back (never before, so a node never overwrites its own inputs).
uint64_t PackInNodeOrder(std::span<ArenaSlot> slots, int64_t end) {
  std::vector<std::vector<size_t>> starts(end + 1), ends(end + 1);
  for (size_t s = 0; s < slots.size(); ++s) {
    DZ_ASSERT(slots[s].first >= -1 && slots[s].first < end && slots[s].last <= end);
    starts[slots[s].first + 1].push_back(s);
    if (slots[s].last < end) ends[slots[s].last].push_back(s);
  }
  FreeList arena;
  std::vector<uint64_t> held(slots.size(), 0);  // bytes a slot returns when it ends
  std::vector<bool> handed_on(slots.size(), false);
  for (int64_t step = 0; step <= end; ++step) {  // step i + 1 is node i; step 0 is the start
    for (size_t s : starts[step]) {
      ArenaSlot& slot = slots[s];
      if (slot.takes_over < 0) {
        slot.offset = arena.Take(slot.bytes);
        held[s] = slot.bytes;
        continue;
      }
      const auto from = static_cast<size_t>(slot.takes_over);
      DZ_ASSERT(from < slots.size() && from != s && slots[from].last == slot.first &&
                slots[from].first < slot.first && held[from] >= slot.bytes && !handed_on[from]);
      slot.offset = slots[from].offset;
      held[s] = held[from];
      handed_on[from] = true;
    }
    if (step == 0) continue;
    for (size_t s : ends[step - 1]) {
      if (!handed_on[s]) arena.Give(slots[s].offset, held[s]);
    }
  }
  return arena.high_water();
}

}  // namespace

uint64_t PackSlots(std::span<ArenaSlot> slots, int64_t end) {
  const uint64_t in_order = PackInNodeOrder(slots, end);
  // Node order leaves holes where a large slot starts while smaller ones hold the bytes below it
  // (llama 1b, pp512: 44 MiB against 40 by size, the FFN's two 16 MiB outputs). Smaller arenas
  // (generation steps: Gemma 3's holds its 1 MiB of logits) keep node order: the size order costs
  // O(slots²) per plan, and a generation step plans once per token.
  if (in_order < kPackBySizeFrom) return in_order;
  std::vector<uint64_t> offsets(slots.size());
  const uint64_t by_size = PackBySize(slots, offsets);
  if (by_size >= in_order) return in_order;
  for (size_t s = 0; s < slots.size(); ++s) slots[s].offset = offsets[s];
  return by_size;
}

ArenaPlan PlanArena(Graph& graph) {
  const auto& nodes = graph.nodes();
  const int64_t end = static_cast<int64_t>(nodes.size());

  // Base tensors to place, with their live interval.
  std::unordered_map<Tensor*, size_t> index;
  ArenaPlan plan;
  for (Tensor& t : graph.tensors()) {
    if (t.view_of != nullptr || HasStorage(t)) continue;
    index.emplace(&t, plan.slots.size());
    // Until a producer or reader says otherwise, a tensor is live for the whole graph (inputs,
    // and tensors no node touches).
    plan.slots.push_back({&t, 0, AlignUp(std::max<uint64_t>(t.bytes(), 1)), -1, end});
  }
  std::vector<bool> produced(plan.slots.size(), false);
  std::vector<int64_t> last_use(plan.slots.size(), -1);
  auto slot_of = [&](Tensor* t) -> int64_t {
    auto it = index.find(Base(t));
    return it == index.end() ? -1 : static_cast<int64_t>(it->second);
  };
  for (int64_t i = 0; i < end; ++i) {
    const Node& node = nodes[i];
    if (int64_t s = slot_of(node.out); s >= 0) {
      if (!produced[s]) plan.slots[s].first = i;
      produced[s] = true;
      last_use[s] = std::max(last_use[s], i);
    }
    for (Tensor* src : node.src) {
      if (src == nullptr) continue;
      if (int64_t s = slot_of(src); s >= 0) last_use[s] = std::max(last_use[s], i);
    }
  }
  std::vector<bool> pinned(plan.slots.size(), false);
  for (Tensor* t : graph.inputs()) {
    if (int64_t s = slot_of(t); s >= 0) pinned[s] = true;
  }
  for (Tensor* t : graph.outputs()) {
    if (int64_t s = slot_of(t); s >= 0) pinned[s] = true;
  }
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    ArenaSlot& slot = plan.slots[s];
    if (!produced[s] || pinned[s]) {
      // Inputs, outputs and tensors nothing produces: live from the start or their producer to
      // the end.
      if (!produced[s]) slot.first = -1;
      slot.last = end;
    } else {
      slot.last = last_use[s];
    }
  }

  // Outputs written in place over a source no later node reads.
  for (int64_t i = 0; i < end; ++i) {
    Tensor* src = InPlaceSource(nodes[i]);
    if (src == nullptr || nodes[i].out->view_of != nullptr) continue;
    const int64_t from = slot_of(src);
    const int64_t to = slot_of(nodes[i].out);
    if (from < 0 || to < 0 || !produced[from] || pinned[from]) continue;
    ArenaSlot& heir = plan.slots[to];
    const ArenaSlot& source = plan.slots[from];
    if (source.last == i && heir.first == i && source.bytes >= heir.bytes) heir.takes_over = from;
  }
  plan.bytes = PackSlots(plan.slots, end);
  return plan;
}

void Executor::Allocate(Graph& graph) {
  const ArenaPlan plan = PlanArena(graph);
  arena_bytes_ = plan.bytes;
  if (capacity_bytes() < plan.bytes) {
    buffer_.reset();  // release first: the old and new arenas need not coexist
    buffer_ = backend_.Allocate(plan.bytes);
  }
  char* host = static_cast<char*>(buffer_ ? buffer_->host_data() : nullptr);
  for (const ArenaSlot& slot : plan.slots) {
    slot.tensor->buffer = buffer_.get();
    slot.tensor->offset = slot.offset;
    slot.tensor->data = host ? host + slot.offset : nullptr;
  }
  // A view built before its base had storage holds its offset relative to the base.
  for (Tensor& t : graph.tensors()) {
    if (t.view_of == nullptr || HasStorage(t)) continue;
    const Tensor& base = *t.view_of;
    DZ_ASSERT(HasStorage(base));
    const uint64_t relative = t.offset;
    t.buffer = base.buffer;
    t.offset = base.offset + relative;
    t.data = base.data ? static_cast<char*>(base.data) + relative : nullptr;
  }
}

void Executor::Compute(const Graph& graph) {
  backend_.Compute(graph.nodes());
  backend_.Synchronize();
}

}  // namespace dizuo
