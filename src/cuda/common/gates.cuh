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

// The scan works from registers: a lane holds positions 32 s + lane (s < kGateRegs) of a chunk.
inline constexpr int kGateRegs = kMaxChunk / kWarpSize;

// lg[s] = log gate of position 32 s + lane (0 past len, or without gating: mLg null). Issues every
// load before any is used, so a chunk costs one memory latency, not one per 32 positions.
__device__ __forceinline__ void load_chunk_gates(const float* mLg, int64_t stride, int len,
                                                 float (&lg)[kGateRegs]) {
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {
    const int i = s * kWarpSize + lane;
    lg[s] = (mLg != nullptr && i < len) ? mLg[i * stride] : 0.f;
  }
}

// Inclusive warp scans of the loaded gates over the first c positions (c a multiple of 32, or the
// tail is scanned too): g[s] = G, r[s] = R at position 32 s + lane. Returns G, R of position c - 1
// (== of len - 1: positions past len hold 0, which is neither a reset nor a change of G).
__device__ __forceinline__ void scan_gates(const float (&lg)[kGateRegs], int c, float (&g)[kGateRegs],
                                           int (&r)[kGateRegs], float& g_last, int& r_last) {
  const int lane = threadIdx.x % kWarpSize;
  float carry_g = 0.f;
  int carry_r = -1;
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {
    if (s * kWarpSize >= c) break;
    const int i = s * kWarpSize + lane;
    const bool reset = is_reset(lg[s]);
    float gs = reset ? 0.f : lg[s];
    int rs = reset ? i : -1;
#pragma unroll
    for (int offset = 1; offset < kWarpSize; offset *= 2) {
      const float g_up = __shfl_up_sync(0xffffffffu, gs, offset);
      const int r_up = __shfl_up_sync(0xffffffffu, rs, offset);
      if (lane >= offset) {
        gs += g_up;
        rs = max(rs, r_up);
      }
    }
    g[s] = gs + carry_g;
    r[s] = max(rs, carry_r);
    carry_g = __shfl_sync(0xffffffffu, g[s], kWarpSize - 1);
    carry_r = __shfl_sync(0xffffffffu, r[s], kWarpSize - 1);
  }
  g_last = carry_g;
  r_last = carry_r;
}

// sG[i], sR[i] for chunk positions 0 <= i < c (positions past len repeat G[len-1], R[len-1]).
// Called by all 32 lanes of one warp; the caller __syncthreads() before reading sG / sR.
//   mLg: the chunk's first log gate of this (b, h), `stride` floats between tokens; null: no gating.
__device__ __forceinline__ void scan_chunk_gates(const float* mLg, int64_t stride, int len, int c,
                                                 float* sG, int* sR) {
  const int lane = threadIdx.x % kWarpSize;
  float lg[kGateRegs], g[kGateRegs], g_last;
  int r[kGateRegs], r_last;
  load_chunk_gates(mLg, stride, len, lg);
  scan_gates(lg, c, g, r, g_last, r_last);
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {
    const int i = s * kWarpSize + lane;
    if (i < c) {
      sG[i] = g[s];
      sR[i] = r[s];
    }
  }
}

}  // namespace powerret::cuda
