// Finding an OpenCL device and building the kernels on it (internal to the OpenCL backend).
#pragma once

#include <CL/opencl.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backends/backend.h"

namespace dizuo::opencl {

struct Device {
  cl::Device device;
  cl::Context context;
  cl::CommandQueue queue;  // in order: kernels see the results of earlier ones
  std::unordered_map<std::string, cl::Kernel> kernels;  // by function name
  DeviceInfo info;
  uint64_t max_alloc_bytes = 0;
  uint64_t local_mem_bytes = 0;
  size_t max_work_group = 0;
  cl::Buffer gelu_table;  // core/gelu.h's 65,536 f16 results, for the glu kernel
};

// Opens the first GPU or accelerator of any platform, else the first device of any kind, and
// builds every kernel. Throws dizuo::Error when there is none (naming the platforms seen) or when
// the build fails (with the compiler's log).
Device OpenDevice();

// The name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or the number.
std::string ErrorName(cl_int code);

}  // namespace dizuo::opencl
