// The OpenCL C 1.2 sources of every kernel (kernels/*.cl), embedded at build time by
// embed_kernels.cmake and compiled once when the backend is created.
#pragma once

namespace dizuo::opencl {

extern const char* const kKernelSources[];
extern const int kKernelSourceCount;

}  // namespace dizuo::opencl
