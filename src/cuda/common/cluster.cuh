// cluster: the CTAs of one thread-block cluster (sm_90) as the kernels use them, for any cluster size n
// including 1, where the kernel is launched without cluster dimensions and everything stays in this CTA.
//   cluster_arrive(n) / cluster_wait(n)   a cluster barrier in two halves: every thread of the n CTAs
//                             arrives (release), then waits (acquire) until all have; shared memory
//                             written before the arrive is visible to the cluster after the wait. Work
//                             may sit between the halves. n == 1: nothing / __syncthreads()
//   cluster_arrive_relaxed(n)  an arrive without release: for a barrier that only proves this CTA runs (it
//                             publishes nothing). The release form waits for every memory access of the
//                             thread in flight (SASS: ERRBAR), loads included.
//   cluster_smem_addr(p, rank)  shared variable p of CTA `rank`, as a shared::cluster address (for st.async)
//   cluster_store_async(addr, x, bar)  st.async of one float into a peer's shared memory; its 4 bytes count
//                             against the peer's mbarrier `bar` (a shared::cluster address of the same CTA).
//                             The receiver announces the bytes it expects (mbarrier.arrive.expect_tx) and
//                             waits on the barrier's phase: no cluster barrier and no release fence, so the
//                             sender's own stores to global memory in flight are not waited for.
#pragma once

#include <cstdint>

#include "cuda/common/mma.cuh"

namespace powerret::cuda {

__device__ __forceinline__ void cluster_arrive(int cluster_size) {
  if (cluster_size > 1) asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_arrive_relaxed(int cluster_size) {
  if (cluster_size > 1) asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait(int cluster_size) {
  if (cluster_size > 1) {
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
  } else {
    __syncthreads();
  }
}

__device__ __forceinline__ uint32_t cluster_smem_addr(const void* p, int rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smem_addr(p)), "r"(rank));
  return remote;
}
__device__ __forceinline__ void cluster_store_async(uint32_t addr, float value, uint32_t bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(addr),
               "r"(__float_as_uint(value)), "r"(bar)
               : "memory");
}

}  // namespace powerret::cuda
