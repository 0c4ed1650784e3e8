// The skeleton backend: the starting point for a new chip. It compiles, manages device-style
// memory and supports no op, so every node falls back to the CPU and every model still runs.
// Copy this folder, rename it, and fill in the places marked "unimplemented" one op at a time
// (docs/PORTING.md).
#pragma once

#include <memory>

#include "dizuo/backend.h"

namespace dizuo {

// The name this build registers it under: "skeleton" in-tree, "skeleton_plugin" in
// libdizuo_skeleton_backend.so (so both can be loaded into one process).
#ifndef DIZUO_SKELETON_NAME
#define DIZUO_SKELETON_NAME "skeleton"
#endif

std::unique_ptr<Backend> CreateSkeletonBackend(const BackendOptions& options);

}  // namespace dizuo
