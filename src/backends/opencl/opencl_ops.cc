#include "backends/opencl/opencl_ops.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <numbers>
#include <optional>
#include <string>

#include "core/error.h"

namespace dizuo::opencl {
namespace {

// A weight type the MATMUL and GET_ROWS kernels handle: its kernel-name suffix, the activation
// type x is converted to, and the kernel that converts it (one work-item per `convert_block`
// elements).
struct WeightKernels {
  DType type;
  const char* suffix;
  DType activation;
  const char* converter;
  int64_t convert_block;
};

constexpr WeightKernels kWeightKernels[] = {
    {DType::F32, "F32", DType::F32, "convert_f32", 1},
    {DType::F16, "F16", DType::F16, "convert_f16", 1},
    {DType::BF16, "BF16", DType::BF16, "convert_bf16", 1},
    {DType::Q4_0, "Q4_0", DType::Q8_0, "quantize_q8_0", 32},
    {DType::Q5_0, "Q5_0", DType::Q8_0, "quantize_q8_0", 32},
    {DType::Q8_0, "Q8_0", DType::Q8_0, "quantize_q8_0", 32},
    {DType::Q4_1, "Q4_1", DType::Q8_1, "quantize_q8_1", 32},
    {DType::Q5_1, "Q5_1", DType::Q8_1, "quantize_q8_1", 32},
    {DType::Q2_K, "Q2_K", DType::Q8_K, "quantize_q8_k", 256},
    {DType::Q3_K, "Q3_K", DType::Q8_K, "quantize_q8_k", 256},
    {DType::Q4_K, "Q4_K", DType::Q8_K, "quantize_q8_k", 256},
    {DType::Q5_K, "Q5_K", DType::Q8_K, "quantize_q8_k", 256},
    {DType::Q6_K, "Q6_K", DType::Q8_K, "quantize_q8_k", 256},
};

const WeightKernels* FindWeight(DType type) {
  for (const WeightKernels& w : kWeightKernels) {
    if (w.type == type) return &w;
  }
  return nullptr;
}

constexpr int64_t kMaxHeadDim = 256;  // ATTN_MAX_DIM in attention.cl
constexpr int64_t kAttnChunk = 64;    // ATTN_CHUNK in attention.cl

// ---- support ----

bool Is(const Tensor* t, DType type) { return t != nullptr && t->type == type; }
bool IsCache(const Tensor* t) { return Is(t, DType::F32) || Is(t, DType::F16); }

bool Fits(const Tensor& t) {
  if (t.nb[0] != static_cast<uint64_t>(Traits(t.type).type_size)) return false;  // packed rows
  int64_t n = 1;
  for (int64_t e : t.ne) {
    if (e <= 0 || e > INT_MAX / n) return false;
    n *= e;
  }
  return true;
}

// ---- launching ----

// A tensor as the kernels take it: buffer, byte offset, shape, strides.
struct Arg {
  cl::Buffer mem;
  cl_ulong off;
  cl_int4 ne;
  cl_ulong4 nb;
};

Arg ArgOf(const Tensor& t) {
  Arg a;
  a.mem = static_cast<const DeviceBuffer*>(t.buffer)->mem();
  a.off = t.offset;
  for (int i = 0; i < kMaxDims; ++i) {
    a.ne.s[i] = static_cast<cl_int>(t.ne[i]);
    a.nb.s[i] = t.nb[i];
  }
  return a;
}

// The largest power of two <= want that the kernel and device allow.
size_t GroupSize(const Device& dev, const cl::Kernel& kernel, size_t want) {
  const size_t limit =
      std::min(dev.max_work_group, kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev.device));
  size_t size = 1;
  while (size * 2 <= std::min(want, limit)) size *= 2;
  return size;
}

class Launcher {
 public:
  explicit Launcher(Device& dev) : dev_(dev) {}

  cl::Kernel& Kernel(const std::string& name) {
    auto it = dev_.kernels.find(name);
    DZ_ASSERT(it != dev_.kernels.end());
    return it->second;
  }

  template <typename... Args>
  void Run(const std::string& name, const cl::NDRange& global, const cl::NDRange& local,
           const Args&... args) {
    for (size_t i = 0; i < global.dimensions(); ++i) {
      if (global.get()[i] == 0) return;  // nothing to do (and an error for OpenCL)
    }
    cl::Kernel& kernel = Kernel(name);
    cl_uint index = 0;
    (SetArg(kernel, index, args), ...);
    dev_.queue.enqueueNDRangeKernel(kernel, cl::NullRange, global, local);
  }

 private:
  template <typename T>
  static void SetArg(cl::Kernel& kernel, cl_uint& index, const T& value) {
    kernel.setArg(index++, value);
  }
  static void SetArg(cl::Kernel& kernel, cl_uint& index, const Arg& a) {
    kernel.setArg(index++, a.mem);
    kernel.setArg(index++, a.off);
    kernel.setArg(index++, a.ne);
    kernel.setArg(index++, a.nb);
  }

  Device& dev_;
};

cl_int I(int64_t v) { return static_cast<cl_int>(v); }
cl_ulong U(uint64_t v) { return static_cast<cl_ulong>(v); }

void GetRows(Launcher& run, const Node& node) {
  const Tensor& table = *node.src[0];
  const Arg t = ArgOf(table), ids = ArgOf(*node.src[1]), out = ArgOf(*node.out);
  run.Run(std::string("get_rows_") + FindWeight(table.type)->suffix,
          cl::NDRange(table.ne[0], node.src[1]->ne[0]), cl::NullRange, t.mem, t.off, U(table.nb[1]),
          I(table.ne[1]), ids.mem, ids.off, ids.nb.s[0], out.mem, out.off, out.nb.s[1]);
}

void MatMul(Device& dev, Launcher& run, const Node& node, const cl::Buffer& scratch) {
  const Tensor& x = *node.src[0];
  const Tensor& w = *node.src[1];
  const WeightKernels& wk = *FindWeight(w.type);
  const int64_t k = x.ne[0], m = x.rows(), n = w.ne[1];
  const uint64_t act_row_bytes = *RowBytes(wk.activation, static_cast<uint64_t>(k));
  run.Run(wk.converter, cl::NDRange(k / wk.convert_block, m), cl::NullRange, ArgOf(x), scratch,
          U(act_row_bytes));

  const std::string name = std::string("matmul_") + wk.suffix;
  const size_t group = GroupSize(dev, run.Kernel(name), 32);
  const Arg wa = ArgOf(w);
  run.Run(name, cl::NDRange(n * group, m), cl::NDRange(group, 1), wa.mem, wa.off, U(w.nb[1]),
          scratch, U(act_row_bytes), ArgOf(*node.out), I(k / Traits(w.type).block_size),
          cl::Local(group * sizeof(float)));
}

void Binary(Launcher& run, const Node& node) {
  const Tensor& a = *node.src[0];
  const Tensor& b = *node.src[1];
  run.Run("binary", cl::NDRange(a.ne[0], a.rows()), cl::NullRange, I(node.op == Op::kAdd ? 0 : 1),
          ArgOf(a), ArgOf(b), I(b.rows() == 1 ? 1 : 0), ArgOf(*node.out));
}

void Scale(Launcher& run, const Node& node) {
  const Tensor& a = *node.src[0];
  run.Run("scale", cl::NDRange(a.ne[0], a.rows()), cl::NullRange, ArgOf(a),
          static_cast<cl_float>(node.params.scale), ArgOf(*node.out));
}

void Glu(Device& dev, Launcher& run, const Node& node) {
  const Tensor& g = *node.src[0];
  run.Run("glu", cl::NDRange(g.ne[0], g.rows()), cl::NullRange,
          I(node.params.act == Activation::kSilu ? 0 : 1), ArgOf(g), ArgOf(*node.src[1]),
          ArgOf(*node.out), dev.gelu_table);
}

void RmsNorm(Device& dev, Launcher& run, const Node& node) {
  const Tensor& x = *node.src[0];
  const Arg xa = ArgOf(x);
  const Arg w = node.src[1] ? ArgOf(*node.src[1]) : xa;  // unused when there is no weight
  const size_t group = GroupSize(dev, run.Kernel("rms_norm"), 64);
  run.Run("rms_norm", cl::NDRange(x.rows() * group), cl::NDRange(group), xa, w.mem, w.off,
          I(node.src[1] ? 1 : 0), static_cast<cl_float>(node.params.eps), ArgOf(*node.out),
          cl::Local(group * sizeof(float)));
}

// ggml's YaRN correction dimension: the rotary pair whose wavelength fits `turns` turns into the
// original training context.
float YarnCorrDim(int n_rot, int n_ctx_orig, float turns, float base) {
  return static_cast<float>(n_rot) *
         std::log(static_cast<float>(n_ctx_orig) / (turns * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

void Rope(Launcher& run, const Node& node) {
  const Tensor& x = *node.src[0];
  const RopeParams& p = node.params.rope;
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  float corr_low = 0, corr_high = 0, mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) {
    corr_low =
        std::max(0.0f, std::floor(YarnCorrDim(p.n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base)));
    corr_high = std::min(static_cast<float>(p.n_rot - 1),
                         std::ceil(YarnCorrDim(p.n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base)));
    mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
  }
  const Arg xa = ArgOf(x), pos = ArgOf(*node.src[1]);
  const Arg factors = node.src[2] ? ArgOf(*node.src[2]) : xa;  // unused without factors
  const Arg out = ArgOf(*node.out);
  run.Run("rope", cl::NDRange(x.ne[0], x.ne[1], x.ne[2] * x.ne[3]), cl::NullRange, xa, pos.mem,
          pos.off, pos.nb.s[0], factors.mem, factors.off, I(node.src[2] ? 1 : 0), out.mem, out.off,
          out.nb, I(p.n_rot), I(p.mode == RopeMode::kNeox ? 1 : 0), theta_scale, p.freq_scale,
          p.ext_factor, corr_low, corr_high, mscale);
}

void Attention(Device& dev, Launcher& run, const Node& node) {
  const Tensor& q = *node.src[0];
  const Tensor& k = *node.src[1];
  const Tensor& v = *node.src[2];
  const AttentionParams& p = node.params.attention;
  size_t group = GroupSize(dev, run.Kernel("attention"), 32);
  while (group > 1 && group * (kAttnChunk + 2) * sizeof(float) > dev.local_mem_bytes) group /= 2;
  const Arg qa = ArgOf(q), ka = ArgOf(k), va = ArgOf(v), tok = ArgOf(*node.src[3]),
            cells = ArgOf(*node.src[4]), out = ArgOf(*node.out);
  run.Run("attention", cl::NDRange(q.ne[1] * group, q.ne[2]), cl::NDRange(group, 1), qa.mem, qa.off,
          qa.nb, ka.mem, ka.off, ka.nb, I(k.type == DType::F16), va.mem, va.off, va.nb,
          I(v.type == DType::F16), tok.mem, tok.off, tok.nb, cells.mem, cells.off, cells.nb,
          I(q.ne[0]), I(q.ne[1] / k.ne[1]), I(k.ne[2]), p.scale, p.softcap, I(p.window), out.mem,
          out.off, out.nb, cl::Local(group * sizeof(float)), cl::Local(group * sizeof(float)),
          cl::Local(group * kAttnChunk * sizeof(float)));
}

void StoreKV(Launcher& run, const Node& node) {
  const Tensor& cache = *node.out;
  const Tensor& cells = *node.src[1];
  const Arg rows = ArgOf(*node.src[0]), c = ArgOf(cells), out = ArgOf(cache);
  run.Run("store_kv", cl::NDRange(cache.ne[0] * cache.ne[1], cells.ne[0]), cl::NullRange, rows.mem,
          rows.off, c.mem, c.off, c.nb.s[0], out.mem, out.off, out.nb, I(cache.ne[0]),
          I(cache.ne[2]), I(cache.type == DType::F16));
}

}  // namespace

bool SupportsNode(const Node& node) {
  if (node.out == nullptr || !Fits(*node.out)) return false;
  for (const Tensor* t : node.src) {
    if (t != nullptr && !Fits(*t)) return false;
  }
  const auto& s = node.src;
  const Tensor& out = *node.out;
  switch (node.op) {
    case Op::kGetRows:
      return s[0] && FindWeight(s[0]->type) && s[0]->ne[2] == 1 && s[0]->ne[3] == 1 &&
             Is(s[1], DType::I32) && Is(&out, DType::F32);
    case Op::kMatMul:
      return Is(s[0], DType::F32) && s[1] && FindWeight(s[1]->type) && s[1]->ne[2] == 1 &&
             s[1]->ne[3] == 1 && s[0]->ne[0] % Traits(s[1]->type).block_size == 0 &&
             Is(&out, DType::F32) && out.rows() == s[0]->rows();
    case Op::kAdd:
    case Op::kMul:
      return Is(s[0], DType::F32) && Is(s[1], DType::F32) && Is(&out, DType::F32) &&
             (s[1]->rows() == 1 || s[1]->rows() == s[0]->rows());
    case Op::kScale:
      return Is(s[0], DType::F32) && Is(&out, DType::F32);
    case Op::kGlu:
      return Is(s[0], DType::F32) && Is(s[1], DType::F32) && Is(&out, DType::F32);
    case Op::kRmsNorm:
      return Is(s[0], DType::F32) && (s[1] == nullptr || Is(s[1], DType::F32)) &&
             Is(&out, DType::F32);
    case Op::kRope:
      return Is(s[0], DType::F32) && Is(s[1], DType::I32) && Is(&out, DType::F32) &&
             (s[2] == nullptr || (Is(s[2], DType::F32) && s[2]->contiguous()));
    case Op::kAttention:
      return Is(s[0], DType::F32) && IsCache(s[1]) && IsCache(s[2]) && Is(s[3], DType::I32) &&
             Is(s[4], DType::I32) && Is(&out, DType::F32) && s[0]->ne[0] <= kMaxHeadDim &&
             s[0]->ne[3] == 1 && s[1]->ne[3] == 1 && s[2]->ne[3] == 1 && out.ne[2] == 1 &&
             out.ne[3] == 1;
    case Op::kStoreKV:
      return IsCache(&out) && out.ne[3] == 1 && Is(s[0], DType::F32) && s[0]->contiguous() &&
             Is(s[1], DType::I32);
  }
  return false;
}

uint64_t ScratchBytes(const Node& node) {
  if (node.op != Op::kMatMul) return 0;
  const Tensor& x = *node.src[0];
  const DType act = FindWeight(node.src[1]->type)->activation;
  return *RowBytes(act, static_cast<uint64_t>(x.ne[0])) * static_cast<uint64_t>(x.rows());
}

void EnqueueNode(Device& dev, const Node& node, const cl::Buffer& scratch) {
  Launcher run(dev);
  switch (node.op) {
    case Op::kGetRows:
      return GetRows(run, node);
    case Op::kMatMul:
      return MatMul(dev, run, node, scratch);
    case Op::kAdd:
    case Op::kMul:
      return Binary(run, node);
    case Op::kScale:
      return Scale(run, node);
    case Op::kGlu:
      return Glu(dev, run, node);
    case Op::kRmsNorm:
      return RmsNorm(dev, run, node);
    case Op::kRope:
      return Rope(run, node);
    case Op::kAttention:
      return Attention(dev, run, node);
    case Op::kStoreKV:
      return StoreKV(run, node);
  }
}

}  // namespace dizuo::opencl
