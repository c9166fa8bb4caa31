// wgmma: the sm_90a warpgroup tensor-core pieces of the forward, over CuTe's GMMA atoms and layouts.
//   mma_rs<T, N, MajorB>(acc, a, desc)   acc (64 x N, fp32) += A (64 x 16, registers) B (16 x N, shared)
//                                        == acc += A.float() @ B.float(), issued asynchronously
//   mma_ss<T, N, MajorB>(acc, da, db)    the same with A from shared memory too (K-major: k_desc)
//   fence() / commit() / wait<n>()       wgmma.fence, commit the issued batch, wait until <= n batches
//                                        are in flight (cute::warpgroup_arrive / _commit_batch / _wait)
//   keep(x)                              an empty asm that reads and rewrites x: after wait<n>, it keeps a
//                                        register that an in-flight wgmma reads or writes from being moved
//                                        or reused before that point (cute::warpgroup_fence_operand)
//   (the byte offsets of that B layout: mn_swizzled_offset, cuda/common/mma.cuh)
// Register layouts (checked on the H100 by bench/diag/wgmma_check.cu, 2026-11-24): warp w of the
// warpgroup holds rows 16 w .. 16 w + 15 of A and of acc, A in the mma.sync m16n8k16 A-fragment order
// of each k16 step, acc in the m16n8 accumulator order of each 8-column block (cuda/common/mma.cuh).
// Everything here needs sm_90a; the launchers pick these kernels only on such devices and builds.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>
#include <utility>

#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/arch/mma_sm90_gmma.hpp>
#ifndef CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED
#include <cute/arch/mma_sm90_gmma_ext.hpp>  // the atoms of N = 40, 72, 136 (e + 8: [num | den], chunk_output_mma)
#endif
#include <cute/atom/mma_traits_sm90_gmma.hpp>

#include "cuda/common/mma.cuh"

namespace powerret::cuda::wg {

namespace GMMA = cute::SM90::GMMA;

__device__ __forceinline__ void fence() { cute::warpgroup_arrive(); }
__device__ __forceinline__ void commit() { cute::warpgroup_commit_batch(); }
template <int kInFlight>
__device__ __forceinline__ void wait() {
  cute::warpgroup_wait<kInFlight>();
}
// setmaxnreg: a warpgroup's registers per thread, raised from or returned to the block's pool (every warp of
// the warpgroup executes it, converged; counts are multiples of 8 in [24, 256])
template <int kRegs>
__device__ __forceinline__ void set_max_registers_inc() {
  static_assert(kRegs % 8 == 0 && kRegs >= 24 && kRegs <= 256, "setmaxnreg count");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void set_max_registers_dec() {
  static_assert(kRegs % 8 == 0 && kRegs >= 24 && kRegs <= 256, "setmaxnreg count");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
__device__ __forceinline__ void keep(float& x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void keep(uint32_t& x) { asm volatile("" : "+r"(x)::"memory"); }

namespace detail {
// The CuTe GMMA atom of 64 x N x 16 with A from registers (RsOp) or shared memory (SsOp), K-major A.
template <typename T, int kN, GMMA::Major kB>
struct RsOp;
template <typename T, int kN, GMMA::Major kB>
struct SsOp;
#define POWERRET_WGMMA_OPS(N, T, AB)                                    \
  template <GMMA::Major kB>                                             \
  struct RsOp<T, N, kB> {                                               \
    using type = GMMA::MMA_64x##N##x16_F32##AB##_RS<GMMA::Major::K, kB>; \
  };                                                                    \
  template <GMMA::Major kB>                                             \
  struct SsOp<T, N, kB> {                                               \
    using type = GMMA::MMA_64x##N##x16_F32##AB##_SS<GMMA::Major::K, kB>; \
  };
#define POWERRET_WGMMA_N(N)                                  \
  POWERRET_WGMMA_OPS(N, __nv_bfloat16, BF16BF16)             \
  POWERRET_WGMMA_OPS(N, __half, F16F16)
POWERRET_WGMMA_N(8)
POWERRET_WGMMA_N(32)
POWERRET_WGMMA_N(40)
POWERRET_WGMMA_N(64)
POWERRET_WGMMA_N(72)
POWERRET_WGMMA_N(128)
POWERRET_WGMMA_N(136)
#undef POWERRET_WGMMA_N
#undef POWERRET_WGMMA_OPS

template <typename Op, int kN, std::size_t... I>
__device__ __forceinline__ void ss(float (&acc)[kN / 2], uint64_t desc_a, uint64_t desc_b, std::index_sequence<I...>) {
  Op::fma(desc_a, desc_b, acc[I]...);
}

template <typename Op, int kN, std::size_t... I>
__device__ __forceinline__ void rs(float (&acc)[kN / 2], const uint32_t (&a)[4], uint64_t desc,
                                   std::index_sequence<I...>) {
  Op::fma(a[0], a[1], a[2], a[3], desc, acc[I]...);
}
}  // namespace detail

// acc (this thread's kN / 2 values of the 64 x kN tile) += A (a: this thread's 8 values of 64 x 16) B
template <typename T, int kN, GMMA::Major kB>
__device__ __forceinline__ void mma_rs(float (&acc)[kN / 2], const uint32_t (&a)[4], uint64_t desc) {
  detail::rs<typename detail::RsOp<T, kN, kB>::type, kN>(acc, a, desc, std::make_index_sequence<kN / 2>{});
}

// acc (64 x kN, as mma_rs) += A (64 x 16, shared memory: desc_a, K-major) B (16 x kN, shared: desc_b)
template <typename T, int kN, GMMA::Major kB>
__device__ __forceinline__ void mma_ss(float (&acc)[kN / 2], uint64_t desc_a, uint64_t desc_b) {
  detail::ss<typename detail::SsOp<T, kN, kB>::type, kN>(acc, desc_a, desc_b, std::make_index_sequence<kN / 2>{});
}

// Descriptor of an N-major operand without swizzle at `base` (16-byte aligned): 8 x 8 core matrices of 16 bytes per
// k row (8 n values), the core matrices of consecutive n blocks `n_stride` bytes apart, those of consecutive 8-row k
// groups `k_stride` bytes apart (CuTe's MN INTERLEAVE: ((8, n), (8, 2)) : ((1, SBO), (8, LBO)) in elements, with SBO
// the n-block stride and LBO the k-group stride).
__device__ __forceinline__ uint64_t mn_interleave_desc(const void* base, uint32_t n_stride, uint32_t k_stride) {
  cute::GmmaDescriptor desc;
  desc.bitfield.start_address_ = static_cast<uint16_t>(smem_addr(base) >> 4);
  desc.bitfield.leading_byte_offset_ = static_cast<uint16_t>(k_stride >> 4);
  desc.bitfield.stride_byte_offset_ = static_cast<uint16_t>(n_stride >> 4);
  desc.bitfield.base_offset_ = 0;
  desc.bitfield.layout_type_ = static_cast<uint8_t>(GMMA::LayoutType::INTERLEAVE);
  return desc.desc_;
}

// Shared-memory layout of a 16-bit B operand of kN columns, N-major: the CuTe atom that holds one k row
// of up to 64 columns in one 128-byte line (kN = 32: 64-byte lines).
template <typename T, int kN>
using MnAtom = std::conditional_t<kN >= 64, GMMA::Layout_MN_SW128_Atom<T>, GMMA::Layout_MN_SW64_Atom<T>>;

// Descriptor of the (kN x 16) k-slice at `base` (1024-byte aligned for the 128-byte swizzle) of such a tile;
// slice s of a K-long tile starts 16 kN * 2 * s bytes further (add that / 16 to the descriptor).
template <typename T, int kN>
__device__ __forceinline__ uint64_t mn_desc(const void* base) {
  using namespace cute;
  auto layout = tile_to_shape(MnAtom<T, kN>{}, Shape<Int<kN>, _16>{});
  auto tensor = make_tensor(make_smem_ptr(static_cast<const T*>(base)), layout);
  return GMMA::make_gmma_desc<GMMA::Major::MN>(tensor).desc_;
}

// Descriptor of an 8 x 16 K-major, unswizzled B (256 bytes at `base`, 16-byte aligned).
template <typename T>
__device__ __forceinline__ uint64_t k8_desc(const void* base) {
  using namespace cute;
  auto layout = tile_to_shape(GMMA::Layout_K_INTER_Atom<T>{}, Shape<_8, _16>{});
  auto tensor = make_tensor(make_smem_ptr(static_cast<const T*>(base)), layout);
  return GMMA::make_gmma_desc<GMMA::Major::K>(tensor).desc_;
}

}  // namespace powerret::cuda::wg
