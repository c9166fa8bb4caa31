// powerret: power retention (symmetric power expansion + gated linear recurrence), public C++ API.
//
//   phi_p(x)[a] = sqrt(p! / prod_v count_v(a)!) * prod_{i in a} x[i]     a = sorted multi-index
//   S_i = g_i * S_{i-1} + phi(k_i) v_i^T,  z_i = g_i * z_{i-1} + phi(k_i)       g_i = exp(log_g[i])
//   y_i = scale^p phi(q_i)^T S_i / (scale^p phi(q_i)^T z_i)    (normalize; 0 where the den is 0)
//
// This header is all a C++ caller needs: no CUDA, CuTe or framework headers. Tensors are described
// by pointer, dtype, shape and strides; the library never allocates device memory and never
// synchronises the host. Every check of SPEC §6 runs before anything is written; a failed check
// throws powerret::Error and leaves every caller buffer untouched.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace powerret {

inline constexpr int kMaxRank = 4;

enum class DType : int { kFloat16, kBFloat16, kFloat32, kFloat64, kInt32, kUInt8 };
enum class DeviceType : int { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;
};

// A strided view of caller memory. Strides count elements, not bytes. The ops require
// row-major contiguous tensors and say so when they are not.
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  int ndim = 0;
  std::array<int64_t, kMaxRank> shape{};
  std::array<int64_t, kMaxRank> strides{};
  Device device{};

  int64_t numel() const;
  bool is_contiguous() const;
};

// Builds a contiguous Tensor over `data` with the given shape.
Tensor make_tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device = {});

enum class ErrorKind : int {
  kValue,    // a value or shape is wrong (Python: ValueError)
  kType,     // a dtype is wrong (Python: TypeError)
  kRuntime,  // a CUDA error, reported with the kernel's name (Python: RuntimeError)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// A cudaStream_t for CUDA tensors (nullptr is the legacy default stream); ignored on the CPU.
using Stream = void*;

// D = C(d + p - 1, p): rows of phi_p over R^d.
int64_t state_dim(int64_t d, int deg);

// ---------------------------------------------------------------------------------------------
// sympow: out[..., D] = phi_deg(x[..., d]), computed in fp32 (fp64 for fp64 x), stored in x's dtype.
struct SympowParams {
  Tensor x;    // [..., d]   fp16 | bf16 | fp32 | fp64 (fp64 on the CPU only)
  Tensor out;  // [..., D]   same dtype and leading shape as x
  int deg = 2;
};
void sympow(const SympowParams& params, Stream stream = nullptr);

// ---------------------------------------------------------------------------------------------
// power_retention: the causal chunked forward of SPEC §2.
struct ForwardParams {
  Tensor q;                       // [b, t, hq, d]   fp16 | bf16 | fp32 (fp64 on the CPU too)
  Tensor k;                       // [b, t, h, d]    same dtype as q
  Tensor v;                       // [b, t, h, e]    same dtype as q
  std::optional<Tensor> log_g;    // [b, t, h]       fp32, per-token log gate
  std::optional<Tensor> initial_s;  // [b, h, D, e]  fp32
  std::optional<Tensor> initial_z;  // [b, h, D]     fp32 (both initial tensors, or neither)
  Tensor y;                       // [b, t, hq, e]   out, q's dtype
  std::optional<Tensor> final_s;  // [b, h, D, e]    out, fp32 (both final tensors, or neither)
  std::optional<Tensor> final_z;  // [b, h, D]       out, fp32
  std::optional<Tensor> workspace;  // uint8 [>= forward_workspace_bytes(params)], same device
  int deg = 2;
  std::optional<double> scale;    // default 1 / sqrt(d)
  bool normalize = true;
  int chunk_size = 0;             // 0: the library's choice
};

// Bytes of scratch memory `power_retention(params)` needs (0 on the CPU). Validates the
// shapes, dtypes and options of `params` (not the workspace itself).
std::size_t forward_workspace_bytes(const ForwardParams& params);
void power_retention(const ForwardParams& params, Stream stream = nullptr);

// The chunk size power_retention uses for these params when chunk_size == 0.
int default_chunk_size(const ForwardParams& params);

// ---------------------------------------------------------------------------------------------
// decode_step: one step of the recurrence for one new token per sequence, state updated in place.
struct DecodeParams {
  Tensor q;                       // [b, hq, d]
  Tensor k;                       // [b, h, d]
  Tensor v;                       // [b, h, e]
  std::optional<Tensor> log_g;    // [b, h] fp32
  Tensor s;                       // [b, h, D, e] fp32, or [num_slots, h, D, e] with slots
  Tensor z;                       // [b, h, D]    fp32, or [num_slots, h, D]
  std::optional<Tensor> slots;    // int32 [b]: row i uses state slot slots[i]; -1 / out of range: skipped
  Tensor y;                       // [b, hq, e] out, q's dtype
  int deg = 2;
  std::optional<double> scale;
  bool normalize = true;
};
void decode_step(const DecodeParams& params, Stream stream = nullptr);
// Runs every check decode_step(params) would run, and nothing else (throws powerret::Error).
void check(const DecodeParams& params);

// Whether this build carries the CUDA backend.
bool built_with_cuda();
// The library version, "major.minor.patch".
const char* version();

}  // namespace powerret
