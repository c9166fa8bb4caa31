// chunk_state launcher (declaration): the local state of every chunk into the workspace. See chunk_state.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"
#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

// T: the element type of k and v (float, __half, __nv_bfloat16).
template <typename T>
void launch_chunk_state(const detail::ForwardProblem& problem, const ForwardWorkspace& workspace,
                        cudaStream_t stream);

}  // namespace powerret::cuda
