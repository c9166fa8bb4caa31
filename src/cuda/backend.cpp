// The CUDA backend's host side: the supported set, the chunk-size choice, the workspace size, and
// dispatch of each op to its kernels on the caller's stream (no allocation, no host sync).
//   forward, tensor-core path (fp16 / bf16, deg 1-2, built configurations):
//     chunk_state_mma -> chunk_output_mma, two launches
//   forward, CUDA-core path (fp32, deg 3-4, configurations a ci build leaves out):
//     chunk_state -> state_passing -> chunk_output, three launches        (docs/DESIGN.md "GPU forward")
#include "cuda/backend.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/chunk_output/chunk_output.hpp"
#include "cuda/chunk_output/chunk_output_mma.hpp"
#include "cuda/chunk_state/chunk_state.hpp"
#include "cuda/chunk_state/chunk_state_mma.hpp"
#include "cuda/common/check.hpp"
#include "cuda/common/limits.hpp"
#include "cuda/common/workspace.hpp"
#include "cuda/decode_step/decode_step.hpp"
#include "cuda/instantiations/built_dtypes.hpp"
#include "cuda/instantiations/built_mma.hpp"
#include "cuda/state_passing/state_passing.hpp"
#include "cuda/sympow/sympow.hpp"

namespace powerret::cuda {
namespace {

using detail::dtype_name;

// Ascending; both forward paths take every one, and results do not depend on the choice beyond
// rounding. CUDA-core path: tokens are staged 32 at a time and kMaxChunk bounds the shared gate
// arrays. Tensor-core path: chunk_state_mma stages tokens 64 at a time (c a multiple of 64) and
// chunk_output_mma takes min(c, 128) queries per block.
// Not below 64: on the H100 (2026-11-24) bf16 with chunk 16 reached 2.0x the low-precision
// baseline's error (SPEC §5's limit), as more of each output goes through the 16-bit entering state.
constexpr int kChunkSizes[] = {64, 128, 256};
static_assert(kChunkSizes[2] == kMaxChunk, "the largest chunk size sizes the kernels' gate arrays");
static_assert(kChunkSizes[0] % kStateMmaTokens == 0 && kChunkSizes[1] % kStateMmaTokens == 0 &&
                  kChunkSizes[2] % kStateMmaTokens == 0,
              "chunk_state_mma stages whole 64-token tiles");

// Whether the forward runs on the tensor-core kernels: fp16 / bf16 inputs, deg 1-2, this build carries the
// (dtype, d, e, deg) instantiation (every one in a full build), and the operands are aligned for the kernels'
// wide accesses: q, k, v 16-byte copies (validation guarantees only element alignment, e.g. a view that
// starts one element into a buffer), y 4-byte stores of two values. Otherwise the CUDA-core path, whose
// accesses are all scalar, computes the same forward. (Workspace sizes follow the same choice, and
// forward_workspace_bytes sees the same pointers as the call.)
bool uses_mma(const detail::ForwardProblem& problem) {
  const auto aligned = [](const void* p, std::uintptr_t bytes) {
    return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
  };
  return (problem.dtype == DType::kFloat16 || problem.dtype == DType::kBFloat16) &&
         mma_built(problem.dtype, problem.d, problem.e, problem.deg) && aligned(problem.q, 16) &&
         aligned(problem.k, 16) && aligned(problem.v, 16) && aligned(problem.y, 4);
}

// Launches the two tensor-core stages if (d, e, deg) == (kD, kE, kDeg) and they are built.
template <typename T, int kD, int kE, int kDeg>
bool launch_mma_if(const detail::ForwardProblem& problem, const MmaWorkspace& workspace, cudaStream_t stream) {
  constexpr DType kDtype = std::is_same_v<T, __half> ? DType::kFloat16 : DType::kBFloat16;
  if constexpr (mma_built(kDtype, kD, kE, kDeg)) {
    if (problem.d == kD && problem.e == kE && problem.deg == kDeg) {
      const auto ready_bytes = static_cast<std::size_t>(problem.b * problem.h * problem.n_chunks) * sizeof(int32_t);
      check_cuda(cudaMemsetAsync(workspace.ready, 0, ready_bytes, stream), "power_retention (workspace.ready)");
      launch_chunk_state_mma<T, kD, kE, kDeg>(problem, workspace, stream);
      launch_chunk_output_mma<T, kD, kE, kDeg>(problem, workspace, stream);  // overlaps the state stage
      return true;
    }
  }
  return false;
}
template <typename T, int kD, int kDeg>
bool launch_mma_e(const detail::ForwardProblem& problem, const MmaWorkspace& workspace, cudaStream_t stream) {
  return launch_mma_if<T, kD, 32, kDeg>(problem, workspace, stream) ||
         launch_mma_if<T, kD, 64, kDeg>(problem, workspace, stream) ||
         launch_mma_if<T, kD, 128, kDeg>(problem, workspace, stream);
}
template <typename T, int kDeg>
bool launch_mma_d(const detail::ForwardProblem& problem, const MmaWorkspace& workspace, cudaStream_t stream) {
  return launch_mma_e<T, 32, kDeg>(problem, workspace, stream) ||
         launch_mma_e<T, 64, kDeg>(problem, workspace, stream) ||
         launch_mma_e<T, 128, kDeg>(problem, workspace, stream);
}

template <typename T>
struct Tag {
  using type = T;
};

[[noreturn]] void not_built(const char* op, DType dtype) {
  throw Error(ErrorKind::kValue, std::string(op) + ": this build carries no " + dtype_name(dtype) +
                                     " CUDA kernels (built with POWERRET_INSTANTIATIONS=" + kInstantiationsName +
                                     ", which keeps only " + kBuiltDtypesText + "); rebuild with full instantiations");
}

// fn(Tag<T>{}) with T the CUDA element type of `dtype`, if this build carries its kernels.
template <typename Fn>
void dispatch_dtype(const char* op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16:
      if constexpr (kBuiltFloat16) return fn(Tag<__half>{});
      not_built(op, dtype);
    case DType::kBFloat16:
      if constexpr (kBuiltBFloat16) return fn(Tag<__nv_bfloat16>{});
      not_built(op, dtype);
    case DType::kFloat32:
      if constexpr (kBuiltFloat32) return fn(Tag<float>{});
      not_built(op, dtype);
    default:
      throw Error(ErrorKind::kType, std::string(op) + ": expected float16, bfloat16 or float32 on the GPU, got " +
                                        dtype_name(dtype));
  }
}

// Defensive: src/api validates all of this before calling; the kernels rely on it.
void check_supported(const char* op, int64_t d, int64_t e, int deg) {
  if (!supports(d, e, deg))
    throw Error(ErrorKind::kValue, std::string(op) + ": (d, e, deg) = (" + std::to_string(d) + ", " +
                                       std::to_string(e) + ", " + std::to_string(deg) +
                                       ") is not supported on the GPU: " + supported_text());
}

}  // namespace

bool supports(int64_t d, int64_t e, int deg) {
  const bool e_ok = e == 32 || e == 64 || e == 128;
  if (deg == 1 || deg == 2) return e_ok && (d == 32 || d == 64 || d == 128);
  if (deg == 3 || deg == 4) return e_ok && (d == 16 || d == 32);
  return false;
}

const char* supported_text() {
  return "the CUDA backend supports d, e in {32, 64, 128} with deg in {1, 2}, and d in {16, 32} with e in "
         "{32, 64, 128} and deg in {3, 4}";
}

const int* chunk_sizes(int* count) {
  *count = static_cast<int>(sizeof(kChunkSizes) / sizeof(kChunkSizes[0]));
  return kChunkSizes;
}

// Measured (H100, bf16, gated; bench/RESULTS.md, session 8: every shape at c = 64, 128, 256).
// Tensor-core path: 256, except deg 1 with at least 32 state walks (b h blocks per head), where 128 wins.
// At 256 the entering states written and read per chunk (2 P e bytes per chunk and head) halve and the
// state walk makes half as many chunk starts: that decides while a few walks bound the forward (b=1, h=8:
// deg 2 64k 1583 us vs 1779 at 128, deg 1 495 vs 804; b=1, h=16, deg 1: 366 vs 434). With many walks the
// GPU is full and deg 1's output kernel, mostly intra-chunk work (c (d + e) per token next to 2 P e = 128 e
// for the inter part), bounds it: deg 1 at 32 walks 294 vs 373 us (b=2, h=16, 16k), 374 vs 536 (d=128,
// b=4, h=8, 8k), at 128 walks 561 vs 751 (b=8, h=16, 8k), at 256 537 vs 759. deg 2 keeps 256 in every shape
// measured (b=8, h=16, 8k: 2793 vs 3148 us; d=128: 8456 vs 9980 at 64k).
// CUDA-core path (not measured): 128 for large states (D e > 2^18: d = 128 at deg 2, deg 3 and 4), where the
// intra-chunk work is small next to the state work and the per-chunk workspace halves; 64 otherwise.
int default_chunk(const detail::ForwardProblem& problem) {
  if (uses_mma(problem)) {
    constexpr int64_t kManyStateWalks = 32;
    const int64_t walks = problem.b * problem.h * state_row_tiles(problem.d, problem.deg);
    return problem.deg == 1 && walks >= kManyStateWalks ? 128 : 256;
  }
  return problem.D * problem.e > (int64_t{1} << 18) ? 128 : 64;
}

std::size_t forward_workspace_bytes(const detail::ForwardProblem& problem) {
  return uses_mma(problem) ? mma_workspace_layout(problem).bytes : workspace_layout(problem).bytes;
}

void sympow(const detail::SympowProblem& problem, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  dispatch_dtype("sympow", problem.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_sympow<T>(problem, s);
  });
}

void forward(const detail::ForwardProblem& problem, void* stream) {
  check_supported("power_retention", problem.d, problem.e, problem.deg);
  bool chunk_ok = false;
  std::string allowed;
  for (const int c : kChunkSizes) {
    chunk_ok |= c == problem.chunk;
    allowed += (allowed.empty() ? "" : ", ") + std::to_string(c);
  }
  if (!chunk_ok)
    throw Error(ErrorKind::kValue, "power_retention: chunk size " + std::to_string(problem.chunk) +
                                       " is not one of the GPU's {" + allowed + "}");
  if (problem.workspace == nullptr)
    throw Error(ErrorKind::kValue, "power_retention: the GPU forward needs a workspace of forward_workspace_bytes");
  const auto s = static_cast<cudaStream_t>(stream);
  const bool mma = uses_mma(problem);
  dispatch_dtype("power_retention", problem.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, float>) {
      if (mma) {
        const MmaWorkspace workspace = carve_mma_workspace(problem, problem.workspace);
        const bool launched = launch_mma_d<T, 1>(problem, workspace, s) || launch_mma_d<T, 2>(problem, workspace, s);
        if (!launched)  // unreachable: uses_mma() and the launchers read the same table
          throw Error(ErrorKind::kRuntime, "power_retention: no tensor-core kernel for this configuration");
        return;
      }
    }
    const ForwardWorkspace workspace = carve_workspace(problem, problem.workspace);
    launch_chunk_state<T>(problem, workspace, s);
    launch_state_passing(problem, workspace, s);
    launch_chunk_output<T>(problem, workspace, s);
  });
}

void decode_step(const detail::DecodeProblem& problem, void* stream) {
  check_supported("decode_step", problem.d, problem.e, problem.deg);
  const auto s = static_cast<cudaStream_t>(stream);
  dispatch_dtype("decode_step", problem.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_decode_step<T>(problem, s);
  });
}

}  // namespace powerret::cuda
