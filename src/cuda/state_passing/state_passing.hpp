// state_passing launcher (declaration): local chunk states -> entering states, in place. See state_passing.cu.
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"
#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

void launch_state_passing(const detail::ForwardProblem& problem, const ForwardWorkspace& workspace,
                          cudaStream_t stream);

}  // namespace powerret::cuda
