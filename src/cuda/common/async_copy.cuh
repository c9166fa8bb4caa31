// async_copy: the sm_90 pieces for copies by the TMA engine into shared memory and for the barriers around them.
//   mbar_init(bar, n)                    an mbarrier expecting n arrivals per phase (one thread, then
//                                        fence_mbarrier_init() and a block barrier before any use)
//   mbar_expect_and_load(bar, bytes)     the calling thread arrives on bar and announces `bytes` of copies
//   bulk_load(dst, src, bytes, bar)      one bulk copy global -> shared (16-byte aligned, bytes a multiple of 16)
//                                        whose completion counts against bar's announced bytes
//   bulk_store(dst, src, bytes)         one bulk copy shared -> global (16-byte aligned, bytes a multiple of 16) in
//                                        this thread's bulk group; bulk_commit() closes the group,
//                                        bulk_wait_read<n>() waits until at most n groups still read shared memory,
//                                        bulk_wait<n>() until at most n groups are incomplete (their writes done)
//   cp_async_arrive(bar)                 an arrival on bar once this thread's earlier cp.async copies landed
//   mbar_arrive(bar)                     one arrival on bar
//   mbar_wait(bar, parity)               wait until the phase with this parity is complete (its copies landed
//                                        and are visible to the waiting thread, for the generic and async proxies)
//   fence_proxy_async_shared()           this thread's earlier st.shared writes ordered before later reads by
//                                        the async proxy (wgmma operands, bulk copies into that memory); it also
//                                        waits for the thread's outstanding memory operations (cp.async
//                                        included): not per tile of a cp.async pipeline
//   fence_proxy_async_global()           this thread's view of global memory (e.g. another kernel's writes it
//                                        acquired) ordered before its later async-proxy reads (bulk copies)
//   bar_sync(id, n) / bar_arrive(id, n)  named barrier id among n threads (a multiple of 32)
// Everything here needs sm_90 (the forward's tensor-core kernels run only on sm_90a builds and devices).
#pragma once

#include <cstdint>

#include "cuda/common/mma.cuh"

namespace powerret::cuda {

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(arrivals) : "memory");
}
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_and_load(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void bulk_store(void* dst, const void* src, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst), "r"(smem_addr(src)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}
template <int kPending>
__device__ __forceinline__ void bulk_wait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
}
// One arrival on bar once every cp.async this thread issued before has landed (bar expects one per thread).
__device__ __forceinline__ void cp_async_arrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// One arrival on bar (release at CTA scope: this thread's earlier accesses happen before the phase completes).
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void fence_proxy_async_global() {
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
}

__device__ __forceinline__ void bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// old value of *counter (shared memory), then *counter += 1, ordered after this thread's earlier accesses and
// before its later ones (acquire-release at CTA scope)
__device__ __forceinline__ uint32_t shared_fetch_add(uint32_t* counter) {
  uint32_t old;
  asm volatile("atom.acq_rel.cta.shared::cta.add.u32 %0, [%1], 1;\n" : "=r"(old) : "r"(smem_addr(counter)) : "memory");
  return old;
}

}  // namespace powerret::cuda
