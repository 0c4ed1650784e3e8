// The host side of the CUDA backend: device, buffers, transfers, support and op dispatch. Every
// CUDA and cuBLAS call is checked; a failure becomes a dizuo::Error naming what was being done and
// the runtime's own description of the error.
#include "backends/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <numbers>
#include <string>
#include <string_view>
#include <utility>

#include "backends/cuda/cuda_kernels.h"
#include "core/error.h"
#include "core/gelu.h"

namespace dizuo {
namespace {

using cuda::DevTensor;

void Check(cudaError_t status, std::string_view doing) {
  if (status != cudaSuccess) {
    Fail("CUDA backend: {} failed: {} ({})", doing, cudaGetErrorString(status),
         cudaGetErrorName(status));
  }
}

void CheckBlas(cublasStatus_t status, std::string_view doing) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    Fail("CUDA backend: {} failed: {} ({})", doing, cublasGetStatusString(status),
         cublasGetStatusName(status));
  }
}

// MATMUL with float weights goes to cuBLAS from this many activation rows on; below it, the warp
// kernel (whose weight reads are shared by up to 8 rows) wins.
constexpr int64_t kCublasMinRows = 16;

class CudaBackend;

class CudaBuffer final : public Buffer {
 public:
  CudaBuffer(Backend& backend, void* ptr, uint64_t size)
      : backend_(backend), ptr_(ptr), size_(size) {}
  ~CudaBuffer() override { cudaFree(ptr_); }
  Backend& backend() const override { return backend_; }
  uint64_t size() const override { return size_; }
  void* host_data() const override { return nullptr; }
  char* device_ptr() const { return static_cast<char*>(ptr_); }

 private:
  Backend& backend_;
  void* ptr_;
  uint64_t size_;
};

bool IsFloatWeight(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

bool IsMatMulWeight(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

bool IsRowTable(DType t) { return IsMatMulWeight(t) || t == DType::Q8_1 || t == DType::Q8_K; }

bool Is(const Tensor* t, DType type) { return t != nullptr && t->type == type; }
bool IsCache(const Tensor* t) { return Is(t, DType::F32) || Is(t, DType::F16); }

// Rows are packed (nb[0] is one block) and every count fits the kernels' grids.
bool Fits(const Tensor* t) {
  if (t == nullptr) return false;
  if (t->nb[0] != static_cast<uint64_t>(Traits(t->type).type_size)) return false;
  int64_t n = 1;
  for (int64_t e : t->ne) {
    if (e <= 0 || e > INT_MAX / n) return false;
    n *= e;
  }
  return true;
}

// ggml's YaRN correction dimension (as the reference computes it).
float YarnCorrDim(int n_dims, int n_ctx_orig, float n_rot_turns, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) /
                  (n_rot_turns * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

// FP32 lanes per SM and dense f16 tensor FLOPs per clock per SM, by compute capability: rough
// figures for the planner, not measurements.
void PeakRates(int major, int minor, double* f32_per_clock, double* f16_per_clock) {
  int lanes = 64;
  double tensor = 0;
  if (major == 7) {
    tensor = 1024;
  } else if (major == 8) {
    lanes = minor == 0 ? 64 : 128;
    tensor = minor == 0 ? 2048 : 1024;
  } else if (major == 9) {
    lanes = 128;
    tensor = 4096;
  } else if (major >= 10) {
    lanes = 128;
    tensor = major == 10 ? 8192 : 1024;
  }
  *f32_per_clock = 2.0 * lanes;
  *f16_per_clock = std::max(tensor, 2.0 * lanes);
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    try {
      Init();
    } catch (...) {
      Release();
      throw;
    }
  }

  ~CudaBackend() override {
    if (stream_) cudaStreamSynchronize(stream_);
    Release();
  }

 private:
  void Init() {
    Check(cudaSetDevice(device_), "selecting device 0");
    cudaDeviceProp prop{};
    Check(cudaGetDeviceProperties(&prop, device_), "reading device properties");
    int clock_khz = 0, mem_clock_khz = 0, bus_bits = 0;
    Check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device_), "reading the clock");
    Check(cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, device_),
          "reading the memory clock");
    Check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device_),
          "reading the memory bus width");
    info_.name = "cuda";
    info_.description =
        fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB)", prop.name, prop.major, prop.minor,
                    prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1 << 30));
    info_.memory_bytes = prop.totalGlobalMem;
    double f32_per_clock = 0, f16_per_clock = 0;
    PeakRates(prop.major, prop.minor, &f32_per_clock, &f16_per_clock);
    const double sm_hz = static_cast<double>(prop.multiProcessorCount) * clock_khz * 1e3;
    info_.peak_flops_f32 = sm_hz * f32_per_clock;
    info_.peak_flops_f16 = sm_hz * f16_per_clock;
    // Double data rate: two transfers per memory clock, bus_bits / 8 bytes each.
    info_.memory_bandwidth = 2.0 * mem_clock_khz * 1e3 * bus_bits / 8.0;
    info_.host_memory = false;

    Check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream");
    CheckBlas(cublasCreate(&blas_), "creating the cuBLAS handle");
    CheckBlas(cublasSetStream(blas_, stream_), "binding cuBLAS to the stream");
    void* word = nullptr;
    Check(cudaMalloc(&word, sizeof(int)), "allocating the error word");
    error_word_ = static_cast<int*>(word);
    Check(cudaMemsetAsync(error_word_, 0, sizeof(int), stream_), "clearing the error word");
    Check(cudaStreamSynchronize(stream_), "clearing the error word");
    const std::array<uint16_t, 65536>& gelu = GeluTanhF16Table();
    void* table = nullptr;
    Check(cudaMalloc(&table, sizeof gelu), "allocating the gelu table");
    gelu_table_ = static_cast<uint16_t*>(table);
    Check(cudaMemcpy(gelu_table_, gelu.data(), sizeof gelu, cudaMemcpyHostToDevice),
          "uploading the gelu table");
  }

  void Release() {
    if (scratch_) cudaFree(scratch_);
    if (error_word_) cudaFree(error_word_);
    if (gelu_table_) cudaFree(gelu_table_);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
    scratch_ = nullptr;
    error_word_ = nullptr;
    gelu_table_ = nullptr;
    blas_ = nullptr;
    stream_ = nullptr;
  }

 public:
  const DeviceInfo& device() const override { return info_; }

  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, std::max<uint64_t>(bytes, 1));
    if (status != cudaSuccess) {
      cudaGetLastError();  // allocation failures are not sticky; clear the record
      Fail("CUDA backend: out of device memory allocating {} bytes on '{}' ({})", bytes,
           info_.description, cudaGetErrorString(status));
    }
    auto buffer = std::make_unique<CudaBuffer>(*this, ptr, bytes);
    // Zero-filled, as host buffers are: a cache read before it is written holds zeros.
    Check(cudaMemsetAsync(ptr, 0, std::max<uint64_t>(bytes, 1), stream_), "clearing a buffer");
    Check(cudaStreamSynchronize(stream_), "clearing a buffer");
    return buffer;
  }

  void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) override {
    if (size == 0) return;
    char* dst = Locate(tensor, offset, size);
    Check(cudaMemcpyAsync(dst, host, size, cudaMemcpyHostToDevice, stream_),
          fmt::format("uploading '{}'", tensor.name));
    Check(cudaStreamSynchronize(stream_), fmt::format("uploading '{}'", tensor.name));
  }

  void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) override {
    if (size == 0) return;
    const char* src = Locate(tensor, offset, size);
    Check(cudaMemcpyAsync(host, src, size, cudaMemcpyDeviceToHost, stream_),
          fmt::format("downloading '{}'", tensor.name));
    Check(cudaStreamSynchronize(stream_), fmt::format("downloading '{}'", tensor.name));
  }

  bool Supports(const Node& node) const override { return Unsupported(node).empty(); }
  std::string WhyUnsupported(const Node& node) const override { return Unsupported(node); }

  void Compute(std::span<const Node> nodes) override {
    uint64_t scratch_bytes = 0;
    for (const Node& node : nodes) {
      DZ_ASSERT(Supports(node));
      CheckResident(node);
      scratch_bytes = std::max(scratch_bytes, ScratchBytes(node));
    }
    if (scratch_bytes > scratch_bytes_) {
      Check(cudaStreamSynchronize(stream_), "waiting for kernels");  // they may use the old one
      if (scratch_) Check(cudaFree(scratch_), "freeing scratch memory");
      scratch_ = nullptr;
      scratch_bytes_ = 0;
      Check(cudaMalloc(&scratch_, scratch_bytes),
            fmt::format("allocating {} bytes of scratch memory", scratch_bytes));
      scratch_bytes_ = scratch_bytes;
    }
    quantized_ = {};  // inputs may have been uploaded since the last segment
    for (const Node& node : nodes) {
      Enqueue(node);
      Check(cudaGetLastError(),
            fmt::format("launching {} for '{}'", OpName(node.op), node.out->name));
      if (quantized_.data != nullptr && Overlaps(*node.out, quantized_.data, quantized_.end)) {
        quantized_ = {};
      }
    }
  }

  void Synchronize() override {
    Check(cudaStreamSynchronize(stream_), "running kernels");
    int error = 0;
    Check(cudaMemcpyAsync(&error, error_word_, sizeof error, cudaMemcpyDeviceToHost, stream_),
          "reading the error word");
    Check(cudaStreamSynchronize(stream_), "reading the error word");
    if (error != 0) {
      Check(cudaMemsetAsync(error_word_, 0, sizeof(int), stream_), "clearing the error word");
      if (error & cuda::kErrorRowId) Fail("CUDA backend: GET_ROWS met a row id outside its table");
      Fail("CUDA backend: STORE_KV met a cell index outside the cache");
    }
  }

 private:
  // Why the kernels cannot compute `node`, or empty when they can.
  static std::string Unsupported(const Node& node) {
    const auto& s = node.src;
    for (const Tensor* t : {node.out, s[0], s[1], s[2], s[3], s[4]}) {
      if (t != nullptr && !Fits(t)) {
        return fmt::format("'{}' has strided rows or more than 2^31 elements", t->name);
      }
    }
    auto type_error = [](const Tensor* t) {
      return fmt::format("{} operand '{}' is not implemented", Name(t->type), t->name);
    };
    switch (node.op) {
      case Op::kGetRows:
        if (!IsRowTable(s[0]->type)) return type_error(s[0]);
        return {};
      case Op::kMatMul: {
        if (!IsMatMulWeight(s[1]->type)) return type_error(s[1]);
        if (s[0]->ne[0] % Traits(s[1]->type).block_size != 0) {
          return "the inner dimension is not a multiple of the weight's block size";
        }
        if (s[1]->nb[1] % 2 != 0) return "weight rows are not 2-byte aligned";
        if (!node.out->contiguous()) return "the output is not contiguous";
        if (s[0]->rows() / 8 >= 65535) return "more activation rows than the grid allows";
        return {};
      }
      case Op::kRmsNorm:
        if (s[1] != nullptr && !s[1]->contiguous()) return "the weight is not contiguous";
        return {};
      case Op::kRope:
        if (s[0]->ne[3] >= 65535) return "ne[3] exceeds the grid";
        if (s[0]->ne[0] * s[0]->ne[1] >= int64_t{65535} * 256) return "heads exceed the grid";
        if (s[2] != nullptr && !s[2]->contiguous()) return "frequency factors are not contiguous";
        return {};
      case Op::kAttention:
        if (s[0]->ne[0] > cuda::kAttentionMaxHeadDim) {
          return fmt::format("head size {} exceeds {}", s[0]->ne[0], cuda::kAttentionMaxHeadDim);
        }
        if (s[0]->ne[2] >= 65535) return "more tokens than the grid allows";
        return {};
      case Op::kStoreKV:
        if (!s[0]->contiguous()) return "the rows are not contiguous";
        return {};
      case Op::kAdd:
      case Op::kMul:
      case Op::kScale:
      case Op::kGlu:
        return {};
    }
    return "unknown op";
  }

  char* Locate(const Tensor& tensor, uint64_t offset, uint64_t size) const {
    if (tensor.buffer == nullptr || &tensor.buffer->backend() != this) {
      Fail("CUDA backend: tensor '{}' is not in a CUDA buffer of this backend", tensor.name);
    }
    const uint64_t end = tensor.offset + offset + size;
    if (end < size || end > tensor.buffer->size()) {
      Fail("CUDA backend: bytes [{}, {}) of tensor '{}' lie outside its buffer of {} bytes",
           tensor.offset + offset, end, tensor.name, tensor.buffer->size());
    }
    return static_cast<const CudaBuffer*>(tensor.buffer)->device_ptr() + tensor.offset + offset;
  }

  // Kernels address tensors by device pointer, so every tensor of a node must be in this
  // backend's memory.
  void CheckResident(const Node& node) const {
    auto check = [&](const Tensor* t) {
      if (t != nullptr && (t->buffer == nullptr || &t->buffer->backend() != this)) {
        Fail("CUDA backend: {} reads or writes '{}', which is not in this backend's memory",
             OpName(node.op), t->name);
      }
    };
    check(node.out);
    for (const Tensor* t : node.src) check(t);
  }

  // The device bytes [first, end) that `t` spans.
  static std::pair<const char*, const char*> Extent(const Tensor& t) {
    const char* first = static_cast<const CudaBuffer*>(t.buffer)->device_ptr() + t.offset;
    if (t.elements() <= 0) return {first, first};
    uint64_t end = t.row_bytes();  // rows are packed (Fits)
    for (int i = 1; i < kMaxDims; ++i) end += static_cast<uint64_t>(t.ne[i] - 1) * t.nb[i];
    return {first, first + end};
  }
  static bool Overlaps(const Tensor& t, const char* first, const char* end) {
    const auto [a, b] = Extent(t);
    return a < end && first < b;
  }

  static DevTensor Dev(const Tensor& t) {
    DevTensor d;
    d.data = static_cast<const CudaBuffer*>(t.buffer)->device_ptr() + t.offset;
    for (int i = 0; i < kMaxDims; ++i) {
      d.ne[i] = t.ne[i];
      d.nb[i] = static_cast<int64_t>(t.nb[i]);
    }
    return d;
  }

  static bool UsesCublas(const Node& node) {
    return IsFloatWeight(node.src[1]->type) && node.src[0]->rows() >= kCublasMinRows;
  }

  static uint64_t ScratchBytes(const Node& node) {
    if (node.op != Op::kMatMul) return 0;
    const Tensor& x = *node.src[0];
    const DType w = node.src[1]->type;
    if (!IsFloatWeight(w)) return cuda::QuantizedActivationBytes(x.ne[0], x.rows());
    if (!UsesCublas(node)) return 0;
    return static_cast<uint64_t>(x.elements()) * (w == DType::F32 ? 4 : 2);
  }

  void Enqueue(const Node& node) {
    const auto& s = node.src;
    const DevTensor out = Dev(*node.out);
    switch (node.op) {
      case Op::kGetRows:
        return cuda::LaunchGetRows(s[0]->type, Dev(*s[0]), Dev(*s[1]), out, error_word_, stream_);
      case Op::kMatMul:
        return MatMul(node);
      case Op::kAdd:
        return cuda::LaunchElementwise(0, Dev(*s[0]), Dev(*s[1]), 1.0f, out, stream_);
      case Op::kMul:
        return cuda::LaunchElementwise(1, Dev(*s[0]), Dev(*s[1]), 1.0f, out, stream_);
      case Op::kScale:
        return cuda::LaunchElementwise(2, Dev(*s[0]), Dev(*s[0]), node.params.scale, out, stream_);
      case Op::kRmsNorm: {
        const float* weight = s[1] ? reinterpret_cast<const float*>(Dev(*s[1]).data) : nullptr;
        return cuda::LaunchRmsNorm(Dev(*s[0]), weight, node.params.eps, out, stream_);
      }
      case Op::kRope:
        return cuda::LaunchRope(Dev(*s[0]), Dev(*s[1]),
                                s[2] ? reinterpret_cast<const float*>(Dev(*s[2]).data) : nullptr,
                                RopeArgsOf(node.params.rope), out, stream_);
      case Op::kGlu:
        return cuda::LaunchGlu(node.params.act == Activation::kSilu, gelu_table_, Dev(*s[0]),
                               Dev(*s[1]), out, stream_);
      case Op::kAttention: {
        const AttentionParams& p = node.params.attention;
        return cuda::LaunchAttention(Dev(*s[0]), s[1]->type, Dev(*s[1]), s[2]->type, Dev(*s[2]),
                                     Dev(*s[3]), Dev(*s[4]), {p.scale, p.softcap, p.window}, out,
                                     stream_);
      }
      case Op::kStoreKV:
        return cuda::LaunchStoreKV(node.out->type, out, Dev(*s[0]), Dev(*s[1]), error_word_,
                                   stream_);
    }
  }

  static cuda::RopeArgs RopeArgsOf(const RopeParams& p) {
    cuda::RopeArgs a;
    a.n_rot = p.n_rot;
    a.neox = p.mode == RopeMode::kNeox;
    a.theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
    a.freq_scale = p.freq_scale;
    a.ext_factor = p.ext_factor;
    a.attn_factor = p.attn_factor;
    if (p.ext_factor != 0.0f) {
      const float start = std::floor(YarnCorrDim(p.n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base));
      const float end = std::ceil(YarnCorrDim(p.n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base));
      a.corr_low = std::max(0.0f, start);
      a.corr_high = std::min(static_cast<float>(p.n_rot - 1), end);
    }
    a.mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) a.mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
    return a;
  }

  void MatMul(const Node& node) {
    const Tensor& x = *node.src[0];
    const Tensor& w = *node.src[1];
    const DevTensor out = Dev(*node.out);
    const int64_t k = x.ne[0], m = x.rows(), n = w.ne[1];
    if (!IsFloatWeight(w.type)) {
      // Q, K and V (and gate and up) multiply the same activations: they are quantized once, for
      // the first, and kept in scratch until a later node of the segment writes over them.
      const cuda::QuantizedActivations q = cuda::CarveQuantizedActivations(scratch_, k, m);
      const DType act = cuda::ActivationTypeOf(w.type);
      const auto [first, end] = Extent(x);
      const Quantized now{first, end, act, x.ne, x.nb};
      if (!(now == quantized_)) {
        cuda::LaunchQuantize(act, Dev(x), q, stream_);
        Check(cudaGetLastError(), "launching the activation quantizer");
        quantized_ = now;
      }
      return cuda::LaunchMatMulQuantized(w.type, Dev(w), q, out, stream_);
    }
    if (!UsesCublas(node)) return cuda::LaunchMatMulFloat(w.type, Dev(w), Dev(x), out, stream_);

    // Column-major view: out (N×M) = Wᵀ (N×K) · X (K×M), with W stored as K×N (lda = row pitch).
    quantized_ = {};  // the packed rows take the scratch the quantized activations were in
    cuda::LaunchPackRows(w.type, Dev(x), scratch_, stream_);
    Check(cudaGetLastError(), "launching the activation packer");
    const int64_t elem = Traits(w.type).type_size;
    const auto ldw = static_cast<int>(w.nb[1] / static_cast<uint64_t>(elem));
    const auto ldo = static_cast<int>(node.out->nb[1] / sizeof(float));
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType_t type = w.type == DType::F32   ? CUDA_R_32F
                                : w.type == DType::F16 ? CUDA_R_16F
                                                       : CUDA_R_16BF;
    CheckBlas(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                           static_cast<int>(m), static_cast<int>(k), &one, Dev(w).data, type, ldw,
                           scratch_, type, static_cast<int>(k), &zero, out.data, CUDA_R_32F, ldo,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              fmt::format("cublasGemmEx for '{}'", node.out->name));
  }

  int device_;
  DeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  int* error_word_ = nullptr;
  uint16_t* gelu_table_ = nullptr;  // core/gelu.h's table, for GLU's gelu_tanh
  void* scratch_ = nullptr;
  uint64_t scratch_bytes_ = 0;
  // The activations whose quantization scratch holds (data null: none), for MATMUL.
  struct Quantized {
    const char* data = nullptr;
    const char* end = nullptr;
    DType type = DType::F32;
    std::array<int64_t, kMaxDims> ne{};
    std::array<uint64_t, kMaxDims> nb{};
    bool operator==(const Quantized&) const = default;
  } quantized_;
};

}  // namespace

std::unique_ptr<Backend> CreateCudaBackend(const BackendOptions&) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    Fail("CUDA backend: no usable GPU (cudaGetDeviceCount: {})", cudaGetErrorString(status));
  }
  if (count == 0) Fail("CUDA backend: no usable GPU (cudaGetDeviceCount: no devices)");
  return std::make_unique<CudaBackend>(0);
}

}  // namespace dizuo
