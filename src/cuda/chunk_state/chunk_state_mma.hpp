// chunk_state_mma launcher (declaration): the tensor-core chunk_state fused with state passing, writing
// the state entering every chunk (and the final state). See chunk_state_mma.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "api/problem.hpp"
#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

inline constexpr int kStateMmaTokens = 64;  // tokens staged per tile: the chunk size is a multiple

// T: __half or __nv_bfloat16 (q, k, v); kD, kE in {32, 64, 128}; kDeg in {1, 2}.
template <typename T, int kD, int kE, int kDeg>
void launch_chunk_state_mma(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                            cudaStream_t stream);

}  // namespace powerret::cuda
