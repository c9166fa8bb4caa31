// chunk_state (= retention update_state, Mamba chunk_state): per (b, kv head, chunk n), fp32 accumulate,
//   gamma_j = decay(j -> L) = R[L] <= j ? exp(G[L] - G[j]) : 0     L = the chunk's last position
//   S_loc = phi_p(K_c)^T (gamma * V_c)   (D, e)      z_loc = phi_p(K_c)^T gamma   (D)
//   decay_chunk = decay(enter -> L) = R[L] == -1 ? exp(G[L]) : 0
//   torch: S_loc = torch.einsum('jr,j,je->re', sympow(K_c, p), gamma, V_c)
// K_c [len, d], V_c [len, e] (len = min(c, t - n c)); G, R of cuda/common/gates.cuh.
// Out: workspace.states[b, h, n] (D, e), workspace.zs[b, h, n] (D), workspace.decays[b, h, n].
//
// Grid (b h n_chunks, ceil(D / 256)), 4 warps. Block (x, y) writes rows [256 y, 256 y + 256) of
// chunk x's state; warp w owns the 64 contiguous rows from 256 y + 64 w, walks them with one SymRow
// (one unrank per warp) in 4 steps of 16 rows, and per step holds the 16 x e outputs in registers:
// lane owns columns lane + 32 cc (cc < e / 32). Per step the chunk streams through shared memory in
// tiles of 32 tokens (sK: k, sV: gamma * v, zeros past len), the warp expands its 16 phi rows for the
// tile into sPhi (lane = token), then rAcc[s][cc] += sPhi[s][j] * sV[j][lane + 32 cc] over the tile.
// z: lane s < 16 accumulates row s: rZ += sPhi[s][j] * gamma_j.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/chunk_state/chunk_state.hpp"
#include "cuda/common/check.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/sym_row.cuh"

namespace powerret::cuda {

inline constexpr int kChunkStateWarps = 4;
inline constexpr int kChunkStateThreads = kChunkStateWarps * kWarpSize;
inline constexpr int kChunkStateRowsPerStep = 16;  // rows a warp holds in registers: 16 x e/32 floats per lane
inline constexpr int kChunkStateSteps = 4;         // steps per warp: 64 contiguous rows per unrank
inline constexpr int kChunkStateRowsPerWarp = kChunkStateRowsPerStep * kChunkStateSteps;
inline constexpr int kChunkStateRowsPerBlock = kChunkStateRowsPerWarp * kChunkStateWarps;
inline constexpr int kChunkStateTokenTile = 32;  // tokens staged in shared memory at once (== lanes)

static_assert(kChunkStateTokenTile == kWarpSize, "phi is expanded with one lane per token of the tile");
static_assert(kChunkStateRowsPerStep <= kWarpSize, "lane s < 16 accumulates z of row s");

template <typename T>
__global__ void __launch_bounds__(kChunkStateThreads)
    chunk_state_kernel(detail::ForwardProblem problem, ForwardWorkspace workspace) {
  __shared__ float sK[kChunkStateTokenTile * (kMaxHeadDim + 1)];  // [j][kk] k_j, ld d + 1 (lane = j: no bank conflicts)
  __shared__ float sV[kChunkStateTokenTile * kMaxHeadDim];        // [j][col] gamma_j v_j, ld e
  __shared__ float sGamma[kChunkStateTokenTile];                  // [j] gamma_j
  __shared__ float sPhi[kChunkStateWarps][kChunkStateRowsPerStep][kChunkStateTokenTile + 1];  // [w][s][j]
  __shared__ float sG[kMaxChunk];
  __shared__ int sR[kMaxChunk];

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t n_chunks = problem.n_chunks, h = problem.h, t = problem.t;
  const int64_t bh = blockIdx.x / n_chunks, n = blockIdx.x % n_chunks;
  const int64_t b = bh / h, hk = bh % h;
  const int c = problem.chunk;
  const int64_t t0 = n * c;
  const int len = static_cast<int>(std::min<int64_t>(c, t - t0));
  const int d = static_cast<int>(problem.d), e = static_cast<int>(problem.e), deg = problem.deg;
  const int64_t D = problem.D;
  const int ld_k = d + 1;
  const int col_groups = e / kWarpSize;

  // mK, mV: token j of this chunk and kv head at mK + j h d, mV + j h e.
  const T* mK = static_cast<const T*>(problem.k) + ((b * t + t0) * h + hk) * d;
  const T* mV = static_cast<const T*>(problem.v) + ((b * t + t0) * h + hk) * e;
  float* gS = workspace.states + (bh * n_chunks + n) * D * e;  // (D, e)
  float* gZ = workspace.zs + (bh * n_chunks + n) * D;          // (D)

  if (warp == 0)
    scan_chunk_gates(problem.log_g != nullptr ? problem.log_g + (b * t + t0) * h + hk : nullptr, h, len, c, sG, sR);
  __syncthreads();
  const float g_last = sG[len - 1];
  const int r_last = sR[len - 1];
  if (blockIdx.y == 0 && threadIdx.x == 0) workspace.decays[bh * n_chunks + n] = r_last == -1 ? expf(g_last) : 0.f;
  // gamma_j for a chunk position j < len
  auto gamma = [&](int j) { return r_last <= j ? expf(g_last - sG[j]) : 0.f; };

  const int64_t row_begin = static_cast<int64_t>(blockIdx.y) * kChunkStateRowsPerBlock + warp * kChunkStateRowsPerWarp;
  const int64_t row_end = std::min<int64_t>(row_begin + kChunkStateRowsPerWarp, D);
  SymRow walker;  // row step_row of the current step (row 0 for a warp past D: its rows are all skipped)
  walker.unrank(row_begin < D ? row_begin : 0, d, deg);

  for (int step = 0; step < kChunkStateSteps; ++step) {
    const int64_t step_row = row_begin + step * kChunkStateRowsPerStep;
    float rAcc[kChunkStateRowsPerStep][kMaxColGroups] = {};  // S_loc[step_row + s][lane + 32 cc]
    float rZ = 0.f;                                          // z_loc[step_row + lane], lane < 16
    SymRow row = walker;
    for (int j0 = 0; j0 < len; j0 += kChunkStateTokenTile) {
      __syncthreads();  // every warp is done with the previous tile
      for (int idx = threadIdx.x; idx < kChunkStateTokenTile * d; idx += kChunkStateThreads) {
        const int jj = idx / d, kk = idx % d, j = j0 + jj;
        sK[jj * ld_k + kk] = j < len ? to_float(mK[j * h * d + kk]) : 0.f;
      }
      for (int idx = threadIdx.x; idx < kChunkStateTokenTile * e; idx += kChunkStateThreads) {
        const int jj = idx / e, col = idx % e, j = j0 + jj;
        sV[jj * e + col] = j < len ? gamma(j) * to_float(mV[j * h * e + col]) : 0.f;
      }
      if (threadIdx.x < kChunkStateTokenTile) {
        const int j = j0 + threadIdx.x;
        sGamma[threadIdx.x] = j < len ? gamma(j) : 0.f;
      }
      __syncthreads();

      // sPhi[warp][s][lane] = phi_p(k_{j0 + lane})[step_row + s]   (0 for rows past this warp's range)
      row = walker;
#pragma unroll
      for (int s = 0; s < kChunkStateRowsPerStep; ++s) {
        sPhi[warp][s][lane] =
            step_row + s < row_end ? row.weight(deg) * row.product(sK + lane * ld_k, deg) : 0.f;
        row.advance(d, deg);
      }
      __syncwarp();

#pragma unroll 4
      for (int jj = 0; jj < kChunkStateTokenTile; ++jj) {
        float rV[kMaxColGroups];
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc) rV[cc] = cc < col_groups ? sV[jj * e + lane + cc * kWarpSize] : 0.f;
#pragma unroll
        for (int s = 0; s < kChunkStateRowsPerStep; ++s) {
          const float phi = sPhi[warp][s][jj];
#pragma unroll
          for (int cc = 0; cc < kMaxColGroups; ++cc) rAcc[s][cc] = fmaf(phi, rV[cc], rAcc[s][cc]);
        }
      }
      if (lane < kChunkStateRowsPerStep) {
#pragma unroll 4
        for (int jj = 0; jj < kChunkStateTokenTile; ++jj) rZ = fmaf(sPhi[warp][lane][jj], sGamma[jj], rZ);
      }
    }
    walker = row;  // kChunkStateRowsPerStep rows on: the first row of the next step

#pragma unroll
    for (int s = 0; s < kChunkStateRowsPerStep; ++s) {
      const int64_t r = step_row + s;
      if (r < row_end) {
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc)
          if (cc < col_groups) gS[r * e + lane + cc * kWarpSize] = rAcc[s][cc];
      }
    }
    if (lane < kChunkStateRowsPerStep && step_row + lane < row_end) gZ[step_row + lane] = rZ;
  }
}

template <typename T>
void launch_chunk_state(const detail::ForwardProblem& problem, const ForwardWorkspace& workspace,
                        cudaStream_t stream) {
  const dim3 grid(grid_x(problem.b * problem.h * problem.n_chunks, "chunk_state"),
                  static_cast<unsigned int>((problem.D + kChunkStateRowsPerBlock - 1) / kChunkStateRowsPerBlock));
  chunk_state_kernel<T><<<grid, kChunkStateThreads, 0, stream>>>(problem, workspace);
  POWERRET_CUDA_CHECK_LAUNCH("chunk_state");
}

}  // namespace powerret::cuda
