#include "model/kv_cache.h"

#include <algorithm>
#include <set>
#include <utility>

#include "core/error.h"

namespace dizuo::model {
namespace {

// Positions are bounded so that pos + 1 and window arithmetic never overflow.
constexpr int32_t kMaxPosition = int32_t{1} << 30;

Tensor CacheTensor(DType type, const KvCacheShape& s, Buffer& buffer, uint64_t offset,
                   std::string name) {
  Tensor t = MakeTensor(type, {s.head_dim, s.n_head_kv, s.n_cells}, std::move(name));
  // Head-major: each KV head's cells are one run of rows (nb[1] = a head's n_cells rows, nb[2] =
  // one row), so attention streams a head's keys and values from consecutive memory.
  t.nb[2] = t.row_bytes();
  t.nb[1] = t.nb[2] * static_cast<uint64_t>(s.n_cells);
  t.buffer = &buffer;
  t.offset = offset;
  if (void* host = buffer.host_data()) t.data = static_cast<char*>(host) + offset;
  return t;
}

}  // namespace

KvCache::KvCache(Backend& backend, const KvCacheShape& shape) : shape_(shape) {
  if (shape.type != DType::F16 && shape.type != DType::F32) {
    Fail("KV cache type must be f16 or f32, not {}", Name(shape.type));
  }
  if (shape.n_layer <= 0 || shape.head_dim <= 0 || shape.n_head_kv <= 0) {
    Fail("KV cache: invalid shape ({} layers, head size {}, {} KV heads)", shape.n_layer,
         shape.head_dim, shape.n_head_kv);
  }
  if (shape.n_cells <= 0 || shape.n_cells > (int{1} << 24)) {
    Fail("context size {} is out of range (1 to {})", shape.n_cells, int{1} << 24);
  }
  if (shape.n_seq_max <= 0 || shape.n_seq_max > shape.n_cells) {
    Fail("the number of sequences {} is out of range (1 to the context size, {})", shape.n_seq_max,
         shape.n_cells);
  }
  const uint64_t per_tensor =
      static_cast<uint64_t>(Traits(shape.type).type_size) * static_cast<uint64_t>(shape.head_dim) *
      static_cast<uint64_t>(shape.n_head_kv) * static_cast<uint64_t>(shape.n_cells);
  // Keeps each tensor 64-byte aligned within the buffer.
  const uint64_t stride = (per_tensor + 63) / 64 * 64;
  const uint64_t total = stride * 2 * static_cast<uint64_t>(shape.n_layer);
  buffer_ = backend.Allocate(total);

  k_.reserve(static_cast<size_t>(shape.n_layer));
  v_.reserve(static_cast<size_t>(shape.n_layer));
  for (int il = 0; il < shape.n_layer; ++il) {
    const uint64_t at = stride * 2 * static_cast<uint64_t>(il);
    k_.push_back(CacheTensor(shape.type, shape, *buffer_, at, fmt::format("cache_k.{}", il)));
    v_.push_back(
        CacheTensor(shape.type, shape, *buffer_, at + stride, fmt::format("cache_v.{}", il)));
  }
  // Free cells are never visible to ATTENTION, but a kernel that multiplies a masked weight of 0
  // by a value must not meet NaN garbage: start from zeros (host buffers already are).
  if (buffer_->host_data() == nullptr) {
    const std::vector<uint8_t> zeros(per_tensor, 0);
    for (int il = 0; il < shape.n_layer; ++il) {
      backend.Upload(k_[static_cast<size_t>(il)], zeros.data(), 0, per_tensor);
      backend.Upload(v_[static_cast<size_t>(il)], zeros.data(), 0, per_tensor);
    }
  }
  cells_.assign(static_cast<size_t>(shape.n_cells), PosSeq{});
  positions_.resize(static_cast<size_t>(shape.n_seq_max));
}

uint64_t KvCache::bytes() const { return buffer_->size(); }

void KvCache::CheckSeq(int32_t seq) const {
  if (seq < 0 || seq >= shape_.n_seq_max) {
    Fail("sequence id {} is out of range (0 to {})", seq, shape_.n_seq_max - 1);
  }
}

void KvCache::Check(std::span<const PosSeq> tokens) const {
  std::set<std::pair<int32_t, int32_t>> seen;  // (seq, pos) within the batch
  for (const PosSeq& t : tokens) {
    CheckSeq(t.seq);
    if (t.pos < 0 || t.pos >= kMaxPosition) {
      Fail("position {} of sequence {} is out of range (0 to {})", t.pos, t.seq, kMaxPosition - 1);
    }
    if (positions_[static_cast<size_t>(t.seq)].count(t.pos)) {
      Fail("position {} of sequence {} is already in the KV cache (remove it first)", t.pos, t.seq);
    }
    if (!seen.emplace(t.seq, t.pos).second) {
      Fail("position {} of sequence {} appears twice in one batch", t.pos, t.seq);
    }
  }
  if (tokens.size() > static_cast<size_t>(n_free())) {
    Fail("the KV cache has {} free cells of {} (the context size) but the batch needs {}", n_free(),
         n_cells(), tokens.size());
  }
}

std::vector<int32_t> KvCache::Reserve(std::span<const PosSeq> tokens) {
  Check(tokens);
  std::vector<int32_t> assigned;
  assigned.reserve(tokens.size());
  int32_t cell = 0;
  for (const PosSeq& t : tokens) {
    while (cells_[static_cast<size_t>(cell)].seq >= 0) ++cell;
    cells_[static_cast<size_t>(cell)] = t;
    positions_[static_cast<size_t>(t.seq)].insert(t.pos);
    assigned.push_back(cell);
  }
  n_used_ += static_cast<int>(tokens.size());
  return assigned;
}

void KvCache::Release(std::span<const int32_t> cells) {
  for (int32_t c : cells) {
    DZ_ASSERT(c >= 0 && c < n_cells());
    PosSeq& cell = cells_[static_cast<size_t>(c)];
    if (cell.seq < 0) continue;
    positions_[static_cast<size_t>(cell.seq)].erase(cell.pos);
    cell = PosSeq{};
    --n_used_;
  }
}

void KvCache::RemoveSequence(int32_t seq, int32_t from_pos) {
  CheckSeq(seq);
  for (PosSeq& cell : cells_) {
    if (cell.seq == seq && cell.pos >= from_pos) {
      cell = PosSeq{};
      --n_used_;
    }
  }
  std::set<int32_t>& pos = positions_[static_cast<size_t>(seq)];
  pos.erase(pos.lower_bound(from_pos), pos.end());
}

void KvCache::Clear() {
  std::fill(cells_.begin(), cells_.end(), PosSeq{});
  for (auto& p : positions_) p.clear();
  n_used_ = 0;
}

int32_t KvCache::SequenceLength(int32_t seq) const {
  CheckSeq(seq);
  const std::set<int32_t>& pos = positions_[static_cast<size_t>(seq)];
  return pos.empty() ? 0 : *pos.rbegin() + 1;
}

int KvCache::SequenceCells(int32_t seq) const {
  CheckSeq(seq);
  return static_cast<int>(positions_[static_cast<size_t>(seq)].size());
}

int KvCache::used_prefix() const {
  for (int c = n_cells(); c > 0; --c) {
    if (cells_[static_cast<size_t>(c - 1)].seq >= 0) return c;
  }
  return 0;
}

}  // namespace dizuo::model
