// chunk_output_mma launcher (declaration): y on tensor cores from the entering states of
// chunk_state_mma and the chunk itself. See chunk_output_mma.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"
#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

// T: __half or __nv_bfloat16 (q, k, v, y); kD, kE in {32, 64, 128}; kDeg in {1, 2}.
template <typename T, int kD, int kE, int kDeg>
void launch_chunk_output_mma(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                             cudaStream_t stream);

}  // namespace powerret::cuda
