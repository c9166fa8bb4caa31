// cluster_floor: what a decode-shaped launch costs before it does any work (sm_90a). The batch-1 decode step
// is 128 CTAs of 256 threads in clusters of 16 (h = 8, D = 2080); its kernel takes ~10 us (ncu) and a step
// ~12.2 us, several times its ~2-3 memory latencies. This times near-empty kernels of that grid, with and
// without clusters, barriers and one memory round trip, the way powerret-bench times a step (CUDA events
// around each launch, median of 200) and as 200 launches back to back (per launch).
//   nvcc -std=c++20 -O3 -arch=sm_90a -o /tmp/cluster_floor bench/diag/cluster_floor.cu && /tmp/cluster_floor
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#define CHECK(x)                                                                      \
  do {                                                                                \
    cudaError_t err_ = (x);                                                           \
    if (err_ != cudaSuccess) {                                                        \
      std::printf("%s failed: %s\n", #x, cudaGetErrorString(err_));                   \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

enum Body : int { kEmpty = 0, kBarrier = 1, kLoad = 2, kLoadBarrier = 3, kLoadStoreBarrier = 4, kReleaseBarrier = 5 };

template <int kBody>
__global__ void __launch_bounds__(256, 3) floor_kernel(float* data, int cluster) {
  __shared__ float pad[1536];  // ~6 KB like the decode kernel
  float x = 0.f;
  if constexpr (kBody == kLoad || kBody == kLoadBarrier || kBody == kLoadStoreBarrier || kBody == kReleaseBarrier) {
    const float4* p = reinterpret_cast<const float4*>(data) + blockIdx.x * 2048 + threadIdx.x;
    float4 a[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) a[u] = __ldcs(p + u * 256);
#pragma unroll
    for (int u = 0; u < 8; ++u) x += a[u].x + a[u].y + a[u].z + a[u].w;
    if constexpr (kBody == kLoadStoreBarrier || kBody == kReleaseBarrier) {
      float4* q = reinterpret_cast<float4*>(data) + blockIdx.x * 2048 + threadIdx.x;
#pragma unroll
      for (int u = 0; u < 8; ++u) __stcs(q + u * 256, make_float4(x, x, x, x));
    }
  }
  pad[threadIdx.x] = x;
  if constexpr (kBody != kEmpty && kBody != kLoad) {
    if (cluster > 1) {
      if constexpr (kBody == kReleaseBarrier) asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
      else asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
      asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
    } else {
      __syncthreads();
    }
  }
  if (threadIdx.x == 0 && pad[(threadIdx.x + 1) % 256] == 12345.f) data[0] = 0.f;  // keep the work
}

template <int kBody>
void run(const char* name, float* data, int grid, int cluster) {
  auto kernel = floor_kernel<kBody>;
  if (cluster > 8) CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = cluster;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(256);
  config.attrs = cluster > 1 ? &attr : nullptr;
  config.numAttrs = cluster > 1 ? 1 : 0;
  auto launch = [&] { CHECK(cudaLaunchKernelEx(&config, kernel, data, cluster)); };
  for (int i = 0; i < 20; ++i) launch();
  constexpr int kIters = 200;
  std::vector<cudaEvent_t> ev(2 * kIters + 2);
  for (auto& e : ev) CHECK(cudaEventCreate(&e));
  for (int i = 0; i < kIters; ++i) {
    CHECK(cudaEventRecord(ev[2 * i]));
    launch();
    CHECK(cudaEventRecord(ev[2 * i + 1]));
  }
  CHECK(cudaEventRecord(ev[2 * kIters]));
  for (int i = 0; i < kIters; ++i) launch();
  CHECK(cudaEventRecord(ev[2 * kIters + 1]));
  CHECK(cudaDeviceSynchronize());
  std::vector<float> us(kIters);
  for (int i = 0; i < kIters; ++i) {
    CHECK(cudaEventElapsedTime(&us[i], ev[2 * i], ev[2 * i + 1]));
    us[i] *= 1e3f;
  }
  float total = 0.f;
  CHECK(cudaEventElapsedTime(&total, ev[2 * kIters], ev[2 * kIters + 1]));
  std::sort(us.begin(), us.end());
  std::printf("%-34s grid %4d cluster %2d: %6.2f us per launch (events, median; min %.2f), %6.2f us back to back\n", name,
              grid, cluster, us[kIters / 2], us[0], 1e3f * total / kIters);
  for (auto& e : ev) CHECK(cudaEventDestroy(e));
}

int main() {
  float* data = nullptr;
  const size_t floats = size_t{512} * 2048 * 4;
  CHECK(cudaMalloc(&data, floats * sizeof(float)));
  CHECK(cudaMemset(data, 0, floats * sizeof(float)));
  for (int i = 0; i < 20000; ++i) floor_kernel<kLoad><<<128, 256>>>(data, 1);  // clocks up before timing
  CHECK(cudaDeviceSynchronize());
  for (int cluster : {1, 8, 16}) {
    run<kEmpty>("empty", data, 128, cluster);
    run<kBarrier>("cluster barrier (relaxed)", data, 128, cluster);
    run<kLoad>("32 KB load per CTA", data, 128, cluster);
    run<kLoadBarrier>("load + barrier", data, 128, cluster);
    run<kLoadStoreBarrier>("load + store + barrier", data, 128, cluster);
    run<kReleaseBarrier>("load + store + release barrier", data, 128, cluster);
  }
  CHECK(cudaFree(data));
  return 0;
}
