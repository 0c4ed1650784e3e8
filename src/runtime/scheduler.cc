#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.h"
#include "runtime/executor.h"

namespace dizuo {
namespace {

using Clock = std::chrono::steady_clock;

bool HasStorage(const Tensor& t) { return t.buffer != nullptr || t.data != nullptr; }
Tensor* Base(Tensor* t) { return t->view_of ? t->view_of : t; }
uint64_t AlignUp(uint64_t n) {
  return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}
double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Byte offset of view `t` from the start of its base (before or after storage is assigned).
uint64_t RelativeOffset(const Tensor* t) {
  if (t->view_of == nullptr) return 0;
  const Tensor& base = *t->view_of;
  if (!HasStorage(*t)) return t->offset;  // a graph view not placed yet holds its relative offset
  if (t->data != nullptr && base.data != nullptr) {
    return static_cast<uint64_t>(static_cast<const char*>(t->data) -
                                 static_cast<const char*>(base.data));
  }
  return t->offset - base.offset;
}

// Bytes from a tensor's first byte to one past its last (strided views included).
uint64_t SpanBytes(const Tensor* t) {
  uint64_t span = t->row_bytes();
  for (int d = 1; d < kMaxDims; ++d) span += static_cast<uint64_t>(t->ne[d] - 1) * t->nb[d];
  return span;
}

std::string TypesOf(const Node& node) {
  std::string types;
  for (const Tensor* t : node.src) {
    if (t == nullptr) continue;
    types += fmt::format("{}{}", types.empty() ? "" : " · ", Name(t->type));
  }
  return fmt::format("{} → {}", types, Name(node.out->type));
}

std::string DefaultReason(const Backend& backend, const Node& node) {
  const std::string& name = backend.device().name;
  switch (node.op) {
    case Op::kMatMul:
      return fmt::format("backend '{}' does not support MATMUL with {} weights", name,
                         Name(node.src[1]->type));
    case Op::kGetRows:
      return fmt::format("backend '{}' does not support GET_ROWS from a {} table", name,
                         Name(node.src[0]->type));
    case Op::kAttention:
      return fmt::format("backend '{}' does not support ATTENTION over a {} cache", name,
                         Name(node.src[1]->type));
    case Op::kStoreKV:
      return fmt::format("backend '{}' does not support STORE_KV into a {} cache", name,
                         Name(node.out->type));
    default:
      return fmt::format("backend '{}' does not support {} ({})", name, OpName(node.op),
                         TypesOf(node));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Planning one graph.

class Scheduler::Planner {
 public:
  Planner(Scheduler& s, Graph& graph) : s_(s), graph_(graph), nodes_(graph.nodes()) {}

  void Run() {
    Place();
    FindGraphTensors();
    BuildSegments();
    AssignStorage();
  }

 private:
  // A base tensor's copy on one backend.
  struct Mirror {
    Tensor* tensor = nullptr;
    int64_t first = 0, last = 0;              // live interval in node indices
    uint64_t valid_begin = 0, valid_end = 0;  // bytes that hold current contents
  };
  struct Key {
    const Tensor* t;
    int b;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<const void*>()(k.t) * 31 + static_cast<size_t>(k.b);
    }
  };

  int64_t end() const { return static_cast<int64_t>(nodes_.size()); }
  Backend& backend(int b) const { return *s_.backends_[static_cast<size_t>(b)]; }

  void Place() {
    placement_.resize(nodes_.size());
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const Node& node = nodes_[i];
      if (s_.selected_.Supports(node)) {
        placement_[i] = 0;
        continue;
      }
      Backend& fallback = s_.fallback();
      if (&fallback == &s_.selected_ || !fallback.Supports(node)) {
        Fail("no backend supports {} '{}' ({}): {}", OpName(node.op), node.out->name, TypesOf(node),
             DefaultReason(s_.selected_, node));
      }
      placement_[i] = 1;
      s_.RecordFallback(node);
    }
    s_.profile_.nodes += end();
  }

  // Tensors the graph created that need storage, with their home backend: the producer's, else
  // the first reader's.
  void FindGraphTensors() {
    for (Tensor& t : graph_.tensors()) {
      if (t.view_of == nullptr && !HasStorage(t)) home_.emplace(&t, -1);
    }
    for (int64_t i = 0; i < end(); ++i) {
      auto it = home_.find(Base(nodes_[i].out));
      if (it != home_.end() && !produced_.contains(it->first)) {
        it->second = placement_[i];
        produced_.emplace(it->first, i);
      }
    }
    for (int64_t i = 0; i < end(); ++i) {
      for (Tensor* src : nodes_[i].src) {
        if (src == nullptr) continue;
        auto it = home_.find(Base(src));
        if (it == home_.end()) continue;
        if (it->second < 0) it->second = placement_[i];
        last_read_[it->first] = std::max(last_read_[it->first], i);
      }
    }
    for (auto& [t, home] : home_) home = std::max(home, 0);
  }

  bool HostVisible(const Tensor* base) const {
    auto it = home_.find(base);
    if (it != home_.end()) return backend(it->second).device().host_memory;
    return base->data != nullptr;
  }
  // Whether a node on backend `b` addresses `base` where it lives.
  bool Direct(const Tensor* base, int b) const {
    if (backend(b).device().host_memory && HostVisible(base)) return true;
    auto it = home_.find(base);
    if (it != home_.end()) return it->second == b;
    return base->buffer != nullptr && &base->buffer->backend() == &backend(b);
  }
  bool IsConstant(const Tensor* base) const {
    return !home_.contains(base) && base->buffer == nullptr;
  }

  // The tensor a node on backend `b` uses for `t` in segment `seg` (`write`: the node's output).
  Tensor* Local(Tensor* t, int b, Segment& seg, int64_t i, bool write) {
    Tensor* base = Base(t);
    if (Direct(base, b)) return t;
    Tensor* local_base = nullptr;
    if (IsConstant(base)) {
      DZ_ASSERT(!write);
      local_base = s_.DeviceConstantOf(b, base);
    } else {
      auto [it, added] = mirrors_.try_emplace(Key{base, b});
      Mirror& m = it->second;
      if (added) {
        Tensor& copy = s_.mirrors_.emplace_back(*base);
        copy.buffer = nullptr;
        copy.data = nullptr;
        copy.offset = 0;
        copy.view_of = nullptr;
        m.tensor = &copy;
        m.first = seg.first;
        mirror_order_.push_back(Key{base, b});
      }
      m.last = std::max(m.last, write ? seg.last : i);
      // Bytes this use needs current: the view's span; a write (STORE_KV updates cells in place)
      // needs the whole tensor, which it then copies back.
      const bool graph_tensor = home_.contains(base);
      uint64_t begin = 0, span_end = base->bytes();
      if (!graph_tensor && !write) {
        begin = RelativeOffset(t);
        span_end = begin + SpanBytes(t);
      }
      if (begin < m.valid_begin || span_end > m.valid_end || m.valid_end == 0) {
        const uint64_t from = m.valid_end == 0 ? begin : std::min(begin, m.valid_begin);
        const uint64_t to = m.valid_end == 0 ? span_end : std::max(span_end, m.valid_end);
        seg.before.push_back({base, m.tensor, from, to});
        m.valid_begin = from;
        m.valid_end = to;
      }
      if (write) seg.after.push_back({m.tensor, base, 0, base->bytes()});
      local_base = m.tensor;
    }
    if (t == base) return local_base;
    auto [it, added] = view_mirrors_.try_emplace(Key{t, b});
    if (added) {
      Tensor& view = s_.mirrors_.emplace_back(*t);
      view.view_of = local_base;
      view.buffer = nullptr;
      view.data = nullptr;
      view.offset = RelativeOffset(t);  // relative until the base has storage
      it->second = &view;
      pending_views_.push_back(&view);
    }
    return it->second;
  }

  // A write to `base` on backend `b` makes its copies elsewhere stale.
  void Invalidate(const Tensor* base, int b) {
    for (int c = 0; c < static_cast<int>(s_.backends_.size()); ++c) {
      if (c == b) continue;
      auto it = mirrors_.find(Key{base, c});
      if (it != mirrors_.end()) it->second.valid_begin = it->second.valid_end = 0;
    }
  }

  void BuildSegments() {
    s_.segments_.clear();
    for (int64_t i = 0; i < end(); ++i) {
      if (i == 0 || placement_[i] != placement_[i - 1]) {
        Segment seg;
        seg.backend = placement_[i];
        seg.first = i;
        seg.last = i;
        while (seg.last + 1 < end() && placement_[seg.last + 1] == seg.backend) ++seg.last;
        s_.segments_.push_back(std::move(seg));
      }
      Segment& seg = s_.segments_.back();
      const int b = seg.backend;
      Node node = nodes_[i];
      for (Tensor*& src : node.src) {
        if (src != nullptr) src = Local(src, b, seg, i, false);
      }
      node.out = Local(node.out, b, seg, i, true);
      Invalidate(Base(nodes_[i].out), b);
      seg.nodes.push_back(node);
    }
  }

  // A node that may write over its source (core/graph.h InPlaceSource) gets the source's slot when
  // no later node reads the source, the node runs where both tensors live, and the source is not
  // a graph input or output. `slots`: each backend's graph tensors, before the mirrors.
  void TakeOverInPlaceSources(std::vector<std::vector<ArenaSlot>>& slots) const {
    std::unordered_map<const Tensor*, std::pair<int, size_t>> where;
    for (size_t b = 0; b < slots.size(); ++b) {
      for (size_t s = 0; s < slots[b].size(); ++s) {
        where.emplace(slots[b][s].tensor, std::pair{static_cast<int>(b), s});
      }
    }
    for (int64_t i = 0; i < end(); ++i) {
      const Tensor* src = InPlaceSource(nodes_[i]);
      const Tensor* out = nodes_[i].out;
      if (src == nullptr || out->view_of != nullptr) continue;
      auto from = where.find(src);
      auto to = where.find(out);
      if (from == where.end() || to == where.end()) continue;
      const int b = placement_[static_cast<size_t>(i)];
      if (from->second.first != b || to->second.first != b) continue;
      std::vector<ArenaSlot>& list = slots[static_cast<size_t>(b)];
      const ArenaSlot& source = list[from->second.second];
      ArenaSlot& heir = list[to->second.second];
      if (source.first >= 0 && source.first < i && source.last == i && heir.first == i &&
          source.bytes >= heir.bytes) {
        heir.takes_over = static_cast<int64_t>(from->second.second);
      }
    }
  }

  void AssignStorage() {
    const int n_backends = static_cast<int>(s_.backends_.size());
    std::vector<std::vector<ArenaSlot>> slots(static_cast<size_t>(n_backends));
    std::unordered_set<const Tensor*> pinned(graph_.inputs().begin(), graph_.inputs().end());
    for (Tensor* t : graph_.outputs()) pinned.insert(Base(t));
    for (Tensor& t : graph_.tensors()) {  // creation order: deterministic plans
      auto it = home_.find(&t);
      if (it == home_.end()) continue;
      auto produced = produced_.find(&t);
      auto read = last_read_.find(&t);
      int64_t first = produced == produced_.end() ? -1 : produced->second;
      int64_t last = read == last_read_.end() ? first : std::max(first, read->second);
      if (first < 0 || pinned.contains(&t)) last = end();
      if (first < 0) first = -1;
      slots[static_cast<size_t>(it->second)].push_back(
          {&t, 0, AlignUp(std::max<uint64_t>(t.bytes(), 1)), first, last});
    }
    TakeOverInPlaceSources(slots);
    for (const Key& key : mirror_order_) {
      const Mirror& m = mirrors_.at(key);
      slots[static_cast<size_t>(key.b)].push_back(
          {m.tensor, 0, AlignUp(std::max<uint64_t>(m.tensor->bytes(), 1)), m.first, m.last});
    }
    s_.arenas_.resize(static_cast<size_t>(n_backends));
    for (int b = 0; b < n_backends; ++b) {
      std::vector<ArenaSlot>& list = slots[static_cast<size_t>(b)];
      if (list.empty()) continue;
      const uint64_t bytes = PackSlots(list, end());
      std::unique_ptr<Buffer>& arena = s_.arenas_[static_cast<size_t>(b)];
      if (!arena || arena->size() < bytes) {
        arena.reset();  // release first: the old and new arenas need not coexist
        arena = backend(b).Allocate(bytes);
      }
      char* host = static_cast<char*>(arena->host_data());
      for (const ArenaSlot& slot : list) {
        slot.tensor->buffer = arena.get();
        slot.tensor->offset = slot.offset;
        slot.tensor->data = host ? host + slot.offset : nullptr;
      }
    }
    auto place_view = [](Tensor& view) {
      const Tensor& base = *view.view_of;
      DZ_ASSERT(HasStorage(base));
      const uint64_t relative = view.offset;
      view.buffer = base.buffer;
      view.offset = base.offset + relative;
      view.data = base.data ? static_cast<char*>(base.data) + relative : nullptr;
    };
    for (Tensor* view : pending_views_) place_view(*view);
    for (Tensor& t : graph_.tensors()) {
      if (t.view_of != nullptr && !HasStorage(t)) place_view(t);
    }
  }

  Scheduler& s_;
  Graph& graph_;
  const std::vector<Node>& nodes_;
  std::vector<int> placement_;
  std::unordered_map<const Tensor*, int> home_;
  std::unordered_map<const Tensor*, int64_t> produced_;
  std::unordered_map<const Tensor*, int64_t> last_read_;
  std::unordered_map<Key, Mirror, KeyHash> mirrors_;
  std::vector<Key> mirror_order_;
  std::unordered_map<Key, Tensor*, KeyHash> view_mirrors_;
  std::vector<Tensor*> pending_views_;
};

// ---------------------------------------------------------------------------------------------

Scheduler::Scheduler(Backend& selected, BackendFactory make_fallback)
    : selected_(selected), make_fallback_(std::move(make_fallback)) {
  backends_.push_back(&selected_);
  profile_.selected = selected_.device().name;
}

Scheduler::~Scheduler() {
  // Buffers before the backends that made them.
  segments_.clear();
  mirrors_.clear();
  arenas_.clear();
  constants_.clear();
}

Backend& Scheduler::fallback() {
  if (backends_.size() > 1) return *backends_[1];
  if (!fallback_ && make_fallback_) {
    fallback_ = make_fallback_();
    make_fallback_ = nullptr;  // asked once: none means `selected` is the fallback
  }
  if (!fallback_) return selected_;
  DZ_ASSERT(fallback_->device().host_memory);
  backends_.push_back(fallback_.get());
  profile_.fallback = fallback_->device().name;
  return *fallback_;
}

Backend& Scheduler::host_backend() {
  return selected_.device().host_memory ? selected_ : fallback();
}

bool Scheduler::CanHoldKvCache(const Backend& backend, DType type, int head_dim, int n_head,
                               int n_head_kv, int n_cells) {
  if (backend.device().host_memory) return true;
  Tensor cache = MakeTensor(type, {head_dim, n_head_kv, n_cells}, "cache");
  Tensor rows = MakeTensor(DType::F32, {int64_t{head_dim} * n_head_kv, 1}, "rows");
  Tensor cells = MakeTensor(DType::I32, {1}, "cells");
  Tensor q = MakeTensor(DType::F32, {head_dim, n_head, 1}, "q");
  Tensor tokens = MakeTensor(DType::I32, {2, 1}, "tokens");
  Tensor cell_info = MakeTensor(DType::I32, {2, n_cells}, "cell_info");
  Tensor out = MakeTensor(DType::F32, {int64_t{head_dim} * n_head, 1}, "out");
  Node store{Op::kStoreKV, &cache, {&rows, &cells}, {}};
  Node attention{Op::kAttention, &out, {&q, &cache, &cache, &tokens, &cell_info}, {}};
  attention.params.attention.scale = 1.0f;
  return backend.Supports(store) && backend.Supports(attention);
}

void Scheduler::RecordFallback(const Node& node) {
  ++profile_.fallback_nodes;
  std::string reason = selected_.WhyUnsupported(node);
  if (reason.empty()) reason = DefaultReason(selected_, node);
  const std::string types = TypesOf(node);
  for (FallbackGroup& g : profile_.fallbacks) {
    if (g.op != node.op || g.types != types || g.reason != reason) continue;
    ++g.count;
    if (g.examples.size() < 3 &&
        std::find(g.examples.begin(), g.examples.end(), node.out->name) == g.examples.end()) {
      g.examples.push_back(node.out->name);
    }
    return;
  }
  profile_.fallbacks.push_back({node.op, types, std::move(reason), 1, {node.out->name}});
}

Tensor* Scheduler::DeviceConstantOf(int b, Tensor* t) {
  auto [it, added] = constants_.try_emplace({b, t});
  DeviceConstant& c = it->second;
  if (added) {
    Backend& backend = *backends_[static_cast<size_t>(b)];
    c.buffer = backend.Allocate(t->bytes());
    c.tensor = *t;
    c.tensor.buffer = c.buffer.get();
    c.tensor.offset = 0;
    c.tensor.data = c.buffer->host_data();
    backend.Upload(c.tensor, t->data, 0, t->bytes());
    profile_.weight_upload_bytes += t->bytes();
  }
  return &c.tensor;
}

void Scheduler::Allocate(Graph& graph) {
  segments_.clear();
  mirrors_.clear();
  Planner(*this, graph).Run();
}

void Scheduler::RunCopy(const Copy& copy) {
  const uint64_t size = copy.end - copy.begin;
  if (size == 0) return;
  const Tensor& from = *copy.from;
  const Tensor& to = *copy.to;
  if (from.data != nullptr) {
    const void* host = static_cast<const char*>(from.data) + copy.begin;
    if (to.buffer != nullptr) {
      to.buffer->backend().Upload(to, host, copy.begin, size);
    } else {
      std::memcpy(static_cast<char*>(to.data) + copy.begin, host, size);
    }
  } else if (to.data != nullptr) {
    from.buffer->backend().Download(from, static_cast<char*>(to.data) + copy.begin, copy.begin,
                                    size);
  } else {
    staging_.resize(size);
    from.buffer->backend().Download(from, staging_.data(), copy.begin, size);
    to.buffer->backend().Upload(to, staging_.data(), copy.begin, size);
  }
  profile_.copy_bytes += size;
  ++profile_.copies.count;
}

void Scheduler::Compute(const Graph& graph) {
  (void)graph;
  const bool timed = profile_.timed;
  for (const Segment& seg : segments_) {
    Backend& backend = *backends_[static_cast<size_t>(seg.backend)];
    const std::string& name = backend.device().name;
    auto start = Clock::now();
    for (const Copy& copy : seg.before) RunCopy(copy);
    if (timed) profile_.copies.seconds += Since(start);
    if (timed) {
      for (const Node& node : seg.nodes) {
        start = Clock::now();
        backend.Compute(std::span(&node, 1));
        backend.Synchronize();
        const double seconds = Since(start);
        OpTiming& t = profile_.ops[{node.op, name}];
        ++t.count;
        t.seconds += seconds;
        if (node.op == Op::kMatMul) {
          const Tensor& x = *node.src[0];
          const Tensor& w = *node.src[1];
          MatMulTiming& mt = profile_.matmuls[{name, w.type, w.ne[0], w.ne[1], x.rows()}];
          ++mt.count;
          mt.seconds += seconds;
          mt.weight_bytes = w.bytes();
        }
      }
    } else {
      backend.Compute(seg.nodes);
      backend.Synchronize();
      for (const Node& node : seg.nodes) ++profile_.ops[{node.op, name}].count;
    }
    start = Clock::now();
    for (const Copy& copy : seg.after) RunCopy(copy);
    if (timed) profile_.copies.seconds += Since(start);
  }
  ++profile_.passes;
}

void Scheduler::Upload(const Tensor& t, const void* host, uint64_t bytes) {
  if (t.buffer != nullptr) {
    t.buffer->backend().Upload(t, host, 0, bytes);
  } else {
    DZ_ASSERT(t.data != nullptr);
    std::memcpy(t.data, host, bytes);
  }
}

void Scheduler::Download(const Tensor& t, void* host, uint64_t bytes) {
  if (t.buffer != nullptr) {
    t.buffer->backend().Download(t, host, 0, bytes);
  } else {
    DZ_ASSERT(t.data != nullptr);
    std::memcpy(host, t.data, bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// The report.

double SchedulerProfile::seconds() const {
  double total = copies.seconds;
  for (const auto& [key, t] : ops) total += t.seconds;
  return total;
}

double SchedulerProfile::fallback_seconds() const {
  double total = 0;
  for (const auto& [key, t] : ops) {
    if (!fallback.empty() && key.second == fallback && fallback != selected) total += t.seconds;
  }
  return total;
}

// MATMULs by weight, the slowest first: where generation's time goes (M = 1: weight GB/s against
// the machine's bandwidth) and prompts' (GFLOP/s).
std::string SchedulerProfile::MatMulReport(double total) const {
  constexpr size_t kMaxRows = 16;
  std::vector<std::pair<MatMulShape, MatMulTiming>> rows(matmuls.begin(), matmuls.end());
  std::ranges::stable_sort(rows, std::ranges::greater{},
                           [](const auto& r) { return r.second.seconds; });
  std::string out = fmt::format("MATMUL by weight (out[N,M] = x[K,M] · w[K,N]ᵀ), slowest first:\n");
  out +=
      fmt::format("{:<10} {:<6} {:>7} {:>7} {:>5} {:>9} {:>12} {:>7} {:>11} {:>9}\n", "backend",
                  "weight", "K", "N", "M", "count", "time ms", "share", "weight GB/s", "GFLOP/s");
  for (size_t i = 0; i < rows.size() && i < kMaxRows; ++i) {
    const auto& [shape, t] = rows[i];
    const double runs = static_cast<double>(t.count);
    const double gbs =
        t.seconds > 0 ? runs * static_cast<double>(t.weight_bytes) / t.seconds / 1e9 : 0.0;
    const double flops = 2.0 * static_cast<double>(shape.k) * static_cast<double>(shape.n) *
                         static_cast<double>(shape.m) * runs;
    const double gflops = t.seconds > 0 ? flops / t.seconds / 1e9 : 0.0;
    out +=
        fmt::format("{:<10} {:<6} {:>7} {:>7} {:>5} {:>9} {:>12.3f} {:>6.1f}% {:>11.2f} {:>9.1f}\n",
                    shape.backend, Name(shape.type), shape.k, shape.n, shape.m, t.count,
                    t.seconds * 1e3, total > 0 ? 100.0 * t.seconds / total : 0.0, gbs, gflops);
  }
  if (rows.size() > kMaxRows) {
    double rest = 0;
    for (size_t i = kMaxRows; i < rows.size(); ++i) rest += rows[i].second.seconds;
    out += fmt::format("({} more shapes: {:.3f} ms)\n", rows.size() - kMaxRows, rest * 1e3);
  }
  return out;
}

std::string SchedulerProfile::Report() const {
  auto pct = [](double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; };
  std::string out = fmt::format("dizuo profile: {} forward passes on '{}'", passes, selected);
  if (!fallback.empty() && fallback != selected) out += fmt::format(", fallback '{}'", fallback);
  const double total = seconds();
  out += fmt::format("\nfallback: {} of {} nodes ({:.1f}%)", fallback_nodes, nodes,
                     pct(static_cast<double>(fallback_nodes), static_cast<double>(nodes)));
  if (timed) out += fmt::format(", {:.1f}% of the time", pct(fallback_seconds(), total));
  out += "\n";
  if (!timed) out += "(no times: profiling was off)\n";
  out += fmt::format("{:<10} {:<10} {:>9} {:>12} {:>7}\n", "op", "backend", "count", "time ms",
                     "share");
  int64_t count = 0;
  for (const auto& [key, t] : ops) {
    out += fmt::format("{:<10} {:<10} {:>9} {:>12.3f} {:>6.1f}%\n", OpName(key.first), key.second,
                       t.count, t.seconds * 1e3, pct(t.seconds, total));
    count += t.count;
  }
  out += fmt::format("{:<10} {:<10} {:>9} {:>12.3f} {:>6.1f}%   ({:.2f} MiB copied", "copies", "",
                     copies.count, copies.seconds * 1e3, pct(copies.seconds, total),
                     static_cast<double>(copy_bytes) / (1 << 20));
  out += fmt::format("; {:.2f} MiB of weights uploaded once)\n",
                     static_cast<double>(weight_upload_bytes) / (1 << 20));
  out += fmt::format("{:<10} {:<10} {:>9} {:>12.3f} {:>6.1f}%\n", "total", "", count, total * 1e3,
                     total > 0 ? 100.0 : 0.0);
  if (fallbacks.empty()) {
    out += "no node fell back\n";
  } else {
    out += "fell back (op, dtypes: node runs, e.g. nodes: reason):\n";
    for (const FallbackGroup& g : fallbacks) {
      std::string examples;
      for (const std::string& e : g.examples) examples += (examples.empty() ? "" : ", ") + e;
      out += fmt::format("  {} {}: {} (e.g. {}): {}\n", OpName(g.op), g.types, g.count, examples,
                         g.reason);
    }
  }
  if (timed && !matmuls.empty()) out += MatMulReport(total);
  return out;
}

}  // namespace dizuo
