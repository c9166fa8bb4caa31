// chunk_output (= retention attention + query_state, fla chunk_fwd_o): per (b, query head, chunk n),
// for chunk positions i (kv head hk = iq / (hq / h); q~ = scale * q, so phi(q~) = scale^p phi(q)):
//   num_i = decay(enter -> i) * phi_p(q~_i)^T S_enter  +  sum_{j <= i} (q~_i . k_j)^p decay(j -> i) v_j   (e)
//   den_i = decay(enter -> i) * phi_p(q~_i)^T z_enter  +  sum_{j <= i} (q~_i . k_j)^p decay(j -> i)       ()
//   y_i   = normalize ? (den_i == 0 ? 0 : num_i / den_i) : num_i        stored in q's dtype
//   torch: A = ((q~ @ K_c.T) ** p * decay).masked_fill(j > i, 0);  num = dec0 * phi(q~) @ S + A @ V_c
// S_enter (D, e), z_enter (D): workspace.states / zs [b, hk, n] after state_passing. The causal
// mask j <= i is a select, in the scores and in the sum over v_j, so NaN/Inf in later tokens never
// reaches earlier outputs; tokens past t are never read (zeros are staged in their place).
//
// Grid (b n_chunks hq ceil(c / 32)): one block per 32 query tokens [i0, i0 + ni) of one chunk and
// query head, 4 warps. Warp w owns tokens 8 w .. 8 w + 7 of the tile, lane owns value columns
// lane + 32 cc (cc < e / 32): rAcc[m][cc] = num of token 8 w + m, column lane + 32 cc. The normaliser
// of token 8 w + lane / 4 is split over the 4 lanes of a quad (rows (lane % 4) 8 ..+ 8 of each
// staged tile) and reduced with two shuffles at the end. Both terms are the same contraction
//   rAcc[m][cc] += sum_r sP[r][8 w + m] * sX[r][lane + 32 cc],   rDen += sum_r sP[r][i] * sZ[r]
// over tiles of 32 staged rows:
//   inter: rows of D. Warp w walks its own contiguous quarter of D (one unrank) 8 rows per tile and
//          stages sP[8 w + s][i] = phi(q~_i)[row] (lane = i), sX = S_enter rows, sZ = z_enter rows.
//   intra: 32 tokens j of the chunk. sP[j][i] = (q~_i . k_j)^p decay(j -> i) (lane = j), sX = v, sZ = 1.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/chunk_output/chunk_output.hpp"
#include "cuda/common/check.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/sym_row.cuh"

namespace powerret::cuda {

inline constexpr int kChunkOutputWarps = 4;
inline constexpr int kChunkOutputThreads = kChunkOutputWarps * kWarpSize;
inline constexpr int kOutTokens = 32;                                   // query tokens per block
inline constexpr int kOutTokensPerWarp = kOutTokens / kChunkOutputWarps;  // 8: rAcc is 8 x e/32 per lane
inline constexpr int kOutRows = 32;                                     // contraction rows staged per tile
inline constexpr int kOutRowsPerWarp = kOutRows / kChunkOutputWarps;      // 8 rows of D per warp per tile
inline constexpr int kLdP = kOutTokens + 1;                             // sP row stride (no bank conflicts)

static_assert(kOutTokens == kWarpSize, "phi(q~) is expanded with one lane per query token");
static_assert(kOutRows == kWarpSize, "scores are computed with one lane per key token");
static_assert(kOutTokensPerWarp * 4 == kWarpSize, "a quad of lanes shares one token's normaliser");
static_assert(kOutRows == 4 * 8, "each lane of a quad sums the normaliser over 8 of the staged rows");

// x ** deg for deg in 1..4.
__device__ __forceinline__ float power(float x, int deg) {
  const float x2 = x * x;
  return deg == 1 ? x : deg == 2 ? x2 : deg == 3 ? x2 * x : x2 * x2;
}

// rAcc[m][cc] += sum_r sP[r][8 warp + m] * sX[r][lane + 32 cc]       r < 32 (kCausal: only pos0 + r <= hi[m])
// rDen        += sum_{r = 8 (lane % 4)}^{+8} sP[r][8 warp + lane / 4] * sZ[r]
// == acc += sP[:, tokens].T @ sX;  den += sP[:, tokens].T @ sZ
template <bool kCausal>
__device__ __forceinline__ void accumulate_rows(const float* sP, const float* sX, const float* sZ, int ld_x,
                                                int col_groups, int warp, int lane, int pos0,
                                                const int (&hi)[kOutTokensPerWarp],
                                                float (&rAcc)[kOutTokensPerWarp][kMaxColGroups], float& rDen) {
#pragma unroll 4
  for (int r = 0; r < kOutRows; ++r) {
    float rX[kMaxColGroups];
#pragma unroll
    for (int cc = 0; cc < kMaxColGroups; ++cc) rX[cc] = cc < col_groups ? sX[r * ld_x + lane + cc * kWarpSize] : 0.f;
#pragma unroll
    for (int m = 0; m < kOutTokensPerWarp; ++m) {
      if (!kCausal || pos0 + r <= hi[m]) {  // warp-uniform: token 8 warp + m is the same for every lane
        const float p = sP[r * kLdP + warp * kOutTokensPerWarp + m];
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc) rAcc[m][cc] = fmaf(p, rX[cc], rAcc[m][cc]);
      }
    }
  }
  const int token = warp * kOutTokensPerWarp + lane / 4;
#pragma unroll
  for (int s = 0; s < 8; ++s) {
    const int r = (lane % 4) * 8 + s;
    rDen = fmaf(sP[r * kLdP + token], sZ[r], rDen);
  }
}

template <typename T>
__global__ void __launch_bounds__(kChunkOutputThreads)
    chunk_output_kernel(detail::ForwardProblem problem, ForwardWorkspace workspace) {
  __shared__ float sQ[kOutTokens * (kMaxHeadDim + 1)];  // [i][kk] q~_i, ld d + 1
  __shared__ float sBuf[kOutRows * (kMaxHeadDim + 1)];  // sK [j][kk] ld d + 1, or sX [r][col] ld e
  __shared__ float sP[kOutRows * kLdP];                 // [r][i]
  __shared__ float sZ[kOutRows];                        // [r]
  __shared__ float sG[kMaxChunk];
  __shared__ int sR[kMaxChunk];

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t n_chunks = problem.n_chunks, h = problem.h, hq = problem.hq, t = problem.t;
  const int c = problem.chunk;
  const int tiles = (c + kOutTokens - 1) / kOutTokens;
  int64_t block = blockIdx.x;  // ((b n_chunks + n) hq + iq) tiles + tile
  const int tile = static_cast<int>(block % tiles);
  block /= tiles;
  const int64_t iq = block % hq;
  block /= hq;
  const int64_t n = block % n_chunks, b = block / n_chunks;
  const int64_t hk = iq / (hq / h);
  const int64_t t0 = n * c;
  const int len = static_cast<int>(std::min<int64_t>(c, t - t0));
  const int i0 = tile * kOutTokens;  // chunk position of the block's first query token
  if (i0 >= len) return;             // a tile past the end of the last chunk: nothing to do
  const int ni = min(kOutTokens, len - i0);
  const int d = static_cast<int>(problem.d), e = static_cast<int>(problem.e), deg = problem.deg;
  const int64_t D = problem.D;
  const int ld_q = d + 1, ld_k = d + 1;
  const int col_groups = e / kWarpSize;

  // Token i of the tile / j of the chunk at mQ + i hq d, mY + i hq e, mK + j h d, mV + j h e.
  const T* mQ = static_cast<const T*>(problem.q) + ((b * t + t0 + i0) * hq + iq) * d;
  const T* mK = static_cast<const T*>(problem.k) + ((b * t + t0) * h + hk) * d;
  const T* mV = static_cast<const T*>(problem.v) + ((b * t + t0) * h + hk) * e;
  T* mY = static_cast<T*>(problem.y) + ((b * t + t0 + i0) * hq + iq) * e;

  if (warp == 0)
    scan_chunk_gates(problem.log_g != nullptr ? problem.log_g + (b * t + t0) * h + hk : nullptr, h, len, c, sG, sR);
  for (int idx = threadIdx.x; idx < kOutTokens * d; idx += kChunkOutputThreads) {
    const int i = idx / d, kk = idx % d;
    sQ[i * ld_q + kk] = i < ni ? problem.scale * to_float(mQ[i * hq * d + kk]) : 0.f;
  }
  __syncthreads();

  float rAcc[kOutTokensPerWarp][kMaxColGroups] = {};  // num of token 8 warp + m, column lane + 32 cc
  float rDen = 0.f;                                   // a quarter of den of token 8 warp + lane / 4

  // ---- inter-chunk: phi(q~_i)^T S_enter, phi(q~_i)^T z_enter, scaled by decay(enter -> i) ----------
  if (n > 0 || problem.s0 != nullptr) {  // else S_enter = 0
    const float* gS = workspace.states + ((b * h + hk) * n_chunks + n) * D * e;  // (D, e)
    const float* gZ = workspace.zs + ((b * h + hk) * n_chunks + n) * D;          // (D)
    const int64_t rows_per_warp = (D + kChunkOutputWarps - 1) / kChunkOutputWarps;
    const int64_t row_begin = warp * rows_per_warp;
    const int64_t row_end = std::min<int64_t>(row_begin + rows_per_warp, D);
    SymRow row;  // the next row this warp stages (row 0 for a warp past D: its rows are all skipped)
    row.unrank(row_begin < D ? row_begin : 0, d, deg);
    const int64_t row_tiles = (rows_per_warp + kOutRowsPerWarp - 1) / kOutRowsPerWarp;  // the same for every warp
    for (int64_t rt = 0; rt < row_tiles; ++rt) {
#pragma unroll
      for (int s = 0; s < kOutRowsPerWarp; ++s) {
        const int64_t r = row_begin + rt * kOutRowsPerWarp + s;
        const bool valid = r < row_end;
        const int sr = warp * kOutRowsPerWarp + s;  // staged row
        sP[sr * kLdP + lane] = valid ? row.weight(deg) * row.product(sQ + lane * ld_q, deg) : 0.f;
        row.advance(d, deg);
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc)
          if (cc < col_groups) sBuf[sr * e + lane + cc * kWarpSize] = valid ? gS[r * e + lane + cc * kWarpSize] : 0.f;
        if (lane == 0) sZ[sr] = valid ? gZ[r] : 0.f;
      }
      __syncthreads();
      const int no_mask[kOutTokensPerWarp] = {};
      accumulate_rows<false>(sP, sBuf, sZ, e, col_groups, warp, lane, 0, no_mask, rAcc, rDen);
      __syncthreads();
    }
    // decay(enter -> i): 0 after a reset in the chunk (multiplied, as in the recurrence)
    auto decay_enter = [&](int i) {
      const int pos = i0 + std::min(i, ni - 1);
      return sR[pos] == -1 ? expf(sG[pos]) : 0.f;
    };
#pragma unroll
    for (int m = 0; m < kOutTokensPerWarp; ++m) {
      const float decay = decay_enter(warp * kOutTokensPerWarp + m);
#pragma unroll
      for (int cc = 0; cc < kMaxColGroups; ++cc) rAcc[m][cc] *= decay;
    }
    rDen *= decay_enter(warp * kOutTokensPerWarp + lane / 4);
  }

  // ---- intra-chunk: sum_{j <= i} (q~_i . k_j)^p decay(j -> i) [v_j | 1] ---------------------------
  int hi[kOutTokensPerWarp];     // chunk position of token 8 warp + m: the last j it reads (-1: none)
  float rGi[kOutTokensPerWarp];  // G at that position
  int rRi[kOutTokensPerWarp];    // R at that position
#pragma unroll
  for (int m = 0; m < kOutTokensPerWarp; ++m) {
    const int i = warp * kOutTokensPerWarp + m;
    const int pos = i0 + std::min(i, ni - 1);
    hi[m] = i < ni ? pos : -1;
    rGi[m] = sG[pos];
    rRi[m] = sR[pos];
  }
  for (int j0 = 0; j0 < i0 + ni; j0 += kOutRows) {
    const int nj = min(kOutRows, len - j0);  // > 0
    for (int idx = threadIdx.x; idx < kOutRows * d; idx += kChunkOutputThreads) {
      const int jj = idx / d, kk = idx % d;
      sBuf[jj * ld_k + kk] = jj < nj ? to_float(mK[(j0 + jj) * h * d + kk]) : 0.f;
    }
    __syncthreads();
    // sP[j][i] = (q~_i . k_j)^p decay(j -> i), selected to 0 where j > i; lane = j.
    float rDot[kOutTokensPerWarp] = {};
    for (int kk = 0; kk < d; ++kk) {
      const float kv = sBuf[lane * ld_k + kk];
#pragma unroll
      for (int m = 0; m < kOutTokensPerWarp; ++m)
        rDot[m] = fmaf(sQ[(warp * kOutTokensPerWarp + m) * ld_q + kk], kv, rDot[m]);
    }
    const int j = j0 + lane;
    const float g_j = sG[std::min(j, len - 1)];
#pragma unroll
    for (int m = 0; m < kOutTokensPerWarp; ++m) {
      const float decay = rRi[m] <= j ? expf(rGi[m] - g_j) : 0.f;
      sP[lane * kLdP + warp * kOutTokensPerWarp + m] = j <= hi[m] ? power(rDot[m], deg) * decay : 0.f;
    }
    __syncthreads();  // sK is read: stage v over it
    for (int idx = threadIdx.x; idx < kOutRows * e; idx += kChunkOutputThreads) {
      const int jj = idx / e, col = idx % e;
      sBuf[jj * e + col] = jj < nj ? to_float(mV[(j0 + jj) * h * e + col]) : 0.f;
    }
    if (threadIdx.x < kOutRows) sZ[threadIdx.x] = 1.f;
    __syncthreads();
    accumulate_rows<true>(sP, sBuf, sZ, e, col_groups, warp, lane, j0, hi, rAcc, rDen);
    __syncthreads();
  }

  // ---- y = num / den (0 where den == 0) or num ------------------------------------------------------
  float den = rDen + __shfl_xor_sync(0xffffffffu, rDen, 1);
  den += __shfl_xor_sync(0xffffffffu, den, 2);  // every lane of quad q holds den of token 8 warp + q
#pragma unroll
  for (int m = 0; m < kOutTokensPerWarp; ++m) {
    const float den_m = __shfl_sync(0xffffffffu, den, 4 * m);
    const int i = warp * kOutTokensPerWarp + m;
    if (i < ni) {
#pragma unroll
      for (int cc = 0; cc < kMaxColGroups; ++cc) {
        if (cc < col_groups) {
          const float num = rAcc[m][cc];
          const float out = problem.normalize ? (den_m == 0.f ? 0.f : num / den_m) : num;
          mY[i * hq * e + lane + cc * kWarpSize] = from_float<T>(out);
        }
      }
    }
  }
}

template <typename T>
void launch_chunk_output(const detail::ForwardProblem& problem, const ForwardWorkspace& workspace,
                         cudaStream_t stream) {
  const int64_t tiles = (problem.chunk + kOutTokens - 1) / kOutTokens;
  const dim3 grid(grid_x(problem.b * problem.n_chunks * problem.hq * tiles, "chunk_output"));
  chunk_output_kernel<T><<<grid, kChunkOutputThreads, 0, stream>>>(problem, workspace);
  POWERRET_CUDA_CHECK_LAUNCH("chunk_output");
}

}  // namespace powerret::cuda
