// Validated, resolved problems: what the backends see. Produced only by src/api/validate.cpp
// after every check of SPEC §6 has passed; all tensors are contiguous row-major.
#pragma once

#include <cstdint>

#include "powerret/powerret.hpp"

namespace powerret::detail {

struct SympowProblem {
  int64_t rows = 0;  // product of x's leading dims
  int64_t d = 0;
  int64_t D = 0;
  int deg = 2;
  DType dtype = DType::kFloat32;
  const void* x = nullptr;  // [rows, d]
  void* out = nullptr;      // [rows, D]
  int device = 0;           // CUDA device index (when on_gpu)
  bool on_gpu = false;
};

struct ForwardProblem {
  int64_t b = 0, t = 0, hq = 0, h = 0, d = 0, e = 0, D = 0;
  int deg = 2;
  float scale = 1.0f;
  bool normalize = true;
  int chunk = 64;
  int64_t n_chunks = 0;  // ceil(t / chunk)
  DType dtype = DType::kFloat32;
  const void* q = nullptr;      // [b, t, hq, d]
  const void* k = nullptr;      // [b, t, h, d]
  const void* v = nullptr;      // [b, t, h, e]
  const float* log_g = nullptr;  // [b, t, h] or null
  const float* s0 = nullptr;    // [b, h, D, e] or null
  const float* z0 = nullptr;    // [b, h, D] or null (null iff s0 is)
  void* y = nullptr;            // [b, t, hq, e]
  float* s_out = nullptr;       // [b, h, D, e] or null
  float* z_out = nullptr;       // [b, h, D] or null (null iff s_out is)
  void* workspace = nullptr;    // forward_workspace_bytes of scratch, or null when that is 0
  int device = 0;       // CUDA device index (when on_gpu)
  bool on_gpu = false;
};

struct DecodeProblem {
  int64_t b = 0, hq = 0, h = 0, d = 0, e = 0, D = 0;
  int64_t num_slots = 0;  // rows of s/z (== b without slots)
  int deg = 2;
  float scale = 1.0f;
  bool normalize = true;
  DType dtype = DType::kFloat32;
  const void* q = nullptr;       // [b, hq, d]
  const void* k = nullptr;       // [b, h, d]
  const void* v = nullptr;       // [b, h, e]
  const float* log_g = nullptr;  // [b, h] or null
  float* s = nullptr;            // [num_slots, h, D, e]
  float* z = nullptr;            // [num_slots, h, D]
  const int32_t* slots = nullptr;  // [b] or null (row i uses state row i)
  void* y = nullptr;             // [b, hq, e]
  int device = 0;       // CUDA device index (when on_gpu)
  bool on_gpu = false;
};

// The dtype's NumPy-style name, for error messages.
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
  }
  return "unknown";
}

// log_g below this is a reset: exp of it is exactly 0 in fp32, so every backend treats it as
// exp(log_g) == 0 (and keeps cumulative gate sums finite and precise).
inline constexpr float kResetLogGate = -104.0f;

}  // namespace powerret::detail
