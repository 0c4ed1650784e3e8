// A plug-in built for another API version (test data for the loader's version check).
#include "dizuo/backend.h"

extern "C" __attribute__((visibility("default"))) int dizuo_backend_api_version() {
  return dizuo::kBackendApiVersion + 98;
}
extern "C" __attribute__((visibility("default"))) const char* dizuo_backend_abi() {
  return dizuo::BackendAbiSignature();
}
extern "C" __attribute__((visibility("default"))) const char* dizuo_backend_name() {
  return "mismatched";
}
extern "C" __attribute__((visibility("default"))) dizuo::Backend* dizuo_create_backend(
    const dizuo::BackendOptions*) {
  return nullptr;
}
