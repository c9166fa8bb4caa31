// device_info: facts about a device the launchers need, queried once per device and cached. Host only;
// no device synchronisation, no stream work: safe while a stream is being captured into a CUDA graph.
//   sm_count(device)                     == torch.cuda.get_device_properties(device).multi_processor_count
//   compute_major(device)                == torch.cuda.get_device_properties(device).major
//   SmemOptIn::ensure(kernel, bytes, device, name)   a kernel's dynamic shared-memory limit raised to `bytes`,
//                                        once per device (a static of the kernel's launcher: one per kernel)
//   use_wgmma(device)                    the forward's sm_90a (wgmma) kernels run: a 9.x device, a build
//                                        for sm_90a, and POWERRET_FORWARD_KERNELS is not "sm80" (a
//                                        diagnostic switch to the mma.sync kernels, read once)
//   ClusterLimit::get(kernel, device, n) the largest thread-block cluster (16 or 8 CTAs of n threads)
//                                        that `kernel` can launch with on `device`
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cuda/common/check.hpp"

namespace powerret::cuda {

inline constexpr int kCachedDevices = 64;       // device ordinals with a cache slot (others query each call)
inline constexpr int kPortableClusterSize = 8;  // any sm_90 kernel may launch clusters of up to 8 CTAs
inline constexpr int kMaxClusterSize = 16;      // with cudaFuncAttributeNonPortableClusterSizeAllowed

// A device attribute of `device`, cached per (attribute slot, device): attributes never change.
template <cudaDeviceAttr kAttr>
inline int device_attribute(int device, const char* what) {
  static std::array<std::atomic<int>, kCachedDevices> cache{};
  const bool cached = device >= 0 && device < kCachedDevices;
  if (cached) {
    const int known = cache[device].load(std::memory_order_relaxed);
    if (known > 0) return known;
  }
  int value = 0;
  check_cuda(cudaDeviceGetAttribute(&value, kAttr, device), what);
  if (cached) cache[device].store(value, std::memory_order_relaxed);
  return value;
}

// Streaming multiprocessors of `device` (the current device of the calling launcher).
inline int sm_count(int device) {
  return device_attribute<cudaDevAttrMultiProcessorCount>(device, "cudaDeviceGetAttribute(cudaDevAttrMultiProcessorCount)");
}

inline int compute_major(int device) {
  return device_attribute<cudaDevAttrComputeCapabilityMajor>(device,
                                                            "cudaDeviceGetAttribute(cudaDevAttrComputeCapabilityMajor)");
}

// cudaFuncSetAttribute per launch costs host time on every call (it matters for short multi-token steps);
// the attribute belongs to the kernel in a device's primary context, so each launcher sets it once per
// device. (A cudaDeviceReset in the middle of a process would drop it while the cache says set; the
// frameworks never reset, and such a launch fails with a CUDA error naming the kernel, not silently.)
class SmemOptIn {
 public:
  template <typename... Args>
  void ensure(void (*kernel)(Args...), int bytes, int device, const char* name) {
    const bool cached = device >= 0 && device < kCachedDevices;
    if (cached && done_[device].load(std::memory_order_acquire) >= bytes) return;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), name);
    if (cached) done_[device].store(bytes, std::memory_order_release);
  }

 private:
  std::array<std::atomic<int>, kCachedDevices> done_{};
};

inline bool use_wgmma(int device) {
#if defined(POWERRET_WGMMA)
  static const bool allowed = [] {
    const char* pick = std::getenv("POWERRET_FORWARD_KERNELS");
    return pick == nullptr || std::strcmp(pick, "sm80") != 0;
  }();
  return allowed && compute_major(device) == 9;
#else
  (void)device;
  return false;
#endif
}

// One per kernel (a static of its launcher): 16 where the device can co-schedule a 16-CTA cluster of
// the kernel (after allowing the non-portable size on that device), 8 (portable) otherwise.
class ClusterLimit {
 public:
  template <typename... Args>
  int get(void (*kernel)(Args...), int device, int threads) {
    const bool cached = device >= 0 && device < kCachedDevices;
    if (cached) {
      const int known = limit_[device].load(std::memory_order_relaxed);
      if (known > 0) return known;
    }
    int limit = kPortableClusterSize;
    bool refused = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess;
    if (!refused) {
      cudaLaunchAttribute cluster{};
      cluster.id = cudaLaunchAttributeClusterDimension;
      cluster.val.clusterDim.x = kMaxClusterSize;
      cluster.val.clusterDim.y = 1;
      cluster.val.clusterDim.z = 1;
      cudaLaunchConfig_t config{};
      config.gridDim = dim3(kMaxClusterSize);
      config.blockDim = dim3(static_cast<unsigned int>(threads));
      config.attrs = &cluster;
      config.numAttrs = 1;
      int clusters = 0;
      refused = cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess;
      if (!refused && clusters > 0) limit = kMaxClusterSize;
    }
    if (refused) (void)cudaGetLastError();  // a refused probe is an answer, not an error of a later launch
    if (cached) limit_[device].store(limit, std::memory_order_relaxed);
    return limit;
  }

 private:
  std::array<std::atomic<int>, kCachedDevices> limit_{};
};

}  // namespace powerret::cuda
