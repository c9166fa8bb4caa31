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
#include "cuda/common/mma.cuh"

namespace powerret::cuda {

// log_g < -104 or -inf  == (lg < -104)   (NaN compares false: not a reset)
__device__ __forceinline__ bool is_reset(float log_g) { return log_g < detail::kResetLogGate; }

// The scan works from registers: lane l holds positions kGateRegs l + s (s < kGateRegs) of a chunk, so
// a lane scans its own run serially and one warp scan joins the runs.
inline constexpr int kGateRegs = kMaxChunk / kWarpSize;

// lg[s] = log gate of position kGateRegs lane + s (0 past len, or without gating: mLg null). Issues
// every load before any is used: a chunk costs one memory latency.
__device__ __forceinline__ void load_chunk_gates(const float* mLg, int64_t stride, int len,
                                                 float (&lg)[kGateRegs]) {
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {
    const int i = kGateRegs * lane + s;
    lg[s] = (mLg != nullptr && i < len) ? mLg[i * stride] : 0.f;
  }
}

// Inclusive scans of the loaded gates: g[s] = G, r[s] = R at position kGateRegs lane + s. Returns G, R
// of the chunk's last position (positions past len hold 0: neither a reset nor a change of G).
__device__ __forceinline__ void scan_gates(const float (&lg)[kGateRegs], float (&g)[kGateRegs],
                                           int (&r)[kGateRegs], float& g_last, int& r_last) {
  const int lane = threadIdx.x % kWarpSize;
  float run = 0.f;
  int run_r = -1;
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {  // the lane's own positions, in order
    const bool reset = is_reset(lg[s]);
    run += reset ? 0.f : lg[s];
    run_r = reset ? kGateRegs * lane + s : run_r;
    g[s] = run;
    r[s] = run_r;
  }
  float incl = run;  // inclusive scan of the lanes' runs
  int incl_r = run_r;
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const float up = __shfl_up_sync(0xffffffffu, incl, offset);
    const int up_r = __shfl_up_sync(0xffffffffu, incl_r, offset);
    if (lane >= offset) {
      incl += up;
      incl_r = max(incl_r, up_r);
    }
  }
  float before = __shfl_up_sync(0xffffffffu, incl, 1);  // what the lanes below carry in
  int before_r = __shfl_up_sync(0xffffffffu, incl_r, 1);
  if (lane == 0) {
    before = 0.f;
    before_r = -1;
  }
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {
    g[s] += before;
    r[s] = max(r[s], before_r);
  }
  g_last = __shfl_sync(0xffffffffu, incl, kWarpSize - 1);
  r_last = __shfl_sync(0xffffffffu, incl_r, kWarpSize - 1);
}

// The state kernels' gates, one chunk ahead, by one warp (chunk_state_mma, chunk_state_wgmma):
//   load_state_gates(mLg, h, t, c, n, lg)   lg = chunk n's log gates (nothing past the last chunk)
//   scan_state_gates<T>(lg, len, c, slot_gamma2, slot_decay)
//       gamma2[m] = (gamma(2m), gamma(2m + 1)) as T pairs, gamma(j) = decay(j -> L) (0 past len);
//       *decay = decay(enter -> L)   (multiplied, as in the recurrence: 0 after a reset)
// mLg: token 0 of this (b, h), h floats between tokens, or null without gating.
__device__ __forceinline__ int chunk_len(int64_t n, int c, int64_t t) {
  return static_cast<int>(c < t - n * c ? c : t - n * c);
}

__device__ __forceinline__ void load_state_gates(const float* mLg, int64_t h, int64_t t, int c, int64_t n,
                                                 float (&lg)[kGateRegs]) {
  if (n * c < t) load_chunk_gates(mLg != nullptr ? mLg + n * c * h : nullptr, h, chunk_len(n, c, t), lg);
}

template <typename T>
__device__ __forceinline__ void scan_state_gates(const float (&lg)[kGateRegs], int len, int c, uint32_t* gamma2,
                                                 float* decay) {
  const int lane = threadIdx.x % kWarpSize;
  float gs[kGateRegs], g_last;
  int rs[kGateRegs], r_last;
  scan_gates(lg, gs, rs, g_last, r_last);
  auto gamma = [&](int s) {
    const int j = kGateRegs * lane + s;
    return j < len && r_last <= j ? expf(g_last - gs[s]) : 0.f;
  };
#pragma unroll
  for (int s = 0; s < kGateRegs; s += 2)
    if (kGateRegs * lane + s < c) gamma2[(kGateRegs * lane + s) / 2] = pack2<T>(gamma(s), gamma(s + 1));
  if (lane == 0) *decay = r_last == -1 ? expf(g_last) : 0.f;
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
  scan_gates(lg, g, r, g_last, r_last);
#pragma unroll
  for (int s = 0; s < kGateRegs; ++s) {
    const int i = kGateRegs * lane + s;
    if (i < c) {
      sG[i] = g[s];
      sR[i] = r[s];
    }
  }
}

}  // namespace powerret::cuda
