// cluster: the CTAs of one thread-block cluster (sm_90) as the kernels use them, for any cluster size n
// including 1, where the kernel is launched without cluster dimensions and everything stays in this CTA.
//   cluster_sync(n)           every thread of the n CTAs arrives (release) and waits (acquire): shared
//                             memory written before it is visible to the whole cluster after it;
//                             __syncthreads() for n == 1
//   cluster_peer(p, rank, n)  the address of shared variable p in CTA `rank` of the cluster (DSMEM);
//                             p itself for n == 1. Read a peer only between two cluster_sync: after the
//                             one that follows its writes, before the one that lets it exit or overwrite.
//   cluster_arrive(n) / cluster_wait(n)   cluster_sync split in two (release / acquire), so that work can
//                             sit between them; nothing for n == 1 / __syncthreads() for n == 1
#pragma once

#include <cooperative_groups.h>

namespace powerret::cuda {

__device__ __forceinline__ void cluster_sync(int cluster_size) {
  if (cluster_size > 1) {
    cooperative_groups::this_cluster().sync();
  } else {
    __syncthreads();
  }
}

__device__ __forceinline__ void cluster_arrive(int cluster_size) {
  if (cluster_size > 1) asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
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
