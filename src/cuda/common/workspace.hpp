// workspace: the scratch of the GPU forward, carved from the caller's buffer (forward_workspace_bytes
// of it; the library never allocates). Two layouts, one per path (docs/DESIGN.md "GPU forward"):
//
// CUDA-core path (fp32 inputs, deg 3-4, configurations a ci build leaves out), regions 256-byte aligned:
//   states [b, h, n_chunks, D, e] fp32   chunk_state writes each chunk's local state
//                                        sum_j decay(j -> last) phi(k_j) v_j^T; state_passing
//                                        overwrites it in place with the state entering the chunk
//   zs     [b, h, n_chunks, D]    fp32   the same for the normaliser z
//   decays [b, h, n_chunks]       fp32   decay(enter -> last) of each chunk (0 where it resets)
//
// Tensor-core path (fp16 / bf16, deg 1-2): chunk_state_mma writes the state entering each chunk in
// the padded row order of cuda/common/padded_rows.cuh (P = padded_state_rows(d, deg) rows), 16-bit:
//   states [b, h, n_chunks, P, e + 8]  T  W = pad_weight * u * 2^-scale   (u: unweighted state) in columns
//                                         0 .. e - 1, the same for z in column e, 0 after it; each (b, h, n) in
//                                         the wgmma B layout (entering_offset, padded_rows.cuh)
//   scales [b, h, n_chunks, ceil(P / 128)] int32   per 128-row tile: the power-of-two exponent that keeps
//                                         the tile inside fp16's range (0 and unused for bf16)
//   ready  [b, h, n_chunks]        int32  how many of the head's state blocks have written chunk n's
//                                         entering state; zeroed before each call, chunk_output_mma
//                                         (launched to overlap chunk_state_mma) waits for all of them
#pragma once

#include <cstddef>
#include <cstdint>

#include "api/problem.hpp"

namespace powerret::cuda {

struct ForwardWorkspace {
  float* states = nullptr;  // [b, h, n_chunks, D, e]
  float* zs = nullptr;      // [b, h, n_chunks, D]
  float* decays = nullptr;  // [b, h, n_chunks]
};

// The tensor-core path's entering states (see the header; T is q's 16-bit dtype).
struct MmaWorkspace {
  void* states = nullptr;    // [b, h, n_chunks, P, e + 8]  T (W | z | 0)
  int32_t* scales = nullptr;  // [b, h, n_chunks, ceil(P / kMmaScaleRows)]
  int32_t* ready = nullptr;   // [b, h, n_chunks] state blocks that have written S_enter[n] (zeroed per call)
};

inline constexpr std::size_t kWorkspaceAlign = 256;
inline constexpr int kMmaTile = 16;        // rows of an m-tile; columns of a k-step
inline constexpr int kMmaScaleRows = 128;  // rows of one chunk_state_mma block: one fp16 scale each

// The padded rows of a (d, deg) state on the tensor-core path (cuda/common/padded_rows.cuh):
// deg 1: d; deg 2: 16 * 16 * nb (nb + 1) / 2 with nb = d / 16; 0 otherwise.
constexpr int64_t padded_state_rows(int64_t d, int deg) {
  const int64_t nb = d / kMmaTile;
  return deg == 1 ? d : deg == 2 ? kMmaTile * kMmaTile * nb * (nb + 1) / 2 : 0;
}

// The 128-row tiles of those rows: chunk_state_mma's blocks per head, and one fp16 scale each per chunk.
constexpr int64_t state_row_tiles(int64_t d, int deg) {
  return (padded_state_rows(d, deg) + kMmaScaleRows - 1) / kMmaScaleRows;
}

struct WorkspaceLayout {
  std::size_t states = 0, zs = 0, decays = 0, ready = 0;  // byte offsets
  std::size_t bytes = 0;                       // total
};

inline std::size_t align_up(std::size_t bytes) {
  return (bytes + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

inline WorkspaceLayout workspace_layout(const detail::ForwardProblem& problem) {
  const auto chunks = static_cast<std::size_t>(problem.b * problem.h * problem.n_chunks);
  const auto D = static_cast<std::size_t>(problem.D), e = static_cast<std::size_t>(problem.e);
  WorkspaceLayout layout;
  layout.states = 0;
  layout.zs = layout.states + align_up(chunks * D * e * sizeof(float));
  layout.decays = layout.zs + align_up(chunks * D * sizeof(float));
  layout.bytes = layout.decays + align_up(chunks * sizeof(float));
  return layout;
}

// The tensor-core path: states (with z) and scales (byte offsets in the same WorkspaceLayout fields: decays holds
// the scales; zs is unused).
inline WorkspaceLayout mma_workspace_layout(const detail::ForwardProblem& problem) {
  const auto chunks = static_cast<std::size_t>(problem.b * problem.h * problem.n_chunks);
  const auto rows = static_cast<std::size_t>(padded_state_rows(problem.d, problem.deg));
  const auto cols = static_cast<std::size_t>(problem.e + 8);  // W, z, 0 (entering_offset)
  const auto tiles = static_cast<std::size_t>(state_row_tiles(problem.d, problem.deg));
  constexpr std::size_t kHalf = 2;  // bytes of fp16 / bf16
  WorkspaceLayout layout;
  layout.states = 0;
  layout.decays = layout.states + align_up(chunks * rows * cols * kHalf);  // the scales
  layout.ready = layout.decays + align_up(chunks * tiles * sizeof(int32_t));
  layout.bytes = layout.ready + align_up(chunks * sizeof(int32_t));
  return layout;
}

inline MmaWorkspace carve_mma_workspace(const detail::ForwardProblem& problem, void* workspace) {
  const WorkspaceLayout layout = mma_workspace_layout(problem);
  auto* base = static_cast<unsigned char*>(workspace);
  return MmaWorkspace{
      .states = base + layout.states,
      .scales = reinterpret_cast<int32_t*>(base + layout.decays),
      .ready = reinterpret_cast<int32_t*>(base + layout.ready),
  };
}

// The regions of `workspace` (256-byte aligned, workspace_layout(problem).bytes long).
inline ForwardWorkspace carve_workspace(const detail::ForwardProblem& problem, void* workspace) {
  const WorkspaceLayout layout = workspace_layout(problem);
  auto* base = static_cast<unsigned char*>(workspace);
  return ForwardWorkspace{
      .states = reinterpret_cast<float*>(base + layout.states),
      .zs = reinterpret_cast<float*>(base + layout.zs),
      .decays = reinterpret_cast<float*>(base + layout.decays),
  };
}

}  // namespace powerret::cuda
