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
// Grid (b h ceil(P / 128)). A warp owns kMt m-tiles (16 rows (i, 16 jb .. 16 jb + 15) each; kMt = 2 for
// e <= 64, 1 for e = 128, so 128 / (16 kMt) warps) and keeps u for them in mma accumulators:
// rAcc[mt][nt] (16 x 8, fp32) for nt < e / 8, and rAcc[mt][e / 8] whose column 0 is z. The m-tiles of a
// warp share every B fragment (V). Tokens stream through shared memory 64 at a time in a
// ring of kStages buffers (cp.async), one block barrier per 64 tokens. Per 16-token k-step: A (16 rows x
// 16 tokens) = ldmatrix.trans of sK[tok][16 jb ..] times the lane's token pairs gamma_tok k_tok[i] (one
// packed multiply per register; the lane forms the pairs itself, in T: gamma is kept as T pairs, so a
// pair is one more packed multiply, gamma rounded to T first); B = sV (ldmatrix.trans) for e / 8 n-tiles
// and a column of ones for z. mma.m16n8k16, fp32 accumulate.
// The gates: the last warp scans chunk n + 1's gates (gamma, decay; double-buffered in shared memory) while the
// block works on chunk n, from log gates it loaded into registers one chunk earlier.
// fp16: the entering state is stored as W * 2^-s with s per (chunk, 128-row tile) so that |W| 2^-s < 2^15
// (fp16 cannot hold sums over many tokens); chunk_output_mma undoes it. bf16 stores W as is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/chunk_state/chunk_state_mma.hpp"
#include "cuda/chunk_state/chunk_state_wgmma.cuh"
#include "cuda/common/check.hpp"
#include "cuda/common/device_info.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/mma.cuh"
#include "cuda/common/overlap.cuh"
#include "cuda/common/padded_rows.cuh"

namespace powerret::cuda {

inline constexpr int kStateMmaStages = 3;   // shared-memory ring of token tiles

// m-tiles per warp: two share each V fragment; e = 128 keeps one (68 accumulators per m-tile).
template <int kE>
inline constexpr int kStateMmaTilesPerWarp = kE == 128 ? 1 : 2;
// Warps splitting the value columns of the same rows (e = 64: two halves of 32), so that a block has
// eight warps to hide latency with; each forms its own A fragments.
template <int kE>
inline constexpr int kStateMmaColSplit = kE == 64 ? 2 : 1;
template <int kE>
inline constexpr int kStateMmaRowWarps = kMmaScaleRows / (kMmaTile * kStateMmaTilesPerWarp<kE>);
template <int kE>
inline constexpr int kStateMmaWarps = kStateMmaRowWarps<kE> * kStateMmaColSplit<kE>;

template <typename T, int kD, int kE>
struct StateMmaShared {
  static constexpr int kLdK = kD + 8;  // 16-byte row shift: conflict-free ldmatrix
  static constexpr int kLdV = kE + 8;
  T k[kStateMmaStages][kStateMmaTokens][kLdK];  // [stage][tok][kk]
  T v[kStateMmaStages][kStateMmaTokens][kLdV];  // [stage][tok][col]
  uint32_t gamma2[2][kMaxChunk / 2];            // [chunk & 1][m] decay(j -> L) of j = 2 m, 2 m + 1, as T pairs
  float decay[2];                               // [chunk & 1] decay(enter -> L)
  uint32_t warp_max[kStateMmaWarps<kE>];  // fp16: the warps' max |W| bits (entering_scale_shift)
};

// deg 1, d = 128: one block per SM (its 128-register cap spilled 8 bytes; the grid is one block per head)
template <typename T, int kD, int kE, int kDeg>
__global__ void __launch_bounds__(kStateMmaWarps<kE> * kWarpSize, kE == 128 || (kDeg == 1 && kD == 128) ? 1 : 2)
    chunk_state_mma_kernel(detail::ForwardProblem problem, MmaWorkspace workspace) {
  using Rows = PaddedRows<kD, kDeg>;
  using Shared = StateMmaShared<T, kD, kE>;
  constexpr int kMt = kStateMmaTilesPerWarp<kE>;
  constexpr int kRowWarps = kStateMmaRowWarps<kE>;
  constexpr int kWarps = kStateMmaWarps<kE>;
  constexpr int kThreads = kWarps * kWarpSize;
  constexpr int kNt = kE / 8 / kStateMmaColSplit<kE>;  // this warp's n-tiles of 8 value columns
  constexpr int kTt = kStateMmaTokens;                  // tokens per tile (the GPU's chunks are multiples)
  constexpr int kCtas = Rows::kRowTiles;  // blocks per head (kRowWarps kMt m-tiles = 128 rows each)
  constexpr int kScaleTiles = Rows::kRowTiles;
  constexpr bool kScaled = std::is_same_v<T, __half>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Shared& sm = *reinterpret_cast<Shared*>(smem_raw);
  allow_dependents();  // chunk_output_mma may start: it waits on workspace.ready per chunk

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, tq = lane % 4;  // fragment row group, thread in group
  const int64_t bh = blockIdx.x / kCtas;
  const int cta = blockIdx.x % kCtas;
  const int64_t h = problem.h, t = problem.t, n_chunks = problem.n_chunks;
  const int64_t b = bh / h, hk = bh % h;
  const int c = problem.chunk;
  const int64_t n_tiles = (t + kTt - 1) / kTt;

  // This warp's m-tiles (i, jb): rows (i, 16 jb + g) and (i, 16 jb + g + 8) of the fragments; its
  // value columns col0 .. col0 + 8 kNt - 1; the warps of column half 0 also accumulate z.
  const int row_warp = warp % kRowWarps, col_half = warp / kRowWarps, col0 = col_half * kNt * 8;
  // z of m-tile mt: by the column half mt % 2 (one of each pair of warps), or by the only half
  auto has_z = [&](int mt) { return kStateMmaColSplit<kE> == 1 || col_half == mt % 2; };
  bool active[kMt];
  int i_row[kMt], jb[kMt];
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt) {
    const int tile = (cta * kRowWarps + row_warp) * kMt + mt;
    active[mt] = tile < Rows::kTiles;
    Rows::decode(active[mt] ? tile : 0, i_row[mt], jb[mt]);
  }
  const bool any_active = active[0];  // tiles are handed out in order: m-tile 0 is active if any is
  auto prow = [&](int mt) {
    return static_cast<int64_t>((cta * kRowWarps + row_warp) * kMt + mt) * kMmaTile + g;
  };

  const T* mK = static_cast<const T*>(problem.k);  // [b, t, h, d]
  const T* mV = static_cast<const T*>(problem.v);  // [b, t, h, e]
  const float* mLg = problem.log_g != nullptr ? problem.log_g + b * t * h + hk : nullptr;  // token m at m h

  // ---- u from the initial state (S0 / w, public rows) or 0 ---------------------------------------------
  float rAcc[kMt][kNt + 1][4];
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
    for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
      for (int m = 0; m < 4; ++m) rAcc[mt][nt][m] = 0.f;
  if (problem.s0 != nullptr) {
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
      if (!active[mt]) continue;
      const int j_lo = jb[mt] * kMmaTile + g, j_hi = j_lo + 8;
      const int64_t r_lo = Rows::public_row(i_row[mt], j_lo), r_hi = Rows::public_row(i_row[mt], j_hi);
      const float inv_lo = 1.f / Rows::phi_weight(i_row[mt], j_lo), inv_hi = 1.f / Rows::phi_weight(i_row[mt], j_hi);
      const float* gS0 = problem.s0 + bh * problem.D * kE;
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        const int col = col0 + nt * 8 + 2 * tq;
        rAcc[mt][nt][0] = gS0[r_lo * kE + col] * inv_lo;
        rAcc[mt][nt][1] = gS0[r_lo * kE + col + 1] * inv_lo;
        rAcc[mt][nt][2] = gS0[r_hi * kE + col] * inv_hi;
        rAcc[mt][nt][3] = gS0[r_hi * kE + col + 1] * inv_hi;
      }
      if (has_z(mt) && tq == 0) {
        rAcc[mt][kNt][0] = problem.z0[bh * problem.D + r_lo] * inv_lo;
        rAcc[mt][kNt][2] = problem.z0[bh * problem.D + r_hi] * inv_hi;
      }
    }
  }

  // ---- staging: tile q (tokens q kTt .. q kTt + kTt - 1) of k and v into stage `st`, zeros past t ------
  // A thread copies one fixed 16-byte piece of rows row0, row0 + kStride, ... (k and v separately).
  constexpr int kKPieces = kD / 8, kVPieces = kE / 8;
  static_assert(kThreads % kKPieces == 0 && kThreads % kVPieces == 0, "whole rows per pass");
  static_assert(kTt % (kThreads / kKPieces) == 0 && kTt % (kThreads / kVPieces) == 0, "whole passes per tile");
  constexpr int kKStride = kThreads / kKPieces, kVStride = kThreads / kVPieces;
  const int k_row0 = threadIdx.x / kKPieces, k_piece = threadIdx.x % kKPieces;
  const int v_row0 = threadIdx.x / kVPieces, v_piece = threadIdx.x % kVPieces;
  const int64_t tok_stride_k = h * kD, tok_stride_v = h * kE;
  const T* gK0 = mK + (b * t * h + hk) * kD + k_piece * 8;  // token 0 of this (b, hk), this thread's piece
  const T* gV0 = mV + (b * t * h + hk) * kE + v_piece * 8;
  auto load_tile = [&](int64_t q, int st) {
    const int64_t tok0 = q * kTt;
#pragma unroll
    for (int pass = 0; pass < kTt / kKStride; ++pass) {
      const int row = k_row0 + pass * kKStride;
      const bool valid = tok0 + row < t;
      cp_async_16(&sm.k[st][row][k_piece * 8], gK0 + (valid ? (tok0 + row) * tok_stride_k : 0), valid);
    }
#pragma unroll
    for (int pass = 0; pass < kTt / kVStride; ++pass) {
      const int row = v_row0 + pass * kVStride;
      const bool valid = tok0 + row < t;
      cp_async_16(&sm.v[st][row][v_piece * 8], gV0 + (valid ? (tok0 + row) * tok_stride_v : 0), valid);
    }
  };

  // ---- gates of chunk n (the last warp, from log gates loaded earlier into lg): gamma and decay into slot n & 1 -
  float lg[kGateRegs];
  auto load_gates = [&](int64_t n) { load_state_gates(mLg, h, t, c, n, lg); };
  auto scan_into = [&](int64_t n) {
    scan_state_gates<T>(lg, chunk_len(n, c, t), c, sm.gamma2[n & 1], &sm.decay[n & 1]);
  };

  // ---- S_enter[n] = pad_weight * u (x 2^-s for fp16) into the workspace (every thread calls it) ---------
  auto write_entering = [&](int64_t n) {
    const int64_t slot = bh * n_chunks + n;
    int shift = 0;
    if constexpr (kScaled) {
      float m = 0.f;  // max |W| over the block's rows (NaN / Inf: no scaling, they propagate)
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
        if (!active[mt]) continue;
        const float pw = Rows::pad_weight(i_row[mt], jb[mt]);
#pragma unroll
        for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
          for (int q = 0; q < 4; ++q) m = fmaxf(m, fabsf(rAcc[mt][nt][q]) * pw);
      }
      shift = entering_scale_shift<kWarps>(m, sm.warp_max, warp, [] { __syncthreads(); });
      if (threadIdx.x == 0) workspace.scales[slot * kScaleTiles + cta] = shift;
    }
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
      if (!active[mt]) continue;
      const float pw = Rows::pad_weight(i_row[mt], jb[mt]);
      const float f = kScaled ? entering_factor(pw, shift) : pw;
      const int row = static_cast<int>(prow(mt));  // and row + 8
      T* gW = static_cast<T*>(workspace.states) + slot * Rows::kRows * kEnteringCols<kE>;  // entering_offset order
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        const int col = col0 + nt * 8 + 2 * tq;
        *reinterpret_cast<uint32_t*>(gW + entering_offset<kE>(row, col)) = pack2<T>(f * rAcc[mt][nt][0], f * rAcc[mt][nt][1]);
        *reinterpret_cast<uint32_t*>(gW + entering_offset<kE>(row + 8, col)) =
            pack2<T>(f * rAcc[mt][nt][2], f * rAcc[mt][nt][3]);
      }
      if (has_z(mt) && tq == 0) {  // z of rows g and g + 8 in column e: a core-matrix row (z, 0, ..., 0) each
        store_entering_z<T, kE>(gW, row, f * rAcc[mt][kNt][0]);
        store_entering_z<T, kE>(gW, row + 8, f * rAcc[mt][kNt][2]);
      }
    }
  };

  // ---- prologue: the first kStages - 1 tiles in flight; chunk 0's gates scanned, chunk 1's loaded -------
#pragma unroll
  for (int st = 0; st < kStateMmaStages - 1; ++st) {
    if (st < n_tiles) load_tile(st, st);
    cp_async_commit();
  }
  if (warp == kWarps - 1) {
    load_gates(0);
    scan_into(0);
    load_gates(1);
  }

  const uint32_t ones = g == 0 ? pack2<T>(1.f, 1.f) : 0u;  // B of the z column: column 0 is 1
  // tile q: stage st, chunk n, chunk position pos0 of its first token (counters, no divisions)
  int st = 0, st_load = kStateMmaStages - 1, pos0 = 0;
  int64_t n = 0, written = -1;  // written: the chunk whose entering state the previous tile wrote
  for (int64_t q = 0; q < n_tiles; ++q) {
    cp_async_wait<kStateMmaStages - 2>();
    __syncthreads();  // tile q, the gates of its chunk visible; every warp done with tile q - 1's stage
    if (written >= 0 && threadIdx.x == 0) signal_ready(workspace.ready + bh * n_chunks + written);
    written = -1;
    if (q + kStateMmaStages - 1 < n_tiles) load_tile(q + kStateMmaStages - 1, st_load);
    cp_async_commit();

    if (pos0 == 0) {  // ---- chunk n starts: S_enter[n], decay; the last warp scans chunk n + 1's gates --------
      if (n > 0 || problem.s0 != nullptr) {
        write_entering(n);
        written = n;
      }
      const float decay = sm.decay[n & 1];
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
        for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
          for (int m = 0; m < 4; ++m) rAcc[mt][nt][m] *= decay;
      if (warp == kWarps - 1 && n + 1 < n_chunks) {  // slot (n + 1) & 1 was last read in chunk n - 1
        scan_into(n + 1);
        load_gates(n + 2);
      }
    }

    if (any_active) {
      const uint32_t* gamma2 = sm.gamma2[n & 1] + pos0 / 2;
#pragma unroll
      for (int k0 = 0; k0 < kTt; k0 += kMmaTile) {
        // the lane's token pairs (k0 + 2 tq, + 1) and (k0 + 8 + 2 tq, + 1): gamma (T pairs), and k[i] at deg 2
        const uint32_t gm_lo = gamma2[(k0 + 2 * tq) / 2];
        const uint32_t gm_hi = gamma2[(k0 + 8 + 2 * tq) / 2];
        uint32_t a[kMt][4];
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt) {
          // A[r][tok] = k_tok[16 jb + r] * gamma_tok k_tok[i]: rows = dims (ldmatrix.trans of sK), cols = tokens
          Rows::a_fragment(a[mt], sm.k[st], k0, i_row[mt], jb[mt], lane, gm_lo, gm_hi);
        }
#pragma unroll
        for (int np = 0; np < kNt / 2; ++np) {
          uint32_t bv[4];  // n-tiles 2 np, 2 np + 1 of V_c (k = tokens, n = value columns)
          ldmatrix_x4_trans(bv, &sm.v[st][k0 + (lane & 7) + (((lane >> 3) & 1) << 3)][col0 + np * 16 + ((lane >> 4) << 3)]);
#pragma unroll
          for (int mt = 0; mt < kMt; ++mt) {
            if (!active[mt]) continue;
            mma_16816<T>(rAcc[mt][2 * np], a[mt], bv[0], bv[1]);
            mma_16816<T>(rAcc[mt][2 * np + 1], a[mt], bv[2], bv[3]);
          }
        }
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt)
          if (has_z(mt) && active[mt]) mma_16816<T>(rAcc[mt][kNt], a[mt], ones, ones);
      }
    }
    st = st + 1 == kStateMmaStages ? 0 : st + 1;
    st_load = st_load + 1 == kStateMmaStages ? 0 : st_load + 1;
    pos0 += kTt;
    if (pos0 == c) {
      pos0 = 0;
      ++n;
    }
  }
  cp_async_wait<0>();
  if (written >= 0) {  // the last tile started a chunk
    __syncthreads();
    if (threadIdx.x == 0) signal_ready(workspace.ready + bh * n_chunks + written);
  }

  // ---- the final state S = w u, z = w z_u (fp32, public rows i <= j) -----------------------------------
  if (problem.s_out != nullptr) {
    float* gS = problem.s_out + bh * problem.D * kE;
    float* gZ = problem.z_out + bh * problem.D;
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
      if (!active[mt]) continue;
      Rows::template write_final<kE, kNt>(
          gS, gZ, i_row[mt], jb[mt], g, tq, col0, has_z(mt) && tq == 0,
          [&](int nt, int q) { return rAcc[mt][nt][q]; }, [&](int half) { return rAcc[mt][kNt][2 * half]; });
    }
  }
}

template <typename T, int kD, int kE, int kDeg>
void launch_chunk_state_mma(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                            cudaStream_t stream) {
  if (use_wgmma(problem.device)) {  // sm_90a: the same recurrence on warpgroup MMAs
    launch_chunk_state_wgmma<T, kD, kE, kDeg>(problem, workspace, stream);
    return;
  }
  using Rows = PaddedRows<kD, kDeg>;
  constexpr int kRowsPerCta = kStateMmaRowWarps<kE> * kStateMmaTilesPerWarp<kE> * kMmaTile;
  static_assert(kRowsPerCta == kMmaScaleRows, "one fp16 scale per block and chunk");
  constexpr int kCtas = Rows::kRowTiles;
  constexpr int kSmem = static_cast<int>(sizeof(StateMmaShared<T, kD, kE>));
  const auto kernel = chunk_state_mma_kernel<T, kD, kE, kDeg>;
  static SmemOptIn smem_opt_in;  // one per instantiation of this launcher, i.e. per kernel
  smem_opt_in.ensure(kernel, kSmem, problem.device, "chunk_state_mma");
  const dim3 grid(grid_x(problem.b * problem.h * kCtas, "chunk_state_mma"));
  kernel<<<grid, kStateMmaWarps<kE> * kWarpSize, kSmem, stream>>>(problem, workspace);
  POWERRET_CUDA_CHECK_LAUNCH("chunk_state_mma");
}

}  // namespace powerret::cuda
