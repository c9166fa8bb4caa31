// check: CUDA errors become powerret::Error(kRuntime) naming the kernel (SPEC §6: never swallowed).
//   POWERRET_CUDA_CHECK_LAUNCH("chunk_state") after a launch: throws "chunk_state: <cudaGetErrorString>".
#pragma once

#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <string>

#include "powerret/powerret.hpp"

namespace powerret::cuda {

// Throws Error(kRuntime, "<what>: <CUDA's message>") unless status is cudaSuccess. The error is taken
// off CUDA's last-error slot first, so a later launch check does not report it again under its name.
inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(ErrorKind::kRuntime, std::string(what) + ": " + cudaGetErrorString(status));
  }
}

// A grid's x extent, or Error(kValue) when the problem needs more blocks than a launch can have.
inline unsigned int grid_x(int64_t blocks, const char* kernel) {
  if (blocks > INT_MAX)
    throw Error(ErrorKind::kValue, std::string(kernel) + ": the problem needs " + std::to_string(blocks) +
                                       " thread blocks, more than one launch can hold (2^31 - 1)");
  return static_cast<unsigned int>(blocks);
}

}  // namespace powerret::cuda

// After every kernel launch: a launch error (bad configuration, no kernel image for this GPU, a
// sticky error of an earlier kernel) is thrown as Error(kRuntime, "<kernel_name>: <message>").
#define POWERRET_CUDA_CHECK_LAUNCH(kernel_name) ::powerret::cuda::check_cuda(cudaGetLastError(), kernel_name)
