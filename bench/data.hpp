// data: benchmark inputs. Host-side dtype conversion (fp32 <-> fp16 / bf16, round to nearest
// even), a counter-based PRNG fill (deterministic for any thread count, never zeros), and Buffer,
// caller memory on the host or on the CUDA device (the bench allocates; the library never does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "powerret/powerret.hpp"

#if POWERRET_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace powerret_bench {

#if POWERRET_WITH_CUDA
// Throws std::runtime_error naming `what` when `status` is an error.
void cuda_check(cudaError_t status, const char* what);
#endif

powerret::DType parse_dtype(const std::string& name);  // fp16 | bf16 | fp32
int64_t dtype_bytes(powerret::DType dtype);

uint16_t float_to_bf16(float x);   // torch: x.to(torch.bfloat16)
float bf16_to_float(uint16_t x);   // torch: x.float()
uint16_t float_to_half(float x);   // torch: x.to(torch.float16)
float half_to_float(uint16_t x);   // torch: x.float()

// out[i] = the dtype's rounding of uniform(lo, hi), from (seed, i) alone.
void fill_uniform(powerret::DType dtype, void* out, int64_t n, float lo, float hi, uint64_t seed);
// out[i] = log(sigmoid(4 + uniform(-1, 1))) in [-0.049, -0.0067]: slowly forgetting gates.
void fill_log_gate(float* out, int64_t n, uint64_t seed);
// Elements [0, n) of a dtype array as fp32 (exact: every fp16/bf16 value is an fp32 value).
std::vector<float> to_float(powerret::DType dtype, const void* data, int64_t n);
// Runs body(begin, end) over [0, n) split across the hardware threads.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& body);

// Bytes on the host (device == false) or the current CUDA device, uninitialised.
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::size_t bytes, bool on_device);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  bool on_device() const { return on_device_; }
  // Copies `bytes` from host memory into this buffer at byte `offset` (synchronous).
  void upload(const void* host, std::size_t bytes, std::size_t offset = 0);
  // Copies `bytes` at byte `offset` of this buffer into host memory (synchronous).
  void download(void* host, std::size_t bytes, std::size_t offset = 0) const;
  // Fills every byte with 0xFF: NaN in fp16, bf16 and fp32, so unwritten outputs show.
  void poison();

 private:
  void release();
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  bool on_device_ = false;
};

}  // namespace powerret_bench
