// The entry points of libdizuo_cuda_backend.so, which the registry loads when "cuda" is asked for
// (registry.cc): dizuo itself does not link the CUDA runtime or cuBLAS.
#include "backends/cuda/cuda_backend.h"

DIZUO_BACKEND_PLUGIN("cuda", dizuo::CreateCudaBackend)
