// chunk_output launcher (declaration): y from the entering states and the chunk itself. See chunk_output.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"
#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

// T: the element type of q, k, v and y (float, __half, __nv_bfloat16).
template <typename T>
void launch_chunk_output(const detail::ForwardProblem& problem, const ForwardWorkspace& workspace,
                         cudaStream_t stream);

}  // namespace powerret::cuda
