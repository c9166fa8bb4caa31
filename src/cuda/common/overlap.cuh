// overlap: the pieces that let chunk_output_mma run beside chunk_state_mma (sm_90 programmatic
// dependent launch, plus per-chunk ready counters in global memory):
//   allow_dependents()    the primary grid lets the dependent grid start launching blocks now
//                         (once every primary block has called it or exited)
//   wait_primary()        the dependent waits for the primary grid to finish, its writes visible
//   signal_ready(c)       after a block barrier: c += 1 with release semantics at GPU scope, which orders
//                         the block's earlier global writes (ordered before it by the barrier) before it
//   wait_ready(c, n)      one thread: spin until c >= n (acquire); the caller then barriers its block
// Without sm_90 (never built here: the library targets sm_90a) the launch primitives are no-ops.
#pragma once

#include <cstdint>

namespace powerret::cuda {

__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_primary() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Called by one thread after a barrier that follows the block's writes. A release reduction rather than
// __threadfence() + atomicAdd: __threadfence() is a sequentially consistent fence, and the signalling
// thread waited in it for its outstanding memory operations at every chunk.
__device__ __forceinline__ void signal_ready(int32_t* counter) {
  asm volatile("red.release.gpu.global.add.s32 [%0], 1;\n" ::"l"(counter) : "memory");
}

__device__ __forceinline__ void wait_ready(const int32_t* counter, int32_t target) {
  int32_t seen;
  for (;;) {
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(seen) : "l"(counter) : "memory");
    if (seen >= target) break;
    __nanosleep(256);
  }
}

}  // namespace powerret::cuda
