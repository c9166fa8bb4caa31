// decode_step kernel (= retention power_retention_inference): one step of the recurrence for one new token
// per sequence, the state updated in place, fp32 math. Per batch row i and kv head hk, with q~ = scale q:
//   slot = slots ? slots[i] : i;   slot outside [0, num_slots): state untouched, y = 0 for the group
//   a = exp(log_g) (0 for a reset, log_g < -104)    S = S[slot, hk] (D, e)    z = z[slot, hk] (D)
//   w = (q~ . k)^p                                  the new token's share, exact: phi(q~).phi(k) == (q~.k)^p
//   num = a phi(q~)^T S + w v     den = a phi(q~)^T z + w     y = num / den (0 where den == 0), or num
//   S <- a S + phi(k) v^T         z <- a z + phi(k)
//   torch: w = (qs @ k) ** p; y = (a * sympow(qs) @ S + w * v) / (a * sympow(qs) @ z + w)
//          S.mul_(a).add_(outer(sympow(k), v)); z.mul_(a).add_(sympow(k))
// y reads the old state plus the exact share of the new token, never phi(q~)^T S_new: the sum over D rows
// of fp32-rounded phi(k) v^T terms can cancel and amplify their rounding by (|q||k| / |q.k|)^p.
//
// Grid: one cluster of `split` CTAs per (i, hk) (DecodeSplit: the launcher picks it so that even b h = 8
// fills the GPU). CTA `rank` owns rows [rank rows_per_cta, ...) of S and z, reads each element once and
// writes it once. Inside the CTA, rows go in blocks of 256:
//   phi phase  thread t takes row t of the block: phi(k) and phi(q~) of each head into shared memory
//              (double-buffered, one barrier per block), its z row (den partial in registers, z written)
//   stream     thread (rl, c) owns columns [c kVec, c kVec + kVec) of rows rl, rl + kRowLanes, ...; a step
//              is kUnroll 16-byte loads per thread, issued while the step before is consumed (ping-pong):
//              num partial += phi(q~)[r] S[r];  S[r] <- a S[r] + phi(k)[r] v
// Reduction: row lanes of a warp by shuffles, warps through shared memory, the CTAs of the cluster through
// distributed shared memory: output o belongs to CTA o % split, and each CTA pushes its partial num / den of
// o into that owner's shared memory (one slot per peer) by st.async, counted by the owner's mbarrier; the
// owner waits for the bytes it expects and sums the slots in rank order (deterministic; no atomics, no
// workspace, one launch). No cluster barrier at the end: a release arrive would wait for the CTA's state
// stores in flight (session 5's profile: ERRBAR), and the owner stays until its bytes have arrived. An
// early arrive / wait pair proves the peers run (and their mbarriers exist) before anything is pushed.
// GQA: kHeads <= 8 query heads share each read of the state (kVec accumulators per head and thread); a
// group of more than 8 heads takes ceil(group / 8) passes over the CTA's rows, each reading the old state,
// the last one writing it back (the register budget of a pass is 8 heads).
#pragma once

#include <algorithm>
#include <cstdint>

#include "api/problem.hpp"
#include "cuda/common/async_copy.cuh"
#include "cuda/common/cluster.cuh"
#include "cuda/common/device_info.hpp"
#include "cuda/common/dtype.cuh"
#include "cuda/common/gates.cuh"
#include "cuda/common/limits.hpp"
#include "cuda/common/sym_row.cuh"
#include "cuda/common/sym_row_at.cuh"

namespace powerret::cuda {

inline constexpr int kDecodeThreads = 256;
inline constexpr int kDecodeWarps = kDecodeThreads / kWarpSize;
inline constexpr int kDecodeBlockRows = kDecodeThreads;  // rows per phi phase: one per thread
inline constexpr int kDecodeMaxHeads = 8;                // query heads per pass (per-thread accumulators)

// How each (row, kv head) state is divided among the CTAs of one cluster (host-chosen, see decode_step.cuh).
struct DecodeSplit {
  int split = 1;         // CTAs per (row, kv head) == cluster size; 1: launched without a cluster
  int rows_per_cta = 0;  // ceil(D / split): CTA `rank` owns rows [rank rows_per_cta, min(D, (rank + 1) ...))
};

// Compile-time shape of the kernel: value dim kE, kHeads query heads per pass, kVec floats per access
// (4: 16-byte vectors; 1: the state is not 16-byte aligned).
template <int kE, int kHeads, int kVec>
struct DecodeTile {
  static constexpr int kColThreads = kE / kVec;                   // threads across one state row
  static constexpr int kRowLanes = kDecodeThreads / kColThreads;  // rows one sweep of the CTA covers
  static constexpr int kUnroll = 4;                               // rows per thread and step (loads in flight)
  static constexpr int kStepRows = kRowLanes * kUnroll;
  static constexpr int kStepsPerBlock = kDecodeBlockRows / kStepRows;
  static constexpr int kPhiFloats = (1 + kHeads) * kDecodeBlockRows;  // one phi buffer: [phi(k), phi(q~)...][256]
  static constexpr int kRedWidth = kColThreads < kWarpSize ? kWarpSize : kColThreads;  // threads per row partial
  static constexpr int kRedSlots = kDecodeThreads / kRedWidth;        // row partials of num after the shuffles
  static constexpr int kRedFloats = kRedSlots * kHeads * kE;
  static constexpr int kWorkFloats = 2 * kPhiFloats > kRedFloats ? 2 * kPhiFloats : kRedFloats;
  // Registers per thread: 2 kUnroll kVec (fragments) + kHeads kVec (num) + kHeads (den) + addressing and
  // the phi phase. One or two heads: 3 CTAs of 256 threads per SM (<= 80 registers; 64 for 4 CTAs spills),
  // i.e. 48 KB of loads in flight per SM, twice what 3 TB/s needs at ~1 us latency; more heads: 2.
  static constexpr int kMinBlocks = kHeads <= 2 ? 3 : 2;

  static_assert(kE % kVec == 0 && kDecodeThreads % kColThreads == 0, "a CTA sweeps whole rows");
  static_assert(kColThreads <= kWarpSize ? kWarpSize % kColThreads == 0 : kColThreads % kWarpSize == 0,
                "a warp holds whole rows, or a row whole warps");
  static_assert(kDecodeBlockRows % kStepRows == 0, "a phi block holds whole steps");
  static_assert(kHeads <= kDecodeWarps, "one warp per head computes w = (q~ . k)^p");
  static_assert(kHeads <= kDecodeMaxHeads, "heads beyond kDecodeMaxHeads take further passes");
};

// kVec consecutive floats of one state row, in registers.
template <int kVec>
struct StateVec {
  float x[kVec];
};

// S[r, c : c + kVec], streamed (evict first: each element is read once)     == S[r, c:c+kVec]
template <int kVec>
__device__ __forceinline__ StateVec<kVec> load_state(const float* p) {
  StateVec<kVec> out;
  if constexpr (kVec == 4) {
    const float4 t = __ldcs(reinterpret_cast<const float4*>(p));
    out.x[0] = t.x, out.x[1] = t.y, out.x[2] = t.z, out.x[3] = t.w;
  } else {
#pragma unroll
    for (int m = 0; m < kVec; ++m) out.x[m] = __ldcs(p + m);
  }
  return out;
}

// S[r, c : c + kVec] = value, streamed (evict first: nothing reads it again in this step)
template <int kVec>
__device__ __forceinline__ void store_state(float* p, const StateVec<kVec>& value) {
  if constexpr (kVec == 4) {
    __stcs(reinterpret_cast<float4*>(p), make_float4(value.x[0], value.x[1], value.x[2], value.x[3]));
  } else {
#pragma unroll
    for (int m = 0; m < kVec; ++m) __stcs(p + m, value.x[m]);
  }
}

template <typename T, int kE, int kHeads, int kVec>
__global__ void __launch_bounds__(kDecodeThreads, DecodeTile<kE, kHeads, kVec>::kMinBlocks)
    decode_step_kernel(const detail::DecodeProblem problem, const DecodeSplit split) {
  using Tile = DecodeTile<kE, kHeads, kVec>;
  using Vec = StateVec<kVec>;
  constexpr int kUnroll = Tile::kUnroll, kRowLanes = Tile::kRowLanes, kStepRows = Tile::kStepRows;
  constexpr int kStepsPerBlock = Tile::kStepsPerBlock;

  __shared__ float sQ[kHeads][kMaxHeadDim];          // q~ = scale q of this pass's heads
  __shared__ float sK[kMaxHeadDim];                  // k
  __shared__ float sV[kE];                           // v
  __shared__ float sW[kHeads];                       // (q~ . k)^p
  __shared__ float sDenWarp[kDecodeWarps][kHeads];   // per-warp den partials
  // The outputs this CTA owns (o % split == rank): every CTA's partial phi(q~)^T S_old, pushed here by that
  // CTA, [peer][o / split] (peer-major, ceil(heads e / split) per peer); and every CTA's phi(q~)^T z_old.
  __shared__ float sGatherNum[kHeads * kE + kMaxClusterSize];
  __shared__ float sGatherDen[kMaxClusterSize][kHeads];
  __shared__ uint64_t sGatherBar;  // counts the pushed bytes of sGatherNum / sGatherDen (phase = pass & 1)
  __shared__ __align__(16) float sWork[Tile::kWorkFloats];  // phi buffers [2][1 + kHeads][256], then row partials

  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int col = (tid % Tile::kColThreads) * kVec;  // this thread's first column of S
  const int rl = tid / Tile::kColThreads;            // this thread's row lane
  const int lane_offset = rl * kE + col;             // of S[rl, col] from the CTA's first row
  const int n_split = split.split;
  const int rank = static_cast<int>(blockIdx.x % static_cast<unsigned int>(n_split));  // == cluster block rank
  const int64_t pair = blockIdx.x / static_cast<unsigned int>(n_split);  // i h + hk
  const int64_t h = problem.h, group = problem.hq / h;                    // query heads of (i, hk): pair group + ..
  const int64_t i = pair / h, hk = pair % h;
  const int d = static_cast<int>(problem.d), deg = problem.deg, D = static_cast<int>(problem.D);
  T* mY = static_cast<T*>(problem.y) + pair * group * kE;  // [group, e]

  // sQ[hd] = q~ of query head h0 + hd of the group, hd < heads (called by every thread; a barrier follows)
  const auto load_q = [&](int h0, int heads) {
    const T* mQ = static_cast<const T*>(problem.q) + (pair * group + h0) * d;  // [heads, d]
    for (int x = tid; x < heads * d; x += kDecodeThreads) sQ[x / d][x % d] = problem.scale * to_float(mQ[x]);
  };

  // ---- prologue: slot, gate, k, v and the first pass's q, all independent: one memory latency. They stay
  // in registers until the first state loads are issued (storing them to shared memory waits for them).
  const int64_t slot = problem.slots != nullptr ? problem.slots[i] : i;
  const float log_g = problem.log_g != nullptr ? problem.log_g[pair] : 0.f;
  const float k_x = tid < d ? to_float(static_cast<const T*>(problem.k)[pair * d + tid]) : 0.f;
  const float v_x = tid < kE ? to_float(static_cast<const T*>(problem.v)[pair * kE + tid]) : 0.f;
  static_assert(kMaxHeadDim <= kDecodeThreads, "one thread per element of k and v");
  constexpr int kQRegs = (kHeads * kMaxHeadDim + kDecodeThreads - 1) / kDecodeThreads;
  const int heads0 = static_cast<int>(std::min<int64_t>(kHeads, group));  // the first pass's query heads
  float q_x[kQRegs];  // q~ elements tid, tid + 256, .. of the first pass's heads
#pragma unroll
  for (int m = 0; m < kQRegs; ++m) {
    const int x = tid + m * kDecodeThreads;
    q_x[m] = x < heads0 * d ? problem.scale * to_float(static_cast<const T*>(problem.q)[pair * group * d + x]) : 0.f;
  }
  if (slot < 0 || slot >= problem.num_slots) {  // skipped row, uniform over the cluster: no barrier, no DSMEM
    for (int64_t o = static_cast<int64_t>(rank) * kDecodeThreads + tid; o < group * kE;
         o += static_cast<int64_t>(n_split) * kDecodeThreads)
      mY[o] = from_float<T>(0.f);
    return;
  }
  // Bytes the peers push into this CTA's gather slots in a pass of `heads` query heads: num of the outputs
  // o < heads e with o % split == rank from each peer, and kHeads dens from each peer.
  const auto gather_bytes = [&](int heads) {
    const int outputs = (heads * kE - rank + n_split - 1) / n_split;
    return static_cast<uint32_t>(n_split * (outputs + kHeads) * sizeof(float));
  };
  if (n_split > 1 && tid == 0) {
    mbar_init(&sGatherBar, 1);
    mbar_expect_and_load(&sGatherBar, gather_bytes(heads0));  // the arrival of phase 0, with its bytes
    fence_mbarrier_init();  // visible to the peers' st.async after the cluster wait below
  }
  // This CTA runs (its shared memory may be written by peers after the matching wait). Relaxed: it publishes
  // nothing but the mbarrier (fenced above), and the release form would first wait for the prologue's loads
  // (ncu, session 5: ERRBAR).
  cluster_arrive_relaxed(n_split);
  const int row0 = rank * split.rows_per_cta;
  const int rows = max(0, min(split.rows_per_cta, D - row0));       // this CTA's rows (0 for a trailing rank)
  float* gS = problem.s + ((slot * h + hk) * D + row0) * kE;         // (rows, e), in place
  float* gZ = problem.z + (slot * h + hk) * D + row0;                // (rows), in place
  const int n_steps = (rows + kStepRows - 1) / kStepRows;
  // The launcher picks kHeads >= group below kDecodeMaxHeads: one pass, known at compile time.
  const int passes = kHeads < kDecodeMaxHeads ? 1 : static_cast<int>((group + kHeads - 1) / kHeads);

  for (int pass = 0; pass < passes; ++pass) {
    const int h0 = pass * kHeads;  // the pass's first query head in the group
    const int heads = kHeads == 1 ? 1 : static_cast<int>(std::min<int64_t>(kHeads, group - h0));
    const bool last = pass == passes - 1;  // the last pass writes the state back

    Vec rFragA[kUnroll], rFragB[kUnroll];  // S_old rows of two steps (ping-pong)
    float rNum[kHeads][kVec] = {};         // partial phi(q~)^T S_old [head][this thread's columns]
    float rDen[kHeads] = {};               // partial phi(q~)^T z_old over this thread's phi rows

    // rFrag[u] = S_old[r, col : col + kVec] for r = g kStepRows + u kRowLanes + rl (0 past the CTA's rows).
    // One base address per step, compile-time offsets per u.
    const auto load_step = [&](int g, Vec (&rFrag)[kUnroll]) {
      const int r0 = g * kStepRows + rl;
      const float* gRow = gS + static_cast<int64_t>(g) * (kStepRows * kE) + lane_offset;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        rFrag[u] = r0 + u * kRowLanes < rows ? load_state<kVec>(gRow + u * kRowLanes * kE) : Vec{};
    };
    float z_next = tid < rows ? __ldcs(gZ + tid) : 0.f;  // z of this thread's row in the next phi block
    if (n_steps > 0) load_step(0, rFragA);                 // in flight while phi is prepared
    if (pass == 0) {  // the prologue's values, now that the first state loads are on their way
#pragma unroll
      for (int m = 0; m < kQRegs; ++m) {
        const int x = tid + m * kDecodeThreads;
        if (x < heads0 * d) sQ[x / d][x % d] = q_x[m];
      }
      if (tid < d) sK[tid] = k_x;
      if (tid < kE) sV[tid] = v_x;
    } else {
      load_q(h0, heads);  // after the last pass's cluster barrier
    }
    const float a = is_reset(log_g) ? 0.f : expf(log_g);
    __syncthreads();  // sQ, sK, sV

    // Phi block n: rows n 256 + tid -> phi(k), phi(q~) per head into buffer n % 2 (0 past the rows);
    // den partials from z_old; z_new written back (last pass). Prefetches z for block n + 1.
    const auto phi_block = [&](int n) {
      float* sPhi = sWork + (n % 2) * Tile::kPhiFloats;  // [1 + kHeads][256]
      const int r = n * kDecodeBlockRows + tid;
      const float z_old = z_next;
      if (r + kDecodeBlockRows < rows) z_next = __ldcs(gZ + r + kDecodeBlockRows);
      float phi_k = 0.f, phi_q[kHeads] = {};
      if (r < rows) {
        const SymRow row = sym_row_at(row0 + r, d, deg);
        const float weight = sym_row_weight(row, deg);
        phi_k = weight * row.product(sK, deg);
#pragma unroll
        for (int hd = 0; hd < kHeads; ++hd) {
          if (hd < heads) phi_q[hd] = weight * row.product(sQ[hd], deg);
          rDen[hd] = fmaf(phi_q[hd], z_old, rDen[hd]);
        }
        if (last) gZ[r] = fmaf(a, z_old, phi_k);
      }
      sPhi[tid] = phi_k;
#pragma unroll
      for (int hd = 0; hd < kHeads; ++hd) sPhi[(1 + hd) * kDecodeBlockRows + tid] = phi_q[hd];
    };

    // Step g (of phi block g / kStepsPerBlock): num partials from S_old, then S_new = a S_old + phi(k) v.
    const auto consume_step = [&](int g, const Vec (&rFrag)[kUnroll]) {
      const int r0 = g * kStepRows + rl;
      const float* sPhi = sWork + ((g / kStepsPerBlock) % 2) * Tile::kPhiFloats + (g % kStepsPerBlock) * kStepRows + rl;
      float* gRow = gS + static_cast<int64_t>(g) * (kStepRows * kE) + lane_offset;
      Vec rV;  // v[col : col + kVec], from shared memory each step (fewer registers across the loop)
#pragma unroll
      for (int m = 0; m < kVec; ++m) rV.x[m] = sV[col + m];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (r0 + u * kRowLanes < rows) {
#pragma unroll
          for (int hd = 0; hd < kHeads; ++hd) {
            const float phi_q = sPhi[(1 + hd) * kDecodeBlockRows + u * kRowLanes];
#pragma unroll
            for (int m = 0; m < kVec; ++m) rNum[hd][m] = fmaf(phi_q, rFrag[u].x[m], rNum[hd][m]);
          }
          if (last) {
            const float phi_k = sPhi[u * kRowLanes];
            Vec s_new;
#pragma unroll
            for (int m = 0; m < kVec; ++m) s_new.x[m] = fmaf(a, rFrag[u].x[m], phi_k * rV.x[m]);
            store_state<kVec>(gRow + u * kRowLanes * kE, s_new);
          }
        }
      }
    };

    // Step g: compute the phi block when g starts one (step g's loads are in flight meanwhile), issue
    // the loads of step g + 1, consume step g.
    const auto run_step = [&](int g, const Vec (&rCur)[kUnroll], Vec (&rNext)[kUnroll]) {
      if (g + 1 < n_steps) load_step(g + 1, rNext);  // in flight during the phi block too
      if (g % kStepsPerBlock == 0) {  // uniform over the CTA
        phi_block(g / kStepsPerBlock);
        // The block's phi is visible; every thread is past block g / kStepsPerBlock - 2, whose buffer
        // phi_block just overwrote (each thread passed this barrier of the block in between).
        __syncthreads();
      }
      consume_step(g, rCur);
    };
    for (int g = 0; g < n_steps; g += 2) {
      run_step(g, rFragA, rFragB);
      if (g + 1 < n_steps) run_step(g + 1, rFragB, rFragA);
    }

    // ---- this CTA's partials: num over row lanes (shuffles, then slots in sWork), den over all threads
    __syncthreads();  // every step is done with the phi buffers: sWork now holds row partials
    float* sRed = sWork;  // [kRedSlots][kHeads][kE]
#pragma unroll
    for (int hd = 0; hd < kHeads; ++hd) {
#pragma unroll
      for (int m = 0; m < kVec; ++m) {
#pragma unroll
        for (int offset = Tile::kColThreads; offset < kWarpSize; offset *= 2)  // lanes of one column group
          rNum[hd][m] += __shfl_xor_sync(0xffffffffu, rNum[hd][m], offset);
      }
    }
    if (tid % Tile::kRedWidth < Tile::kColThreads) {
      float* sSlot = sRed + (tid / Tile::kRedWidth) * kHeads * kE;
#pragma unroll
      for (int hd = 0; hd < kHeads; ++hd) {
#pragma unroll
        for (int m = 0; m < kVec; ++m) sSlot[hd * kE + col + m] = rNum[hd][m];
      }
    }
#pragma unroll
    for (int hd = 0; hd < kHeads; ++hd) {
      float den = rDen[hd];
#pragma unroll
      for (int offset = kWarpSize / 2; offset > 0; offset /= 2) den += __shfl_xor_sync(0xffffffffu, den, offset);
      if (lane == 0) sDenWarp[warp][hd] = den;
    }
    if (warp < heads) {  // warp hd: w = (q~ . k)^p
      float dot = 0.f;
      for (int x = lane; x < d; x += kWarpSize) dot = fmaf(sQ[warp][x], sK[x], dot);
#pragma unroll
      for (int offset = kWarpSize / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if (lane == 0) {
        float w = dot;
        for (int m = 1; m < deg; ++m) w *= dot;
        sW[warp] = w;
      }
    }
    __syncthreads();
    // ---- push this CTA's partials to their owners (output o: CTA o % split) by st.async; each owner waits
    // for the bytes it expects, then sums what it owns in rank order from its own shared memory
    // (deterministic). Nothing reads a peer's memory, and an owner stays until its bytes have landed.
    const int per = (heads * kE + n_split - 1) / n_split;  // outputs per owner (slots per peer)
    cluster_wait(n_split);  // every peer runs (pass 0) / is done with its gather of the last pass
    for (int o = tid; o < heads * kE; o += kDecodeThreads) {
      float num = 0.f;
#pragma unroll
      for (int s = 0; s < Tile::kRedSlots; ++s) num += sRed[s * kHeads * kE + o];
      const int owner = o % n_split, slot = rank * per + o / n_split;
      if (n_split > 1) {
        cluster_store_async(cluster_smem_addr(&sGatherNum[slot], owner), num, cluster_smem_addr(&sGatherBar, owner));
      } else {
        sGatherNum[slot] = num;
      }
    }
    for (int x = tid; x < n_split * kHeads; x += kDecodeThreads) {
      const int hd = x % kHeads, owner = x / kHeads;
      float den = 0.f;
#pragma unroll
      for (int w = 0; w < kDecodeWarps; ++w) den += sDenWarp[w][hd];
      if (n_split > 1) {
        cluster_store_async(cluster_smem_addr(&sGatherDen[rank][hd], owner), den,
                            cluster_smem_addr(&sGatherBar, owner));
      } else {
        sGatherDen[rank][hd] = den;
      }
    }
    if (n_split > 1) {
      mbar_wait(&sGatherBar, static_cast<uint32_t>(pass & 1));  // every peer's partials have landed here
    } else {
      __syncthreads();
    }
    for (int j = tid; rank + j * n_split < heads * kE; j += kDecodeThreads) {
      const int o = rank + j * n_split, hd = o / kE, c = o % kE;
      float num = 0.f, den = 0.f;
      for (int peer = 0; peer < n_split; ++peer) {
        num += sGatherNum[peer * per + j];
        den += sGatherDen[peer][hd];
      }
      const float w = sW[hd];
      num = fmaf(a, num, w * sV[c]);
      den = fmaf(a, den, w);
      const float out = problem.normalize ? (den == 0.f ? 0.f : num / den) : num;
      mY[(h0 + hd) * kE + c] = from_float<T>(out);
    }
    if (pass + 1 < passes) {  // the next pass's bytes are announced before any peer may push them
      if (n_split > 1 && tid == 0) {
        mbar_expect_and_load(&sGatherBar, gather_bytes(static_cast<int>(std::min<int64_t>(kHeads, group - h0 - kHeads))));
      }
      cluster_arrive(n_split);  // this CTA's gather may be overwritten by the next pass
    }
  }
}

}  // namespace powerret::cuda
