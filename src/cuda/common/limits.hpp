// limits: the compile-time bounds the CUDA kernels are written for (the supported set of
// cuda/backend.hpp): head dims d, e <= 128 with e a multiple of 32 (a lane owns the value
// columns lane + 32 * cc), chunks of at most 256 tokens, degree at most 4.
#pragma once

namespace powerret::cuda {

inline constexpr int kWarpSize = 32;
inline constexpr int kMaxHeadDim = 128;                       // d, e <= 128
inline constexpr int kMaxColGroups = kMaxHeadDim / kWarpSize;  // e / 32 <= 4 value columns per lane
inline constexpr int kMaxChunk = 256;                         // largest of chunk_sizes()
inline constexpr int kMaxDeg = 4;                             // p <= 4
inline constexpr int kMaxGridY = 65535;                       // gridDim.y limit

}  // namespace powerret::cuda
