// The public entry points: validate (src/api/validate.cpp), then hand the resolved problem to the
// backend of the tensors' device. The CUDA path runs on the tensors' device and the given stream.
#include "api/validate.hpp"
#include "cpu/backend.hpp"

#ifdef POWERRET_WITH_CUDA
#include <cuda_runtime_api.h>

#include "cuda/backend.hpp"
#endif

namespace powerret {
namespace {

#ifdef POWERRET_WITH_CUDA
// Makes `device` current for the scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = previous_;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  static void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess)
      throw Error(ErrorKind::kRuntime, std::string(what) + ": " + cudaGetErrorString(status));
  }
  int previous_ = 0;
};
#endif

// An op's CUDA backend, or nullptr in a build without CUDA (validation rejects GPU tensors there: never called)
#ifdef POWERRET_WITH_CUDA
#define POWERRET_CUDA_BACKEND(fn) cuda::fn
#else
#define POWERRET_CUDA_BACKEND(fn) nullptr
#endif

template <class Problem, class CpuFn, class CudaFn>
void run(const Problem& problem, Stream stream, CpuFn cpu_fn, CudaFn cuda_fn) {
  if (!problem.on_gpu) {
    cpu_fn(problem);
    return;
  }
#ifdef POWERRET_WITH_CUDA
  DeviceGuard guard(problem.device);
  cuda_fn(problem, stream);
#else
  (void)stream;
  (void)cuda_fn;
#endif
}

}  // namespace

bool built_with_cuda() {
#ifdef POWERRET_WITH_CUDA
  return true;
#else
  return false;
#endif
}

void sympow(const SympowParams& params, Stream stream) {
  run(detail::validate(params), stream, cpu::sympow, POWERRET_CUDA_BACKEND(sympow));
}

std::size_t forward_workspace_bytes(const ForwardParams& params) {
  return detail::workspace_bytes(detail::validate(params, /*check_workspace=*/false));
}

int default_chunk_size(const ForwardParams& params) {
  ForwardParams probe = params;
  probe.chunk_size = 0;
  return detail::validate(probe, /*check_workspace=*/false).chunk;
}

void power_retention(const ForwardParams& params, Stream stream) {
  run(detail::validate(params, /*check_workspace=*/true), stream, cpu::forward, POWERRET_CUDA_BACKEND(forward));
}

void check(const DecodeParams& params) { detail::validate(params); }

void decode_step(const DecodeParams& params, Stream stream) {
  run(detail::validate(params), stream, cpu::decode_step, POWERRET_CUDA_BACKEND(decode_step));
}

}  // namespace powerret
