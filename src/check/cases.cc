#include "check/cases.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "backends/backend.h"
#include "core/error.h"
#include "core/graph.h"
#include "gguf/gguf.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/synthetic.h"

namespace dizuo::check {
namespace {

using harness::OpSpec;

// Tokens of the two forward passes every profile is graded on: one decode step, and a prompt
// batch whose size is no multiple of the usual kernel tile sizes (so tile edges are exercised).
constexpr int64_t kDecodeTokens = 1;
constexpr int64_t kPromptTokens = 12;
// Cache cells ATTENTION reads: 48 for the two passes above (sequence-interleaved for the prompt
// batch, with one empty cell), and 640 for the sliding-window case so that a 512 window masks.
constexpr int64_t kCells = 48;
constexpr int64_t kWindowCells = 640;
constexpr int32_t kMaxWindowCells = 8192;

// Output matrix and embedding table rows graded: real vocabularies (262144 for Gemma) would make
// one reference MATMUL take minutes; the kernels see the same row length and block layout.
constexpr int64_t kVocabRowsFull = 8192;
constexpr int64_t kVocabRowsQuick = 512;

// What a profile's graph needs. Weight types are lists: a model file mixes types by tensor
// (Q4_K_M), and the synthetic presets are graded over a sweep of types.
struct Profile {
  std::string name;
  int64_t n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0;
  float rms_eps = 1e-5f;
  RopeParams rope;
  std::optional<RopeParams> rope_swa;  // sliding-window layers (gemma3)
  int32_t window = 0;
  bool freq_factors = false;  // Llama 3.1-style per-frequency factors
  bool qkv_bias = false;      // qwen2
  bool qk_norm = false;       // gemma3: per-head RMS norm, Q scaled before ATTENTION
  bool embd_scale = false;    // gemma3: embeddings · sqrt(n_embd)
  Activation act = Activation::kSilu;
  float attention_scale = 1.0f;
  std::vector<DType> embd, wq, wk, wv, wo, ffn_gate_up, ffn_down, output;
  std::vector<DType> cache = {DType::F16};
};

std::string OperandShapes(const OpSpec& spec) {
  std::string s;
  for (const auto& operand : spec.src) {
    if (!operand) continue;
    Tensor t;
    t.ne = operand->ne;
    if (!s.empty()) s += ' ';
    s += ShapeString(t);
  }
  return s;
}

DType CaseType(const OpSpec& spec) {
  switch (spec.op) {
    case Op::kGetRows:
      return spec.src[0]->type;
    case Op::kMatMul:
    case Op::kAttention:
      return spec.src[1]->type;
    case Op::kStoreKV:
      return spec.src[2]->type;
    default:
      return DType::F32;
  }
}

// A stable identity of a case: op, operand types and shapes, and every parameter.
std::string CaseKey(const OpSpec& spec) {
  const OpParams& p = spec.params;
  const RopeParams& r = p.rope;
  const AttentionParams& a = p.attention;
  std::string key = spec.Describe();
  for (const auto& operand : spec.src) key += operand ? "+" : "-";
  switch (spec.op) {
    case Op::kScale:
      key += fmt::format(" s={}", p.scale);
      break;
    case Op::kRmsNorm:
      key += fmt::format(" eps={}", p.eps);
      break;
    case Op::kGlu:
      key += fmt::format(" act={}", static_cast<int>(p.act));
      break;
    case Op::kRope:
      key += fmt::format(" rope={},{},{},{},{},{},{},{},{}", r.n_rot, static_cast<int>(r.mode),
                         r.freq_base, r.freq_scale, r.ext_factor, r.attn_factor, r.beta_fast,
                         r.beta_slow, r.n_ctx_orig);
      break;
    case Op::kAttention:
      key += fmt::format(" attn={},{},{}", a.scale, a.softcap, a.window);
      break;
    default:
      break;
  }
  return key;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string RopeNote(const RopeParams& r) {
  std::string note = fmt::format(
      "{} n_rot {} base {:g}", r.mode == RopeMode::kNeox ? "neox" : "normal", r.n_rot, r.freq_base);
  if (r.freq_scale != 1.0f) note += fmt::format(" freq_scale {:g}", r.freq_scale);
  if (r.ext_factor != 0.0f) note += fmt::format(" YaRN ext {:g}", r.ext_factor);
  return note;
}

// Collects a profile's cases; the same spec added twice is kept once.
class CaseList {
 public:
  explicit CaseList(std::string source) : source_(std::move(source)) {}

  void Add(OpSpec spec, std::string note = {}) {
    CheckCase c;
    c.spec = std::move(spec);
    c.spec.seed = Fnv1a(CaseKey(c.spec));
    c.dtype = CaseType(c.spec);
    c.shape = OperandShapes(c.spec);
    c.sources = {source_};
    c.note = std::move(note);
    MergeCases(cases_, {std::move(c)});
  }
  std::vector<CheckCase> Take() { return std::move(cases_); }

 private:
  std::string source_;
  std::vector<CheckCase> cases_;
};

// The quick set grades at most this many weight rows of a matrix (output columns are independent,
// so fewer rows keep the inner-loop shape and cut the time of quantizing random weights).
constexpr int64_t kQuickMatrixRows = 512;

void AddMatMul(CaseList& list, const std::vector<DType>& types, int64_t k, int64_t n,
               int64_t tokens, CaseSet set, std::string note = {}) {
  if (set == CaseSet::kQuick && n > kQuickMatrixRows) {
    if (note.empty()) note = fmt::format("{} of {} rows", kQuickMatrixRows, n);
    n = kQuickMatrixRows;
  }
  for (DType t : types) list.Add(harness::MatMulSpec(t, k, n, tokens), note);
}

void AddProfile(CaseList& list, const Profile& p, CaseSet set) {
  const int64_t vocab_rows =
      std::min(p.n_vocab, set == CaseSet::kQuick ? kVocabRowsQuick : kVocabRowsFull);
  const std::string vocab_note =
      vocab_rows < p.n_vocab ? fmt::format("{} of {} vocab rows", vocab_rows, p.n_vocab) : "";
  const int64_t q_dim = p.n_head * p.head_dim, kv_dim = p.n_head_kv * p.head_dim;
  std::vector<int64_t> token_counts = {kDecodeTokens, kPromptTokens};

  for (int64_t t : token_counts) {
    const bool prompt = t > 1;
    for (DType e : p.embd) list.Add(harness::GetRowsSpec(e, p.n_embd, vocab_rows, t), vocab_note);
    if (p.embd_scale) {
      list.Add(harness::ScaleSpec(p.n_embd, t, std::sqrt(static_cast<float>(p.n_embd))));
    }
    list.Add(harness::RmsNormSpec(p.n_embd, t, true, p.rms_eps));
    AddMatMul(list, p.wq, p.n_embd, q_dim, t, set);
    AddMatMul(list, p.wk, p.n_embd, kv_dim, t, set);
    AddMatMul(list, p.wv, p.n_embd, kv_dim, t, set);
    if (p.qkv_bias) {
      list.Add(harness::BinarySpec(Op::kAdd, q_dim, t, true), "bias");
      list.Add(harness::BinarySpec(Op::kAdd, kv_dim, t, true), "bias");
    }
    if (p.qk_norm) {
      list.Add(harness::RmsNormSpec(p.head_dim, p.n_head * t, true, p.rms_eps), "per-head");
      list.Add(harness::RmsNormSpec(p.head_dim, p.n_head_kv * t, true, p.rms_eps), "per-head");
      list.Add(harness::ScaleSpec(q_dim, t, 1.0f / std::sqrt(static_cast<float>(p.head_dim))),
               "query scale");
    }
    std::vector<RopeParams> ropes = {p.rope};
    if (p.rope_swa) ropes.push_back(*p.rope_swa);
    for (const RopeParams& r : ropes) {
      for (int64_t heads : {p.n_head, p.n_head_kv}) {
        list.Add(harness::RopeSpec(p.head_dim, heads, t, r, p.freq_factors),
                 RopeNote(r) + (p.freq_factors ? " freq_factors" : ""));
      }
    }
    for (DType c : p.cache) {
      list.Add(harness::StoreKVSpec(p.head_dim, p.n_head_kv, t, kCells, c));
      AttentionParams a;
      a.scale = p.attention_scale;
      list.Add(harness::AttentionSpec(p.head_dim, p.n_head, p.n_head_kv, t, kCells, prompt ? 2 : 1,
                                      c, a),
               prompt ? "2 sequences" : "");
      if (p.window > 0) {
        a.window = p.window;
        list.Add(harness::AttentionSpec(p.head_dim, p.n_head, p.n_head_kv, prompt ? 4 : 1,
                                        kWindowCells, 1, c, a),
                 fmt::format("sliding window {}", p.window));
      }
    }
    AddMatMul(list, p.wo, q_dim, p.n_embd, t, set);
    if (p.qk_norm) list.Add(harness::RmsNormSpec(p.n_embd, t, true, p.rms_eps), "post-norm");
    list.Add(harness::BinarySpec(Op::kAdd, p.n_embd, t, false), "residual");
    // No current graph multiplies tensors (RMS_NORM fuses its weight); graded at the shape an
    // unfused norm-weight multiply has, because the op is part of the interface.
    list.Add(harness::BinarySpec(Op::kMul, p.n_embd, t, true), "norm-weight shape");
    AddMatMul(list, p.ffn_gate_up, p.n_embd, p.n_ff, t, set);
    list.Add(harness::GluSpec(p.n_ff, t, p.act));
    // Models run GLU over its gate's storage (core/graph.h InPlaceSource).
    list.Add(harness::GluSpec(p.n_ff, t, p.act, /*in_place=*/true), "in place over gate");
    AddMatMul(list, p.ffn_down, p.n_ff, p.n_embd, t, set);
    if (prompt) {
      // Logits of the last token only: rows selected before the output norm.
      list.Add(harness::GetRowsSpec(DType::F32, p.n_embd, t, 1), "output-row selection");
    }
    AddMatMul(list, p.output, p.n_embd, vocab_rows, prompt ? 1 : t, set, vocab_note);
  }
}

Profile Stories260K() {
  Profile p;
  p.name = "stories260K";
  p.n_embd = 64, p.n_ff = 172, p.n_head = 8, p.n_head_kv = 4, p.head_dim = 8, p.n_vocab = 512;
  p.rope.n_rot = 8;
  p.rope.n_ctx_orig = 2048;
  p.attention_scale = 1.0f / std::sqrt(8.0f);
  p.embd = p.wq = p.wk = p.wv = p.wo = p.ffn_gate_up = p.ffn_down = p.output = {DType::F32};
  return p;
}

// Gemma 3 270M as its Q4_K_M file stores it (token_embd Q8_0 and tied to the output; Q5_0 Q/K
// and FFN inputs; V and ffn_down alternate between two types by layer).
Profile Gemma3_270m() {
  Profile p;
  p.name = "gemma3-270m";
  p.n_embd = 640, p.n_ff = 2048, p.n_head = 4, p.n_head_kv = 1, p.head_dim = 256;
  p.n_vocab = 262144;
  p.rms_eps = 1e-6f;
  p.rope.n_rot = 256;
  p.rope.mode = RopeMode::kNeox;
  p.rope.freq_base = 1000000.0f;
  p.rope.n_ctx_orig = 32768;
  p.rope_swa = p.rope;
  p.rope_swa->freq_base = 10000.0f;
  p.window = 512;
  p.qk_norm = p.embd_scale = true;
  p.act = Activation::kGeluTanh;
  p.embd = p.output = {DType::Q8_0};
  p.wq = p.wk = p.ffn_gate_up = {DType::Q5_0};
  p.wv = {DType::Q5_0, DType::Q8_0};
  p.wo = {DType::Q4_K};
  p.ffn_down = {DType::Q4_K, DType::Q6_K};
  return p;
}

Profile SyntheticPreset(const std::string& arch, const std::vector<DType>& types) {
  SyntheticOptions options;
  options.arch = arch;
  options.preset = "1b";
  const SyntheticShape s = ResolveSyntheticShape(options);
  Profile p;
  p.name = arch + "-1b";
  p.n_embd = s.n_embd, p.n_ff = s.n_ff, p.n_head = s.n_head, p.n_head_kv = s.n_head_kv;
  p.head_dim = s.head_dim, p.n_vocab = s.n_vocab, p.rms_eps = s.rms_eps;
  p.rope.n_rot = s.head_dim;
  p.rope.freq_base = s.rope_base;
  p.rope.n_ctx_orig = s.n_ctx;
  p.attention_scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  p.embd = p.wq = p.wk = p.wv = p.wo = p.ffn_gate_up = p.ffn_down = p.output = types;
  if (arch == "qwen2") {
    p.rope.mode = RopeMode::kNeox;
    p.qkv_bias = true;
  }
  return p;
}

// Cases a real model of the family has but the profiles above do not: Llama 3.1 frequency
// factors and YaRN context extension (Qwen2.5 long-context configurations).
void AddRopeVariants(CaseList& list) {
  RopeParams llama31;
  llama31.n_rot = 64;
  llama31.freq_base = 500000.0f;
  list.Add(harness::RopeSpec(64, 32, kPromptTokens, llama31, true), "llama3.1 freq_factors");
  RopeParams yarn;
  yarn.n_rot = 128;
  yarn.mode = RopeMode::kNeox;
  yarn.freq_base = 1000000.0f;
  yarn.freq_scale = 0.25f;
  yarn.ext_factor = 1.0f;
  yarn.n_ctx_orig = 32768;
  list.Add(harness::RopeSpec(128, 16, kPromptTokens, yarn, false), "YaRN x4");
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The spec of one node of a model's forward graph, with harness operands of the node's shapes
// and types. Attention reads `cells` cache cells holding `sequences` interleaved sequences.
std::optional<OpSpec> SpecFromNode(const Node& node, int64_t vocab_rows, int64_t matrix_rows,
                                   int64_t cells, int sequences, std::string& note) {
  const auto& s = node.src;
  const Tensor& out = *node.out;
  OpSpec spec;
  switch (node.op) {
    case Op::kGetRows: {
      const int64_t rows = std::min(s[0]->ne[1], vocab_rows);
      if (rows < s[0]->ne[1]) note = fmt::format("{} of {} vocab rows", rows, s[0]->ne[1]);
      spec = harness::GetRowsSpec(s[0]->type, s[0]->ne[0], rows, s[1]->elements());
      break;
    }
    case Op::kMatMul: {
      const int64_t n = std::min(s[1]->ne[1], matrix_rows);
      if (n < s[1]->ne[1]) note = fmt::format("{} of {} rows", n, s[1]->ne[1]);
      spec = harness::MatMulSpec(s[1]->type, s[1]->ne[0], n, s[0]->rows());
      break;
    }
    case Op::kAdd:
    case Op::kMul:
      spec = harness::BinarySpec(node.op, s[0]->ne[0], s[0]->rows(), s[1]->rows() == 1);
      break;
    case Op::kScale:
      spec = harness::ScaleSpec(s[0]->ne[0], s[0]->rows(), node.params.scale);
      break;
    case Op::kRmsNorm:
      spec = harness::RmsNormSpec(s[0]->ne[0], s[0]->rows(), s[1] != nullptr, node.params.eps);
      break;
    case Op::kRope:
      spec = harness::RopeSpec(s[0]->ne[0], s[0]->ne[1], s[0]->ne[2], node.params.rope,
                               s[2] != nullptr);
      note = RopeNote(node.params.rope);
      break;
    case Op::kGlu:
      // The planners run it over gate's storage (InPlaceSource), so grade it that way.
      spec = harness::GluSpec(s[0]->ne[0], s[0]->rows(), node.params.act,
                              InPlaceSource(node) != nullptr);
      if (spec.in_place) note = "in place over gate";
      break;
    case Op::kAttention: {
      const int64_t tokens = s[0]->ne[2];
      const int32_t window = node.params.attention.window;
      if (window > 0 && window <= kMaxWindowCells) {
        // One sequence over more cells than the window, so that the window masks.
        cells = window + 64;
        sequences = 1;
        note = fmt::format("sliding window {}", window);
      }
      spec = harness::AttentionSpec(s[0]->ne[0], s[0]->ne[1], s[1]->ne[1], tokens,
                                    std::max(cells, tokens), sequences, s[1]->type,
                                    node.params.attention);
      break;
    }
    case Op::kStoreKV: {
      // Rows arrive as [D·H, T] (V) or [D, H, T] (K after RoPE): T is what is left.
      const int64_t tokens = s[0]->elements() / (out.ne[0] * out.ne[1]);
      spec = harness::StoreKVSpec(out.ne[0], out.ne[1], tokens, std::max(cells, tokens), out.type);
      break;
    }
  }
  spec.params = node.params;
  return spec;
}

}  // namespace

std::vector<CheckCase> BuiltinCases(CaseSet set) {
  std::vector<CheckCase> all;
  auto add = [&](const Profile& p) {
    CaseList list(p.name);
    AddProfile(list, p, set);
    MergeCases(all, list.Take());
  };
  add(Stories260K());
  add(Gemma3_270m());
  // The synthetic presets sweep the weight types models ship with; kFull adds the rest of the
  // types dizuo loads.
  std::vector<DType> types = {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K};
  if (set == CaseSet::kFull) {
    for (DType t : {DType::F32, DType::BF16, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K,
                    DType::Q3_K, DType::Q5_K}) {
      types.push_back(t);
    }
  }
  Profile llama = SyntheticPreset("llama", types);
  Profile qwen2 = SyntheticPreset("qwen2", types);
  if (set == CaseSet::kFull) llama.cache = qwen2.cache = {DType::F16, DType::F32};
  add(llama);
  add(qwen2);
  if (set == CaseSet::kFull) {
    CaseList list("rope-variants");
    AddRopeVariants(list);
    MergeCases(all, list.Take());
  }
  return all;
}

std::vector<CheckCase> ModelFileCases(const std::string& path, const std::string& label,
                                      CaseSet set) {
  const int64_t vocab_rows = set == CaseSet::kQuick ? kVocabRowsQuick : kVocabRowsFull;
  const int64_t matrix_rows = set == CaseSet::kQuick ? kQuickMatrixRows : kVocabRowsFull;
  const gguf::File file = gguf::File::Open(path);
  // The reference backend binds weights as views of the file: nothing is copied.
  auto backend = CreateBackend("reference", {});
  auto model = model::Model::Load(file, *backend);
  const model::ModelConfig& c = model->config();
  model::KvCacheShape shape;
  shape.n_layer = c.n_layer;
  shape.head_dim = c.head_dim_k;
  shape.n_head_kv = c.n_head_kv;
  shape.n_cells = static_cast<int>(kCells);
  shape.type = DType::F16;
  model::KvCache cache(*backend, shape);

  CaseList list(label);
  for (int64_t t : {kDecodeTokens, kPromptTokens}) {
    Graph graph;
    const int n_out = 1;  // the last token's logits, as generation asks
    model->BuildForward(graph, cache, static_cast<int>(t), n_out, static_cast<int>(kCells));
    for (const Node& node : graph.nodes()) {
      std::string note;
      std::optional<OpSpec> spec =
          SpecFromNode(node, vocab_rows, matrix_rows, kCells, t > 1 ? 2 : 1, note);
      if (spec) list.Add(std::move(*spec), std::move(note));
    }
  }
  return list.Take();
}

void MergeCases(std::vector<CheckCase>& cases, std::vector<CheckCase> more) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < cases.size(); ++i) index[CaseKey(cases[i].spec)] = i;
  for (CheckCase& c : more) {
    const std::string key = CaseKey(c.spec);
    auto it = index.find(key);
    if (it == index.end()) {
      index[key] = cases.size();
      cases.push_back(std::move(c));
      continue;
    }
    CheckCase& existing = cases[it->second];
    for (std::string& s : c.sources) {
      if (std::find(existing.sources.begin(), existing.sources.end(), s) ==
          existing.sources.end()) {
        existing.sources.push_back(std::move(s));
      }
    }
    if (existing.note.empty()) existing.note = std::move(c.note);
  }
}

std::vector<CheckCase> FilterCases(std::vector<CheckCase> cases, const std::string& filter) {
  if (filter.empty()) return cases;
  const std::string f = Lower(filter);
  std::erase_if(cases, [&](const CheckCase& c) {
    return Lower(std::string(OpName(c.spec.op))).find(f) == std::string::npos;
  });
  return cases;
}

}  // namespace dizuo::check
