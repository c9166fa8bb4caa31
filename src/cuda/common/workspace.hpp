// workspace: the scratch of the three-stage GPU forward, carved from the caller's buffer
// (forward_workspace_bytes of it; the library never allocates). Regions, each 256-byte aligned:
//   states [b, h, n_chunks, D, e] fp32   chunk_state writes each chunk's local state
//                                        sum_j decay(j -> last) phi(k_j) v_j^T; state_passing
//                                        overwrites it in place with the state entering the chunk
//   zs     [b, h, n_chunks, D]    fp32   the same for the normaliser z
//   decays [b, h, n_chunks]       fp32   decay(enter -> last) of each chunk (0 where it resets)
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

inline constexpr std::size_t kWorkspaceAlign = 256;

struct WorkspaceLayout {
  std::size_t states = 0, zs = 0, decays = 0;  // byte offsets
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
