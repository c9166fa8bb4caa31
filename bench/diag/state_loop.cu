// state_loop: where chunk_state_wgmma's time per 64-token tile goes. Times the kernel alone (no output
// kernel beside it) at b = 1, t = 65536, h = 8, d = e = 64, bf16, gated, chunk 256, for p = 2 (160 blocks)
// and p = 1 (8 blocks: one per head, the latency of one block's walk), in variants that change the
// copy pipeline (stages of the K/V ring) or remove one part of the per-tile work (StateWgDiag bits).
// Results of a variant are not correct and not checked; the library only launches the defaults.
//   bench/diag/state_loop.sh     (sm_90a; builds with nvcc against src/ and the nvidia-cutlass wheel)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cuda/chunk_state/chunk_state_wgmma.cuh"

namespace {

using namespace powerret;
using namespace powerret::cuda;
using T = __nv_bfloat16;
constexpr int kD = 64, kE = 64;

#define CHECK(x)                                                                     \
  do {                                                                               \
    cudaError_t err_ = (x);                                                          \
    if (err_ != cudaSuccess) {                                                       \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

struct Buffers {
  T *k = nullptr, *v = nullptr;
  float* log_g = nullptr;
  void *states = nullptr;
  int32_t *scales = nullptr, *ready = nullptr;
};

template <int kDeg, int kStages, unsigned kDiag>
void run(const char* name, const Buffers& buf, int64_t t, int64_t h, int chunk) {
  using Rows = PaddedRows<kD, kDeg>;
  constexpr int kCtas = Rows::kRowTiles;
  detail::ForwardProblem p;
  p.b = 1;
  p.t = t;
  p.hq = p.h = h;
  p.d = kD;
  p.e = kE;
  p.D = kDeg == 1 ? kD : kD * (kD + 1) / 2;
  p.deg = kDeg;
  p.chunk = chunk;
  p.n_chunks = (t + chunk - 1) / chunk;
  p.dtype = DType::kBFloat16;
  p.k = buf.k;
  p.v = buf.v;
  p.log_g = buf.log_g;
  MmaWorkspace w{buf.states, buf.scales, buf.ready};
  const auto kernel = chunk_state_wgmma_kernel<T, kD, kE, kDeg, kStages, kDiag>;
  const int smem = state_wg_smem<T, kD, kE, kDeg, kStages>();
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid(static_cast<unsigned>(h * kCtas));
  kernel<<<grid, kStateWgThreads, smem>>>(p, w);  // warm-up
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int rep = 0; rep < 7; ++rep) {
    CHECK(cudaEventRecord(e0));
    kernel<<<grid, kStateWgThreads, smem>>>(p, w);
    CHECK(cudaEventRecord(e1));
    CHECK(cudaEventSynchronize(e1));
    float x = 0;
    CHECK(cudaEventElapsedTime(&x, e0, e1));
    ms.push_back(x);
  }
  std::sort(ms.begin(), ms.end());
  const double tiles = static_cast<double>((t + kStateMmaTokens - 1) / kStateMmaTokens);
  std::printf("p=%d %-34s stages %d smem %3d KB: %7.3f ms  %6.1f ns/tile\n", kDeg, name, kStages,
              smem / 1024, ms[ms.size() / 2], 1e6 * ms[ms.size() / 2] / tiles);
}

template <int kDeg>
void sweep(const Buffers& buf, int64_t t, int64_t h, int chunk) {
  constexpr int kS = state_wg_deep_stages<T, kD, kE, kDeg>();  // the ring at b = 1 (8 blocks at p = 1)
  run<kDeg, kS, 0>("default", buf, t, h, chunk);
  if constexpr (kS != 4) run<kDeg, 4, 0>("other stage count", buf, t, h, chunk);
  if constexpr (kS != 5) run<kDeg, 5, 0>("other stage count", buf, t, h, chunk);
  if constexpr (kS != 6) run<kDeg, 6, 0>("other stage count", buf, t, h, chunk);
  if constexpr (kDeg == 1 && kS != 8) run<kDeg, 8, 0>("other stage count", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoCopies>("no copies", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoMma>("no wgmma", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoA>("no A formation", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoChunkWork>("no chunk-start work", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoCopies | kDiagNoChunkWork>("no copies, no chunk work", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoMma | kDiagNoA>("no wgmma, no A (copies, barriers)", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoMma | kDiagNoA | kDiagNoCopies | kDiagNoChunkWork>("skeleton (barriers only)", buf,
                                                                                  t, h, chunk);
  run<kDeg, kS, kDiagNoPublish>("no publishing (gate warp)", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoMma | kDiagNoA | kDiagNoCopies | kDiagNoChunkWork | kDiagNoPublish>(
      "skeleton, no publishing", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoScan>("no gate scans", buf, t, h, chunk);
  run<kDeg, kS, kDiagNoTable>("no multiplier table", buf, t, h, chunk);
  constexpr unsigned kIdleGate =
      kDiagNoMma | kDiagNoA | kDiagNoCopies | kDiagNoChunkWork | kDiagNoPublish | kDiagNoScan;
  run<kDeg, kS, kIdleGate>("skeleton, idle gate warp", buf, t, h, chunk);
  run<kDeg, kS, kIdleGate | kDiagNoTable>("skeleton, idle gate warp, no table", buf, t, h, chunk);
}

}  // namespace

int main(int argc, char** argv) {
  // h: heads (default 8: 160 blocks, 28 SMs with two walks; 4: 80 lone walks); DEG: 1, 2 or 0 (both)
  const int64_t t = 65536, h = argc > 1 ? std::atoll(argv[1]) : 8;
  const int deg = argc > 2 ? std::atoi(argv[2]) : 0;
  const int chunk = 256;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> gate(0.85f, 1.f);
  std::vector<T> hk(t * h * kD), hv(t * h * kE);
  for (auto& x : hk) x = __float2bfloat16(normal(rng));
  for (auto& x : hv) x = __float2bfloat16(normal(rng));
  std::vector<float> hlg(t * h);
  for (auto& x : hlg) x = std::log(gate(rng));
  Buffers buf;
  const int64_t n_chunks = (t + chunk - 1) / chunk, rows = 2560;  // padded rows at d = 64, p = 2 (p = 1: 64)
  CHECK(cudaMalloc(&buf.k, hk.size() * sizeof(T)));
  CHECK(cudaMalloc(&buf.v, hv.size() * sizeof(T)));
  CHECK(cudaMalloc(&buf.log_g, hlg.size() * sizeof(float)));
  CHECK(cudaMalloc(&buf.states, h * n_chunks * rows * kEnteringCols<kE> * sizeof(T)));  // W | z | 0
  CHECK(cudaMalloc(&buf.scales, h * n_chunks * (rows / kMmaScaleRows) * sizeof(int32_t)));
  CHECK(cudaMalloc(&buf.ready, h * n_chunks * sizeof(int32_t)));
  CHECK(cudaMemset(buf.ready, 0, h * n_chunks * sizeof(int32_t)));
  CHECK(cudaMemcpy(buf.k, hk.data(), hk.size() * sizeof(T), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(buf.v, hv.data(), hv.size() * sizeof(T), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(buf.log_g, hlg.data(), hlg.size() * sizeof(float), cudaMemcpyHostToDevice));
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, chunk_state_wgmma alone, b=1 t=%lld h=%lld d=e=64 bf16 gated chunk %d (%lld tiles)\n", prop.name,
              static_cast<long long>(t), static_cast<long long>(h), chunk, static_cast<long long>(t / 64));
  if (deg != 1) sweep<2>(buf, t, h, chunk);
  if (deg != 2) sweep<1>(buf, t, h, chunk);
  return 0;
}
