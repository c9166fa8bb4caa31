// chunk_state_mma (= chunk_state + state_passing fused, on tensor cores): per (b, kv head) and a tile of
// 128 padded state rows (cuda/common/padded_rows.cuh), one block walks the chunks in order:
//   write S_enter[n] (the state entering chunk n, 16-bit, padded rows, x pad_weight) and z_enter[n]
//   u = decay_chunk[n] * u + X_n^T V_n,   z_u = decay_chunk[n] * z_u + X_n^T 1        (fp32, on chip)
//   X_n[j, (i, jb, r)] = gamma_j * k_j[i] * k_j[16 jb + r]   (deg 1: gamma_j * k_j[16 jb + r])
//   gamma_j = decay(j -> L), decay_chunk = decay(enter -> L) of docs/DESIGN.md (L: the chunk's last token)
//   torch: u = decay * u + torch.einsum('j,ji,jr,je->ire', gamma, K_c, K_c, V_c)  (padded rows of i, r)
// u starts from the initial state (public layout, S0 / w) or 0; the final state S = w * u (fp32,
// public layout) is written when requested. Shapes: K_c [c, d], V_c [c, e], u [128 rows, e].
//
// Grid (b h ceil(P / 128)), 8 warps; warp w owns m-tile 8 x + w = rows (i, 16 jb .. 16 jb + 15) and
// keeps u for them in mma accumulators: rAcc[nt] (16 x 8, fp32) for nt < e / 8, and rAcc[e / 8] whose
// column 0 is z. Tokens stream through shared memory 64 at a time (min(c, 64); cp.async, double
// buffered). Per 16-token k-step: A (16 rows x 16 tokens) = ldmatrix.trans of sK[tok][16 jb ..] times
// the per-token pair sKg^T[i][tok] = gamma_tok k_tok[i] (one packed multiply per register); B = sV
// (ldmatrix.trans) for e / 8 n-tiles, and a column of ones for z. mma.m16n8k16, fp32 accumulate.
// fp16: the entering state is stored as W * 2^-s with s per (chunk, 128-row tile) so that |W| 2^-s < 2^15
// (fp16 cannot hold sums over many tokens); chunk_output_mma undoes it. bf16 stores W as is.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/chunk_state/chunk_state_mma.hpp"
#include "cuda/common/check.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/mma.cuh"
#include "cuda/common/padded_rows.cuh"

namespace powerret::cuda {

inline constexpr int kStateMmaWarps = 8;
inline constexpr int kStateMmaThreads = kStateMmaWarps * kWarpSize;
inline constexpr int kStateMmaTokens = 64;  // tokens staged per tile (min(c, 64))
static_assert(kStateMmaWarps * kMmaTile == kMmaScaleRows, "one fp16 scale per block and chunk");

template <typename T, int kD, int kE, int kDeg>
struct StateMmaShared {
  static constexpr int kLdK = kD + 8;                   // 16-byte row shift: conflict-free ldmatrix
  static constexpr int kLdV = kE + 8;
  static constexpr int kLdKg = kStateMmaTokens + 2;     // odd word stride: conflict-free transposed writes
  static constexpr int kKgRows = kDeg == 2 ? kD : 1;
  T k[2][kStateMmaTokens][kLdK];                        // [buf][tok][kk]
  T v[2][kStateMmaTokens][kLdV];                        // [buf][tok][col]
  T kg[kKgRows][kLdKg];                                 // [i][tok] gamma_tok k_tok[i] (deg 1: gamma_tok)
  float gamma[kMaxChunk];                               // [j] decay(j -> L) of the current chunk
  float g[kMaxChunk];
  int r[kMaxChunk];
  float warp_max[kStateMmaWarps];
};

// Blocks per SM the register budget is cut for: two (<= 128 registers) unless e = 128, whose 68
// accumulators per thread spill under that cap at deg 2.
template <int kE>
inline constexpr int kStateMmaMinBlocks = kE == 128 ? 1 : 2;

template <typename T, int kD, int kE, int kDeg>
__global__ void __launch_bounds__(kStateMmaThreads, kStateMmaMinBlocks<kE>)
    chunk_state_mma_kernel(detail::ForwardProblem problem, MmaWorkspace workspace) {
  using Rows = PaddedRows<kD, kDeg>;
  using Shared = StateMmaShared<T, kD, kE, kDeg>;
  constexpr int kNt = kE / kWarpSize * 4;  // n-tiles of 8 value columns (e / 8)
  constexpr int kCtas = (Rows::kTiles + kStateMmaWarps - 1) / kStateMmaWarps;
  constexpr int kScaleTiles = (Rows::kRows + kMmaScaleRows - 1) / kMmaScaleRows;
  constexpr bool kScaled = std::is_same_v<T, __half>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Shared& sm = *reinterpret_cast<Shared*>(smem_raw);

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, tq = lane % 4;  // fragment row group, thread in group
  const int64_t bh = blockIdx.x / kCtas;
  const int cta = blockIdx.x % kCtas;
  const int64_t h = problem.h, t = problem.t, n_chunks = problem.n_chunks;
  const int64_t b = bh / h, hk = bh % h;
  const int c = problem.chunk;
  const int tt = min(c, kStateMmaTokens);  // tokens per tile; divides c
  const int tiles_per_chunk = c / tt;
  const int64_t n_tiles = (t + tt - 1) / tt;

  // This warp's m-tile (i, jb): rows (i, 16 jb + g) and (i, 16 jb + g + 8) of the fragments.
  const int tile = cta * kStateMmaWarps + warp;
  const bool active = tile < Rows::kTiles;
  int i_row = 0, jb = 0;
  Rows::decode(active ? tile : 0, i_row, jb);
  const int j_lo = jb * kMmaTile + g, j_hi = j_lo + 8;
  const int64_t prow = static_cast<int64_t>(tile) * kMmaTile + g;  // padded row of c[0], c[1]

  const T* mK = static_cast<const T*>(problem.k);  // [b, t, h, d]
  const T* mV = static_cast<const T*>(problem.v);  // [b, t, h, e]
  const float* mLg = problem.log_g != nullptr ? problem.log_g + b * t * h + hk : nullptr;  // token m at m h

  // ---- u from the initial state (S0 / w, public rows) or 0 ---------------------------------------------
  float rAcc[kNt + 1][4];
#pragma unroll
  for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
    for (int m = 0; m < 4; ++m) rAcc[nt][m] = 0.f;
  if (problem.s0 != nullptr && active) {
    const int64_t r_lo = Rows::public_row(i_row, j_lo), r_hi = Rows::public_row(i_row, j_hi);
    const float inv_lo = 1.f / Rows::phi_weight(i_row, j_lo), inv_hi = 1.f / Rows::phi_weight(i_row, j_hi);
    const float* gS0 = problem.s0 + bh * problem.D * kE;
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) {
      const int col = nt * 8 + 2 * tq;
      rAcc[nt][0] = gS0[r_lo * kE + col] * inv_lo;
      rAcc[nt][1] = gS0[r_lo * kE + col + 1] * inv_lo;
      rAcc[nt][2] = gS0[r_hi * kE + col] * inv_hi;
      rAcc[nt][3] = gS0[r_hi * kE + col + 1] * inv_hi;
    }
    if (tq == 0) {
      rAcc[kNt][0] = problem.z0[bh * problem.D + r_lo] * inv_lo;
      rAcc[kNt][2] = problem.z0[bh * problem.D + r_hi] * inv_hi;
    }
  }

  // ---- staging: tile q (tokens q tt .. q tt + tt - 1) of k and v into buffer `buf`, zeros past t -------
  auto load_tile = [&](int64_t q, int buf) {
    constexpr int kKChunks = kD / 8, kVChunks = kE / 8;  // 16-byte pieces per token
    for (int idx = threadIdx.x; idx < tt * (kKChunks + kVChunks); idx += kStateMmaThreads) {
      const int row = idx / (kKChunks + kVChunks), piece = idx % (kKChunks + kVChunks);
      const int64_t tok = q * tt + row;
      const bool valid = tok < t;
      const int64_t src_tok = valid ? (b * t + tok) * h + hk : 0;
      if (piece < kKChunks)
        cp_async_16(&sm.k[buf][row][piece * 8], mK + src_tok * kD + piece * 8, valid);
      else
        cp_async_16(&sm.v[buf][row][(piece - kKChunks) * 8], mV + src_tok * kE + (piece - kKChunks) * 8, valid);
    }
  };

  // ---- S_enter[n] = pad_weight * u (x 2^-s for fp16) into the workspace --------------------------------
  auto write_entering = [&](int64_t n) {
    const float pw = Rows::pad_weight(i_row, jb);
    const int64_t slot = bh * n_chunks + n;
    int shift = 0;
    if constexpr (kScaled) {
      float m = 0.f;  // max |W| over the block's rows (NaN / Inf: no scaling, they propagate)
      if (active) {
#pragma unroll
        for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
          for (int q = 0; q < 4; ++q) m = fmaxf(m, fabsf(rAcc[nt][q]));
      }
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
      if (lane == 0) sm.warp_max[warp] = m * pw;
      __syncthreads();
      float block_max = 0.f;
      bool finite = true;
#pragma unroll
      for (int w = 0; w < kStateMmaWarps; ++w) {
        block_max = fmaxf(block_max, sm.warp_max[w]);
        finite &= isfinite(sm.warp_max[w]);
      }
      shift = finite && block_max > 0.f ? ilogbf(block_max) - 14 : 0;  // |W| 2^-shift < 2^15
      if (threadIdx.x == 0) workspace.scales[slot * kScaleTiles + cta] = shift;
    }
    if (!active) return;
    const float f = kScaled ? ldexpf(pw, -shift) : pw;
    T* gW = static_cast<T*>(workspace.states) + (slot * Rows::kRows + prow) * kE;
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) {
      const int col = nt * 8 + 2 * tq;
      *reinterpret_cast<uint32_t*>(gW + col) = pack2<T>(f * rAcc[nt][0], f * rAcc[nt][1]);
      *reinterpret_cast<uint32_t*>(gW + 8 * kE + col) = pack2<T>(f * rAcc[nt][2], f * rAcc[nt][3]);
    }
    if (tq == 0) {
      T* gZ = static_cast<T*>(workspace.zs) + slot * Rows::kRows + prow;
      gZ[0] = from_float<T>(f * rAcc[kNt][0]);
      gZ[8] = from_float<T>(f * rAcc[kNt][2]);
    }
  };

  const uint32_t ones = g == 0 ? pack2<T>(1.f, 1.f) : 0u;  // B of the z column: column 0 is 1
  load_tile(0, 0);
  cp_async_commit();
  for (int64_t q = 0; q < n_tiles; ++q) {
    const int buf = static_cast<int>(q & 1);
    if (q + 1 < n_tiles) load_tile(q + 1, buf ^ 1);
    cp_async_commit();
    const int64_t n = q / tiles_per_chunk;
    const int pos0 = static_cast<int>(q % tiles_per_chunk) * tt;  // chunk position of the tile's first token

    if (pos0 == 0) {  // ---- chunk n starts: gates, S_enter[n], decay ----------------------------------
      const int len = static_cast<int>(std::min<int64_t>(c, t - n * c));
      if (warp == 0) scan_chunk_gates(mLg != nullptr ? mLg + n * c * h : nullptr, h, len, c, sm.g, sm.r);
      __syncthreads();
      const float g_last = sm.g[len - 1];
      const int r_last = sm.r[len - 1];
      for (int j = threadIdx.x; j < c; j += kStateMmaThreads)
        sm.gamma[j] = j < len && r_last <= j ? expf(g_last - sm.g[j]) : 0.f;
      if (n > 0 || problem.s0 != nullptr) write_entering(n);
      const float decay = r_last == -1 ? expf(g_last) : 0.f;  // multiplied, as in the recurrence
#pragma unroll
      for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
        for (int m = 0; m < 4; ++m) rAcc[nt][m] *= decay;
    }
    cp_async_wait<1>();
    __syncthreads();  // tile q and sm.gamma visible to every warp

    // sKg^T[i][tok] = gamma_tok k_tok[i] (deg 1: gamma_tok), token pairs per thread
    for (int idx = threadIdx.x; idx < Shared::kKgRows * (tt / 2); idx += kStateMmaThreads) {
      const int i = idx % Shared::kKgRows, jj = 2 * (idx / Shared::kKgRows);
      const float g0 = sm.gamma[pos0 + jj], g1 = sm.gamma[pos0 + jj + 1];
      const float x0 = kDeg == 2 ? to_float(sm.k[buf][jj][i]) : 1.f;
      const float x1 = kDeg == 2 ? to_float(sm.k[buf][jj + 1][i]) : 1.f;
      *reinterpret_cast<uint32_t*>(&sm.kg[i][jj]) = pack2<T>(g0 * x0, g1 * x1);
    }
    __syncthreads();

    if (active) {
      const int kg_row = kDeg == 2 ? i_row : 0;
      for (int k0 = 0; k0 < tt; k0 += kMmaTile) {
        // A[r][tok] = k_tok[16 jb + r] * sKg^T[i][tok]: rows = dims (ldmatrix.trans of sK), cols = tokens
        uint32_t a[4];
        ldmatrix_x4_trans(a, &sm.k[buf][k0 + (lane & 7) + ((lane >> 4) << 3)][jb * kMmaTile + (((lane >> 3) & 1) << 3)]);
        const uint32_t s_lo = *reinterpret_cast<const uint32_t*>(&sm.kg[kg_row][k0 + 2 * tq]);
        const uint32_t s_hi = *reinterpret_cast<const uint32_t*>(&sm.kg[kg_row][k0 + 8 + 2 * tq]);
        a[0] = mul2<T>(a[0], s_lo);
        a[1] = mul2<T>(a[1], s_lo);
        a[2] = mul2<T>(a[2], s_hi);
        a[3] = mul2<T>(a[3], s_hi);
#pragma unroll
        for (int np = 0; np < kNt / 2; ++np) {
          uint32_t bv[4];  // n-tiles 2 np, 2 np + 1 of V_c (k = tokens, n = value columns)
          ldmatrix_x4_trans(bv, &sm.v[buf][k0 + (lane & 7) + (((lane >> 3) & 1) << 3)][np * 16 + ((lane >> 4) << 3)]);
          mma_16816<T>(rAcc[2 * np], a, bv[0], bv[1]);
          mma_16816<T>(rAcc[2 * np + 1], a, bv[2], bv[3]);
        }
        mma_16816<T>(rAcc[kNt], a, ones, ones);
      }
    }
    __syncthreads();  // every warp is done with buffer `buf` and sKg before they are refilled
  }
  cp_async_wait<0>();

  // ---- the final state S = w u, z = w z_u (fp32, public rows i <= j) -----------------------------------
  if (problem.s_out != nullptr && active) {
    float* gS = problem.s_out + bh * problem.D * kE;
    float* gZ = problem.z_out + bh * problem.D;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int j = half == 0 ? j_lo : j_hi;
      if (kDeg == 2 && j < i_row) continue;  // the mirrored row (j, i) writes it
      const int64_t r = Rows::public_row(i_row, j);
      const float w = Rows::phi_weight(i_row, j);
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        const int col = nt * 8 + 2 * tq;
        gS[r * kE + col] = w * rAcc[nt][2 * half];
        gS[r * kE + col + 1] = w * rAcc[nt][2 * half + 1];
      }
      if (tq == 0) gZ[r] = w * rAcc[kNt][2 * half];
    }
  }
}

template <typename T, int kD, int kE, int kDeg>
void launch_chunk_state_mma(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                            cudaStream_t stream) {
  using Rows = PaddedRows<kD, kDeg>;
  constexpr int kCtas = (Rows::kTiles + kStateMmaWarps - 1) / kStateMmaWarps;
  constexpr int kSmem = static_cast<int>(sizeof(StateMmaShared<T, kD, kE, kDeg>));
  const auto kernel = chunk_state_mma_kernel<T, kD, kE, kDeg>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem), "chunk_state_mma");
  const dim3 grid(grid_x(problem.b * problem.h * kCtas, "chunk_state_mma"));
  kernel<<<grid, kStateMmaThreads, kSmem, stream>>>(problem, workspace);
  POWERRET_CUDA_CHECK_LAUNCH("chunk_state_mma");
}

}  // namespace powerret::cuda
