// Per-op NMSE thresholds of `dizuo check`, with the reason for each (docs/CHECK.md has the table).
//
// A backend implements the same semantics as the reference (core/graph.h), including MATMUL's
// activation quantization, so the only legitimate differences are float rounding and summation
// order, plus the accuracy of exp/tanh/sin/cos. Thresholds sit about two orders of magnitude
// above what correct backends measure and many orders below what a real bug produces (a wrong
// RoPE pairing, a dropped block or a wrong scale give NMSE 1e-4 .. 1).
#pragma once

#include <string_view>

#include "core/dtype.h"
#include "core/graph.h"

namespace dizuo::check {

// kF32: the backend computes in f32 (the default). kF16: it is allowed to keep intermediates in
// f16 (activations, accumulators, softmax), as some accelerators do; thresholds are looser.
enum class Precision { kF32, kF16 };

struct Threshold {
  double nmse = 0;
  std::string_view reason;
};

Threshold OpThreshold(Op op, DType type, Precision precision);

std::string_view PrecisionName(Precision p);

}  // namespace dizuo::check
