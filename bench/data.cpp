// data: dtype conversion, PRNG fill and host/device buffers for powerret-bench.
#include "data.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

#include "options.hpp"

namespace powerret_bench {

#if POWERRET_WITH_CUDA
void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}
#endif

powerret::DType parse_dtype(const std::string& name) {
  if (name == "fp16") return powerret::DType::kFloat16;
  if (name == "bf16") return powerret::DType::kBFloat16;
  if (name == "fp32") return powerret::DType::kFloat32;
  throw UsageError("dtype expects fp16, bf16 or fp32, got '" + name + "'");
}

int64_t dtype_bytes(powerret::DType dtype) {
  switch (dtype) {
    case powerret::DType::kFloat16:
    case powerret::DType::kBFloat16: return 2;
    case powerret::DType::kFloat32:
    case powerret::DType::kInt32: return 4;
    case powerret::DType::kFloat64: return 8;
    case powerret::DType::kUInt8: return 1;
  }
  return 0;
}

uint16_t float_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_to_float(uint16_t x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t mant = bits & 0x7FFFFFu;
  const int exp = static_cast<int>((bits >> 23) & 0xFFu);
  if (exp == 0xFF) return static_cast<uint16_t>(sign | 0x7C00u | (mant ? 0x200u : 0u));
  const int e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00u);  // overflow: inf
  if (e <= 0) {                                                 // fp16 subnormal or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // a carry rounds into the exponent
  return static_cast<uint16_t>(half);
}

float half_to_float(uint16_t x) {
  const uint32_t sign = static_cast<uint32_t>(x & 0x8000u) << 16;
  const uint32_t exp = (x >> 10) & 0x1Fu;
  const uint32_t mant = x & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exp == 31) bits = sign | 0x7F800000u | (mant << 13);
  else bits = sign | ((exp + 112u) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {

// splitmix64 of (seed, index): a counter-based generator, so any split of [0, n) gives the same data.
inline uint64_t mix(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// uniform in [0, 1) with 24 random bits.
inline float unit(uint64_t seed, uint64_t index) {
  return static_cast<float>(mix(seed, index) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  constexpr int64_t kGrain = int64_t{1} << 20;
  const int64_t hw = std::max(1u, std::thread::hardware_concurrency());
  const int64_t workers = std::min<int64_t>(hw, (n + kGrain - 1) / kGrain);
  if (workers <= 1) {
    body(0, n);
    return;
  }
  std::vector<std::thread> threads;
  const int64_t per = (n + workers - 1) / workers;
  for (int64_t w = 0; w < workers; ++w) {
    const int64_t begin = w * per, end = std::min(n, begin + per);
    if (begin < end) threads.emplace_back(body, begin, end);
  }
  for (auto& thread : threads) thread.join();
}

void fill_uniform(powerret::DType dtype, void* out, int64_t n, float lo, float hi, uint64_t seed) {
  if (dtype != powerret::DType::kFloat16 && dtype != powerret::DType::kBFloat16 &&
      dtype != powerret::DType::kFloat32)
    throw std::invalid_argument("fill_uniform: unsupported dtype");
  const float span = hi - lo;
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float x = lo + span * unit(seed, static_cast<uint64_t>(i));
      switch (dtype) {
        case powerret::DType::kFloat16: static_cast<uint16_t*>(out)[i] = float_to_half(x); break;
        case powerret::DType::kBFloat16: static_cast<uint16_t*>(out)[i] = float_to_bf16(x); break;
        default: static_cast<float*>(out)[i] = x; break;
      }
    }
  });
}

void fill_log_gate(float* out, int64_t n, uint64_t seed) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float x = 4.0f + (2.0f * unit(seed, static_cast<uint64_t>(i)) - 1.0f);
      out[i] = -std::log1p(std::exp(-x));  // log(sigmoid(x))
    }
  });
}

std::vector<float> to_float(powerret::DType dtype, const void* data, int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case powerret::DType::kFloat16: out[i] = half_to_float(static_cast<const uint16_t*>(data)[i]); break;
      case powerret::DType::kBFloat16: out[i] = bf16_to_float(static_cast<const uint16_t*>(data)[i]); break;
      case powerret::DType::kFloat32: out[i] = static_cast<const float*>(data)[i]; break;
      default: throw std::invalid_argument("to_float: unsupported dtype");
    }
  }
  return out;
}

Buffer::Buffer(std::size_t bytes, bool on_device) : bytes_(bytes), on_device_(on_device) {
  if (bytes == 0) return;
  if (on_device) {
#if POWERRET_WITH_CUDA
    const cudaError_t status = cudaMalloc(&data_, bytes);
    if (status != cudaSuccess) {
      data_ = nullptr;
      throw std::runtime_error("cudaMalloc(" + std::to_string(bytes) + " bytes): " +
                               cudaGetErrorString(status));
    }
#else
    throw std::runtime_error("Buffer: this powerret-bench was built without CUDA");
#endif
  } else {
    data_ = std::malloc(bytes);
    if (data_ == nullptr) throw std::runtime_error("malloc(" + std::to_string(bytes) + " bytes) failed");
  }
}

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      on_device_(other.on_device_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    on_device_ = other.on_device_;
  }
  return *this;
}

void Buffer::release() {
  if (data_ == nullptr) return;
#if POWERRET_WITH_CUDA
  if (on_device_) cudaFree(data_);
  else std::free(data_);
#else
  std::free(data_);
#endif
  data_ = nullptr;
}

void Buffer::upload(const void* host, std::size_t bytes, std::size_t offset) {
  if (offset + bytes > bytes_) throw std::out_of_range("Buffer::upload past the end");
  char* dst = static_cast<char*>(data_) + offset;
#if POWERRET_WITH_CUDA
  if (on_device_) {
    cuda_check(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
    return;
  }
#endif
  std::memcpy(dst, host, bytes);
}

void Buffer::download(void* host, std::size_t bytes, std::size_t offset) const {
  if (offset + bytes > bytes_) throw std::out_of_range("Buffer::download past the end");
  const char* src = static_cast<const char*>(data_) + offset;
#if POWERRET_WITH_CUDA
  if (on_device_) {
    cuda_check(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (download)");
    return;
  }
#endif
  std::memcpy(host, src, bytes);
}

void Buffer::poison() {
  if (bytes_ == 0) return;
#if POWERRET_WITH_CUDA
  if (on_device_) {
    cuda_check(cudaMemset(data_, 0xFF, bytes_), "cudaMemset (poison)");
    return;
  }
#endif
  std::memset(data_, 0xFF, bytes_);
}

}  // namespace powerret_bench
