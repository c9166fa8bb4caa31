// decode_step launcher (declaration): one recurrence step, state in place, one launch.
// See decode_step.cuh (launch and split choice) and decode_step_kernel.cuh (the kernel).
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"

namespace powerret::cuda {

// T: the element type of q, k, v and y (float, __half, __nv_bfloat16).
template <typename T>
void launch_decode_step(const detail::DecodeProblem& problem, cudaStream_t stream);

}  // namespace powerret::cuda
