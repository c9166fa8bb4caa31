// timing: how powerret-bench measures. On CUDA: `warmup` untimed calls, then `iters` calls each
// bracketed by CUDA events on the bench's stream, optionally preceded by an L2 flush (a
// cudaMemsetAsync over a buffer of twice the L2 size, outside the events) and optionally replayed
// from a CUDA graph holding one call. On the CPU: std::chrono around each call. Reported: the
// median, min and max of the per-call times. Also the device's ceilings: the copy bandwidth is
// measured here; the tensor-core rate is a documented number (or --peak-tflops).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace powerret_bench {

struct DeviceInfo {
  bool cuda = false;
  int index = 0;
  std::string name;          // e.g. "NVIDIA H100 80GB HBM3", or "cpu"
  int64_t l2_bytes = 0;      // 0 on the CPU
  double copy_gbps = 0;      // measured copy bandwidth, bytes read + bytes written, GB/s
  double peak_tflops = 0;    // dense bf16/fp16 tensor-core ceiling; 0 when none is known
  std::string peak_source;
};

// Whether a CUDA device is usable by this build.
bool cuda_available();
// Describes the device (CUDA device 0 or the host) and measures its copy bandwidth.
DeviceInfo probe_device(bool cuda, double peak_tflops_override);

struct TimingPlan {
  int warmup = 10;
  int iters = 100;
  bool flush_l2 = false;  // CUDA only
  bool graph = false;     // CUDA only
};

struct Timings {
  double median_us = 0, min_us = 0, max_us = 0;
  int iters = 0;
};

// Times op() (which launches on `stream` for CUDA, or runs to completion on the CPU).
Timings time_op(const std::function<void()>& op, const DeviceInfo& device, const TimingPlan& plan,
                void* stream);

// The bench's CUDA stream (a blocking stream, so legacy-stream copies order against it).
void* create_stream(const DeviceInfo& device);
void destroy_stream(void* stream);
// Waits for everything queued on `stream` and reports any pending CUDA error.
void synchronize(const DeviceInfo& device, void* stream);

}  // namespace powerret_bench
