#include "core/graph.h"

#include "core/error.h"

namespace dizuo {
namespace {

std::string Describe(const Tensor* t) {
  return fmt::format("'{}' ({} {})", t->name, Name(t->type), ShapeString(*t));
}

void RequireType(const char* op, const Tensor* t, DType type) {
  if (t->type != type) {
    Fail("{}: {} must be {}, not {}", op, Describe(t), Name(type), Name(t->type));
  }
}

void RequireContiguous(const char* op, const Tensor* t) {
  if (!t->contiguous()) Fail("{}: {} must be contiguous", op, Describe(t));
}

bool IsCacheType(DType type) { return type == DType::F32 || type == DType::F16; }

}  // namespace

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kGetRows:
      return "GET_ROWS";
    case Op::kMatMul:
      return "MATMUL";
    case Op::kAdd:
      return "ADD";
    case Op::kMul:
      return "MUL";
    case Op::kScale:
      return "SCALE";
    case Op::kRmsNorm:
      return "RMS_NORM";
    case Op::kRope:
      return "ROPE";
    case Op::kGlu:
      return "GLU";
    case Op::kAttention:
      return "ATTENTION";
    case Op::kStoreKV:
      return "STORE_KV";
  }
  return "?";
}

Tensor* Graph::NewTensor(DType type, const std::array<int64_t, kMaxDims>& ne, std::string name) {
  Tensor& t = tensors_.emplace_back();
  t.type = type;
  t.ne = ne;
  SetContiguousStrides(t);
  t.name = std::move(name);
  return &t;
}

Tensor* Graph::NewInput(DType type, std::initializer_list<int64_t> ne, std::string name) {
  DZ_ASSERT(ne.size() >= 1 && ne.size() <= kMaxDims);
  std::array<int64_t, kMaxDims> shape{1, 1, 1, 1};
  int d = 0;
  for (int64_t n : ne) shape[d++] = n;
  Tensor* t = NewTensor(type, shape, std::move(name));
  inputs_.push_back(t);
  return t;
}

Tensor* Graph::Reshape(Tensor* x, std::initializer_list<int64_t> ne) {
  RequireContiguous("reshape", x);
  std::array<int64_t, kMaxDims> shape{1, 1, 1, 1};
  int d = 0;
  int64_t count = 1;
  for (int64_t n : ne) {
    shape[d++] = n;
    count *= n;
  }
  if (count != x->elements()) {
    Fail("reshape: {} has {} elements, cannot view as {} elements", Describe(x), x->elements(),
         count);
  }
  Tensor* view = NewTensor(x->type, shape, x->name);
  Tensor* base = x->view_of ? x->view_of : x;
  view->view_of = base;
  view->buffer = x->buffer;
  view->offset = x->offset;
  view->data = x->data;
  return view;
}

Tensor* Graph::Named(Tensor* t, std::string name) {
  t->name = std::move(name);
  return t;
}

Tensor* Graph::AddNode(Op op, Tensor* out, std::initializer_list<Tensor*> src,
                       const OpParams& params) {
  Node node;
  node.op = op;
  node.out = out;
  int i = 0;
  for (Tensor* s : src) node.src[i++] = s;
  node.params = params;
  nodes_.push_back(node);
  return out;
}

Tensor* Graph::GetRows(Tensor* table, Tensor* ids) {
  RequireType("GET_ROWS", ids, DType::I32);
  if (table->ne[2] != 1 || table->ne[3] != 1 || ids->rows() != 1) {
    Fail("GET_ROWS: expects a 2-d table and 1-d ids, got {} and {}", Describe(table),
         Describe(ids));
  }
  Tensor* out = NewTensor(DType::F32, {table->ne[0], ids->ne[0], 1, 1}, table->name + ".rows");
  return AddNode(Op::kGetRows, out, {table, ids}, {});
}

Tensor* Graph::MatMul(Tensor* x, Tensor* w) {
  RequireType("MATMUL", x, DType::F32);
  if (x->ne[0] != w->ne[0]) {
    Fail("MATMUL: inner dimensions differ: x {} · w {}ᵀ", Describe(x), Describe(w));
  }
  if (w->ne[2] != 1 || w->ne[3] != 1) Fail("MATMUL: weight {} must be 2-d", Describe(w));
  Tensor* out = NewTensor(DType::F32, {w->ne[1], x->ne[1], x->ne[2], x->ne[3]}, w->name + ".out");
  return AddNode(Op::kMatMul, out, {x, w}, {});
}

Tensor* Graph::Add(Tensor* a, Tensor* b) {
  RequireType("ADD", a, DType::F32);
  RequireType("ADD", b, DType::F32);
  if (a->ne[0] != b->ne[0] || (b->rows() != 1 && b->rows() != a->rows())) {
    Fail("ADD: {} and {} do not broadcast", Describe(a), Describe(b));
  }
  Tensor* out = NewTensor(DType::F32, a->ne, a->name);
  return AddNode(Op::kAdd, out, {a, b}, {});
}

Tensor* Graph::Mul(Tensor* a, Tensor* b) {
  RequireType("MUL", a, DType::F32);
  RequireType("MUL", b, DType::F32);
  if (a->ne[0] != b->ne[0] || (b->rows() != 1 && b->rows() != a->rows())) {
    Fail("MUL: {} and {} do not broadcast", Describe(a), Describe(b));
  }
  Tensor* out = NewTensor(DType::F32, a->ne, a->name);
  return AddNode(Op::kMul, out, {a, b}, {});
}

Tensor* Graph::Scale(Tensor* a, float scale) {
  RequireType("SCALE", a, DType::F32);
  OpParams p;
  p.scale = scale;
  Tensor* out = NewTensor(DType::F32, a->ne, a->name);
  return AddNode(Op::kScale, out, {a}, p);
}

Tensor* Graph::RmsNorm(Tensor* x, Tensor* weight, float eps) {
  RequireType("RMS_NORM", x, DType::F32);
  if (weight) {
    RequireType("RMS_NORM", weight, DType::F32);
    if (weight->ne[0] != x->ne[0] || weight->rows() != 1) {
      Fail("RMS_NORM: weight {} does not match rows of {}", Describe(weight), Describe(x));
    }
  }
  OpParams p;
  p.eps = eps;
  Tensor* out = NewTensor(DType::F32, x->ne, x->name + ".norm");
  return AddNode(Op::kRmsNorm, out, {x, weight}, p);
}

Tensor* Graph::Rope(Tensor* x, Tensor* pos, Tensor* freq_factors, const RopeParams& params) {
  RequireType("ROPE", x, DType::F32);
  RequireType("ROPE", pos, DType::I32);
  if (pos->ne[0] != x->ne[2] || pos->rows() != 1) {
    Fail("ROPE: positions {} do not match the tokens of {}", Describe(pos), Describe(x));
  }
  if (params.n_rot <= 0 || params.n_rot > x->ne[0] || params.n_rot % 2 != 0) {
    Fail("ROPE: rotary dimensions {} invalid for head size {}", params.n_rot, x->ne[0]);
  }
  if (freq_factors) {
    RequireType("ROPE", freq_factors, DType::F32);
    if (freq_factors->elements() < params.n_rot / 2) {
      Fail("ROPE: frequency factors {} shorter than n_rot/2 = {}", Describe(freq_factors),
           params.n_rot / 2);
    }
  }
  OpParams p;
  p.rope = params;
  Tensor* out = NewTensor(DType::F32, x->ne, x->name + ".rope");
  return AddNode(Op::kRope, out, {x, pos, freq_factors}, p);
}

Tensor* Graph::Glu(Tensor* gate, Tensor* up, Activation act) {
  RequireType("GLU", gate, DType::F32);
  RequireType("GLU", up, DType::F32);
  if (gate->ne != up->ne) Fail("GLU: {} and {} differ in shape", Describe(gate), Describe(up));
  OpParams p;
  p.act = act;
  Tensor* out = NewTensor(DType::F32, gate->ne, gate->name + ".glu");
  return AddNode(Op::kGlu, out, {gate, up}, p);
}

Tensor* InPlaceSource(const Node& node) {
  if (node.op != Op::kGlu) return nullptr;
  Tensor* gate = node.src[0];
  const Tensor& out = *node.out;
  if (gate == nullptr || gate->view_of != nullptr || gate->type != out.type || gate->ne != out.ne ||
      gate->nb != out.nb || !out.contiguous()) {
    return nullptr;
  }
  return gate;
}

Tensor* Graph::Attention(Tensor* q, Tensor* k_cache, Tensor* v_cache, Tensor* tokens, Tensor* cells,
                         const AttentionParams& params) {
  RequireType("ATTENTION", q, DType::F32);
  RequireType("ATTENTION", tokens, DType::I32);
  RequireType("ATTENTION", cells, DType::I32);
  if (!IsCacheType(k_cache->type) || !IsCacheType(v_cache->type)) {
    Fail("ATTENTION: caches must be f32 or f16, got {} and {}", Describe(k_cache),
         Describe(v_cache));
  }
  const int64_t d = q->ne[0], hq = q->ne[1], t = q->ne[2];
  if (k_cache->ne != v_cache->ne || k_cache->ne[0] != d || k_cache->ne[1] <= 0 ||
      hq % k_cache->ne[1] != 0) {
    Fail("ATTENTION: q {} does not fit caches {} / {}", Describe(q), Describe(k_cache),
         Describe(v_cache));
  }
  if (tokens->ne[0] != 2 || tokens->ne[1] != t || cells->ne[0] != 2 ||
      cells->ne[1] != k_cache->ne[2]) {
    Fail("ATTENTION: token info {} / cell info {} do not match q {} and cache {}", Describe(tokens),
         Describe(cells), Describe(q), Describe(k_cache));
  }
  OpParams p;
  p.attention = params;
  Tensor* out = NewTensor(DType::F32, {d * hq, t, 1, 1}, "attn.out");
  return AddNode(Op::kAttention, out, {q, k_cache, v_cache, tokens, cells}, p);
}

Tensor* Graph::StoreKV(Tensor* cache, Tensor* rows, Tensor* cells) {
  RequireType("STORE_KV", rows, DType::F32);
  RequireType("STORE_KV", cells, DType::I32);
  if (!IsCacheType(cache->type)) Fail("STORE_KV: cache {} must be f32 or f16", Describe(cache));
  RequireContiguous("STORE_KV", rows);
  // Cache layout is [D, H, C]: one cell holds D·H elements.
  const int64_t per_cell = cache->ne[0] * cache->ne[1];
  if (cache->ne[3] != 1 || cells->rows() != 1 || rows->elements() != per_cell * cells->ne[0]) {
    Fail("STORE_KV: rows {} do not fill {} cells of cache {}", Describe(rows), cells->ne[0],
         Describe(cache));
  }
  return AddNode(Op::kStoreKV, cache, {rows, cells}, {});
}

}  // namespace dizuo
