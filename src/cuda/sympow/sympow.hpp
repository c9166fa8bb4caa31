// sympow launcher (declaration): out[rows, D] = phi_deg(x[rows, d]) on `stream`. See sympow.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"

namespace powerret::cuda {

// T: the element type of x and out (float, __half, __nv_bfloat16). Any d >= 1, deg 1..4.
template <typename T>
void launch_sympow(const detail::SympowProblem& problem, cudaStream_t stream);

}  // namespace powerret::cuda
