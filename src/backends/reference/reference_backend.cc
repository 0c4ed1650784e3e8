#include "backends/reference/reference_backend.h"

#include "backends/host_buffer.h"
#include "backends/reference/reference_kernels.h"
#include "core/error.h"
#include "core/quant.h"

namespace dizuo {
namespace reference {
namespace {

bool IsF32(const Tensor* t) { return t != nullptr && t->type == DType::F32; }
bool IsI32(const Tensor* t) { return t != nullptr && t->type == DType::I32; }
bool IsCache(const Tensor* t) {
  return t != nullptr && (t->type == DType::F32 || t->type == DType::F16);
}

// Every tensor of the node must have packed rows; ops that index a flat array also need their
// operand to be contiguous.
bool AllRowsPacked(const Node& node) {
  if (node.out == nullptr || !RowsPacked(*node.out)) return false;
  for (const Tensor* t : node.src) {
    if (t != nullptr && !RowsPacked(*t)) return false;
  }
  return true;
}

}  // namespace

bool RowsPacked(const Tensor& t) {
  return t.nb[0] == static_cast<uint64_t>(Traits(t.type).type_size);
}

bool Supports(const Node& node) {
  if (!AllRowsPacked(node)) return false;
  const auto& s = node.src;
  switch (node.op) {
    case Op::kGetRows:
      return s[0] && CanConvert(s[0]->type) && IsI32(s[1]) && IsF32(node.out);
    case Op::kMatMul:
      return IsF32(s[0]) && s[1] && IsMatMulWeightType(s[1]->type) && IsF32(node.out);
    case Op::kAdd:
    case Op::kMul:
      return IsF32(s[0]) && IsF32(s[1]) && IsF32(node.out);
    case Op::kScale:
    case Op::kGlu:
      return IsF32(s[0]) && IsF32(node.out) && (node.op == Op::kScale || IsF32(s[1]));
    case Op::kRmsNorm:
      return IsF32(s[0]) && (s[1] == nullptr || IsF32(s[1])) && IsF32(node.out);
    case Op::kRope:
      return IsF32(s[0]) && IsI32(s[1]) && (s[2] == nullptr || (IsF32(s[2]) && s[2]->contiguous()));
    case Op::kAttention:
      return IsF32(s[0]) && IsCache(s[1]) && IsCache(s[2]) && IsI32(s[3]) && IsI32(s[4]) &&
             IsF32(node.out) && node.out->ne[2] == 1 && node.out->ne[3] == 1;
    case Op::kStoreKV:
      return IsCache(node.out) && IsF32(s[0]) && s[0]->contiguous() && IsI32(s[1]);
  }
  return false;
}

void ComputeNode(const Node& node) {
  DZ_ASSERT(Supports(node));
  switch (node.op) {
    case Op::kGetRows:
      return GetRows(node);
    case Op::kMatMul:
      return MatMul(node);
    case Op::kAdd:
      return Add(node);
    case Op::kMul:
      return Mul(node);
    case Op::kScale:
      return Scale(node);
    case Op::kRmsNorm:
      return RmsNorm(node);
    case Op::kRope:
      return Rope(node);
    case Op::kGlu:
      return Glu(node);
    case Op::kAttention:
      return Attention(node);
    case Op::kStoreKV:
      return StoreKV(node);
  }
}

}  // namespace reference

namespace {

class ReferenceBackend final : public Backend {
 public:
  ReferenceBackend() {
    info_.name = "reference";
    info_.description = "scalar reference kernels (1 thread)";
    info_.host_memory = true;
  }

  const DeviceInfo& device() const override { return info_; }

  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    return std::make_unique<HostBuffer>(*this, bytes);
  }
  void Upload(const Tensor& tensor, const void* host, uint64_t offset, uint64_t size) override {
    HostUpload(tensor, host, offset, size);
  }
  void Download(const Tensor& tensor, void* host, uint64_t offset, uint64_t size) override {
    HostDownload(tensor, host, offset, size);
  }

  bool Supports(const Node& node) const override { return reference::Supports(node); }
  void Compute(std::span<const Node> nodes) override {
    for (const Node& node : nodes) reference::ComputeNode(node);
  }

 private:
  DeviceInfo info_;
};

}  // namespace

std::unique_ptr<Backend> CreateReferenceBackend(const BackendOptions&) {
  return std::make_unique<ReferenceBackend>();
}

}  // namespace dizuo
