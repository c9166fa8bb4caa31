// gates: the chunk-local gate scan of docs/DESIGN.md, by one warp, into shared memory.
//   reset[m] = log_g[m] < -104 (kResetLogGate; -inf included; NaN is not a reset and propagates)
//   G[i] = sum_{m <= i, !reset[m]} log_g[m]          R[i] = max{m <= i : reset[m]}, or -1
//   torch: G = torch.where(reset, 0, lg).cumsum(0);   R = torch.where(reset, arange(c), -1).cummax(0).values
//   decay(j -> i)     = R[i] <= j ? exp(G[i] - G[j]) : 0      (j <= i, positions in the chunk)
//   decay(enter -> i) = R[i] == -1 ? exp(G[i]) : 0
// A reset contributes 0 to G, so G stays finite (no -inf - -inf = NaN) and exp of the differences
// stays precise; the 0 of a reset multiplies like exp(-inf) would (SPEC §2's recurrence).
#pragma once

#include <cstdint>

#include "api/problem.hpp"
#include "cuda/common/limits.hpp"

namespace powerret::cuda {

// log_g < -104 or -inf  == (lg < -104)   (NaN compares false: not a reset)
__device__ __forceinline__ bool is_reset(float log_g) { return log_g < detail::kResetLogGate; }

// sG[i], sR[i] for chunk positions 0 <= i < c (positions past len repeat G[len-1], R[len-1]).
// Called by all 32 lanes of one warp; the caller __syncthreads() before reading sG / sR.
//   mLg: the chunk's first log gate of this (b, h), `stride` floats between tokens; null: no gating.
// Inclusive warp scans (sum for G, max for R) of 32 positions at a time, carried across segments.
__device__ __forceinline__ void scan_chunk_gates(const float* mLg, int64_t stride, int len, int c,
                                                 float* sG, int* sR) {
  const int lane = threadIdx.x % kWarpSize;
  float carry_g = 0.f;
  int carry_r = -1;
  for (int base = 0; base < c; base += kWarpSize) {
    const int i = base + lane;
    const float lg = (mLg != nullptr && i < len) ? mLg[i * stride] : 0.f;
    const bool reset = is_reset(lg);
    float g = reset ? 0.f : lg;
    int r = reset ? i : -1;
#pragma unroll
    for (int offset = 1; offset < kWarpSize; offset *= 2) {
      const float g_up = __shfl_up_sync(0xffffffffu, g, offset);
      const int r_up = __shfl_up_sync(0xffffffffu, r, offset);
      if (lane >= offset) {
        g += g_up;
        r = max(r, r_up);
      }
    }
    g += carry_g;
    r = max(r, carry_r);
    if (i < c) {
      sG[i] = g;
      sR[i] = r;
    }
    carry_g = __shfl_sync(0xffffffffu, g, kWarpSize - 1);
    carry_r = __shfl_sync(0xffffffffu, r, kWarpSize - 1);
  }
}

}  // namespace powerret::cuda
