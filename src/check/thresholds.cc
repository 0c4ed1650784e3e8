#include "check/thresholds.h"

#include "core/quant.h"

namespace dizuo::check {
namespace {

bool IsQuantized(DType type) { return Traits(type).quantized; }

}  // namespace

Threshold OpThreshold(Op op, DType type, Precision precision) {
  // The f16 class: an f16 intermediate carries a relative error of up to 2^-11 (NMSE ~1e-7 per
  // rounding); a few of them in sequence and softmax in f16 stay below 1e-5.
  if (precision == Precision::kF16) {
    switch (op) {
      case Op::kGetRows:
      case Op::kStoreKV:
        return {1e-10, "a conversion of the same bits; f16 does not enter unless the data is f16"};
      case Op::kMatMul:
        return {IsQuantized(type) ? 1e-4 : 1e-5,
                "f16 activations and accumulators: ~1e-7 per rounding, more over long sums"};
      default:
        return {1e-5, "intermediates in f16 (relative error 2^-11 each)"};
    }
  }
  switch (op) {
    case Op::kGetRows:
      return {1e-12,
              "each value is one conversion (block scale times quant), exact up to one rounding"};
    case Op::kStoreKV:
      return {1e-12, "a conversion to the cache type, round to nearest even: exact"};
    case Op::kAdd:
    case Op::kMul:
    case Op::kScale:
      return {1e-12, "one f32 operation per element: exact"};
    case Op::kRmsNorm:
      return {1e-10, "f32 sums in a different order: ~1e-14 measured"};
    case Op::kGlu:
      return {1e-9, "exp/tanh of different libraries differ by a few ulp"};
    case Op::kRope:
      return {
          1e-7,
          "sin/cos of angles up to 4096 rad: the angle's own f32 rounding (pos x theta) differs "
          "by how theta is computed (powf or repeated products), ~1e-10 measured"};
    case Op::kAttention:
      return {1e-8, "dot products and softmax sums in another order, exp of different libraries"};
    case Op::kMatMul:
      if (IsQuantized(type)) {
        return {1e-6,
                "activation quantization is part of the semantics; a product rounded differently "
                "can flip an activation to the next quantization step"};
      }
      return {1e-8, "f32 sums over up to 8192 products in another order"};
  }
  return {0, ""};
}

std::string_view PrecisionName(Precision p) { return p == Precision::kF16 ? "f16" : "f32"; }

}  // namespace dizuo::check
