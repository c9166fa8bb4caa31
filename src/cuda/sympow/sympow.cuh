// sympow: out[i, r] = phi_p(x[i, :])[r]   x [rows, d], out [rows, D], D = C(d+p-1, p), fp32 math
//   == np.stack([phi_p(row) for row in x])  with phi_p of cuda/common/sym_row.cuh (SPEC §1)
// Grid (ceil(D / 128), row blocks): thread tid of block (bx, by) owns column r = 128 bx + tid,
// unranks it once, then writes that column for rows 32 by .. 32 by + 31, 32 (by + gridDim.y) ..,
// reading x through the cache. Consecutive threads write consecutive r: coalesced stores.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/common/check.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/sym_row.cuh"
#include "cuda/sympow/sympow.hpp"

namespace powerret::cuda {

inline constexpr int kSympowThreads = 128;     // columns of out per block
inline constexpr int kSympowRowsPerBlock = 32;  // rows of out per block (per grid-stride step)

template <typename T>
__global__ void __launch_bounds__(kSympowThreads) sympow_kernel(detail::SympowProblem problem) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kSympowThreads + threadIdx.x;
  if (r >= problem.D) return;
  const int d = static_cast<int>(problem.d), deg = problem.deg;
  const T* mX = static_cast<const T*>(problem.x);  // [rows, d]
  T* mOut = static_cast<T*>(problem.out);          // [rows, D]

  SymRow row;
  row.unrank(r, d, deg);
  const float weight = row.weight(deg);
  for (int64_t first = static_cast<int64_t>(blockIdx.y) * kSympowRowsPerBlock; first < problem.rows;
       first += static_cast<int64_t>(gridDim.y) * kSympowRowsPerBlock) {
    const int64_t last = std::min<int64_t>(first + kSympowRowsPerBlock, problem.rows);
    for (int64_t i = first; i < last; ++i)
      mOut[i * problem.D + r] = from_float<T>(weight * row.product(mX + i * d, deg));
  }
}

template <typename T>
void launch_sympow(const detail::SympowProblem& problem, cudaStream_t stream) {
  if (problem.rows == 0) return;
  const int64_t row_blocks = (problem.rows + kSympowRowsPerBlock - 1) / kSympowRowsPerBlock;
  const dim3 grid(grid_x((problem.D + kSympowThreads - 1) / kSympowThreads, "sympow"),
                  static_cast<unsigned int>(std::min<int64_t>(row_blocks, kMaxGridY)));
  sympow_kernel<T><<<grid, kSympowThreads, 0, stream>>>(problem);
  POWERRET_CUDA_CHECK_LAUNCH("sympow");
}

}  // namespace powerret::cuda
