#include "backends/opencl/opencl_device.h"

#include <vector>

#include "backends/opencl/opencl_kernels.h"
#include "core/error.h"
#include "core/gelu.h"

namespace dizuo::opencl {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s;
}

bool IsAccelerator(const cl::Device& d) {
  return (d.getInfo<CL_DEVICE_TYPE>() & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
}

// Every platform's devices; `seen` describes them for error messages.
std::vector<cl::Device> ListDevices(std::string& seen) {
  std::vector<cl::Platform> platforms;
  try {
    cl::Platform::get(&platforms);
  } catch (const cl::Error& e) {
    // ocl-icd reports "no platform" as an error (CL_PLATFORM_NOT_FOUND_KHR).
    seen = fmt::format("none (clGetPlatformIDs: {})", ErrorName(e.err()));
    return {};
  }
  std::vector<cl::Device> all;
  for (const cl::Platform& p : platforms) {
    std::vector<cl::Device> devices;
    try {
      p.getDevices(CL_DEVICE_TYPE_ALL, &devices);
    } catch (const cl::Error&) {
      devices.clear();  // a platform without devices reports CL_DEVICE_NOT_FOUND
    }
    seen += fmt::format("{}'{}' ({} device{})", seen.empty() ? "" : ", ",
                        Trim(p.getInfo<CL_PLATFORM_NAME>()), devices.size(),
                        devices.size() == 1 ? "" : "s");
    all.insert(all.end(), devices.begin(), devices.end());
  }
  if (platforms.empty()) seen = "none";
  return all;
}

std::string BuildOptions(const cl::Device& d) {
  std::string options = "-cl-std=CL1.2";
  // Correctly rounded division makes activation quantization match the reference bit for bit.
  if (d.getInfo<CL_DEVICE_SINGLE_FP_CONFIG>() & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) {
    options += " -cl-fp32-correctly-rounded-divide-sqrt";
  }
  return options;
}

DeviceInfo Describe(const cl::Device& d) {
  DeviceInfo info;
  info.name = "opencl";
  const cl::Platform platform(d.getInfo<CL_DEVICE_PLATFORM>());
  const auto units = d.getInfo<CL_DEVICE_MAX_COMPUTE_UNITS>();
  info.description = fmt::format("{} ({}, {} compute units, {})", Trim(d.getInfo<CL_DEVICE_NAME>()),
                                 Trim(platform.getInfo<CL_PLATFORM_NAME>()), units,
                                 Trim(d.getInfo<CL_DEVICE_OPENCL_C_VERSION>()));
  info.memory_bytes = d.getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
  // Rough peak: one fused multiply-add per lane of the preferred float vector per compute unit
  // per cycle. Kernels compute f16 data in f32, so the f16 figure is the same. OpenCL does not
  // report memory bandwidth (left 0: unknown).
  const double lanes = std::max<cl_uint>(1, d.getInfo<CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT>());
  info.peak_flops_f32 = 2.0 * lanes * units * d.getInfo<CL_DEVICE_MAX_CLOCK_FREQUENCY>() * 1e6;
  info.peak_flops_f16 = info.peak_flops_f32;
  info.host_memory = false;
  return info;
}

}  // namespace

std::string ErrorName(cl_int code) {
  switch (code) {
#define DZ_CL_CASE(name) \
  case name:             \
    return #name;
    DZ_CL_CASE(CL_DEVICE_NOT_FOUND)
    DZ_CL_CASE(CL_DEVICE_NOT_AVAILABLE)
    DZ_CL_CASE(CL_COMPILER_NOT_AVAILABLE)
    DZ_CL_CASE(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    DZ_CL_CASE(CL_OUT_OF_RESOURCES)
    DZ_CL_CASE(CL_OUT_OF_HOST_MEMORY)
    DZ_CL_CASE(CL_BUILD_PROGRAM_FAILURE)
    DZ_CL_CASE(CL_INVALID_VALUE)
    DZ_CL_CASE(CL_INVALID_BUFFER_SIZE)
    DZ_CL_CASE(CL_INVALID_KERNEL_ARGS)
    DZ_CL_CASE(CL_INVALID_ARG_SIZE)
    DZ_CL_CASE(CL_INVALID_WORK_GROUP_SIZE)
    DZ_CL_CASE(CL_INVALID_WORK_ITEM_SIZE)
    DZ_CL_CASE(CL_INVALID_GLOBAL_WORK_SIZE)
    DZ_CL_CASE(CL_INVALID_MEM_OBJECT)
    DZ_CL_CASE(CL_INVALID_COMMAND_QUEUE)
    DZ_CL_CASE(CL_PLATFORM_NOT_FOUND_KHR)
#undef DZ_CL_CASE
    default:
      return fmt::format("OpenCL error {}", code);
  }
}

Device OpenDevice() {
  std::string seen;
  std::vector<cl::Device> devices = ListDevices(seen);
  if (devices.empty()) {
    Fail(
        "opencl: no OpenCL device found (platforms: {}); install an OpenCL driver such as "
        "pocl-opencl-icd",
        seen);
  }
  Device dev;
  dev.device = devices.front();
  for (const cl::Device& d : devices) {
    if (IsAccelerator(d)) {
      dev.device = d;
      break;
    }
  }
  try {
    dev.context = cl::Context(dev.device);
    dev.queue = cl::CommandQueue(dev.context, dev.device);
    dev.info = Describe(dev.device);
    dev.max_alloc_bytes = dev.device.getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
    dev.local_mem_bytes = dev.device.getInfo<CL_DEVICE_LOCAL_MEM_SIZE>();
    dev.max_work_group = dev.device.getInfo<CL_DEVICE_MAX_WORK_GROUP_SIZE>();
  } catch (const cl::Error& e) {
    Fail("opencl: cannot use device '{}': {} failed ({})", dev.device.getInfo<CL_DEVICE_NAME>(),
         e.what(), ErrorName(e.err()));
  }

  cl::Program::Sources sources(kKernelSources, kKernelSources + kKernelSourceCount);
  cl::Program program(dev.context, sources);
  try {
    program.build({dev.device}, BuildOptions(dev.device).c_str());
  } catch (const cl::Error& e) {
    std::string log;
    try {
      log = program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(dev.device);
    } catch (const cl::Error&) {
      log = "(no build log)";
    }
    Fail("opencl: building the kernels for '{}' failed ({}):\n{}", dev.info.description,
         ErrorName(e.err()), Trim(log));
  }
  std::vector<cl::Kernel> kernels;
  program.createKernels(&kernels);
  for (cl::Kernel& k : kernels) dev.kernels.emplace(Trim(k.getInfo<CL_KERNEL_FUNCTION_NAME>()), k);
  const auto& gelu = GeluTanhF16Table();
  try {
    dev.gelu_table = cl::Buffer(dev.context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof(gelu),
                                const_cast<uint16_t*>(gelu.data()));
  } catch (const cl::Error& e) {
    Fail("opencl: cannot create the gelu table on '{}': {} failed ({})", dev.info.description,
         e.what(), ErrorName(e.err()));
  }
  return dev;
}

}  // namespace dizuo::opencl
