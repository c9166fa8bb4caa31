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

#include "cuda/common/workspace.hpp"

namespace powerret::cuda {

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
};

}  // namespace powerret::cuda
