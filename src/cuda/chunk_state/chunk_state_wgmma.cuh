// chunk_state_wgmma: chunk_state_mma's recurrence (see chunk_state_mma.cuh for the math and the
// workspace it writes) on sm_90a warpgroup MMAs. Same grid, same 128 padded rows per block, same
// entering states, ready counters and final state: chunk_output_mma reads either kernel's output.
//
// Block = the MMA warpgroup (warps 0-3), the gate warp (4), two copy warps (5, 6) and warp 7, which only
// balances the register split (kStateWgThreads), 256 threads.
//   The warpgroup owns the block's 128 rows as two m64 tiles (one when a head's state has at most 64
//   rows: deg 1, d <= 64); warp w of tile T holds m-tile 8 cta + 4 T + w (rows (i, 16 jb + r)) and, per
//   16-token k-step, forms its A fragment exactly as chunk_state_mma does (ldmatrix.trans of sK times
//   the lane's gamma_tok k_tok[i] pairs). One wgmma m64 x e x k16 per m64 tile and step takes B = V
//   straight from shared memory (N-major, swizzled); one m64 x 8 x k16 against a tile of ones accumulates
//   z. A fragments rotate through kARing register sets (4; e = 128: 2, for registers): a step overwrites
//   the set of step s - kARing after wait<kARing - 1>, so up to kARing - 1 steps' MMAs run while the next
//   A is formed.
//   K and V tiles of 64 tokens stream through a ring of kStages stages (4; p = 1 grids of at most one block
//   per SM: up to 8, state_wg_deep_stages), by cp.async from the copy warps, fixed pieces per thread. A
//   stage's full mbarrier counts the copy threads' arrivals (cp.async.mbarrier.arrive: once the thread's
//   copies landed); its empty mbarrier one arrival per MMA thread, at step kARing - 2 of the next tile, when
//   only that tile's MMAs can still be in flight. (Session 10 and before: the MMA warps issued the copies
//   themselves, ~45 of ~230 cycles per warp and tile, and met at a named barrier per tile; one warp issuing
//   every copy, 32 per lane and tile, was the bottleneck of the first version: ~2250 clocks per tile.)
//   The gate warp scans chunk n + 1's gates while the warpgroup works on chunk n and meets it once per chunk
//   (see StateWgBarrier). At a chunk start the warpgroup waits for its MMAs, stages S_enter[n] in shared memory
//   and copies it out (16 contiguous bytes per access), writes z and scales u by decay_chunk; the gate warp
//   then signals the chunk's ready counter.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/chunk_state/chunk_state_mma.hpp"
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

inline constexpr int kStateWgConsumers = 4;                            // warps of the warpgroup
// Threads of the warpgroup and the gate warp (the count of the barriers they meet at)
inline constexpr int kStateWgBarThreads = (kStateWgConsumers + 1) * kWarpSize;
// Threads launched: two warpgroups, the second being the gate warp and three warps that leave at once. Warps
// sit on the SM's four register sub-partitions by warp index mod 4 (16 K registers each, i.e. 512 per lane
// slot). With five warps, the gate warp shared sub-partition 0 with warp 0 (2 x 168 registers per lane slot),
// which left room there for one of chunk_output_mma's two 128-register warps per sub-partition: no output block
// ever ran beside a walk (bench/RESULTS.md, session 10). Launched as eight warps of 128 registers (two blocks per
// SM at most), the block takes 256 per sub-partition, and setmaxnreg moves them to the MMA warps (192) from the
// second warpgroup (64): an output block (2 x 128) fits beside every walk.
inline constexpr int kStateWgThreads = 2 * kStateWgConsumers * kWarpSize;
// registers per thread after the split (setmaxnreg; 2 x 128 = kStateWgMmaRegs + kStateWgGateRegs), for the
// kernels of two blocks per SM (e <= 64); e = 128's kernels run one block per SM at up to 255 without a split
inline constexpr int kStateWgMmaRegs = 192, kStateWgGateRegs = 64;
// Warps 5 and 6 copy the K and V tiles (cp.async, completion on the stage's mbarrier); warp 7 leaves at once.
inline constexpr int kStateWgCopyWarps = 2;
inline constexpr int kStateWgCopyThreads = kStateWgCopyWarps * kWarpSize;
inline constexpr int kStateWgM = 64;                                   // rows per wgmma
inline constexpr int kStateWgMTiles = kMmaScaleRows / kStateWgM;       // m64 tiles per block (2)

// Diagnostic variants (bench/diag/state_loop.cu times them; the library launches kDiag = 0 only): each bit
// removes one part of the per-tile work, so the time a part costs on the critical path can be measured.
enum StateWgDiag : unsigned {
  kDiagNoCopies = 1,     // no K/V copies after the prologue (the stages keep their first tiles)
  kDiagNoMma = 2,        // no wgmma (the A fragments are still formed)
  kDiagNoA = 4,          // no A formation (the wgmmas read stale fragments)
  kDiagNoChunkWork = 8,  // no S_enter writes and no decay at chunk starts (the gate barriers stay)
  kDiagNoPublish = 16,   // the gate warp neither copies S_enter out nor signals it (its scans and barriers stay)
  kDiagNoScan = 32,      // the gate warp neither loads nor scans gates after chunk 0 (the slots keep stale gates)
  kDiagNoTable = 64,     // the MMA warps skip the per-tile multiplier table (deg 2: the steps read a stale one)
};

template <typename T, int kD, int kE, int kStages, int kStagingRows = kMmaScaleRows>
struct StateWgShared {
  static constexpr int kVBytes = kStateMmaTokens * kE * 2;
  static constexpr int kKBytes = kStateMmaTokens * kD * 2;
  alignas(1024) unsigned char v[kStages][kVBytes];  // [stage] swizzled (e, tok) tiles: wgmma's B
  // [stage] (kk, tok) tiles in V's layout: element (tok, kk) at mn_swizzled_offset<kD>(kk, tok) (state_wg_k_at).
  // 16-byte rows of padding (kD + 8 columns) kept ldmatrix conflict-free too, but rows of 144 bytes straddle
  // 128-byte lines, and the copy warps' cp.async took 10.5 shared wavefronts per instruction instead of 4 (104 of
  // the walk's ~760 per tile, ncu source counters, session 12's profile; docs/DESIGN.md, session 16).
  alignas(1024) unsigned char k[kStages][kKBytes];
  alignas(16) T ones[8 * 16];                                // B of the z column: 8 x 16, all 1
  uint64_t full[kStages];   // [stage] the copy threads' pieces of the stage's tile landed (one arrival each)
  uint64_t empty[kStages];  // [stage] the MMA warps are done with the stage (one arrival per thread)
  uint32_t gamma2[2][kMaxChunk / 2];                         // [chunk & 1][m] gamma of tokens 2 m, 2 m + 1 (T pairs)
  float decay[2];                                            // [chunk & 1] decay(enter -> L)
  uint32_t warp_max[kStateWgConsumers];  // fp16: the warps' max |W| bits (entering_scale_shift)
  // deg 2: per warp and m-tile, the tile's (gamma_tok k_tok[i]) T pairs of tokens 2 m, 2 m + 1 (built per tile)
  uint32_t gk[kStateWgConsumers][kStateWgMTiles][kStateMmaTokens / 2];
  // S_enter rows (W | z | 0) on their way out, in the workspace's order (entering_offset)
  alignas(128) T staging[kStagingRows * kEnteringCols<kE>];
};

// Byte offset of K element (tok, kk) in a stage: the 128-byte swizzle (64-byte at d = 32) of the V tiles, so the copy
// warps' 16-byte pieces fill whole 128-byte lines and ldmatrix's 8 rows of a piece sit on 8 distinct bank groups.
template <int kD>
__device__ __forceinline__ uint32_t state_wg_k_at(int tok, int kk) {
  return mn_swizzled_offset<kD>(kk, tok);
}

// Rows of S_enter staged at once: all 128 of the block, or 64 (two rounds) where 128 would cost occupancy
// (two blocks per SM, 227 KB of shared memory; d = 128, e = 64) or where the block has only 64 rows.
template <typename T, int kD, int kE, int kDeg, int kStages>
constexpr int state_wg_staging_rows() {
  constexpr std::size_t kFull = sizeof(StateWgShared<T, kD, kE, kStages, kMmaScaleRows>) + 1024 + 1024;
  constexpr bool kOneTile = PaddedRows<kD, kDeg>::kRowTiles == 1 && PaddedRows<kD, kDeg>::kTiles <= 4;
  return kOneTile || (kE != 128 && 2 * kFull > 227 * 1024) ? kStateWgM : kMmaScaleRows;
}

// Bytes of dynamic shared memory a block asks for: its layout with the staging rows it uses (+ alignment slack).
template <typename T, int kD, int kE, int kDeg, int kStages>
constexpr int state_wg_smem() {
  return static_cast<int>(sizeof(StateWgShared<T, kD, kE, kStages, state_wg_staging_rows<T, kD, kE, kDeg, kStages>()>)) +
         1024;
}

// Stages of the K/V ring (the copy warps fill a stage as soon as it is released). 4 by default. p = 1 launches with a deep
// ring (up to 8 within 160 KB) when the grid has at most one block per SM: a block per head then walks the
// sequence alone, latency-bound, and the deep ring made the forward 4 % faster at 64k, 5 % at 16k; with more
// blocks the 4-stage ring keeps two blocks per SM. p = 2: 5 or 6 stages changed neither the kernel alone nor
// the forward. bench/RESULTS.md, session 6.
inline constexpr int kStateWgStages = 4;
template <typename T, int kD, int kE, int kDeg>
constexpr int state_wg_deep_stages() {
  if constexpr (kDeg == 1 && state_wg_smem<T, kD, kE, kDeg, 8>() <= 160 * 1024) return 8;
  else if constexpr (kDeg == 1 && state_wg_smem<T, kD, kE, kDeg, 6>() <= 160 * 1024) return 6;
  else return kStateWgStages;
}

// Named barriers (the tiles' stages are mbarriers: StateWgShared::full / empty). The gate warp meets the
// warpgroup once per chunk, through a pair of arrive / sync barriers (so its slow steps, the GPU-scope fence of
// the ready signal and the scan, never hold up a tile):
//   kBarGates: the gate warp arrives once chunk n's gates are in their slot; the warpgroup syncs at
//              chunk n's first tile, before reading them.
//   kBarStarted: the warpgroup arrives once it has written S_enter[n] (and so is done with chunk n - 1's
//              slot); the gate warp syncs, signals the ready counter, then fills the slot with chunk n + 1.
//   kBarMax:   the warpgroup alone, inside a chunk start's work (the fp16 max, the staging buffer's rounds).
// kBarGates also orders one chunk start's work before the next one's (all four MMA warps sync there).
enum StateWgBarrier : int { kBarGates = 2, kBarStarted = 3, kBarMax = 4 };

// kStages tiles of shared memory in a ring: the copy warps fill a stage as soon as the MMA warps release it.
template <typename T, int kD, int kE, int kDeg, int kStages = kStateWgStages, unsigned kDiag = 0>
__global__ void __launch_bounds__(kStateWgThreads, kE == 128 ? 1 : 2)
    chunk_state_wgmma_kernel(detail::ForwardProblem problem, MmaWorkspace workspace) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kStages >= 2, "a stage in use and one filling");
  using Rows = PaddedRows<kD, kDeg>;
  constexpr int kStagingRows = state_wg_staging_rows<T, kD, kE, kDeg, kStages>();
  using Shared = StateWgShared<T, kD, kE, kStages, kStagingRows>;
  constexpr int kNt = kE / 8;               // 8-column blocks of the accumulators
  constexpr int kTt = kStateMmaTokens;      // tokens per tile
  constexpr int kCtas = Rows::kRowTiles;  // blocks per head
  // m-tiles per warp (one per m64 tile); a single-block state (deg 1, d <= 64) has only one m64 tile
  constexpr int kMt = kCtas == 1 ? (Rows::kTiles + kStateWgConsumers - 1) / kStateWgConsumers : kStateWgMTiles;
  constexpr int kScaleTiles = kCtas;
  constexpr bool kScaled = std::is_same_v<T, __half>;
  // deg 2: the per-warp table of (gamma k[i]) pairs (sm.gk), except at d = 128, where it spilled at e = 64 (168
  // registers) and measured no faster (session 9)
  constexpr bool kGkTable = kDeg == 2 && kD != 128;
  constexpr auto kMajorV = wg::GMMA::Major::MN, kMajorOnes = wg::GMMA::Major::K;
  extern __shared__ unsigned char smem_raw[];
  // 1024-byte alignment (the 128-byte swizzle) by an offset from smem_raw, not by integer arithmetic on a
  // generic pointer: that loses the shared address space, and every access becomes a generic LD (long
  // scoreboard) instead of LDS (measured: the largest stall of the first version).
  Shared& sm = *reinterpret_cast<Shared*>(smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u));
  allow_dependents();  // chunk_output_mma may start: it waits on workspace.ready per chunk
  if (threadIdx.x == 0) {
    for (int st = 0; st < kStages; ++st) {
      mbar_init(&sm.full[st], kStateWgCopyThreads);
      mbar_init(&sm.empty[st], kStateWgConsumers * kWarpSize);
    }
    fence_mbarrier_init();
  }
  __syncthreads();  // the barriers exist before any role uses them (the last block-wide barrier)

  // warp through a shuffle: ptxas then knows it is warp-uniform (else it serialises every wgmma)
  const int warp = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / kWarpSize), 0);
  const int lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, tq = lane % 4;
  const int64_t bh = blockIdx.x / kCtas;
  const int cta = blockIdx.x % kCtas;
  const int64_t h = problem.h, t = problem.t, n_chunks = problem.n_chunks;
  const int64_t b = bh / h, hk = bh % h;
  const int c = problem.chunk;
  const int64_t n_tiles = (t + kTt - 1) / kTt;

  const float* mLg = problem.log_g != nullptr ? problem.log_g + b * t * h + hk : nullptr;
  // ---- the gate warp: gates of chunk n (from log gates loaded earlier into lg) into slot n & 1 --------------
  float lg[kGateRegs];
  auto load_gates = [&](int64_t n) { load_state_gates(mLg, h, t, c, n, lg); };
  auto scan_into = [&](int64_t n) {
    scan_state_gates<T>(lg, chunk_len(n, c, t), c, sm.gamma2[n & 1], &sm.decay[n & 1]);
  };

  // ---- the copy warps: tile q of k and v into stage q % kStages (zeros past t), as soon as the MMA warps
  // released the stage. Copy thread x copies the fixed 16-byte pieces x + kStateWgCopyThreads p of each tile:
  // row x / pieces + p * rows_per_pass, piece x % pieces. Sources advance by fixed steps and whole tiles take
  // unpredicated copies (the predicated form with per-pass address selects cost ~120 instructions per tile and
  // thread, SASS, session 8); the last, partial tile predicated. The thread's arrival on the stage's full
  // barrier counts once its copies landed.
  auto copy_tiles = [&](int ct) {
    constexpr int kCopy = kStateWgCopyThreads;
    constexpr int kKPieces = kD / 8, kVPieces = kE / 8;
    static_assert(kCopy % kKPieces == 0 && kCopy % kVPieces == 0, "whole rows per pass");
    constexpr int kKPasses = kTt * kKPieces / kCopy, kVPasses = kTt * kVPieces / kCopy;
    constexpr int kKRowStep = kCopy / kKPieces, kVRowStep = kCopy / kVPieces;
    const int k_row0 = ct / kKPieces, k_piece = ct % kKPieces;
    const int v_row0 = ct / kVPieces, v_piece = ct % kVPieces;
    const int64_t tok_stride_k = h * kD, tok_stride_v = h * kE;
    const T* gK = static_cast<const T*>(problem.k) + (b * t * h + hk) * kD + k_row0 * tok_stride_k + k_piece * 8;
    const T* gV = static_cast<const T*>(problem.v) + (b * t * h + hk) * kE + v_row0 * tok_stride_v + v_piece * 8;
    // shared addresses of the thread's pieces in stage 0 (k pass p: + p kKPass; stage st: + st kKStage /
    // kVStage). The v swizzle repeats every 8 rows: a v pass of 8 or more rows keeps one address and steps by
    // kVPass; at e = 128 (4 rows per pass) passes p and p + 2 sit 8 rows apart, from two addresses.
    static_assert(kVRowStep % 8 == 0 || 8 % kVRowStep == 0, "v passes a whole number of swizzle atoms apart");
    static_assert(kKRowStep % 8 == 0 || 8 % kKRowStep == 0, "k passes a whole number of swizzle atoms apart");
    constexpr int kVPhases = kVRowStep % 8 == 0 ? 1 : 8 / kVRowStep;  // passes per swizzle atom
    constexpr int kKPhases = kKRowStep % 8 == 0 ? 1 : 8 / kKRowStep;  // (k is laid out as v: state_wg_k_at)
    constexpr uint32_t kKPass = kKRowStep * kKPhases * kD * 2, kVPass = kVRowStep * kVPhases * kE * 2;
    constexpr uint32_t kKStage = Shared::kKBytes, kVStage = Shared::kVBytes;
    uint32_t k_dst0[kKPhases], v_dst0[kVPhases];
#pragma unroll
    for (int i = 0; i < kKPhases; ++i)
      k_dst0[i] = smem_addr(sm.k[0]) + state_wg_k_at<kD>(k_row0 + i * kKRowStep, k_piece * 8);
#pragma unroll
    for (int i = 0; i < kVPhases; ++i)
      v_dst0[i] = smem_addr(sm.v[0]) + mn_swizzled_offset<kE>(v_piece * 8, v_row0 + i * kVRowStep);
    const int64_t k_pass = kKRowStep * tok_stride_k, v_pass = kVRowStep * tok_stride_v;  // elements between passes
    int st = 0;
    uint32_t lap = 0;  // completed passes over the ring
    for (int64_t q = 0; q < n_tiles; ++q) {
      if (q >= kStages) mbar_wait(&sm.empty[st], (lap - 1) & 1);  // the MMA warps' release of tile q - kStages
      const auto k_dst = [&](int p) { return k_dst0[p % kKPhases] + st * kKStage + (p / kKPhases) * kKPass; };
      const auto v_dst = [&](int p) { return v_dst0[p % kVPhases] + st * kVStage + (p / kVPhases) * kVPass; };
      const int64_t left = t - q * kTt;  // tokens from the tile's first on
      if ((kDiag & kDiagNoCopies) && q >= kStages) {
        // the stages keep their first tiles
      } else if (left >= kTt) {
#pragma unroll
        for (int p = 0; p < kKPasses; ++p) cp_async_16_at(k_dst(p), gK + p * k_pass);
#pragma unroll
        for (int p = 0; p < kVPasses; ++p) cp_async_16_at(v_dst(p), gV + p * v_pass);
      } else {
#pragma unroll
        for (int p = 0; p < kKPasses; ++p) {
          const bool valid = k_row0 + p * kKRowStep < left;
          cp_async_16_at(k_dst(p), valid ? gK + p * k_pass : gK, valid);
        }
#pragma unroll
        for (int p = 0; p < kVPasses; ++p) {
          const bool valid = v_row0 + p * kVRowStep < left;
          cp_async_16_at(v_dst(p), valid ? gV + p * v_pass : gV, valid);
        }
      }
      cp_async_arrive(&sm.full[st]);
      gK += kTt * tok_stride_k;
      gV += kTt * tok_stride_v;
      if (++st == kStages) {
        st = 0;
        ++lap;
      }
    }
    cp_async_wait<0>();
  };

  // S_enter[n] leaves the staging buffer by one bulk copy from the gate warp where the block's rows fit the buffer
  // at once (kBulkOut; else the warpgroup copies it out in rounds, write_entering). The bulk copy's source needs a
  // proxy fence in each writing thread, which waits for that thread's memory operations in flight: cheap now that
  // the MMA warps issue no cp.async (session 4 measured ~1.2 us per chunk when they did).
  constexpr int kEnterRounds = kMt * kStateWgM / kStagingRows;
  // Deg 1 keeps the warpgroup's copy-out: its walk is short per chunk, so the gate warp's wait for the copy's reads
  // before the next chunk start sat on the walk's path (p = 1 64k: 432 -> 493 µs with the bulk copy, H100,
  // session 12; p = 2 gained 1-3 %).
  constexpr bool kBulkOut = kEnterRounds == 1 && kDeg == 2;
  constexpr int kEnterCols = kEnteringCols<kE>;  // W, z, 0
  const int valid_tiles = std::min(kMt * kStateWgConsumers, Rows::kTiles - cta * (kMmaScaleRows / kMmaTile));
  const uint32_t kEnterBytes = static_cast<uint32_t>(valid_tiles * kMmaTile * kEnterCols * sizeof(T));
  auto entering_dst = [&](int64_t n) {  // this block's rows of S_enter[n] in the workspace
    return static_cast<T*>(workspace.states) + ((bh * n_chunks + n) * Rows::kRows + cta * kMmaScaleRows) * kEnterCols;
  };

  // The register split (see kStateWgThreads): each warpgroup converged; ptxas allocates a region by the
  // setmaxnreg that dominates it, so each role's code follows its own.
  constexpr bool kSplitRegs = kE != 128;
  // ---- the gate warp: per chunk, publish S_enter[n] once written, scan chunk n + 1 into its slot --------
  if (warp >= kStateWgConsumers) {
    if constexpr (kSplitRegs) wg::set_max_registers_dec<kStateWgGateRegs>();
    if (warp > kStateWgConsumers) {  // the copy warps; warp 7 is only there for the register split
      if (warp <= kStateWgConsumers + kStateWgCopyWarps) copy_tiles(threadIdx.x - (kStateWgConsumers + 1) * kWarpSize);
      return;
    }
    load_gates(0);
    scan_into(0);
    load_gates(1);
    bar_arrive(kBarGates, kStateWgBarThreads);  // chunk 0's gates
    for (int64_t n = 0; n < n_chunks; ++n) {
      bar_sync(kBarStarted, kStateWgBarThreads);  // S_enter[n] written; chunk n - 1's slot read for the last time
      const bool wrote = !(kDiag & kDiagNoPublish) && (n > 0 || problem.s0 != nullptr);
      if constexpr (kBulkOut) {  // S_enter[n] from the staging buffer to the workspace, one bulk copy
        if (wrote && lane == 0) {
          bulk_store(entering_dst(n), &sm.staging[0], kEnterBytes);
          bulk_commit();
        }
      }
      if (n + 1 < n_chunks) {  // first what the warpgroup waits for, then the signal
        if constexpr (!(kDiag & kDiagNoScan)) {
          scan_into(n + 1);
          load_gates(n + 2);
        }
        if constexpr (kBulkOut) {  // the staging buffer is read out before the warpgroup's next chunk start
          if (lane == 0) bulk_wait_read<0>();
          __syncwarp();
        }
        bar_arrive(kBarGates, kStateWgBarThreads);
      }
      if (wrote && lane == 0) {
        if constexpr (kBulkOut) {
          bulk_wait<0>();              // the copy's writes are done
          fence_proxy_async_global();  // and ordered (async proxy) before the generic release below
        }
        signal_ready(workspace.ready + bh * n_chunks + n);
      }
    }
    return;
  }
  if constexpr (kSplitRegs) wg::set_max_registers_inc<kStateWgMmaRegs>();

  // This warp's m-tiles: T-th is 8 cta + 4 T + warp, (i, jb); rows past P (deg 1, d = 32) compute
  // on tile 0's operands and are never written.
  bool active[kMt];
  int i_row[kMt], jb[kMt];
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt) {
    const int tile = cta * (kMmaScaleRows / kMmaTile) + mt * kStateWgConsumers + warp;
    active[mt] = tile < Rows::kTiles;
    Rows::decode(active[mt] ? tile : 0, i_row[mt], jb[mt]);
  }
  // ldmatrix.trans row addresses of the warp's A fragments in a K stage, k-step 0 (step s: + 16 s kD 2 bytes):
  // lane l points at token (l & 7) + 8 (l >> 4), columns 16 jb + 8 ((l >> 3) & 1) .. + 7 (padded_rows.cuh's
  // a_load_trans in the swizzled layout; the offset of a whole 8-token group is linear in the token)
  uint32_t k_lds[kMt];
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt)
    k_lds[mt] = state_wg_k_at<kD>((lane & 7) + ((lane >> 4) << 3), jb[mt] * kMmaTile + (((lane >> 3) & 1) << 3));
  // deg 2 without the table: offsets of (tok, i) for tok = 2 tq, 2 tq + 1 in a stage's first 8-token group
  uint32_t k_pair[kMt][2] = {};
  if constexpr (!kGkTable) {
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
      for (int e = 0; e < 2; ++e) k_pair[mt][e] = state_wg_k_at<kD>(2 * tq + e, i_row[mt]);
  }
  // the raw A fragment of m-tile mt, step k0 (ldmatrix.trans; the multipliers come after)
  const auto a_trans = [&](uint32_t(&a)[4], int st, int mt, int k0) {
    ldmatrix_x4_trans(a, sm.k[st] + k_lds[mt] + k0 * kD * 2);
  };
  // the 16-bit K element at byte offset off of stage st
  const auto k_bits = [&](int st, uint32_t off) {
    return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(sm.k[st] + off));
  };

  constexpr int kConsumerThreads = kStateWgConsumers * kWarpSize;

  // ---- accumulators: u (acc) and z (accz, every column the same), from the initial state or 0 ---------
  float acc[kMt][kE / 2];
  float accz[kMt][4];
  // after wait<0>: keep every accumulator where the MMAs left it before reading it
  auto settle = [&] {
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
#pragma unroll
      for (int x = 0; x < kE / 2; ++x) wg::keep(acc[mt][x]);
#pragma unroll
      for (int x = 0; x < 4; ++x) wg::keep(accz[mt][x]);
    }
  };
  {  // every thread defines every accumulator without branching (ptxas serialises the wgmmas otherwise):
     // the loads are unconditional, from a valid address (workspace.ready) where there is no initial state
    const bool load = problem.s0 != nullptr;
    const float* dummy = reinterpret_cast<const float*>(workspace.ready);
    const float* gS0 = load ? problem.s0 + bh * problem.D * kE : dummy;
    const float* gZ0 = load ? problem.z0 + bh * problem.D : dummy;
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
      const bool on = load && active[mt];
      const int j_lo = jb[mt] * kMmaTile + g, j_hi = j_lo + 8;
      const int64_t r_lo = on ? Rows::public_row(i_row[mt], j_lo) : 0, r_hi = on ? Rows::public_row(i_row[mt], j_hi) : 0;
      const float inv_lo = 1.f / Rows::phi_weight(i_row[mt], j_lo), inv_hi = 1.f / Rows::phi_weight(i_row[mt], j_hi);
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        const int col = on ? nt * 8 + 2 * tq : 0;
        const float x0 = gS0[r_lo * kE + col], x1 = gS0[r_lo * kE + col + (on ? 1 : 0)];
        const float x2 = gS0[r_hi * kE + col], x3 = gS0[r_hi * kE + col + (on ? 1 : 0)];
        acc[mt][4 * nt + 0] = on ? x0 * inv_lo : 0.f;
        acc[mt][4 * nt + 1] = on ? x1 * inv_lo : 0.f;
        acc[mt][4 * nt + 2] = on ? x2 * inv_hi : 0.f;
        acc[mt][4 * nt + 3] = on ? x3 * inv_hi : 0.f;
      }
      const float zl = gZ0[r_lo], zh = gZ0[r_hi];
      const float z_lo = on ? zl * inv_lo : 0.f, z_hi = on ? zh * inv_hi : 0.f;
      accz[mt][0] = accz[mt][1] = z_lo;
      accz[mt][2] = accz[mt][3] = z_hi;
    }
  }

  // ---- consumers: S_enter[n] = pad_weight * u (x 2^-s for fp16) and z into the workspace -----------------
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
        for (int x = 0; x < kE / 2; ++x) m = fmaxf(m, fabsf(acc[mt][x]) * pw);
#pragma unroll
        for (int x = 0; x < 4; ++x) m = fmaxf(m, fabsf(accz[mt][x]) * pw);
      }
      const auto sync = [] { bar_sync(kBarMax, kStateWgConsumers * kWarpSize); };
      shift = entering_scale_shift<kStateWgConsumers>(m, sm.warp_max, warp, sync);
      if (threadIdx.x == 0) workspace.scales[slot * kScaleTiles + cta] = shift;
      // warp_max is rewritten at the next chunk start, after its kBarGates sync
    }
    // Through shared memory: each warp stores its 16 rows with stmatrix (in entering_offset order: no bank
    // conflicts); then the gate warp copies the staged rows out with one bulk copy (kBulkOut), or the warpgroup
    // copies them out as they lie, 16 contiguous bytes per thread and access. Direct 4-byte stores from the
    // accumulators (32 per thread and chunk, eight 16-byte pieces per warp store) cost ~2.4 us per chunk at
    // p = 2; the bulk copy cost ~1.2 us per chunk while the MMA warps still issued cp.async (their proxy fence
    // waited for those copies; bench/RESULTS.md, session 4).
    constexpr int kRounds = kEnterRounds, kMtPerRound = kMt / kRounds;
    constexpr int kRoundTiles = kStagingRows / kMmaTile;
    constexpr int kCols = kEnterCols;
    T* gW = entering_dst(n);
    const int lane_row = (lane & 7) + ((lane >> 3) & 1) * 8, lane_piece = lane >> 4;  // stmatrix's addresses
    // 16-byte pieces of the staging buffer, per thread, copied in batches of at most 4 pieces in registers, or one
    // batch of 5 (64 rows at e = 64: 4.5 per thread; batches of 4 made that two, and the p = 1 walk, which waits for
    // every chunk start, slower; 5 in registers at 128 rows spills at 168 registers)
    constexpr int kPieces = kStagingRows * kCols / 8;
    constexpr int kPiecesExact = (kPieces + kConsumerThreads - 1) / kConsumerThreads;
    constexpr int kCopyRounds = kPiecesExact <= 5 ? 1 : (kPiecesExact + 3) / 4;
    constexpr int kCopyBatch = (kPiecesExact + kCopyRounds - 1) / kCopyRounds;
    constexpr int kPiecesPerThread = kCopyRounds * kCopyBatch;
#pragma unroll
    for (int round = 0; round < kRounds; ++round) {
      if (round > 0) bar_sync(kBarMax, kConsumerThreads);  // the last round's staged rows were read
#pragma unroll
      for (int m = 0; m < kMtPerRound; ++m) {
        const int mt = round * kMtPerRound + m;
        if (!active[mt]) continue;
        const float pw = Rows::pad_weight(i_row[mt], jb[mt]);
        const float f = kScaled ? entering_factor(pw, shift) : pw;
        const int row = (m * kStateWgConsumers + warp) * kMmaTile + lane_row;  // == the head's row mod 16
#pragma unroll
        for (int nt = 0; nt < kNt; nt += 2) {
          const uint32_t x[4] = {pack2<T>(f * acc[mt][4 * nt + 0], f * acc[mt][4 * nt + 1]),
                                 pack2<T>(f * acc[mt][4 * nt + 2], f * acc[mt][4 * nt + 3]),
                                 pack2<T>(f * acc[mt][4 * nt + 4], f * acc[mt][4 * nt + 5]),
                                 pack2<T>(f * acc[mt][4 * nt + 6], f * acc[mt][4 * nt + 7])};
          stmatrix_x4(&sm.staging[0] + entering_offset<kE>(row, (nt + lane_piece) * 8), x);
        }
        if (tq == 0) {  // z of rows g and g + 8: a core-matrix row (z, 0, ..., 0) each
          const int zrow = (m * kStateWgConsumers + warp) * kMmaTile + g;
          store_entering_z<T, kE>(&sm.staging[0], zrow, f * accz[mt][0]);
          store_entering_z<T, kE>(&sm.staging[0], zrow + 8, f * accz[mt][2]);
        }
      }
      if constexpr (kBulkOut) {
        fence_proxy_async_shared();  // the staged rows before the gate warp's bulk copy reads them
        return;
      }
      bar_sync(kBarMax, kConsumerThreads);  // staged
      const int pieces = (std::min(valid_tiles, (round + 1) * kRoundTiles) - round * kRoundTiles) * kMmaTile * (kCols / 8);
      const uint4* src = reinterpret_cast<const uint4*>(&sm.staging[0]);
      uint4* dst = reinterpret_cast<uint4*>(gW + round * kStagingRows * kCols);
#pragma unroll
      for (int b0 = 0; b0 < kPiecesPerThread; b0 += kCopyBatch) {
        uint4 x[kCopyBatch];
#pragma unroll
        for (int i = 0; i < kCopyBatch; ++i) {
          const int idx = threadIdx.x + (b0 + i) * kConsumerThreads;
          if (idx < pieces) x[i] = src[idx];
        }
#pragma unroll
        for (int i = 0; i < kCopyBatch; ++i) {
          const int idx = threadIdx.x + (b0 + i) * kConsumerThreads;
          if (idx < pieces) dst[idx] = x[i];
        }
      }
    }
  };

  // ---- the warpgroup: prologue --------------------------------------------------------------------------
  for (int x = threadIdx.x; x < 8 * 16; x += kConsumerThreads) sm.ones[x] = from_float<T>(1.f);
  fence_proxy_async_shared();  // st.shared before wgmma reads it (the async proxy)
  // descriptors of stage 0, k-step 0; stage st, step s: + (st kVBytes + s 16 e 2) / 16
  const uint64_t desc_v0 = wg::mn_desc<T, kE>(sm.v[0]);
  const uint64_t desc_ones = wg::k8_desc<T>(sm.ones);

  constexpr int kARing = kE == 128 ? 2 : 4;
  static_assert((kTt / kMmaTile) % kARing == 0, "a tile's steps use the sets in order");
  uint32_t a[kARing][kMt][4];  // A fragments of the last kARing k-steps (in flight while the next is formed)
  int st = 0, pos0 = 0;
  uint32_t lap = 0;  // completed passes over the ring
  int64_t n = 0;
  for (int64_t q = 0; q < n_tiles; ++q) {
    // tile q landed: every copy thread's pieces (cp.async writes need no proxy fence before wgmma reads them, as
    // CUTLASS's cp.async GMMA mainloops rely on)
    mbar_wait(&sm.full[st], lap & 1);
    if (pos0 == 0) {  // ---- chunk n starts: its gates, S_enter[n], then u *= decay ------------------------
      bar_sync(kBarGates, kStateWgBarThreads);
      wg::wait<0>();
      settle();
      if (!(kDiag & kDiagNoChunkWork) && (n > 0 || problem.s0 != nullptr)) write_entering(n);
      bar_arrive(kBarStarted, kStateWgBarThreads);
      const float decay = (kDiag & kDiagNoChunkWork) ? 1.f : sm.decay[n & 1];
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
#pragma unroll
        for (int x = 0; x < kE / 2; ++x) acc[mt][x] *= decay;
#pragma unroll
        for (int x = 0; x < 4; ++x) accz[mt][x] *= decay;
      }
    }

    const uint32_t* gamma2 = sm.gamma2[n & 1] + pos0 / 2;
    if constexpr (kGkTable && !(kDiag & kDiagNoTable)) {
      // The warp's multipliers of the tile, once per token instead of once per fragment and step: lane l forms
      // (gamma k[i]) of tokens l and l + 32 per m-tile (two 16-bit loads, a pack, a packed multiply, two 16-bit
      // stores); the steps then read ready (2 m, 2 m + 1) pairs. Tokens l, l + 32 rather than 2 l, 2 l + 1: a
      // column of the swizzled K stage lies on 8 bank groups, so 32 consecutive tokens are a 4-way load and 32
      // even ones 8-way (the table's loads were 112 of the walk's ~230 excess shared wavefronts per tile,
      // docs/DESIGN.md, session 16); the stores of consecutive tokens are conflict-free.
      const uint16_t* gamma1 = reinterpret_cast<const uint16_t*>(gamma2);  // gamma of token pos0 + x
      const uint32_t gm = static_cast<uint32_t>(gamma1[lane]) | (static_cast<uint32_t>(gamma1[lane + 32]) << 16);
      __syncwarp();  // the warp's reads of the last tile's table are done (no block barrier per tile)
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
        const uint32_t off = state_wg_k_at<kD>(lane, i_row[mt]);  // token lane + 32: 4 whole 8-token groups on
        const uint32_t k2 = k_bits(st, off) | (k_bits(st, off + 32 * kD * 2) << 16);
        const uint32_t prod = mul2<T>(k2, gm);
        uint16_t* table = reinterpret_cast<uint16_t*>(sm.gk[warp][mt]);
        table[lane] = static_cast<uint16_t>(prod);
        table[lane + 32] = static_cast<uint16_t>(prod >> 16);
      }
      __syncwarp();
    }
    const uint64_t desc_st = desc_v0 + static_cast<uint64_t>(st * (Shared::kVBytes / 16));
    // Software-pipelined steps: the shared-memory loads of step s + 1 (K^T fragment by ldmatrix into its A
    // set, the gamma pairs, the k[i] halves) are issued before step s's products and MMAs, so their latency
    // hides behind that work (the wgmma fences are ordered asm: the compiler cannot hoist loads past them).
    struct Raw {
      uint32_t gm_lo, gm_hi;          // deg 1: the gamma pairs of the lane's tokens
      uint32_t k_lo[kMt], k_hi[kMt];  // deg 2: (gamma k_tok[i], gamma k_tok+1[i]) pairs of the lane's tokens
    };
    auto load_raw = [&](int s, Raw& r) {
      const int k0 = s * kMmaTile;
      uint32_t(&as)[kMt][4] = a[s % kARing];  // the caller waited for the MMAs that read it (step s - kARing)
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
        for (int x = 0; x < 4; ++x) wg::keep(as[mt][x]);
      if constexpr (kGkTable) {  // the multipliers from the warp's table: k_lo / k_hi hold gamma k[i]
        r.gm_lo = r.gm_hi = 0;
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt) {
          r.k_lo[mt] = sm.gk[warp][mt][(k0 + 2 * tq) / 2];
          r.k_hi[mt] = sm.gk[warp][mt][(k0 + 8 + 2 * tq) / 2];
          if constexpr ((kDiag & kDiagNoA) != 0) continue;
          a_trans(as[mt], st, mt, k0);
        }
      } else {
        r.gm_lo = gamma2[(k0 + 2 * tq) / 2];
        r.gm_hi = gamma2[(k0 + 8 + 2 * tq) / 2];
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt) {
          if constexpr ((kDiag & kDiagNoA) != 0) continue;
          a_trans(as[mt], st, mt, k0);
          if constexpr (kDeg == 2) {  // the lane's (k_tok[i], k_tok+1[i]) pairs (padded_rows.cuh's a_load), tokens
            // k0 + 2 tq (+ 1) and k0 + 8 + 2 tq (+ 1): 8-token groups apart, so linear in k0 from k_pair's offsets
            const uint32_t lo = k0 * kD * 2, hi = (k0 + 8) * kD * 2;
            r.k_lo[mt] = k_bits(st, k_pair[mt][0] + lo) | (k_bits(st, k_pair[mt][1] + lo) << 16);
            r.k_hi[mt] = k_bits(st, k_pair[mt][0] + hi) | (k_bits(st, k_pair[mt][1] + hi) << 16);
          }
        }
      }
    };
    Raw raw[2];
    wg::wait<kARing - 1>();  // committed since step -kARing (the last tile's step 0): kARing - 1 steps
    load_raw(0, raw[0]);
#pragma unroll
    for (int s = 0; s < kTt / kMmaTile; ++s) {
      uint32_t(&as)[kMt][4] = a[s % kARing];
      const Raw& r = raw[s % 2];
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
        if constexpr ((kDiag & kDiagNoA) != 0) continue;
        if constexpr (kGkTable)
          Rows::template a_multiply<T>(as[mt], r.k_lo[mt], r.k_hi[mt]);
        else
          Rows::template a_scale<T>(as[mt], r.k_lo[mt], r.k_hi[mt], r.gm_lo, r.gm_hi);
#pragma unroll
        for (int x = 0; x < 4; ++x) wg::keep(as[mt][x]);  // formed before the fence
      }
      if (s + 1 < kTt / kMmaTile) {  // step s + 1's loads in flight; step s is not committed yet, so
        wg::wait<kARing - 2>();      // kARing - 2 steps were committed after step s + 1 - kARing
        // at step kARing - 2 that leaves only this tile's MMAs in flight: tile q - 1's stage is free. Every
        // lane arrives, so the release orders each lane's own reads of the stage (ldmatrix, the multiplier
        // table) before the copies that refill it: with one arrival per warp after a warp barrier, racecheck
        // still reported those write-after-read pairs (12 hazards at ad87027, session 12).
        if (s == kARing - 2 && q > 0) mbar_arrive(&sm.empty[st == 0 ? kStages - 1 : st - 1]);
        load_raw(s + 1, raw[(s + 1) % 2]);
      }
      wg::fence();
      const uint64_t desc = desc_st + static_cast<uint64_t>(s * (kMmaTile * kE * 2 / 16));
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
        if constexpr ((kDiag & kDiagNoMma) != 0) continue;
        wg::mma_rs<T, kE, kMajorV>(acc[mt], as[mt], desc);
        wg::mma_rs<T, 8, kMajorOnes>(accz[mt], as[mt], desc_ones);
      }
      wg::commit();
    }
    if (++st == kStages) {
      st = 0;
      ++lap;
    }
    pos0 += kTt;
    if (pos0 == c) {
      pos0 = 0;
      ++n;
    }
  }
  wg::wait<0>();
  settle();

  // ---- the final state S = w u, z = w z_u (fp32, public rows i <= j) -----------------------------------
  if (problem.s_out != nullptr) {
    float* gS = problem.s_out + bh * problem.D * kE;
    float* gZ = problem.z_out + bh * problem.D;
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
      if (!active[mt]) continue;
      Rows::template write_final<kE, kNt>(
          gS, gZ, i_row[mt], jb[mt], g, tq, 0, tq == 0, [&](int nt, int q) { return acc[mt][4 * nt + q]; },
          [&](int half) { return accz[mt][2 * half]; });
    }
  }
#endif
}

template <typename T, int kD, int kE, int kDeg, int kStages>
void launch_chunk_state_wgmma_ring(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                                   int64_t blocks, cudaStream_t stream) {
  constexpr int kSmem = state_wg_smem<T, kD, kE, kDeg, kStages>();
  const auto kernel = chunk_state_wgmma_kernel<T, kD, kE, kDeg, kStages>;
  static SmemOptIn smem_opt_in;  // one per instantiation of this launcher, i.e. per kernel
  smem_opt_in.ensure(kernel, kSmem, problem.device, "chunk_state_wgmma");
  const dim3 grid(grid_x(blocks, "chunk_state_wgmma"));
  kernel<<<grid, kStateWgThreads, kSmem, stream>>>(problem, workspace);
  POWERRET_CUDA_CHECK_LAUNCH("chunk_state_wgmma");
}

template <typename T, int kD, int kE, int kDeg>
void launch_chunk_state_wgmma(const detail::ForwardProblem& problem, const MmaWorkspace& workspace,
                              cudaStream_t stream) {
  const int64_t blocks = problem.b * problem.h * PaddedRows<kD, kDeg>::kRowTiles;
  constexpr int kDeep = state_wg_deep_stages<T, kD, kE, kDeg>();
  if constexpr (kDeep != kStateWgStages) {
    if (blocks <= sm_count(problem.device)) {
      launch_chunk_state_wgmma_ring<T, kD, kE, kDeg, kDeep>(problem, workspace, blocks, stream);
      return;
    }
  }
  launch_chunk_state_wgmma_ring<T, kD, kE, kDeg, kStateWgStages>(problem, workspace, blocks, stream);
}

}  // namespace powerret::cuda
