// wgmma_check: the building block the next forward kernels need, checked on its own before any kernel
// is ported to it (bench/diag/wgmma_check.sh builds and runs it on the GPU machine; sm_90a only).
//
//   D (64 x 64, fp32) = A (64 x K) B (K x 64), bf16 operands, K = 64 (four k16 steps), one warpgroup
//   A in registers (wgmma "RS": what the phi expansion produces), B in shared memory, N-contiguous
//   (MN-major, 128-byte swizzle; the layout of V and of the entering states W), through CuTe's
//   SM90_64x64x16_F32BF16BF16_RS atom.
//
// Checks, each printed as PASS / FAIL:
//   1. D against a float64 product of the same bf16 values (relative Frobenius error < 1e-5).
//   2. The register layout of A: whether thread (warp w, lane l) holds, in register r, the element the
//      mma.sync m16n8k16 A fragment would (rows 16 w + g (+8), columns 2 t (+1) (+8) of each k16 step,
//      g = l / 4, t = l % 4). If it does, the existing per-lane phi code (cuda/common/mma.cuh) feeds
//      wgmma unchanged.
//   3. The accumulator layout: (row 16 w + g (+8), column 8 j + 2 t (+1)) for register 4 j + (0..3).
// Then a throughput loop: every SM runs 64x64x64 RS steps on data in registers / shared memory;
// reported as FLOP per clock per SM next to mma.sync's ~963 measured on chunk_output_mma.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <cute/tensor.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>

using namespace cute;

namespace wgmma_check {

constexpr int kM = 64, kN = 64, kK = 64;
using Elem = cute::bfloat16_t;
using SmemLayoutB = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<Elem>{}, make_shape(Int<kN>{}, Int<kK>{})));
using Mma = decltype(make_tiled_mma(SM90_64x64x16_F32BF16BF16_RS<GMMA::Major::K, GMMA::Major::MN>{}));

struct Layouts {  // per thread and register: the coordinates CuTe assigns, for checks 2 and 3
  int a_row[128][32], a_col[128][32], a_regs;
  int c_row[128][32], c_col[128][32], c_regs;
};

__global__ void __launch_bounds__(128) check_kernel(const __nv_bfloat16* gA, const __nv_bfloat16* gB,
                                                    float* gD, Layouts* layouts) {
  __shared__ __align__(1024) Elem smem_b[kN * kK];
  Mma mma;
  auto thr = mma.get_thread_slice(threadIdx.x);

  // B: global [K][N] row-major (N contiguous) -> shared (N, K) in the swizzled MN-major layout
  Tensor sB = make_tensor(make_smem_ptr(smem_b), SmemLayoutB{});
  for (int x = threadIdx.x; x < kN * kK; x += 128) {
    const int k = x / kN, n = x % kN;
    sB(n, k) = Elem(__bfloat162float(gB[k * kN + n]));
  }
  __syncthreads();

  // A: registers, filled from the coordinates CuTe gives each register (a real kernel computes them)
  Tensor cA = make_identity_tensor(make_shape(Int<kM>{}, Int<kK>{}));  // (M, K) -> (m, k)
  Tensor tCcA = thr.partition_A(cA);
  Tensor tCrA = thr.partition_fragment_A(make_tensor(make_gmem_ptr(gA), make_layout(make_shape(Int<kM>{}, Int<kK>{}), LayoutRight{})));
  for (int i = 0; i < size(tCrA); ++i) {
    const int m = get<0>(tCcA(i)), k = get<1>(tCcA(i));
    tCrA(i) = Elem(__bfloat162float(gA[m * kK + k]));
    if (i < 32) {
      layouts->a_row[threadIdx.x][i] = m;
      layouts->a_col[threadIdx.x][i] = k;
    }
  }
  if (threadIdx.x == 0) layouts->a_regs = size(tCrA);

  Tensor tCsB = thr.partition_B(sB);
  Tensor tCrB = thr.make_fragment_B(tCsB);  // shared-memory descriptors
  Tensor cC = make_identity_tensor(make_shape(Int<kM>{}, Int<kN>{}));
  Tensor tCcC = thr.partition_C(cC);
  Tensor tCrC = thr.partition_fragment_C(make_tensor(make_gmem_ptr(gD), make_layout(make_shape(Int<kM>{}, Int<kN>{}), LayoutRight{})));
  clear(tCrC);

  warpgroup_fence_operand(tCrA);
  warpgroup_fence_operand(tCrC);
  warpgroup_arrive();
  gemm(mma, tCrA, tCrB, tCrC);  // all k16 steps
  warpgroup_commit_batch();
  warpgroup_wait<0>();
  warpgroup_fence_operand(tCrC);

  for (int i = 0; i < size(tCrC); ++i) {
    const int m = get<0>(tCcC(i)), n = get<1>(tCcC(i));
    gD[m * kN + n] = tCrC(i);
    if (i < 32) {
      layouts->c_row[threadIdx.x][i] = m;
      layouts->c_col[threadIdx.x][i] = n;
    }
  }
  if (threadIdx.x == 0) layouts->c_regs = size(tCrC);
}

// Throughput: `iters` rounds of D += A B (64 x 64 x 64) per warpgroup, kWarpgroups per block.
constexpr int kWarpgroups = 2;
__global__ void __launch_bounds__(128 * kWarpgroups) rate_kernel(int iters, float* sink) {
  __shared__ __align__(1024) Elem smem_b[kWarpgroups][kN * kK];
  const int wg = threadIdx.x / 128;
  Mma mma;
  auto thr = mma.get_thread_slice(threadIdx.x % 128);
  Tensor sB = make_tensor(make_smem_ptr(smem_b[wg]), SmemLayoutB{});
  for (int x = threadIdx.x % 128; x < kN * kK; x += 128) sB(x % kN, x / kN) = Elem(0.001f * (x % 7));
  __syncthreads();
  Tensor tCrA = thr.partition_fragment_A(make_tensor(make_gmem_ptr(static_cast<Elem*>(nullptr)),
                                                      make_layout(make_shape(Int<kM>{}, Int<kK>{}), LayoutRight{})));
  for (int i = 0; i < size(tCrA); ++i) tCrA(i) = Elem(0.01f * ((i + threadIdx.x) % 5));
  Tensor tCrB = thr.make_fragment_B(thr.partition_B(sB));
  Tensor tCrC = thr.partition_fragment_C(make_tensor(make_gmem_ptr(sink), make_layout(make_shape(Int<kM>{}, Int<kN>{}), LayoutRight{})));
  clear(tCrC);
  warpgroup_fence_operand(tCrA);
  for (int it = 0; it < iters; ++it) {
    warpgroup_fence_operand(tCrC);
    warpgroup_arrive();
    gemm(mma, tCrA, tCrB, tCrC);
    warpgroup_commit_batch();
    warpgroup_wait<1>();  // one batch in flight while the next is issued
  }
  warpgroup_wait<0>();
  warpgroup_fence_operand(tCrC);
  float s = 0.f;
  for (int i = 0; i < size(tCrC); ++i) s += tCrC(i);
  if (s == 12345.f) sink[threadIdx.x] = s;  // keeps the loop
}

bool report(const char* what, bool ok, const char* detail) {
  std::printf("%s %s: %s\n", ok ? "PASS" : "FAIL", what, detail);
  return ok;
}

}  // namespace wgmma_check

int main() {
  using namespace wgmma_check;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<__nv_bfloat16> hA(kM * kK), hB(kK * kN);
  for (auto& x : hA) x = __float2bfloat16(uni(rng));
  for (auto& x : hB) x = __float2bfloat16(uni(rng));
  __nv_bfloat16 *dA, *dB;
  float *dD, *dSink;
  Layouts* dL;
  cudaMalloc(&dA, hA.size() * 2);
  cudaMalloc(&dB, hB.size() * 2);
  cudaMalloc(&dD, kM * kN * 4);
  cudaMalloc(&dSink, 1024 * 4);
  cudaMalloc(&dL, sizeof(Layouts));
  cudaMemcpy(dA, hA.data(), hA.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dB, hB.data(), hB.size() * 2, cudaMemcpyHostToDevice);
  cudaMemset(dD, 0xff, kM * kN * 4);  // NaN: a missed output shows
  check_kernel<<<1, 128>>>(dA, dB, dD, dL);
  if (cudaError_t err = cudaDeviceSynchronize(); err != cudaSuccess) {
    std::printf("FAIL check_kernel: %s\n", cudaGetErrorString(err));
    return 1;
  }
  std::vector<float> hD(kM * kN);
  auto* hL = new Layouts;
  cudaMemcpy(hD.data(), dD, hD.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(hL, dL, sizeof(Layouts), cudaMemcpyDeviceToHost);

  double num = 0, den = 0;
  for (int m = 0; m < kM; ++m)
    for (int n = 0; n < kN; ++n) {
      double ref = 0;
      for (int k = 0; k < kK; ++k)
        ref += double(__bfloat162float(hA[m * kK + k])) * double(__bfloat162float(hB[k * kN + n]));
      num += (hD[m * kN + n] - ref) * (hD[m * kN + n] - ref);
      den += ref * ref;
    }
  char buf[256];
  const double rel = std::sqrt(num / den);
  std::snprintf(buf, sizeof buf, "rel err %.3g (64x64x64, A in registers, B MN-major SW128 in shared memory)", rel);
  bool ok = report("1 product", std::isfinite(rel) && rel < 1e-5, buf);

  // 2. A: register r of thread (w, l): k16 step s = r / 8, within it r % 8 = the mma.sync A fragment's
  // 8 values a[0].lo, a[0].hi, a[1].lo, ... (rows g, g+8; columns 2t, 2t+1, 2t+8, 2t+9)
  int bad_a = 0;
  for (int tid = 0; tid < 128; ++tid)
    for (int r = 0; r < std::min(hL->a_regs, 32); ++r) {
      const int w = tid / 32, g = (tid % 32) / 4, t = tid % 4, s = r / 8, v = r % 8;
      const int reg = v / 2, half = v % 2;  // a[reg], low / high 16 bits
      const int row = 16 * w + g + ((reg & 1) ? 8 : 0);
      const int col = 16 * s + 2 * t + half + ((reg & 2) ? 8 : 0);
      bad_a += hL->a_row[tid][r] != row || hL->a_col[tid][r] != col;
    }
  std::snprintf(buf, sizeof buf, "%d of %d registers differ from the mma.sync A fragment order (%d per thread)",
                bad_a, 128 * std::min(hL->a_regs, 32), hL->a_regs);
  ok &= report("2 A layout", bad_a == 0, buf);
  if (bad_a)
    for (int r = 0; r < 8; ++r) std::printf("  thread 0 reg %d -> (m %d, k %d)\n", r, hL->a_row[0][r], hL->a_col[0][r]);

  // 3. C: register 4 j + v of thread (w, l): row 16 w + g (+8 for v >= 2), column 8 j + 2 t + (v & 1)
  int bad_c = 0;
  for (int tid = 0; tid < 128; ++tid)
    for (int r = 0; r < std::min(hL->c_regs, 32); ++r) {
      const int w = tid / 32, g = (tid % 32) / 4, t = tid % 4, j = r / 4, v = r % 4;
      const int row = 16 * w + g + (v >= 2 ? 8 : 0), col = 8 * j + 2 * t + (v & 1);
      bad_c += hL->c_row[tid][r] != row || hL->c_col[tid][r] != col;
    }
  std::snprintf(buf, sizeof buf, "%d of %d registers differ from the m16n8 accumulator order (%d per thread)", bad_c,
                128 * std::min(hL->c_regs, 32), hL->c_regs);
  ok &= report("3 C layout", bad_c == 0, buf);

  // throughput
  int sms = 0, clock_khz = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  const int iters = 20000;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  rate_kernel<<<sms, 128 * kWarpgroups>>>(100, dSink);  // warm-up
  cudaEventRecord(e0);
  rate_kernel<<<sms, 128 * kWarpgroups>>>(iters, dSink);
  cudaEventRecord(e1);
  if (cudaError_t err = cudaEventSynchronize(e1); err != cudaSuccess) {
    std::printf("FAIL rate_kernel: %s\n", cudaGetErrorString(err));
    return 1;
  }
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  const double flops = 2.0 * kM * kN * kK * iters * kWarpgroups * sms;
  const double tflops = flops / (ms * 1e-3) / 1e12;
  std::printf("RATE RS wgmma 64x64x64 bf16: %.1f TFLOP/s on %d SMs (%.0f FLOP/clk/SM at the %d MHz attribute "
              "clock; mma.sync on chunk_output_mma: ~963)\n",
              tflops, sms, flops / (ms * 1e-3) / sms / (clock_khz * 1e3), clock_khz / 1000);
  return ok ? 0 : 2;
}
