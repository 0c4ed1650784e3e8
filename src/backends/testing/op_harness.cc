#include "backends/testing/op_harness.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/quant.h"
#include "runtime/executor.h"

namespace dizuo::harness {
namespace {

// splitmix64: a tiny generator whose output is the same on every platform and standard library.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float Uniform(float range) {  // in [-range, range)
    const double unit = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    return static_cast<float>((2.0 * unit - 1.0) * range);
  }

 private:
  uint64_t state_;
};

HostTensor Fill(const OperandSpec& spec, Random& rng) {
  HostTensor t;
  t.type = spec.type;
  t.ne = spec.ne;
  const int64_t n = t.elements();
  if (!spec.values.empty() && static_cast<int64_t>(spec.values.size()) != n) {
    Fail("operand of {} elements given {} values", n, spec.values.size());
  }
  if (spec.type == DType::I32) {
    t.bytes.resize(static_cast<size_t>(n) * 4);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t v = spec.values.empty()
                            ? static_cast<int32_t>(
                                  rng.Next() % static_cast<uint64_t>(std::max(spec.int_bound, 1)))
                            : static_cast<int32_t>(spec.values[i]);
      std::memcpy(t.bytes.data() + 4 * i, &v, 4);
    }
    return t;
  }
  if (!CanConvert(spec.type)) Fail("harness cannot fill a {} operand", Name(spec.type));
  std::vector<float> values = spec.values;
  if (values.empty()) {
    values.resize(static_cast<size_t>(n));
    for (float& v : values) v = rng.Uniform(spec.range);
  }
  const auto row_bytes = RowBytes(spec.type, static_cast<uint64_t>(spec.ne[0]));
  if (!row_bytes) Fail("{} rows of {} elements are not whole blocks", Name(spec.type), spec.ne[0]);
  const int64_t rows = n / spec.ne[0];
  t.bytes.resize(*row_bytes * static_cast<uint64_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(spec.type, values.data() + r * spec.ne[0], t.bytes.data() + r * *row_bytes,
                spec.ne[0]);
  }
  return t;
}

Tensor* Input(Graph& g, const HostTensor& t, int i) {
  return g.NewInput(t.type, {t.ne[0], t.ne[1], t.ne[2], t.ne[3]}, fmt::format("src{}", i));
}

OperandSpec F32(std::array<int64_t, kMaxDims> ne, float range = 1.0f) {
  OperandSpec s;
  s.ne = ne;
  s.range = range;
  return s;
}

OperandSpec I32Values(std::vector<float> values) {
  OperandSpec s;
  s.type = DType::I32;
  s.ne = {static_cast<int64_t>(values.size()), 1, 1, 1};
  s.values = std::move(values);
  return s;
}

}  // namespace

std::vector<float> HostTensor::ToFloat() const {
  const int64_t n = elements();
  std::vector<float> out(static_cast<size_t>(n));
  if (type == DType::I32) {
    for (int64_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      out[i] = static_cast<float>(v);
    }
    return out;
  }
  DZ_ASSERT(CanConvert(type));
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(ne[0]));
  for (int64_t r = 0; r < n / ne[0]; ++r) {
    DequantizeRow(type, bytes.data() + r * row_bytes, out.data() + r * ne[0], ne[0]);
  }
  return out;
}

std::string OpSpec::Describe() const {
  std::string s(OpName(op));
  for (const auto& operand : src) {
    if (!operand) continue;
    Tensor t;
    t.ne = operand->ne;
    s += fmt::format(" {}{}", Name(operand->type), ShapeString(t));
  }
  if (in_place) s += " in place";
  return s;
}

Operands MakeOperands(const OpSpec& spec) {
  Random rng(spec.seed);
  Operands operands;
  for (const auto& operand : spec.src) {
    operands.push_back(operand ? std::optional<HostTensor>(Fill(*operand, rng)) : std::nullopt);
  }
  return operands;
}

OpRun RunOp(Backend& backend, const OpSpec& spec, const Operands& operands) {
  Graph g;
  std::vector<Tensor*> in;
  for (size_t i = 0; i < operands.size(); ++i) {
    in.push_back(operands[i] ? Input(g, *operands[i], static_cast<int>(i)) : nullptr);
  }
  auto src = [&](size_t i) -> Tensor* { return i < in.size() ? in[i] : nullptr; };
  auto need = [&](size_t count) {
    for (size_t i = 0; i < count; ++i) {
      if (src(i) == nullptr) Fail("{}: operand {} is missing", OpName(spec.op), i);
    }
  };
  const OpParams& p = spec.params;
  Tensor* out = nullptr;
  switch (spec.op) {
    case Op::kGetRows:
      need(2);
      out = g.GetRows(src(0), src(1));
      break;
    case Op::kMatMul:
      need(2);
      out = g.MatMul(src(0), src(1));
      break;
    case Op::kAdd:
      need(2);
      out = g.Add(src(0), src(1));
      break;
    case Op::kMul:
      need(2);
      out = g.Mul(src(0), src(1));
      break;
    case Op::kScale:
      need(1);
      out = g.Scale(src(0), p.scale);
      break;
    case Op::kRmsNorm:
      need(1);
      out = g.RmsNorm(src(0), src(1), p.eps);
      break;
    case Op::kRope:
      need(2);
      out = g.Rope(src(0), src(1), src(2), p.rope);
      break;
    case Op::kGlu:
      need(2);
      out = g.Glu(src(0), src(1), p.act);
      break;
    case Op::kAttention:
      need(5);
      out = g.Attention(src(0), src(1), src(2), src(3), src(4), p.attention);
      break;
    case Op::kStoreKV:
      need(3);
      out = g.StoreKV(src(2), src(0), src(1));
      break;
  }
  // Builders fill in defaults for what they do not take; the spec's params are authoritative.
  g.nodes().back().params = p;
  g.MarkOutput(out);

  OpRun run;
  run.supported = backend.Supports(g.nodes().back());
  if (!run.supported) return run;

  Executor executor(backend);
  executor.Allocate(g);
  if (spec.in_place) {
    // Graph inputs are never overwritten by the planner; place the output over src[0] by hand.
    Tensor* over = InPlaceSource(g.nodes().back());
    if (over == nullptr)
      Fail("{}: this node has no source it may be computed over", spec.Describe());
    out->buffer = over->buffer;
    out->offset = over->offset;
    out->data = over->data;
  }
  for (size_t i = 0; i < operands.size(); ++i) {
    if (operands[i])
      backend.Upload(*in[i], operands[i]->bytes.data(), 0, operands[i]->bytes.size());
  }
  const auto start = std::chrono::steady_clock::now();
  executor.Compute(g);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  run.out.type = out->type;
  run.out.ne = out->ne;
  run.out.bytes.resize(out->bytes());
  backend.Download(*out, run.out.bytes.data(), 0, run.out.bytes.size());
  run.values = run.out.ToFloat();
  return run;
}

OpSpec MatMulSpec(DType weight_type, int64_t k, int64_t n, int64_t m) {
  OpSpec spec;
  spec.op = Op::kMatMul;
  OperandSpec w;
  w.type = weight_type;
  w.ne = {k, n, 1, 1};
  spec.src = {F32({k, m, 1, 1}), w};
  return spec;
}

std::vector<OpSpec> Gemma3MatMulSpecs() {
  return {
      MatMulSpec(DType::Q5_0, 640, 1024, 1),  // attn_q
      MatMulSpec(DType::Q5_0, 640, 2048, 3),  // ffn gate / up
      MatMulSpec(DType::Q8_0, 640, 256, 5),   // attn_v
      MatMulSpec(DType::Q4_K, 1024, 640, 2),  // attn_output
      MatMulSpec(DType::Q4_K, 2048, 640, 1),  // ffn_down
      MatMulSpec(DType::Q6_K, 2048, 640, 3),  // ffn_down (more bits)
      MatMulSpec(DType::Q8_0, 640, 3000, 1),  // tied output (part)
  };
}

OpSpec GetRowsSpec(DType table_type, int64_t width, int64_t vocab, int64_t tokens) {
  OpSpec spec;
  spec.op = Op::kGetRows;
  OperandSpec table;
  table.type = table_type;
  table.ne = {width, vocab, 1, 1};
  OperandSpec ids;
  ids.type = DType::I32;
  ids.ne = {tokens, 1, 1, 1};
  ids.int_bound = static_cast<int32_t>(vocab);
  spec.src = {table, ids};
  return spec;
}

OpSpec BinarySpec(Op op, int64_t width, int64_t rows, bool broadcast) {
  OpSpec spec;
  spec.op = op;
  spec.src = {F32({width, rows, 1, 1}), F32({width, broadcast ? 1 : rows, 1, 1})};
  return spec;
}

OpSpec ScaleSpec(int64_t width, int64_t rows, float scale) {
  OpSpec spec;
  spec.op = Op::kScale;
  spec.params.scale = scale;
  spec.src = {F32({width, rows, 1, 1})};
  return spec;
}

OpSpec RmsNormSpec(int64_t width, int64_t rows, bool with_weight, float eps) {
  OpSpec spec;
  spec.op = Op::kRmsNorm;
  spec.params.eps = eps;
  spec.src = {F32({width, rows, 1, 1})};
  spec.src.push_back(with_weight ? std::optional(F32({width, 1, 1, 1})) : std::nullopt);
  return spec;
}

OpSpec RopeSpec(int64_t head_dim, int64_t heads, int64_t tokens, const RopeParams& params,
                bool with_freq_factors) {
  OpSpec spec;
  spec.op = Op::kRope;
  spec.params.rope = params;
  OperandSpec pos;
  pos.type = DType::I32;
  pos.ne = {tokens, 1, 1, 1};
  pos.int_bound = 4096;
  spec.src = {F32({head_dim, heads, tokens, 1}), pos};
  if (with_freq_factors) {
    OperandSpec factors = F32({params.n_rot / 2, 1, 1, 1});
    factors.values.resize(static_cast<size_t>(params.n_rot / 2));
    for (size_t i = 0; i < factors.values.size(); ++i) {
      factors.values[i] = 1.0f + static_cast<float>(i % 7);  // like llama3's 1..8 factors
    }
    spec.src.push_back(factors);
  }
  return spec;
}

OpSpec GluSpec(int64_t width, int64_t rows, Activation act, bool in_place) {
  OpSpec spec;
  spec.op = Op::kGlu;
  spec.params.act = act;
  spec.in_place = in_place;
  spec.src = {F32({width, rows, 1, 1}, 4.0f), F32({width, rows, 1, 1})};
  return spec;
}

OpSpec AttentionSpec(int64_t head_dim, int64_t q_heads, int64_t kv_heads, int64_t tokens,
                     int64_t cells, int sequences, DType cache_type,
                     const AttentionParams& params) {
  DZ_ASSERT(tokens <= cells && sequences >= 1);
  OpSpec spec;
  spec.op = Op::kAttention;
  spec.params.attention = params;
  std::vector<float> cell_info, token_info;
  for (int64_t c = 0; c < cells; ++c) {
    const bool empty = c == 1 && cells > tokens + 2;
    cell_info.push_back(static_cast<float>(c / sequences));
    cell_info.push_back(empty ? -1.0f : static_cast<float>(c % sequences));
  }
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t c = cells - tokens + t;
    token_info.push_back(cell_info[2 * c]);
    token_info.push_back(cell_info[2 * c + 1]);
  }
  OperandSpec k, v;
  k.type = v.type = cache_type;
  k.ne = v.ne = {head_dim, kv_heads, cells, 1};
  OperandSpec tok = I32Values(token_info), cel = I32Values(cell_info);
  tok.ne = {2, tokens, 1, 1};
  cel.ne = {2, cells, 1, 1};
  spec.src = {F32({head_dim, q_heads, tokens, 1}), k, v, tok, cel};
  return spec;
}

OpSpec StoreKVSpec(int64_t head_dim, int64_t heads, int64_t tokens, int64_t cells,
                   DType cache_type) {
  DZ_ASSERT(tokens <= cells);
  OpSpec spec;
  spec.op = Op::kStoreKV;
  std::vector<int64_t> order(static_cast<size_t>(cells));
  std::iota(order.begin(), order.end(), 0);
  Random rng(cells * 31 + tokens);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.Next() % i]);
  std::vector<float> targets;
  for (int64_t t = 0; t < tokens; ++t) targets.push_back(static_cast<float>(order[t]));
  OperandSpec cache;
  cache.type = cache_type;
  cache.ne = {head_dim, heads, cells, 1};
  spec.src = {F32({head_dim * heads, tokens, 1, 1}, 8.0f), I32Values(targets), cache};
  return spec;
}

double Nmse(const float* a, const float* ref, int64_t n) {
  double err = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(ref[i])) {
      return std::numeric_limits<double>::infinity();
    }
    const double d = static_cast<double>(a[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  if (norm == 0) return err == 0 ? 0 : std::numeric_limits<double>::infinity();
  return err / norm;
}

int64_t CountNonFinite(const float* a, int64_t n) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += std::isfinite(a[i]) ? 0 : 1;
  return count;
}

}  // namespace dizuo::harness
