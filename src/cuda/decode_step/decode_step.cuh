// decode_step launcher: one recurrence step, state in place (the kernel and its math: decode_step_kernel.cuh).
// Picks the kernel (value dim e, query heads per pass, 16-byte or scalar state access) and the split of each
// (row, kv head) state across the CTAs of one thread-block cluster, then launches once on the caller's
// stream. Every choice depends only on shapes, the state pointer's alignment and the device (SM count and
// cluster limit, queried once per device): never on data, never with a host sync, so a CUDA graph
// captures the step and replays it with new inputs.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cuda/common/check.hpp"
#include "cuda/common/device_info.hpp"
#include "cuda/decode_step/decode_step.hpp"
#include "cuda/decode_step/decode_step_kernel.cuh"

namespace powerret::cuda {

inline constexpr int kDecodeMinRowsPerCta = 32;  // a state is split only while each CTA keeps >= 32 rows

// POWERRET_DECODE_MAX_SPLIT (read once; 1, 2, 4, 8 or 16) caps the split, for measurements
// (bench/diag/decode.sh); unset or anything else: no cap.
inline int decode_max_split() {
  static const int cap = [] {
    const char* text = std::getenv("POWERRET_DECODE_MAX_SPLIT");
    const int value = text != nullptr ? std::atoi(text) : 0;
    return value >= 1 && value <= kMaxClusterSize && (value & (value - 1)) == 0 ? value : kMaxClusterSize;
  }();
  return cap;
}

// CTAs per (row, kv head): the smallest power of two with pairs * split >= SMs, so that every SM streams
// (b h = 8 on an H100's 132 SMs: 16, i.e. 128 CTAs of 130 rows each at D = 2080; b h >= 132: 1), at most
// 16 (8 where the device cannot co-schedule a 16-CTA cluster of the kernel), keeping >= 32 rows per CTA.
// `cluster_limit()` is only asked when a split beyond the portable 8 is wanted. Measured at b = 1 (H100,
// bench/RESULTS.md, session 4): 16 is the fastest split, 8 within 0.3-0.8 us, 1 about 2.5x slower.
template <class ClusterLimitFn>
DecodeSplit decode_split(int64_t pairs, int64_t D, int sms, ClusterLimitFn&& cluster_limit) {
  const int max_split = decode_max_split();
  int split = 1;
  while (split < max_split && pairs * split < sms && D >= int64_t{2} * split * kDecodeMinRowsPerCta) split *= 2;
  if (split > kPortableClusterSize) split = std::min(split, cluster_limit());
  return DecodeSplit{
      .split = split,
      .rows_per_cta = static_cast<int>((D + split - 1) / split),
  };
}

template <typename T, int kE, int kHeads, int kVec>
void launch_decode_kernel(const detail::DecodeProblem& problem, cudaStream_t stream) {
  const auto kernel = decode_step_kernel<T, kE, kHeads, kVec>;
  static ClusterLimit cluster_limit;  // this kernel's, per device
  const int64_t pairs = problem.b * problem.h;
  const DecodeSplit split = decode_split(pairs, problem.D, sm_count(problem.device),
                                         [&] { return cluster_limit.get(kernel, problem.device, kDecodeThreads); });

  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = static_cast<unsigned int>(split.split);
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(grid_x(pairs * split.split, "decode_step"));  // (pair, rank) = divmod(blockIdx.x, split)
  config.blockDim = dim3(kDecodeThreads);
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  config.attrs = split.split > 1 ? &cluster : nullptr;
  config.numAttrs = split.split > 1 ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&config, kernel, problem, split), "decode_step");
}

// Query heads per pass: the group rounded up to 1, 2, 4 or 8 (larger groups take passes of 8).
// A state that is not 16-byte aligned (validation guarantees 4) takes the scalar-access kernel.
template <typename T, int kE>
void launch_decode_for_e(const detail::DecodeProblem& problem, cudaStream_t stream) {
  if (reinterpret_cast<std::uintptr_t>(problem.s) % 16 != 0)
    return launch_decode_kernel<T, kE, kDecodeMaxHeads, 1>(problem, stream);
  const int64_t group = problem.hq / problem.h;
  if (group == 1) return launch_decode_kernel<T, kE, 1, 4>(problem, stream);
  if (group == 2) return launch_decode_kernel<T, kE, 2, 4>(problem, stream);
  if (group <= 4) return launch_decode_kernel<T, kE, 4, 4>(problem, stream);
  return launch_decode_kernel<T, kE, kDecodeMaxHeads, 4>(problem, stream);
}

template <typename T>
void launch_decode_step(const detail::DecodeProblem& problem, cudaStream_t stream) {
  switch (problem.e) {
    case 32: return launch_decode_for_e<T, 32>(problem, stream);
    case 64: return launch_decode_for_e<T, 64>(problem, stream);
    case 128: return launch_decode_for_e<T, 128>(problem, stream);
    default:
      throw Error(ErrorKind::kValue,
                  "decode_step: e = " + std::to_string(problem.e) + " is not one of the GPU's {32, 64, 128}");
  }
}

}  // namespace powerret::cuda
