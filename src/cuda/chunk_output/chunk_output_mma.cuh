// chunk_output_mma (= chunk_output on tensor cores): per (b, query head, chunk n, 128 query tokens),
// for chunk positions i (kv head hk = iq / (hq / h); docs/DESIGN.md):
//   num_i = scale^p dec0_i * Xq_i^T W_enter  +  sum_{j <= i} (scale q_i . k_j)^p decay(j -> i) v_j   (e)
//   den_i = the same with z_enter and 1 in place of v_j;   y_i = normalize ? (den_i == 0 ? 0 : num_i / den_i) : num_i
//   Xq_i[(i', jb, r)] = q_i[i'] q_i[16 jb + r] (deg 1: q_i[16 jb + r]) over the padded rows of
//   cuda/common/padded_rows.cuh, so Xq_i^T W_enter == phi(q_i)^T S_enter (W carries the pad weights).
//   torch: A = ((scale * Q_c @ K_c.T) ** p * decay).masked_fill(j > i, 0);  num = dec0 * scale^p * Xq @ W + A @ V_c
// W_enter (P, e), z_enter (P): 16-bit, from chunk_state_mma (fp16: per 128-row tile x 2^scale).
//
// Grid (b hq n_chunks ceil(c / 128)), 8 warps; warp w owns query tokens 16 w .. 16 w + 15 of the tile
// (min(c, 128) tokens) and accumulates [num | den] in mma accumulators rAcc[nt] (16 x 8 fp32), nt < e / 8,
// and rAcc[e / 8] whose column 0 is den. Q's fragments for the d / 16 k-blocks stay in registers (rQ).
//   inter: W (with z as its column e) streams through shared memory in stages of whole groups i (at most 128
//          rows; deg 1: the one group), each one bulk copy (the workspace holds the rows as the wgmma B operand,
//          entering_offset), kOutputMmaWStages buffers, completion on an mbarrier; a buffer is refilled by
//          whichever warpgroup finishes with it second. Per stage and warpgroup (64 queries): each warp forms the
//          A fragments (i, jb) of its 16 queries in registers, the Q fragment of k-block jb times the per-token pair
//          q[i] (one packed multiply per register); then per tile one wgmma m64 x (e + 8) x k16 with A from those
//          registers against its 16 rows of (W | z | 0): columns < e are num, column e is den; the stage's MMAs
//          are waited for before the next stage rewrites the registers. fp16: the pair also carries
//          2^(scale_tile - scale_max); 2^scale_max later.
//   after a reset in chunk n - 1: no inter term; chunk n - 1's keys from its last reset on are taken like
//          intra keys (negative positions j - c), with weight decay(enter -> i) decay(j -> end of chunk n - 1)
//          (W of such a state holds a few tokens, and phi(q)^T W cancels: bench/diag/emulate_forward.py).
//   intra: keys in tiles of 64 through shared memory, all of the block's tiles at once, each counted by an
//          mbarrier that every thread's cp.async copies arrive on, so warps never wait for each other (after
//          a reset in chunk n - 1: two buffers and a block barrier per tile); per 32 keys, S = Q K^T (A = rQ, B = sK),
//          P = select(j <= i, (scale S)^p decay(j -> i), 0) in fp32, rounded to T as the A operand of
//          P [V | 1] (B = sV by ldmatrix.trans, and a column of ones for den). The select keeps NaN/Inf
//          of later k out of earlier outputs; later v: the k-step on the diagonal takes non-finite v as 0
//          and sets the outputs at or after their key to NaN; k-steps after the warp's queries are
//          skipped. Tokens past t are zero-filled and never stored.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "cuda/chunk_output/chunk_output_mma.hpp"
#include "cuda/common/async_copy.cuh"
#include "cuda/common/check.hpp"
#include "cuda/common/device_info.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/mma.cuh"
#include "cuda/common/overlap.cuh"
#include "cuda/common/padded_rows.cuh"
#include "cuda/common/wgmma.cuh"

namespace powerret::cuda {

inline constexpr int kOutputMmaWarps = 8;
inline constexpr int kOutputMmaThreads = kOutputMmaWarps * kWarpSize;
inline constexpr int kOutputMmaQueries = kOutputMmaWarps * kMmaTile;  // 128 query tokens per block (min(c, 128))
inline constexpr int kOutputMmaKeys = 64;                             // keys staged at once
inline constexpr int kOutputMmaStageRows = 128;                       // rows of W staged at once (at most)
inline constexpr int kOutputMmaWStages = 3;                           // W stages in shared memory

// Groups of W (values of i; deg 1: the one group) staged together: their rows (<= d each) fill a stage,
// and at deg 2 they share first_block (16 / kStageGroups is whole).
template <int kD, int kDeg>
inline constexpr int kOutputMmaStageGroups = kDeg == 2 ? kOutputMmaStageRows / kD : 1;
// The inter MMAs take A from registers, formed per stage (at most 8 tiles: 32 registers) and waited for at the
// stage's end (one register set; session 5 measured A through shared memory, session 9 this form: faster).

template <typename T, int kD, int kE, int kDeg>
struct OutputMmaShared {
  static constexpr int kLdQ = kD + 8;  // 16-byte row shift: conflict-free ldmatrix
  static constexpr int kLdW = kE + 8;
  static constexpr int kScaleTiles = PaddedRows<kD, kDeg>::kRowTiles;
  static constexpr int kCols = kEnteringCols<kE>;  // W, z, 0 (entering_offset)
  static constexpr int kWBytes = kOutputMmaStageRows * kCols * 2;
  union {
    struct {
      // [buf] the stage's rows (W | z | 0) as wgmma's B: N-major core matrices without swizzle (entering_offset)
      alignas(128) unsigned char w[kOutputMmaWStages][kWBytes];
    } inter;
    struct {
      // [tile][j][kk]: every key tile of a chunk at once (after a reset in the previous chunk: two buffers,
      // the next tile loading during this one)
      T k[kMaxChunk / kOutputMmaKeys][kOutputMmaKeys][kLdQ];
      T v[kMaxChunk / kOutputMmaKeys][kOutputMmaKeys][kLdW];  // [tile][j][col]
    } intra;
  };
  T q[kOutputMmaQueries][kLdQ];  // [i][kk]
  float g[kMaxChunk];
  int r[kMaxChunk];
  float gp[kMaxChunk];  // the previous chunk's G and R (used only when it contains a reset)
  int rp[kMaxChunk];
  float factor[kScaleTiles];  // fp16: 2^(scale_tile - scale_max)
  int scale_max;
  uint64_t full[kOutputMmaWStages];     // stage buffer buf has landed (one phase per use)
  uint64_t keys_full[kMaxChunk / kOutputMmaKeys];  // key tile kt has landed (cp.async arrivals of all threads)
  uint32_t drained[kOutputMmaWStages];  // warpgroups done with buffer buf (2 per use)
};

// f(std::integral_constant<int, v>{}) for the runtime value v < kN: one call, compiled for each value
template <int kN, typename F, int... kV>
__device__ __forceinline__ void with_constant(int v, F& f, std::integer_sequence<int, kV...>) {
  ((v == kV ? (f(std::integral_constant<int, kV>{}), 0) : 0), ...);
}
template <int kN, typename F>
__device__ __forceinline__ void with_constant(int v, F& f) {
  with_constant<kN>(v, f, std::make_integer_sequence<int, kN>{});
}

// exp(x) from ex2.approx (relative error ~2^-22, far below the 16-bit rounding of the P operand it feeds;
// -inf -> 0, NaN -> NaN): two instructions where expf is about ten, which made the intra scores' decay the
// largest instruction count of the block (ncu, session 7).      == torch.exp(x)
__device__ __forceinline__ float exp_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x * 1.4426950408889634f));
  return y;
}

// x ** deg for deg 1, 2
template <int kDeg>
__device__ __forceinline__ float power_of(float x) {
  return kDeg == 1 ? x : x * x;
}

// A register holding the 16-bit value x twice   == torch.tensor([x, x]).to(T)
template <typename T>
__device__ __forceinline__ uint32_t splat2(float x) {
  return pack2<T>(x, x);
}

// Bits 0, 1 = whether the low, high 16-bit value of x is NaN or Inf; those values become 0 in x.
//   == bits = ~torch.isfinite(x); x[bits] = 0
template <typename T>
__device__ __forceinline__ uint32_t take_nonfinite(uint32_t& x) {
  constexpr uint32_t kExp = std::is_same_v<T, __half> ? 0x7C00u : 0x7F80u;  // all-ones exponent
  const uint32_t lo = (x & kExp) == kExp, hi = ((x >> 16) & kExp) == kExp;
  x &= (lo ? 0xFFFF0000u : 0xFFFFFFFFu) & (hi ? 0x0000FFFFu : 0xFFFFFFFFu);
  return lo | (hi << 1);
}

// c (16 x 8 accumulator of one diagonal 16 x 16 step) = NaN at (row r, column col) when column col has
// a non-finite v at a key k <= r; bad: this lane's key bits for column g (B layout).
//   == c[r, col] = nan if any(bad_of_column[col] & ((2 << r) - 1)) else c[r, col]
__device__ __forceinline__ void poison_after(float (&c)[4], uint32_t bad, int lane) {
  bad |= __shfl_xor_sync(0xffffffffu, bad, 1);  // the quad holds keys 2t.., 2t+8.. of column g
  bad |= __shfl_xor_sync(0xffffffffu, bad, 2);
  const int g = lane / 4, tq = lane % 4;
  const uint32_t col0 = __shfl_sync(0xffffffffu, bad, 4 * (2 * tq));  // columns 2t, 2t + 1 of this lane's c
  const uint32_t col1 = __shfl_sync(0xffffffffu, bad, 4 * (2 * tq + 1));
  const uint32_t rows_lo = (2u << g) - 1, rows_hi = (2u << (g + 8)) - 1;  // keys k <= r
  const float nan = __int_as_float(0x7fc00000);
  c[0] = (col0 & rows_lo) != 0 ? nan : c[0];
  c[1] = (col1 & rows_lo) != 0 ? nan : c[1];
  c[2] = (col0 & rows_hi) != 0 ? nan : c[2];
  c[3] = (col1 & rows_hi) != 0 ? nan : c[3];
}

template <typename T, int kD, int kE, int kDeg>
__global__ void __launch_bounds__(kOutputMmaThreads, kD == 128 || kE == 128 ? 1 : 2)
    chunk_output_mma_kernel(detail::ForwardProblem problem, MmaWorkspace workspace) {
  using Rows = PaddedRows<kD, kDeg>;
  using Shared = OutputMmaShared<T, kD, kE, kDeg>;
  constexpr int kNt = kE / 8;           // n-tiles of value columns
  constexpr int kKb = kD / kMmaTile;    // k-blocks of q . k
  constexpr bool kScaled = std::is_same_v<T, __half>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // 1024-byte aligned (the swizzled W stages) by an offset from the __shared__ array (keeps it shared)
  Shared& sm = *reinterpret_cast<Shared*>(smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u));

  // warp through a shuffle: ptxas then knows it is warp-uniform (else it serialises the wgmmas)
  const int warp = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / kWarpSize), 0);
  const int lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, tq = lane % 4;
  const int64_t h = problem.h, hq = problem.hq, t = problem.t, n_chunks = problem.n_chunks;
  const int c = problem.chunk;
  const int nq = min(c, kOutputMmaQueries);  // query tokens per block; divides c
  const int q_tiles = c / nq;
  const int64_t group = hq / h;
  // block = ((n b h + bh) group + iq_local) q_tiles + tile: chunk-major, so blocks start in the order
  // chunk_state_mma finishes entering states; the blocks that read one entering state are neighbours
  // (L2 reuse).
  int64_t block = blockIdx.x;
  const int qt = static_cast<int>(block % q_tiles);
  block /= q_tiles;
  const int64_t iq_local = block % group;
  block /= group;
  const int64_t bh = block % (problem.b * h), n = block / (problem.b * h);
  const int64_t b = bh / h, hk = bh % h, iq = hk * group + iq_local;
  const int64_t t0 = n * c;
  const int len = static_cast<int>(std::min<int64_t>(c, t - t0));
  const int i0 = qt * nq;  // chunk position of the block's first query
  // This grid may run beside chunk_state_mma (programmatic launch). Its last block also waits for
  // that grid to finish, so that when this grid is complete, so is the final state it writes.
  if (blockIdx.x == gridDim.x - 1) wait_primary();
  if (i0 >= len) return;   // the whole block is past t
  const int rows_here = min(nq, len - i0);
  const bool has_rows = warp * kMmaTile < rows_here;  // warp-uniform: this warp owns a valid query

  const T* mQ = static_cast<const T*>(problem.q);  // [b, t, hq, d]
  const T* mK = static_cast<const T*>(problem.k);  // [b, t, h, d]
  const T* mV = static_cast<const T*>(problem.v);  // [b, t, h, e]
  T* mY = static_cast<T*>(problem.y);              // [b, t, hq, e]
  const int64_t slot = bh * n_chunks + n;

  // ---- stage Q (zeros past t), scan the gates, the fp16 tile factors ----------------------------------
  {
    if (threadIdx.x == 0) {
      for (int s = 0; s < kOutputMmaWStages; ++s) {
        mbar_init(&sm.full[s], 1);
        sm.drained[s] = 0;
      }
      for (int kt = 0; kt < kMaxChunk / kOutputMmaKeys; ++kt) mbar_init(&sm.keys_full[kt], kOutputMmaThreads);
      fence_mbarrier_init();
    }
  }
  for (int idx = threadIdx.x; idx < nq * (kD / 8); idx += kOutputMmaThreads) {
    const int row = idx / (kD / 8), piece = idx % (kD / 8);
    const bool valid = row < rows_here;
    const int64_t tok = t0 + i0 + (valid ? row : 0);
    cp_async_16(&sm.q[row][piece * 8], mQ + ((b * t + tok) * hq + iq) * kD + piece * 8, valid);
  }
  cp_async_commit();
  if (warp == 0)
    scan_chunk_gates(problem.log_g != nullptr ? problem.log_g + (b * t + t0) * h + hk : nullptr, h, len, c, sm.g,
                     sm.r);
  const bool may_reset = n > 0 && problem.log_g != nullptr;
  if (warp == 1 && may_reset)  // chunk n - 1 (full length c)
    scan_chunk_gates(problem.log_g + (b * t + t0 - c) * h + hk, h, c, c, sm.gp, sm.rp);
  __syncthreads();
  // A reset in chunk n - 1 leaves S_enter[n] with the tokens from that chunk's last reset on: few, maybe one.
  // phi(q)^T W over such a state cancels (relative error ~ (sum |q_i k_i|)^p / (q . k)^p, unbounded), so
  // those keys join the intra keys in attention form instead, and W is not read.
  const bool prev_reset = may_reset && sm.rp[c - 1] >= 0;
  const bool inter = (n > 0 || problem.s0 != nullptr) && !prev_reset;  // else the entering state is 0 / replaced
  if (inter) {  // every state block of this head has written S_enter[n] (and its fp16 scales)
    if (threadIdx.x == kWarpSize) wait_ready(workspace.ready + slot, Shared::kScaleTiles);
    __syncthreads();
  }
  if constexpr (kScaled) {
    if (inter && warp == 1) {
      const int32_t* gScale = workspace.scales + slot * Shared::kScaleTiles;
      int m = INT_MIN;
      for (int s = lane; s < Shared::kScaleTiles; s += kWarpSize) m = max(m, gScale[s]);
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) m = max(m, __shfl_xor_sync(0xffffffffu, m, offset));
      for (int s = lane; s < Shared::kScaleTiles; s += kWarpSize) sm.factor[s] = ldexpf(1.f, gScale[s] - m);
      if (lane == 0) sm.scale_max = m;
    }
  }

  // Stage s of W (with z): the rows of groups s kStageGroups .. (s + 1) kStageGroups - 1 (contiguous: tiles are
  // ordered by group, and the workspace holds them in the B layout), one bulk copy into buffer
  // s % kOutputMmaWStages. Issued by thread 0 or 128 only (each ran fence_proxy_async_global below).
  constexpr int kStageGroups = kOutputMmaStageGroups<kD, kDeg>;
  constexpr int kStages = (Rows::kGroups + kStageGroups - 1) / kStageGroups;
  auto issue_stage = [&](int stage) {
    const int ig0 = stage * kStageGroups, buf = stage % kOutputMmaWStages;
    const int first_tile = Rows::group_first_tile(ig0);
    const int rows = kStageGroups * Rows::group_tiles(ig0) * kMmaTile;
    const T* gW =
        static_cast<const T*>(workspace.states) + (slot * Rows::kRows + first_tile * kMmaTile) * Shared::kCols;
    const uint32_t w_bytes = static_cast<uint32_t>(rows * Shared::kCols * 2);
    mbar_expect_and_load(&sm.full[buf], w_bytes);
    bulk_load(sm.inter.w[buf], gW, w_bytes, &sm.full[buf]);
  };
  if (inter && threadIdx.x % (4 * kWarpSize) == 0) {
    // The state kernel's W (acquired above, generic proxy) before the bulk copies' reads (async proxy)
    fence_proxy_async_global();
    if (threadIdx.x == 0)
      for (int stage = 0; stage < std::min(kStages, kOutputMmaWStages); ++stage) issue_stage(stage);
  }
  cp_async_wait<0>();
  __syncthreads();  // Q, the gates and the factors are visible

  // A fragment of this warp's 16 queries, k-block kb: rQ holds all of them (inter and intra parts)
  auto load_q = [&](uint32_t(&frag)[4], int kb) {
    ldmatrix_x4(frag, &sm.q[warp * kMmaTile + (lane & 7) + (((lane >> 3) & 1) << 3)][kb * kMmaTile + ((lane >> 4) << 3)]);
  };
  uint32_t rQ[kKb][4];
#pragma unroll
  for (int kb = 0; kb < kKb; ++kb) load_q(rQ[kb], kb);
  const int q_lo = warp * kMmaTile + g, q_hi = q_lo + 8;  // this lane's query rows in the tile
  const int pos_lo = i0 + min(q_lo, rows_here - 1), pos_hi = i0 + min(q_hi, rows_here - 1);  // clamped chunk positions

  float rAcc[kNt + 1][4];
#pragma unroll
  for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
    for (int m = 0; m < 4; ++m) rAcc[nt][m] = 0.f;

  // ---- inter-chunk: Xq^T W_enter and Xq^T z_enter (sm_90a warpgroup MMAs; warpgroup wg: queries 64 wg ..) ---
  // Both warpgroups take part even without valid queries (Q is zero there): each stage buffer is refilled
  // once both are done with it.
  if (inter) {
    // [num | den] as one wgmma accumulator: n-tiles 0 .. e / 8 - 1 and e / 8 (column 0: den)
    float(&acc_all)[Shared::kCols / 2] = *reinterpret_cast<float(*)[Shared::kCols / 2]>(&rAcc[0][0]);
#pragma unroll
    for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
      for (int m = 0; m < 4; ++m) wg::keep(rAcc[nt][m]);
    // q_i[i'] of the lane's two query rows for the stage's groups (deg 2), read one stage ahead: read where
    // they are used, the loads stalled the A formation (~11 % of the p = 2 stall samples, session 7)
    T xq[2][kStageGroups], xq_next[2][kStageGroups];
    auto load_xq = [&](int stage, T(&x)[2][kStageGroups]) {
#pragma unroll
      for (int u = 0; u < kStageGroups; ++u) {
        x[0][u] = sm.q[q_lo][stage * kStageGroups + u];
        x[1][u] = sm.q[q_hi][stage * kStageGroups + u];
      }
    };
    if constexpr (kDeg == 2) load_xq(0, xq);
    // Group u's A tiles of the stage of group ig0 (blocks jb0 .. kKb - 1 into a[jb - jb0]): Q's fragment jb times the
    // q[ig0 + u] pairs of the lane's two rows, one packed multiply per register (wgmma's A from registers: no
    // stmatrix, proxy fence or warpgroup barrier per stage, the largest stall sites of the shared-memory A); fp16
    // folds 2^(scale_tile - scale_max) into the pair; deg 1, bf16: Q's fragment itself.
    auto form_group = [&](auto jb0_c, uint32_t(*a)[4], int ig0, int u) {
      constexpr int kJb0 = decltype(jb0_c)::value;
      float x_lo = 1.f, x_hi = 1.f;  // q_i[i'] of the two rows (deg 1: 1; xq is not loaded)
      if constexpr (kDeg == 2) x_lo = to_float(xq[0][u]), x_hi = to_float(xq[1][u]);
      uint32_t pair_lo, pair_hi;
      if constexpr (kDeg == 2 && !kScaled) {  // bf16: the pair straight from the value's bits
        pair_lo = static_cast<uint32_t>(__bfloat16_as_ushort(xq[0][u])) * 0x10001u;
        pair_hi = static_cast<uint32_t>(__bfloat16_as_ushort(xq[1][u])) * 0x10001u;
      } else {
        pair_lo = splat2<T>(x_lo);
        pair_hi = splat2<T>(x_hi);
      }
#pragma unroll
      for (int jb = kJb0; jb < kKb; ++jb) {
        if constexpr (kScaled) {
          const float f = sm.factor[(Rows::group_first_tile(ig0 + u) + jb - kJb0) * kMmaTile / kMmaScaleRows];
          pair_lo = splat2<T>(x_lo * f);
          pair_hi = splat2<T>(x_hi * f);
        }
        uint32_t(&at)[4] = a[jb - kJb0];
        if constexpr (kDeg == 2 || kScaled) {
          at[0] = mul2<T>(rQ[jb][0], pair_lo);
          at[1] = mul2<T>(rQ[jb][1], pair_hi);
          at[2] = mul2<T>(rQ[jb][2], pair_lo);
          at[3] = mul2<T>(rQ[jb][3], pair_hi);
        } else {  // deg 1, bf16: the pair is (1, 1)
#pragma unroll
          for (int x = 0; x < 4; ++x) at[x] = rQ[jb][x];
        }
#pragma unroll
        for (int x = 0; x < 4; ++x) wg::keep(at[x]);  // formed before the fence
      }
    };
    // the second warpgroup to be done with stage `done`'s buffer refills it with stage done + kOutputMmaWStages
    auto release = [&](int done) {
      if (threadIdx.x % (4 * kWarpSize) == 0) {
        const uint32_t arrivals = shared_fetch_add(&sm.drained[done % kOutputMmaWStages]);
        if ((arrivals & 1u) != 0 && done + kOutputMmaWStages < kStages) issue_stage(done + kOutputMmaWStages);
      }
    };
    constexpr bool kPipelined = kDeg == 2 && kStageGroups >= 2 && kStageGroups % 2 == 0;
    [[maybe_unused]] uint32_t a_even[kKb][4], a_odd[kKb][4];  // kPipelined: the two A register sets
    for (int stage = 0; stage < kStages; ++stage) {
      const int ig0 = stage * kStageGroups, buf = stage % kOutputMmaWStages;
      if constexpr (kDeg == 2) {
        if (stage + 1 < kStages) load_xq(stage + 1, xq_next);
      }
      if constexpr (kPipelined) {
        // Two or more groups per stage (deg 2, d <= 64): the groups' A tiles alternate between two register sets
        // (group u: set u % 2), so group u + 1's A is formed while group u's MMAs run (wait<1> first from the
        // third group on: the set's previous MMAs are done); the stage ends with wait<0> as before. Carrying the
        // overlap across stages (wait<1> at the stage's start) made ptxas serialise every wgmma (C7513: it does
        // not follow the register sets through the stage loop).
        auto step = [&](auto jb0_c) {
          constexpr int kJb0 = decltype(jb0_c)::value;
          constexpr int kTiles = kKb - kJb0;  // tiles per group
          const uint64_t desc_w = wg::mn_interleave_desc(sm.inter.w[buf], 128, 8 * Shared::kCols * 2);
#pragma unroll
          for (int u = 0; u < kStageGroups; ++u) {
            uint32_t(&a)[kKb][4] = u % 2 == 0 ? a_even : a_odd;
            if (u >= 2) wg::wait<1>();  // group u - 2's MMAs, which read this set, are done
            form_group(jb0_c, a, ig0, u);
            if (u == 0) mbar_wait(&sm.full[buf], (stage / kOutputMmaWStages) & 1);  // the stage's W landed
            wg::fence();
#pragma unroll
            for (int tile = 0; tile < kTiles; ++tile)  // the group's 16-row slices of the stage
              wg::mma_rs<T, Shared::kCols, wg::GMMA::Major::MN>(
                  acc_all, a[tile],
                  desc_w + static_cast<uint64_t>((u * kTiles + tile) * (kMmaTile * Shared::kCols * 2 / 16)));
            wg::commit();
          }
          wg::wait<0>();  // the MMAs read the sets: done before the next stage rewrites them
#pragma unroll
          for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
            for (int x = 0; x < 4; ++x) wg::keep(a_even[tile][x]), wg::keep(a_odd[tile][x]);
        };
        with_constant<kKb>(Rows::first_block(ig0), step);  // waits for its MMAs: the W buffer is free
        release(stage);
      } else {
        mbar_wait(&sm.full[buf], (stage / kOutputMmaWStages) & 1);
        // The stage's A tiles in registers, then per tile one wgmma m64 x (e + 8) x k16 against its 16 rows of
        // (W | z | 0). The stage's groups share their first block, dispatched to a compile-time value, so no wgmma
        // sits behind a per-tile branch.
        auto step = [&](auto jb0_c) {
          constexpr int kJb0 = decltype(jb0_c)::value;
          constexpr int kTiles = kKb - kJb0;  // tiles per group
          uint32_t a[kStageGroups * kTiles][4];
#pragma unroll
          for (int u = 0; u < kStageGroups; ++u) form_group(jb0_c, &a[u * kTiles], ig0, u);
          wg::fence();
          // B = the tile's 16 rows of (W | z | 0): core matrices of n blocks 128 bytes apart, 8-row groups 8 kCols 2
          // bytes apart; one wgmma m64 x (e + 8) x k16 per tile gives num (columns < e) and den (column e)
          const uint64_t desc_w = wg::mn_interleave_desc(sm.inter.w[buf], 128, 8 * Shared::kCols * 2);
#pragma unroll
          for (int tile = 0; tile < kStageGroups * kTiles; ++tile)  // tile: the 16-row slice of the stage
            wg::mma_rs<T, Shared::kCols, wg::GMMA::Major::MN>(
                acc_all, a[tile], desc_w + static_cast<uint64_t>(tile * (kMmaTile * Shared::kCols * 2 / 16)));
          wg::commit();
          wg::wait<0>();  // the MMAs read a from registers: done before the next stage rewrites them
#pragma unroll
          for (int tile = 0; tile < kStageGroups * kTiles; ++tile)
#pragma unroll
            for (int x = 0; x < 4; ++x) wg::keep(a[tile][x]);
        };
        with_constant<kKb>(Rows::first_block(ig0), step);  // waits for its MMAs: the W buffer is free
        release(stage);  // the second warpgroup to be done with a buffer refills it
      }
      if constexpr (kDeg == 2) {
#pragma unroll
        for (int u = 0; u < kStageGroups; ++u) xq[0][u] = xq_next[0][u], xq[1][u] = xq_next[1][u];
      }
    }
    wg::wait<0>();  // the accumulators are complete
#pragma unroll
    for (int nt = 0; nt <= kNt; ++nt)
#pragma unroll
      for (int m = 0; m < 4; ++m) wg::keep(rAcc[nt][m]);
    // scale^p dec0_i (x 2^scale_max for fp16); dec0 multiplies (0 after a reset), as in the recurrence
    float base = power_of<kDeg>(problem.scale);
    if constexpr (kScaled) base = ldexpf(base, sm.scale_max);
    const float f_lo = sm.r[pos_lo] == -1 ? base * expf(sm.g[pos_lo]) : 0.f;
    const float f_hi = sm.r[pos_hi] == -1 ? base * expf(sm.g[pos_hi]) : 0.f;
#pragma unroll
    for (int nt = 0; nt <= kNt; ++nt) {
      rAcc[nt][0] *= f_lo;
      rAcc[nt][1] *= f_lo;
      rAcc[nt][2] *= f_hi;
      rAcc[nt][3] *= f_hi;
    }
  }
  __syncthreads();  // the inter buffers are free for the keys (every stage landed: all were waited on)

  // ---- intra-chunk: sum_{j <= i} (scale q_i . k_j)^p decay(j -> i) [v_j | 1] -----------------------------
  // After a reset in chunk n - 1, the keys start at that chunk's last reset, at position key_lo < 0 (key j < 0 is
  // token t0 + j): plus sum_{key_lo <= j < 0} (scale q_i . k_j)^p decay(enter -> i) decay(j -> end of n - 1) [v_j | 1].
  const float g_lo = sm.g[pos_lo], g_hi = sm.g[pos_hi];
  const int r_lo = sm.r[pos_lo], r_hi = sm.r[pos_hi];
  const uint32_t ones = g == 0 ? pack2<T>(1.f, 1.f) : 0u;
  const int last_key = i0 + rows_here - 1;       // the block's last query position
  const int warp_last = i0 + min(warp * kMmaTile + kMmaTile, rows_here) - 1;  // this warp's
  const int warp_first = i0 + warp * kMmaTile;  // chunk position of this warp's first query
  const int key_lo = prev_reset ? sm.rp[c - 1] - c : 0;  // the first key (negative: in chunk n - 1)
  const bool chunk_reset = sm.r[c - 1] != -1;  // a reset anywhere in the chunk (R past len repeats R[len - 1])
  const float gp_last = prev_reset ? sm.gp[c - 1] : 0.f;
  // keys kt0 .. kt0 + 63 into buffer buf (zeros outside [key_lo, len)). Of k, thread x copies the fixed 16-byte
  // piece x % (d / 8) of rows x / (d / 8) + m 256 / (d / 8); of v likewise: no per-copy division, and no k-or-v
  // branch (one per copy diverged inside every warp)
  auto load_rows = [&](auto width_c, const T* gSrc, T* sDst, int pitch, int kt0) {
    constexpr int kWidth = decltype(width_c)::value;  // d (keys) or e (values)
    constexpr int kPieces = kWidth / 8, kRowStep = kOutputMmaThreads / kPieces;
    static_assert(kOutputMmaThreads % kPieces == 0 && kOutputMmaKeys % kRowStep == 0, "whole rows per pass");
    const int piece = static_cast<int>(threadIdx.x) % kPieces, row = static_cast<int>(threadIdx.x) / kPieces;
    const int64_t stride = h * kWidth;  // elements between tokens
    const T* src = gSrc + ((b * t + t0) * h + hk) * kWidth + piece * 8;  // chunk position 0
    T* dst = sDst + row * pitch + piece * 8;
#pragma unroll
    for (int m = 0; m < kOutputMmaKeys / kRowStep; ++m) {
      const int key = kt0 + row + m * kRowStep;  // chunk position (negative: chunk n - 1)
      const bool valid = key >= key_lo && key < len;
      cp_async_16(dst + m * kRowStep * pitch, valid ? src + key * stride : src, valid);
    }
  };
  auto load_keys = [&](int kt0, int buf) {
    load_rows(std::integral_constant<int, kD>{}, mK, &sm.intra.k[buf][0][0], Shared::kLdQ, kt0);
    load_rows(std::integral_constant<int, kE>{}, mV, &sm.intra.v[buf][0][0], Shared::kLdW, kt0);
    cp_async_commit();
  };
  // The products of the warp's queries with keys kt0 .. kt0 + 63 (in sK, sV)
  auto tile_products = [&](int kt0, const T(*sK)[Shared::kLdQ], const T(*sV)[Shared::kLdW]) {
    if (has_rows) {
#pragma unroll
      for (int sb = 0; sb < kOutputMmaKeys / 32; ++sb) {
        const int j0 = kt0 + sb * 32;  // chunk position of the sub-block's first key
        if (j0 > warp_last) continue;  // warp-uniform: every key is after every query of the warp
        float rS[4][4];                // scores: n-tile nt = keys j0 + 8 nt ..
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
          for (int m = 0; m < 4; ++m) rS[nt][m] = 0.f;
#pragma unroll
        for (int kb = 0; kb < kKb; ++kb) {
#pragma unroll
          for (int np = 0; np < 2; ++np) {
            uint32_t bk[4];  // B = K^T: k = dims, n = keys; sK rows are keys (no transpose)
            ldmatrix_x4(bk, &sK[sb * 32 + np * 16 + (lane & 7) + ((lane >> 4) << 3)][kb * kMmaTile + (((lane >> 3) & 1) << 3)]);
            mma_16816<T>(rS[2 * np], rQ[kb], bk[0], bk[1]);
            mma_16816<T>(rS[2 * np + 1], rQ[kb], bk[2], bk[3]);
          }
        }
        uint32_t aP[2][4];  // P as A fragments of two 16-key k-steps
        // Keys of this chunk, all before the warp's first query, in a chunk without a reset: every (j, i) is
        // causal with decay exp(G_i - G_j), so no per-element select (warp-uniform)
        const bool plain = j0 >= 0 && j0 + 32 <= warp_first && !chunk_reset;
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          float p[4];
          if (plain) {
            const float g0 = sm.g[j0 + nt * 8 + 2 * tq], g1 = sm.g[j0 + nt * 8 + 2 * tq + 1];
#pragma unroll
            for (int m = 0; m < 4; ++m)
              p[m] = power_of<kDeg>(problem.scale * rS[nt][m]) * exp_approx((m < 2 ? g_lo : g_hi) - (m & 1 ? g1 : g0));
          } else if (j0 < 0) {  // chunk n - 1 (warp-uniform: sub-blocks are 32-aligned, key_lo >= -c)
#pragma unroll
            for (int m = 0; m < 4; ++m) {  // decay(enter -> i) = exp(G_i) without a reset up to i, back to key j
              const int j = j0 + nt * 8 + 2 * tq + (m & 1);
              const float s = power_of<kDeg>(problem.scale * rS[nt][m]);
              const float e = exp_approx((m < 2 ? g_lo : g_hi) + gp_last - sm.gp[c + j]);  // loads and math
              p[m] = j >= key_lo && (m < 2 ? r_lo : r_hi) == -1 ? s * e : 0.f;           // unconditional
            }
          } else {
#pragma unroll
            for (int m = 0; m < 4; ++m) {
              const int j = j0 + nt * 8 + 2 * tq + (m & 1);
              const float s = power_of<kDeg>(problem.scale * rS[nt][m]);
              const float e = exp_approx((m < 2 ? g_lo : g_hi) - sm.g[min(j, c - 1)]);
              p[m] = j <= (m < 2 ? pos_lo : pos_hi) && (m < 2 ? r_lo : r_hi) <= j ? s * e : 0.f;
            }
          }
          aP[nt / 2][(nt % 2) * 2] = pack2<T>(p[0], p[1]);
          aP[nt / 2][(nt % 2) * 2 + 1] = pack2<T>(p[2], p[3]);
        }
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
          // Keys and queries are 16-aligned: a k-step is before the warp's queries, on them, or after.
          const int jk = j0 + kk * kMmaTile;
          if (jk > warp_first + kMmaTile - 1) continue;  // after every query of the warp: P == 0
          const bool diagonal = jk == warp_first;        // warp-uniform
#pragma unroll
          for (int np = 0; np < kNt / 2; ++np) {
            uint32_t bv[4];
            ldmatrix_x4_trans(bv, &sV[sb * 32 + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3)][np * 16 + ((lane >> 4) << 3)]);
            // On the diagonal P == 0 above it, but 0 * NaN is NaN: non-finite v enter as 0 and poison
            // the outputs at or after their key afterwards (SPEC §5: NaN reaches affected outputs only).
            uint32_t bad[2] = {0u, 0u};  // n-tile 2 np + m / 2: keys (bits) with non-finite v in column g
            if (diagonal) {
#pragma unroll
              for (int m = 0; m < 4; ++m) bad[m / 2] |= take_nonfinite<T>(bv[m]) << (2 * tq + 8 * (m % 2));
            }
            mma_16816<T>(rAcc[2 * np], aP[kk], bv[0], bv[1]);
            mma_16816<T>(rAcc[2 * np + 1], aP[kk], bv[2], bv[3]);
            if (diagonal) {
              poison_after(rAcc[2 * np], bad[0], lane);
              poison_after(rAcc[2 * np + 1], bad[1], lane);
            }
          }
          mma_16816<T>(rAcc[kNt], aP[kk], ones, ones);
        }
      }
    }
  };
  if (!prev_reset) {
    // Every key tile of the block at once (at most a chunk: kMaxChunk keys), each counted by its mbarrier: a warp
    // starts on a tile as soon as it has landed, and no warp waits for another (no buffer is refilled). With two
    // buffers and a block barrier per tile, warps with fewer keys waited for the ones with more: the largest
    // stall of the kernel at p = 1 (ncu, session 7).
    const int n_kt = last_key / kOutputMmaKeys + 1;
    for (int kt = 0; kt < n_kt; ++kt) {
      load_keys(kt * kOutputMmaKeys, kt);
      cp_async_arrive(&sm.keys_full[kt]);
    }
    for (int kt = 0; kt < n_kt && kt * kOutputMmaKeys <= warp_last; ++kt) {  // warp-uniform
      mbar_wait(&sm.keys_full[kt], 0);
      tile_products(kt * kOutputMmaKeys, sm.intra.k[kt], sm.intra.v[kt]);
    }
    cp_async_wait<0>();  // no copy of this thread outlives it (warps without queries wait for none above)
  } else {
    // After a reset in chunk n - 1 the keys start at key_lo < 0 (up to c + 127 of them): two buffers, the next
    // tile loading during this one's products, a block barrier per tile
    const int first_kt = -((kOutputMmaKeys - 1 - key_lo) / kOutputMmaKeys) * kOutputMmaKeys;  // key_lo rounded down
    load_keys(first_kt, 0);
    int kbuf = 0;
    for (int kt0 = first_kt; kt0 <= last_key; kt0 += kOutputMmaKeys, kbuf ^= 1) {
      if (kt0 + kOutputMmaKeys <= last_key) {
        load_keys(kt0 + kOutputMmaKeys, kbuf ^ 1);  // its buffer was last read before the previous barrier
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      tile_products(kt0, sm.intra.k[kbuf], sm.intra.v[kbuf]);
      __syncthreads();  // every warp is done with buffer kbuf: the next iteration refills it
    }
  }

  // ---- y = num / den (0 where den == 0) or num --------------------------------------------------------
  const float den_lo = __shfl_sync(0xffffffffu, rAcc[kNt][0], lane & ~3);
  const float den_hi = __shfl_sync(0xffffffffu, rAcc[kNt][2], lane & ~3);
  const bool norm = problem.normalize;
  auto out = [&](float num, float den) { return norm ? (den == 0.f ? 0.f : num / den) : num; };
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = half == 0 ? q_lo : q_hi;
    if (row >= rows_here) continue;
    const float den = half == 0 ? den_lo : den_hi;
    T* gY = mY + ((b * t + t0 + i0 + row) * hq + iq) * kE;
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt)
      *reinterpret_cast<uint32_t*>(gY + nt * 8 + 2 * tq) =
          pack2<T>(out(rAcc[nt][2 * half], den), out(rAcc[nt][2 * half + 1], den));
  }
}

template <typename T, int kD, int kE, int kDeg>
void launch_chunk_output_mma(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                             cudaStream_t stream) {
  constexpr int kSmem = static_cast<int>(sizeof(OutputMmaShared<T, kD, kE, kDeg>)) + 1024;  // + alignment slack
  const auto kernel = chunk_output_mma_kernel<T, kD, kE, kDeg>;
  static SmemOptIn smem_opt_in;  // one per instantiation of this launcher, i.e. per kernel
  smem_opt_in.ensure(kernel, kSmem, problem.device, "chunk_output_mma");
  const int64_t q_tiles = problem.chunk / std::min(problem.chunk, kOutputMmaQueries);
  // Launched to overlap the chunk_state_mma launch before it (programmatic stream serialization): its
  // blocks start once every state block runs, and wait per chunk on workspace.ready.
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(grid_x(problem.b * problem.hq * problem.n_chunks * q_tiles, "chunk_output_mma"));
  config.blockDim = dim3(kOutputMmaThreads);
  config.dynamicSmemBytes = kSmem;
  config.stream = stream;
  cudaLaunchAttribute overlap[1];
  overlap[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = overlap;
  config.numAttrs = 1;
  check_cuda(cudaLaunchKernelEx(&config, kernel, problem, workspace), "chunk_output_mma");
}

}  // namespace powerret::cuda
