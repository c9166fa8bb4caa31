// timing: CUDA-event and std::chrono timing, L2 flush, CUDA-graph replay, device ceilings.
#include "timing.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "data.hpp"

namespace powerret_bench {
namespace {

Timings summarize(std::vector<double> us) {
  Timings t;
  t.iters = static_cast<int>(us.size());
  std::sort(us.begin(), us.end());
  const std::size_t n = us.size();
  t.median_us = n % 2 ? us[n / 2] : 0.5 * (us[n / 2 - 1] + us[n / 2]);
  t.min_us = us.front();
  t.max_us = us.back();
  return t;
}

Timings time_cpu(const std::function<void()>& op, const TimingPlan& plan) {
  for (int i = 0; i < plan.warmup; ++i) op();
  std::vector<double> us;
  for (int i = 0; i < plan.iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    op();
    const auto stop = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(stop - start).count());
  }
  return summarize(std::move(us));
}

// Copy bandwidth of the host: memcpy between two 64 MiB buffers, median of 5, read + write counted.
double host_copy_gbps() {
  constexpr std::size_t kBytes = std::size_t{64} << 20;
  std::vector<char> a(kBytes, 1), b(kBytes, 2);
  std::vector<double> us;
  for (int i = 0; i < 6; ++i) {
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(b.data(), a.data(), kBytes);
    const auto stop = std::chrono::steady_clock::now();
    if (i > 0) us.push_back(std::chrono::duration<double, std::micro>(stop - start).count());
    a[static_cast<std::size_t>(i)] = b[kBytes - 1 - static_cast<std::size_t>(i)];  // keep both live
  }
  return 2.0 * kBytes / (summarize(us).median_us * 1e3);
}

#if POWERRET_WITH_CUDA
class Event {
 public:
  Event() { cuda_check(cudaEventCreate(&event_), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& other) noexcept : event_(other.event_) { other.event_ = nullptr; }
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

class GraphExec {
 public:
  ~GraphExec() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
  }
  // Captures op()'s launches on `stream` into a graph and instantiates it.
  void capture(const std::function<void()>& op, cudaStream_t stream) {
    cuda_check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      op();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream, &broken);
      if (broken) cudaGraphDestroy(broken);
      throw;
    }
    cuda_check(cudaStreamEndCapture(stream, &graph_), "cudaStreamEndCapture");
    cuda_check(cudaGraphInstantiate(&exec_, graph_, 0), "cudaGraphInstantiate");
  }
  void launch(cudaStream_t stream) const { cuda_check(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch"); }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

Timings time_cuda(const std::function<void()>& op, const DeviceInfo& device, const TimingPlan& plan,
                  cudaStream_t stream) {
  GraphExec graph;
  if (plan.graph) graph.capture(op, stream);
  auto launch = [&] {
    if (plan.graph) graph.launch(stream);
    else op();
  };
  Buffer flush;
  if (plan.flush_l2) flush = Buffer(static_cast<std::size_t>(2 * device.l2_bytes), true);

  for (int i = 0; i < plan.warmup; ++i) launch();
  std::vector<Event> start, stop;
  start.reserve(plan.iters);
  stop.reserve(plan.iters);
  for (int i = 0; i < plan.iters; ++i) {
    start.emplace_back();
    stop.emplace_back();
  }
  for (int i = 0; i < plan.iters; ++i) {
    if (plan.flush_l2)
      cuda_check(cudaMemsetAsync(flush.data(), i & 0xFF, flush.bytes(), stream), "cudaMemsetAsync (L2 flush)");
    cuda_check(cudaEventRecord(start[i].get(), stream), "cudaEventRecord");
    launch();
    cuda_check(cudaEventRecord(stop[i].get(), stream), "cudaEventRecord");
  }
  cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (timed runs)");
  cuda_check(cudaGetLastError(), "timed runs");
  std::vector<double> us;
  for (int i = 0; i < plan.iters; ++i) {
    float ms = 0;
    cuda_check(cudaEventElapsedTime(&ms, start[i].get(), stop[i].get()), "cudaEventElapsedTime");
    us.push_back(1e3 * ms);
  }
  return summarize(std::move(us));
}

// Device-to-device cudaMemcpyAsync of up to 1 GiB (a quarter of the free memory at most),
// median of 10 after 3 warm-ups, read + write counted.
double device_copy_gbps() {
  std::size_t free_bytes = 0, total_bytes = 0;
  cuda_check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const std::size_t bytes = std::min<std::size_t>(std::size_t{1} << 30, free_bytes / 4) & ~std::size_t{0xFFFF};
  Buffer src(bytes, true), dst(bytes, true);
  cuda_check(cudaMemset(src.data(), 1, bytes), "cudaMemset");
  cudaStream_t stream = static_cast<cudaStream_t>(nullptr);
  TimingPlan plan{.warmup = 3, .iters = 10, .flush_l2 = false, .graph = false};
  DeviceInfo none;
  const Timings t = time_cuda(
      [&] { cuda_check(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync"); },
      none, plan, stream);
  return 2.0 * static_cast<double>(bytes) / (t.median_us * 1e3);
}
#endif

}  // namespace

bool cuda_available() {
#if POWERRET_WITH_CUDA
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

DeviceInfo probe_device(bool cuda, double peak_tflops_override) {
  DeviceInfo info;
  info.cuda = cuda;
  if (!cuda) {
    info.name = "cpu";
    info.copy_gbps = host_copy_gbps();
  } else {
#if POWERRET_WITH_CUDA
    cuda_check(cudaSetDevice(info.index), "cudaSetDevice");
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, info.index), "cudaGetDeviceProperties");
    info.name = prop.name;
    int l2 = 0;
    cuda_check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, info.index), "cudaDeviceGetAttribute");
    info.l2_bytes = l2;
    info.copy_gbps = device_copy_gbps();
#else
    throw std::runtime_error("this powerret-bench was built without CUDA: use --device cpu");
#endif
  }
  if (peak_tflops_override > 0) {
    info.peak_tflops = peak_tflops_override;
    info.peak_source = "--peak-tflops";
  } else if (cuda && (info.name.find("H100") != std::string::npos || info.name.find("H200") != std::string::npos)) {
    // shared/PERF.md: bf16 GEMM 8192^3 measured at 686-798 TFLOP/s on this workplace's H100
    // (and 769-798 on its H200, .library/device/KINDS.md); the best of those runs is the ceiling.
    info.peak_tflops = 798.0;
    info.peak_source = "documented bf16 GEMM 8192^3 on H100/H200 (bench/RESULTS.md)";
  }
  return info;
}

Timings time_op(const std::function<void()>& op, const DeviceInfo& device, const TimingPlan& plan,
                void* stream) {
  if (!device.cuda) return time_cpu(op, plan);
#if POWERRET_WITH_CUDA
  return time_cuda(op, device, plan, static_cast<cudaStream_t>(stream));
#else
  (void)stream;
  throw std::runtime_error("this powerret-bench was built without CUDA");
#endif
}

void* create_stream(const DeviceInfo& device) {
#if POWERRET_WITH_CUDA
  if (device.cuda) {
    cudaStream_t stream = nullptr;
    cuda_check(cudaStreamCreate(&stream), "cudaStreamCreate");
    return stream;
  }
#endif
  (void)device;
  return nullptr;
}

void destroy_stream(void* stream) {
#if POWERRET_WITH_CUDA
  if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
#else
  (void)stream;
#endif
}

void synchronize(const DeviceInfo& device, void* stream) {
#if POWERRET_WITH_CUDA
  if (device.cuda) {
    cuda_check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
    cuda_check(cudaGetLastError(), "kernel launch");
  }
#else
  (void)device;
  (void)stream;
#endif
}

}  // namespace powerret_bench
