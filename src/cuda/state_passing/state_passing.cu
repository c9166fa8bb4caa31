// state_passing (= retention discumsum): per (b, kv head), a sequential scan over the chunks, fp32,
//   S_enter[0] = S0 (or 0);   S_enter[n+1] = decay_chunk[n] * S_enter[n] + S_loc[n]     (D, e)
//   z likewise (D). In place: workspace.states[b, h, n] holds S_loc[n] on entry and S_enter[n] on
//   exit (zs likewise); S_out = S_enter[n_chunks] (the state after the last token) when requested.
//   torch: for n in range(N): S_loc[n], S = S.clone(), decay[n] * S + S_loc[n]
// A reset chunk has decay_chunk 0 and multiplies like exp(-inf) in SPEC §2's recurrence.
// Elementwise over the D e + D numbers of one (b, h): grid (ceil((D e + D) / 256), min(b h, 65535));
// thread idx < D e carries S[idx], the rest z[idx - D e]; blocks stride over (b, h) in y.
#include <algorithm>
#include <cstdint>

#include "cuda/common/check.hpp"
#include "cuda/common/limits.hpp"
#include "cuda/state_passing/state_passing.hpp"

namespace powerret::cuda {
namespace {

constexpr int kStatePassingThreads = 256;

__global__ void __launch_bounds__(kStatePassingThreads)
    state_passing_kernel(detail::ForwardProblem problem, ForwardWorkspace workspace) {
  const int64_t D = problem.D, De = problem.D * problem.e, n_chunks = problem.n_chunks;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kStatePassingThreads + threadIdx.x;
  if (idx >= De + D) return;
  const bool in_s = idx < De;
  const int64_t offset = in_s ? idx : idx - De;  // element of S (D, e) or of z (D)
  const int64_t size = in_s ? De : D;            // elements of one state
  float* const chunk_states = in_s ? workspace.states : workspace.zs;
  const float* const initial = in_s ? problem.s0 : problem.z0;
  float* const final_state = in_s ? problem.s_out : problem.z_out;

  for (int64_t bh = blockIdx.y; bh < problem.b * problem.h; bh += gridDim.y) {
    float* gState = chunk_states + bh * n_chunks * size + offset;  // chunk n at gState[n size]
    const float* gDecay = workspace.decays + bh * n_chunks;
    float state = initial != nullptr ? initial[bh * size + offset] : 0.f;
    for (int64_t n = 0; n < n_chunks; ++n) {
      const float local = gState[n * size];
      gState[n * size] = state;
      state = fmaf(gDecay[n], state, local);
    }
    if (final_state != nullptr) final_state[bh * size + offset] = state;
  }
}

}  // namespace

void launch_state_passing(const detail::ForwardProblem& problem, const ForwardWorkspace& workspace,
                          cudaStream_t stream) {
  const int64_t per_head = problem.D * problem.e + problem.D;
  const dim3 grid(grid_x((per_head + kStatePassingThreads - 1) / kStatePassingThreads, "state_passing"),
                  static_cast<unsigned int>(std::min<int64_t>(problem.b * problem.h, kMaxGridY)));
  state_passing_kernel<<<grid, kStatePassingThreads, 0, stream>>>(problem, workspace);
  POWERRET_CUDA_CHECK_LAUNCH("state_passing");
}

}  // namespace powerret::cuda
