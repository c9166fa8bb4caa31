// padded_rows: the row order of the states inside the tensor-core forward (never seen by callers).
// The public layout (SPEC §1) has rows a = (i <= j) with phi[a] = w_ij x_i x_j, w = 1 on the
// diagonal and sqrt(2) off it. Inside, rows come in m-tiles of 16: tile (i, jb) holds the 16 rows
// (i, 16 jb + r), r < 16, for jb from i / 16 to d / 16 - 1, tiles ordered by i, then jb. So a tile's
// phi values are x_i * x[16 jb : 16 jb + 16]: one column of x times a 16-aligned slice of x, which
// the kernels form from a tensor-core fragment of x with one packed multiply (no index tables).
// Rows (i, j) with j < i inside the diagonal block (j / 16 == i / 16) repeat the symmetric
// entry (j, i). With u_ij = sum_tok gamma x_i x_j v (the unweighted accumulation, symmetric in i, j),
//   phi(q)^T S = sum_{i <= j} w_ij^2 q_i q_j u_ij = sum_{padded rows} pad_weight(i, j) q_i q_j u_ij
// with pad_weight = 1 inside the diagonal block (both orders are present, or i == j) and 2 past it.
// The workspace holds W = pad_weight * u (exact: x1 or x2); public S[(i, j)] = w_ij u_ij.
// deg 1: one tile per jb (i unused), rows j, pad_weight 1, S[j] = u_j.
// Rows: deg 1: d; deg 2: 16 * nb (nb + 1) / 2 * 16, nb = d / 16 (d = 32: 768, 64: 2560, 128: 9216).
#pragma once

#include <cstdint>

#include "cuda/common/mma.cuh"
#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

// fp16 entering states are stored as W 2^-shift with one shift per (chunk, 128-row block) so that the
// block's largest |W| falls in [2^14, 2^15): from each thread's max m (>= 0: fmaxf drops NaN), the warps'
// maxima meet in warp_max[kWarps] (sync() orders the writes before the reads: a block or named barrier).
// Non-negative floats order like their bits, so one redux.sync takes a warp's max (five shuffles did).
// Inf anywhere: no scaling, it propagates. Returns the shift: 0 for an all-zero block, at least
// kMinEnteringShift (a block below 2^-98 keeps W 2^112 < 2^14: its smallest values underflow in fp16, where
// 2^-shift would otherwise leave the float range).
inline constexpr int kMinEnteringShift = -112;
template <int kWarps, typename Sync>
__device__ __forceinline__ int entering_scale_shift(float m, uint32_t* warp_max, int warp, Sync sync) {
  const uint32_t bits = __reduce_max_sync(0xffffffffu, __float_as_uint(m));
  if (threadIdx.x % 32 == 0) warp_max[warp] = bits;
  sync();
  uint32_t block = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) block = max(block, warp_max[w]);
  if (block == 0 || block >= 0x7f800000u) return 0;  // all zero, or Inf
  return max(ilogbf(__uint_as_float(block)) - 14, kMinEnteringShift);  // |W| 2^-shift < 2^15
}

// pw 2^-shift for a shift from entering_scale_shift (exact: a power of two in the normal range)
__device__ __forceinline__ float entering_factor(float pw, int shift) {
  return pw * __uint_as_float(static_cast<uint32_t>(127 - shift) << 23);
}

// The entering states of one (b, h, chunk) in the workspace are stored as one wgmma B operand of e + 8
// columns: W in columns 0 .. e - 1 and z in column e (columns e + 1 .. e + 7 are 0), so that one
// wgmma m64 x (e + 8) x k16 reads [num | den] (the den used to be a second m64 x 8 wgmma that re-read the whole
// A tile for an eighth of the math). The layout is N-major without swizzle (CuTe's MN INTERLEAVE): 8 x 8
// core matrices of 16 bytes per row, the e / 8 + 1 core matrices of an 8-row group side by side (128 bytes
// apart: the descriptor's SBO), 8-row groups (e + 8) 16 bytes apart (its LBO). Any run of whole 8-row groups
// is contiguous, so chunk_output_mma loads a stage of rows with one bulk copy and hands it to wgmma as it
// lies; a core matrix is one stmatrix 8 x 8 block, 128 contiguous bytes, so the state kernels write it without
// bank conflicts. Element offset of (row, col), col <= e (col == e: z):
template <int kE>
inline constexpr int kEnteringCols = kE + 8;
template <int kE>
__host__ __device__ constexpr uint32_t entering_offset(int row, int col) {
  return static_cast<uint32_t>((row / 8) * 8 * kEnteringCols<kE> + (col / 8) * 64 + (row % 8) * 8 + col % 8);
}

// Row `row`'s z of entering states laid out from `base` (the workspace slot or a staging buffer): the core-matrix
// row (z, 0, ..., 0) in columns e .. e + 7, one 16-byte store.
template <typename T, int kE>
__device__ __forceinline__ void store_entering_z(T* base, int row, float z) {
  *reinterpret_cast<uint4*>(base + entering_offset<kE>(row, kE)) = make_uint4(pack2<T>(z, 0.f), 0u, 0u, 0u);
}

template <int kD, int kDeg>
struct PaddedRows {
  static_assert(kD % kMmaTile == 0 && (kDeg == 1 || kDeg == 2), "padded rows: d a multiple of 16, deg 1 or 2");
  static constexpr int kBlocks = kD / kMmaTile;                              // 16-column blocks of x
  static constexpr int kRows = static_cast<int>(padded_state_rows(kD, kDeg));  // padded rows
  static constexpr int kTiles = kRows / kMmaTile;                            // m-tiles
  static constexpr int kRowTiles = static_cast<int>(state_row_tiles(kD, kDeg));  // 128-row tiles (state blocks)
  static constexpr int kGroups = kDeg == 2 ? kD : 1;                         // values of i (groups of tiles)

  // First jb of group i, and the tiles of group i.           == i // 16,  nb - i // 16
  __host__ __device__ static constexpr int first_block(int i) { return kDeg == 2 ? i / kMmaTile : 0; }
  __host__ __device__ static constexpr int group_tiles(int i) { return kBlocks - first_block(i); }
  // The first m-tile of group i (tiles are ordered by group)   == sum(group_tiles(i') for i' < i)
  __host__ __device__ static constexpr int group_first_tile(int i) {
    if constexpr (kDeg == 1) {
      return 0;
    } else {
      const int a = i / kMmaTile, r = i % kMmaTile;  // a whole 16-groups of nb - a' tiles each, then r groups
      return kMmaTile * (a * kBlocks - a * (a - 1) / 2) + r * (kBlocks - a);
    }
  }

  // (i, jb) of m-tile `tile` (< kTiles), by walking the groups (<= d steps).
  __device__ static void decode(int tile, int& i, int& jb) {
    i = 0;
    if constexpr (kDeg == 2) {
      while (tile >= group_tiles(i)) {
        tile -= group_tiles(i);
        ++i;
      }
    }
    jb = first_block(i) + tile;
  }

  // 1 inside the diagonal block, 2 past it (deg 1: 1).
  __device__ static float pad_weight(int i, int jb) { return kDeg == 1 || jb == first_block(i) ? 1.f : 2.f; }

  // Public row of padded row (i, j) and its phi weight w: rows (min, max) of SPEC §1.
  //   == list(combinations_with_replacement(range(d), 2)).index((min(i, j), max(i, j)))
  __device__ static int64_t public_row(int i, int j) {
    if constexpr (kDeg == 1) {
      return j;
    } else {
      const int a = i < j ? i : j, b = i < j ? j : i;
      return static_cast<int64_t>(a) * kD - static_cast<int64_t>(a) * (a - 1) / 2 + (b - a);
    }
  }
  __device__ static float phi_weight(int i, int j) { return kDeg == 1 || i == j ? 1.f : 1.41421356237309515f; }

  // The state kernels' A fragment of m-tile (i, jb) for the 16 tokens k0 .. k0 + 15 of a staged K tile
  // sK[tok][kk]: A[r][tok] = k_tok[16 jb + r] * gamma_tok k_tok[i] (deg 1: gamma_tok), in two halves so a
  // kernel can issue one step's shared-memory loads ahead of the previous step's products (chunk_state_mma
  // takes a_fragment; chunk_state_wgmma loads from its swizzled K stages itself and multiplies with a_multiply /
  // a_scale):
  //   a_load    ldmatrix.trans of sK into a; deg 2: k_lo / k_hi = the lane's (k_tok[i], k_tok+1[i]) T pairs
  //             (tokens k0 + 2 tq, + 1 and k0 + 8 + 2 tq, + 1)
  //   a_scale   a *= gamma pairs (gm_lo / gm_hi, the same tokens) times those k pairs: one packed multiply
  //             per register
  //   a_fragment  both
  //   a_load_trans  the ldmatrix.trans alone;  a_multiply  a *= ready multiplier pairs (s_lo, s_hi)
  template <int kLd, typename T>
  __device__ static void a_load_trans(uint32_t (&a)[4], const T (*sK)[kLd], int k0, int jb, int lane) {
    ldmatrix_x4_trans(a, &sK[k0 + (lane & 7) + ((lane >> 4) << 3)][jb * kMmaTile + (((lane >> 3) & 1) << 3)]);
  }
  template <typename T>
  __device__ static void a_multiply(uint32_t (&a)[4], uint32_t s_lo, uint32_t s_hi) {
    a[0] = mul2<T>(a[0], s_lo);
    a[1] = mul2<T>(a[1], s_lo);
    a[2] = mul2<T>(a[2], s_hi);
    a[3] = mul2<T>(a[3], s_hi);
  }
  template <int kLd, typename T>
  __device__ static void a_load(uint32_t (&a)[4], uint32_t& k_lo, uint32_t& k_hi, const T (*sK)[kLd], int k0, int i,
                                int jb, int lane) {
    const int tq = lane % 4;
    a_load_trans(a, sK, k0, jb, lane);
    if constexpr (kDeg == 2) {
      auto bits = [&](int tok) { return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&sK[tok][i])); };
      k_lo = bits(k0 + 2 * tq) | (bits(k0 + 2 * tq + 1) << 16);
      k_hi = bits(k0 + 8 + 2 * tq) | (bits(k0 + 9 + 2 * tq) << 16);
    }
  }
  template <typename T>
  __device__ static void a_scale(uint32_t (&a)[4], uint32_t k_lo, uint32_t k_hi, uint32_t gm_lo, uint32_t gm_hi) {
    uint32_t s_lo = gm_lo, s_hi = gm_hi;
    if constexpr (kDeg == 2) {
      s_lo = mul2<T>(k_lo, gm_lo);
      s_hi = mul2<T>(k_hi, gm_hi);
    }
    a_multiply<T>(a, s_lo, s_hi);
  }
  template <typename T, int kLd>
  __device__ static void a_fragment(uint32_t (&a)[4], const T (*sK)[kLd], int k0, int i, int jb, int lane,
                                    uint32_t gm_lo, uint32_t gm_hi) {
    uint32_t k_lo = 0, k_hi = 0;
    a_load(a, k_lo, k_hi, sK, k0, i, jb, lane);
    a_scale<T>(a, k_lo, k_hi, gm_lo, gm_hi);
  }

  // The final state from one m-tile (i, jb) of accumulator fragments (the m16n8 order of cuda/common/mma.cuh:
  // rows 16 jb + g (+ 8), columns col0 + 8 nt + 2 tq (+ 1)): S[public(i, j)] = w u, z[public(i, j)] = w z_u,
  // rows i <= j only (deg 2: the mirrored row (j, i) writes the others). u(nt, q) is fragment value q of
  // n-tile nt < kNt, zu(half) the z of row half; with_z: this lane writes z.
  template <int kE, int kNt, typename U, typename Zu>
  __device__ static void write_final(float* gS, float* gZ, int i, int jb, int g, int tq, int col0, bool with_z,
                                     U u, Zu zu) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int j = jb * kMmaTile + g + 8 * half;
      if (kDeg == 2 && j < i) continue;
      const int64_t r = public_row(i, j);
      const float w = phi_weight(i, j);
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        const int col = col0 + nt * 8 + 2 * tq;
        gS[r * kE + col] = w * u(nt, 2 * half);
        gS[r * kE + col + 1] = w * u(nt, 2 * half + 1);
      }
      if (with_z) gZ[r] = w * zu(half);
    }
  }
};

}  // namespace powerret::cuda
