// mma: the SM80-style warp-level tensor-core building blocks of the fast forward (inline PTX, sm_80+):
//   mma_16816:   C (16 x 8, fp32) += A (16 x 16) B (16 x 8), A and B fp16 or bf16      == C += A.float() @ B.float()
//   ldmatrix_x4: four 8 x 8 16-bit matrices from shared memory (.trans: each transposed)
//   cp_async_16: 16 bytes global -> shared without registers (zero-filled when !valid); cp_async_16_at: the same
//                to a shared-memory address
//   stmatrix_x4: four 8 x 8 16-bit matrices to shared memory (ldmatrix_x4's inverse)
//   mn_swizzled_offset<kN>(n, k): byte offset of element (n, k) of a 16-bit (kN x K) tile stored N-major
//                with the 128-byte (kN >= 64) or 64-byte (kN = 32) swizzle (the wgmma B layout; also the
//                workspace's order of the entering states, padded_rows.cuh)
// Fragment layouts (PTX ISA, mma.m16n8k16; g = lane / 4, t = lane % 4), each register two 16-bit values:
//   A: a[0] = (row g,     cols 2t, 2t+1)   a[1] = (row g + 8, cols 2t, 2t+1)
//      a[2] = (row g,     cols 2t+8, 2t+9) a[3] = (row g + 8, cols 2t+8, 2t+9)
//   B: b[0] = (rows 2t, 2t+1, col g)       b[1] = (rows 2t+8, 2t+9, col g)
//   C: c[0], c[1] = (row g, cols 2t, 2t+1) c[2], c[3] = (row g + 8, cols 2t, 2t+1)
// ldmatrix_x4 at per-lane row addresses: lane l points at row l % 8 of matrix l / 8; register m holds
// matrix m, elements (row g, cols 2t, 2t+1) (with .trans: (rows 2t, 2t+1, col g) of the stored matrix).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace powerret::cuda {

// Shared-memory address of a generic pointer into shared memory (for ldmatrix / cp.async).
__device__ __forceinline__ uint32_t smem_addr(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// r[m] = matrix m at (row g, cols 2t, 2t+1)   == frag = tile[g, 2t:2t+2]
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row_ptr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row_ptr)));
}

// r[m] = matrix m at (rows 2t, 2t+1, col g)   == frag = tile[2t:2t+2, g]
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_ptr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row_ptr)));
}

// matrix m at (row g, cols 2t, 2t+1) = r[m]; lane l addresses row l % 8 of matrix l / 8   == ldmatrix_x4^-1
__device__ __forceinline__ void stmatrix_x4(void* row_ptr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(smem_addr(row_ptr)),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Byte offset of element (n, k) of a 16-bit tile of kN columns (n) and any number of rows (k) stored N-major
// ("MN-major") with the 128-byte (kN >= 64) or 64-byte (kN = 32) swizzle, atoms of (one line, 8 k rows) tiled
// N first: CuTe's tile_to_shape(Layout_MN_SW{128,64}_Atom, (kN, K)). A range of whole 8-row groups is
// contiguous, and the swizzle (16-byte piece ^= line bits of k % 8) puts the 8 rows of a piece on 8 distinct
// 16-byte bank groups. The hardware applies the same XOR to address bits, so a tile read by wgmma or TMA
// must start 1024-byte (64-byte swizzle: 512-byte) aligned; software readers and writers need not.
template <int kN>
__host__ __device__ constexpr uint32_t mn_swizzled_offset(int n, int k) {
  static_assert(kN % 32 == 0, "mn_swizzled_offset: 32, 64 or 128 columns");
  constexpr int kLine = kN >= 64 ? 128 : 64;  // bytes of one k row inside an atom
  constexpr int kAtomN = kLine / 2;           // columns per atom
  constexpr int kNAtoms = kN / kAtomN;
  constexpr uint32_t kMask = kLine == 128 ? 7u : 3u;
  const uint32_t atom = static_cast<uint32_t>((k / 8) * kNAtoms + n / kAtomN) * (kLine * 8);
  const uint32_t in_atom = static_cast<uint32_t>((k % 8) * kLine + (n % kAtomN) * 2);
  return atom + (in_atom ^ (((in_atom >> 7) & kMask) << 4));
}

// c += a @ b   (16 x 16 @ 16 x 8, fp32 accumulate); T = __half or __nv_bfloat16
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "mma_16816: fp16 or bf16 operands");
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// dst[0:16] = valid ? src[0:16] : 0   (bytes; both 16-byte aligned)
// To a shared-memory address (smem_addr); without `valid`, always 16 bytes (no source-size operand)
__device__ __forceinline__ void cp_async_16_at(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
  cp_async_16_at(smem_addr(dst), src, valid);
}
__device__ __forceinline__ void cp_async_16_at(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most kPending of this thread's committed groups are in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Two fp32 values as one register of two 16-bit T, round to nearest even   == torch.tensor([lo, hi]).to(T)
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// Elementwise product of two registers of two 16-bit T (one rounding)   == (x * y).to(T)
template <typename T>
__device__ __forceinline__ uint32_t mul2(uint32_t x, uint32_t y) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 r = __hmul2(*reinterpret_cast<const __half2*>(&x), *reinterpret_cast<const __half2*>(&y));
    return *reinterpret_cast<const uint32_t*>(&r);
  } else {
    const __nv_bfloat162 r =
        __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&x), *reinterpret_cast<const __nv_bfloat162*>(&y));
    return *reinterpret_cast<const uint32_t*>(&r);
  }
}

}  // namespace powerret::cuda
