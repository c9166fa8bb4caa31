// decode_step (= retention power_retention_inference): per batch row i and kv head hk, fp32,
//   slot = slots ? slots[i] : i;  slot outside [0, num_slots): state untouched, y = 0 for the group
//   a = exp(log_g) (0 where log_g < -104: a reset)      S = S[slot, hk] (D, e), z = z[slot, hk] (D)
//   S <- a S + phi_p(k) v^T          z <- a z + phi_p(k)                           (in place)
//   for each query head iq of the group (iq / (hq / h) == hk), q~ = scale * q[i, iq]:
//   y[i, iq] = phi_p(q~)^T S / (phi_p(q~)^T z)   (0 where the den is 0), or phi_p(q~)^T S
//   torch: S.mul_(a).add_(outer(sympow(k), v)); y = sympow(q~) @ S / (sympow(q~) @ z)
//
// One block per (i, hk), 8 warps; warp w walks its own contiguous eighth of the D rows with one
// SymRow, lane owns columns lane + 32 cc (cc < e / 32). Each element of S is read and written once,
// by one thread, while up to 8 query heads accumulate phi(q~)^T S_new in registers; a group of
// more than 8 heads (GQA beyond 8:1) re-reads the updated rows for each further 8 heads (the same
// thread reads what it wrote: no synchronisation needed). Partial sums of the 8 warps are reduced
// in shared memory in a fixed order (deterministic). No workspace, no allocation, one launch.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/common/check.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/sym_row.cuh"
#include "cuda/decode_step/decode_step.hpp"

namespace powerret::cuda {

inline constexpr int kDecodeWarps = 8;
inline constexpr int kDecodeThreads = kDecodeWarps * kWarpSize;
inline constexpr int kDecodeHeadsPerPass = 8;  // query heads sharing one read of S (registers: 8 x e/32)
inline constexpr int kDecodeMinBlocks = 2;     // per SM: caps registers at 128 (nvcc 13.0: 96, no spills)

template <typename T>
__global__ void __launch_bounds__(kDecodeThreads, kDecodeMinBlocks) decode_step_kernel(detail::DecodeProblem problem) {
  __shared__ float sQ[kDecodeHeadsPerPass][kMaxHeadDim];                 // q~ of this pass's heads
  __shared__ float sK[kMaxHeadDim];                                      // k
  __shared__ float sV[kMaxHeadDim];                                      // v
  __shared__ float sNum[kDecodeWarps][kDecodeHeadsPerPass][kMaxHeadDim];  // per-warp partial num
  __shared__ float sDen[kDecodeWarps][kDecodeHeadsPerPass];               // per-warp partial den

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t h = problem.h, hq = problem.hq, group = hq / h;
  const int64_t i = blockIdx.x / h, hk = blockIdx.x % h;
  const int d = static_cast<int>(problem.d), e = static_cast<int>(problem.e), deg = problem.deg;
  const int64_t D = problem.D;
  const int col_groups = e / kWarpSize;
  T* mY = static_cast<T*>(problem.y) + (i * hq + hk * group) * e;  // [group, e]

  const int64_t slot = problem.slots != nullptr ? problem.slots[i] : i;
  if (slot < 0 || slot >= problem.num_slots) {  // skipped row (uniform over the block)
    for (int64_t idx = threadIdx.x; idx < group * e; idx += kDecodeThreads) mY[idx] = from_float<T>(0.f);
    return;
  }
  float* gS = problem.s + (slot * h + hk) * D * e;  // (D, e), updated in place
  float* gZ = problem.z + (slot * h + hk) * D;      // (D)

  for (int idx = threadIdx.x; idx < d; idx += kDecodeThreads)
    sK[idx] = to_float(static_cast<const T*>(problem.k)[(i * h + hk) * d + idx]);
  for (int idx = threadIdx.x; idx < e; idx += kDecodeThreads)
    sV[idx] = to_float(static_cast<const T*>(problem.v)[(i * h + hk) * e + idx]);
  const float log_g = problem.log_g != nullptr ? problem.log_g[i * h + hk] : 0.f;
  const float a = is_reset(log_g) ? 0.f : expf(log_g);

  const int64_t rows_per_warp = (D + kDecodeWarps - 1) / kDecodeWarps;
  const int64_t row_begin = warp * rows_per_warp;
  const int64_t row_end = std::min<int64_t>(row_begin + rows_per_warp, D);

  for (int64_t h0 = 0; h0 < group; h0 += kDecodeHeadsPerPass) {
    const int heads = static_cast<int>(std::min<int64_t>(kDecodeHeadsPerPass, group - h0));
    const bool update = h0 == 0;  // the first pass updates the state, later ones re-read it
    __syncthreads();              // the previous pass is done with sQ, sNum, sDen
    const T* mQ = static_cast<const T*>(problem.q) + (i * hq + hk * group + h0) * d;  // [heads, d]
    for (int idx = threadIdx.x; idx < heads * d; idx += kDecodeThreads) {
      const int head = idx / d, kk = idx % d;
      sQ[head][kk] = problem.scale * to_float(mQ[idx]);
    }
    __syncthreads();

    float rNum[kDecodeHeadsPerPass][kMaxColGroups] = {};
    float rDen[kDecodeHeadsPerPass] = {};  // the same in every lane
    SymRow row;
    row.unrank(row_begin < D ? row_begin : 0, d, deg);
    for (int64_t r = row_begin; r < row_end; ++r) {
      float rS[kMaxColGroups] = {};  // S_new[r][lane + 32 cc]
      float z_new;                   // z_new[r]
      const float weight = row.weight(deg);
      if (update) {
        const float phi_k = weight * row.product(sK, deg);
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc) {
          if (cc < col_groups) {
            float* s = gS + r * e + lane + cc * kWarpSize;
            rS[cc] = fmaf(a, *s, phi_k * sV[lane + cc * kWarpSize]);
            *s = rS[cc];
          }
        }
        const float z_old = __shfl_sync(0xffffffffu, lane == 0 ? gZ[r] : 0.f, 0);
        z_new = fmaf(a, z_old, phi_k);
        if (lane == 0) gZ[r] = z_new;
      } else {
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc)
          if (cc < col_groups) rS[cc] = gS[r * e + lane + cc * kWarpSize];
        z_new = __shfl_sync(0xffffffffu, lane == 0 ? gZ[r] : 0.f, 0);
      }
#pragma unroll
      for (int head = 0; head < kDecodeHeadsPerPass; ++head) {
        if (head < heads) {
          const float phi_q = weight * row.product(sQ[head], deg);
#pragma unroll
          for (int cc = 0; cc < kMaxColGroups; ++cc) rNum[head][cc] = fmaf(phi_q, rS[cc], rNum[head][cc]);
          rDen[head] = fmaf(phi_q, z_new, rDen[head]);
        }
      }
      row.advance(d, deg);
    }

#pragma unroll
    for (int head = 0; head < kDecodeHeadsPerPass; ++head) {
      if (head < heads) {
#pragma unroll
        for (int cc = 0; cc < kMaxColGroups; ++cc)
          if (cc < col_groups) sNum[warp][head][lane + cc * kWarpSize] = rNum[head][cc];
        if (lane == 0) sDen[warp][head] = rDen[head];
      }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < heads * e; idx += kDecodeThreads) {
      const int head = idx / e, col = idx % e;
      float num = 0.f, den = 0.f;
#pragma unroll
      for (int w = 0; w < kDecodeWarps; ++w) {
        num += sNum[w][head][col];
        den += sDen[w][head];
      }
      const float out = problem.normalize ? (den == 0.f ? 0.f : num / den) : num;
      mY[(h0 + head) * e + col] = from_float<T>(out);
    }
  }
}

template <typename T>
void launch_decode_step(const detail::DecodeProblem& problem, cudaStream_t stream) {
  decode_step_kernel<T><<<grid_x(problem.b * problem.h, "decode_step"), kDecodeThreads, 0, stream>>>(problem);
  POWERRET_CUDA_CHECK_LAUNCH("decode_step");
}

}  // namespace powerret::cuda
