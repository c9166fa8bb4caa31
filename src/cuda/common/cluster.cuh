// cluster: the CTAs of one thread-block cluster (sm_90) as the kernels use them, for any cluster size n
// including 1, where the kernel is launched without cluster dimensions and everything stays in this CTA.
//   cluster_peer(p, rank, n)  the address of shared variable p in CTA `rank` of the cluster (DSMEM);
//                             p itself for n == 1. Touch a peer's memory only after a barrier that proves
//                             it runs, and before the one that lets it exit or reuse that memory.
//   cluster_arrive(n) / cluster_wait(n)   a cluster barrier in two halves: every thread of the n CTAs
//                             arrives (release), then waits (acquire) until all have; shared memory
//                             written before the arrive is visible to the cluster after the wait. Work
//                             may sit between the halves. n == 1: nothing / __syncthreads()
//   cluster_arrive_relaxed(n)  an arrive without release: for a barrier that only proves this CTA runs (it
//                             publishes nothing). The release form waits for every memory access of the
//                             thread in flight (SASS: ERRBAR), loads included.
#pragma once

#include <cooperative_groups.h>

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

template <typename T>
__device__ __forceinline__ T* cluster_peer(T* p, int rank, int cluster_size) {
  return cluster_size > 1 ? cooperative_groups::this_cluster().map_shared_rank(p, static_cast<unsigned int>(rank))
                          : p;
}

}  // namespace powerret::cuda
