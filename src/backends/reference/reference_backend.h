// The reference backend: scalar, single-threaded kernels that implement core/graph.h's op
// semantics as literally as possible. It is the oracle other backends are graded against, so
// clarity wins over speed everywhere here.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace dizuo {

std::unique_ptr<Backend> CreateReferenceBackend(const BackendOptions& options);

namespace reference {

// Whether the reference kernels handle `node` (op, dtypes, strides).
bool Supports(const Node& node);
// Computes one node whose tensors all live in host memory. `node` must be supported.
void ComputeNode(const Node& node);

}  // namespace reference
}  // namespace dizuo
