// Every check of SPEC §6 (dtypes, ranks, shapes, devices, supported (d, e, p), scale, state
// layout, alignment, overlap), run before any backend is called. Messages name the op, the
// argument, the expected and the actual value.
#include "api/validate.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#ifdef POWERRET_WITH_CUDA
#include "cuda/backend.hpp"
#endif

namespace powerret::detail {
namespace {

// CPU limit on the state rows (SPEC §1 / §"Supported").
constexpr int64_t kMaxCpuStateDim = int64_t{1} << 20;

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat16:
    case DType::kBFloat16: return 2;
    case DType::kFloat32:
    case DType::kInt32: return 4;
    case DType::kFloat64: return 8;
    case DType::kUInt8: return 1;
  }
  return 1;
}

std::string device_name(Device d) {
  return d.type == DeviceType::kCPU ? std::string("cpu") : "cuda:" + std::to_string(d.index);
}

// "[2, 40, 4, 32]". Plain string building: no iostreams (an abi3 build on the GPU machine crashed
// inside libstdc++'s ostream number formatting; std::to_string has no such dependency).
std::string shape_text(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

std::string shape_text(const Tensor& t) {
  return shape_text(std::vector<int64_t>(t.shape.begin(), t.shape.begin() + std::max(t.ndim, 0)));
}

// Collects the op name and the tensors seen so far for the device and overlap checks.
class Checker {
 public:
  explicit Checker(const char* op) : op_(op) {}

  [[noreturn]] void fail(ErrorKind kind, const std::string& what) const {
    throw Error(kind, std::string(op_) + ": " + what);
  }

  // The first tensor checked fixes the device every other tensor must be on.
  void tensor(const char* name, const Tensor& t, std::vector<int64_t> expected_shape,
              const char* dims, std::initializer_list<DType> dtypes, bool is_output) {
    bool dtype_ok = false;
    for (DType d : dtypes) dtype_ok |= (t.dtype == d);
    if (!dtype_ok) {
      std::string allowed;
      for (DType d : dtypes) allowed += (allowed.empty() ? "" : " or ") + std::string(dtype_name(d));
      fail(ErrorKind::kType, std::string("argument '") + name + "': expected dtype " + allowed +
                                 ", got " + dtype_name(t.dtype));
    }
    if (t.ndim != static_cast<int>(expected_shape.size()))
      fail(ErrorKind::kValue, std::string("argument '") + name + "': expected rank " +
                                  std::to_string(expected_shape.size()) + " " + dims + ", got rank " +
                                  std::to_string(t.ndim) + " with shape " + shape_text(t));
    for (int i = 0; i < t.ndim; ++i) {
      if (t.shape[i] != expected_shape[i])
        fail(ErrorKind::kValue, std::string("argument '") + name + "': expected shape " +
                                    shape_text(expected_shape) + " " + dims + ", got " + shape_text(t));
    }
    if (!devices_.empty()) {
      const Device first = devices_.front().second;
      if (t.device.type != first.type || t.device.index != first.index)
        fail(ErrorKind::kValue, std::string("argument '") + name + "': expected device " +
                                    device_name(first) + " (that of '" + devices_.front().first +
                                    "'), got " + device_name(t.device));
    }
    devices_.emplace_back(name, t.device);
    if (!t.is_contiguous())
      fail(ErrorKind::kValue, std::string("argument '") + name +
                                  "': expected a contiguous row-major tensor, got strides that are not");
    const int64_t esize = dtype_size(t.dtype);
    if (t.numel() > 0 && t.data == nullptr)
      fail(ErrorKind::kValue, std::string("argument '") + name + "': data pointer is null");
    if (reinterpret_cast<std::uintptr_t>(t.data) % esize != 0)
      fail(ErrorKind::kValue, std::string("argument '") + name + "': expected an address aligned to " +
                                  std::to_string(esize) + " bytes, got a misaligned one");
    const auto begin = reinterpret_cast<std::uintptr_t>(t.data);
    const auto end = begin + static_cast<std::uintptr_t>(t.numel() * esize);
    for (const auto& r : ranges_) {
      const bool overlap = begin < r.end && r.begin < end;
      if (overlap && (is_output || r.is_output))
        fail(ErrorKind::kValue, std::string("argument '") + name + "' overlaps argument '" + r.name +
                                    "': expected outputs that share no memory with any other argument");
    }
    if (end > begin) ranges_.push_back({name, begin, end, is_output});
  }

  Device device() const { return devices_.empty() ? Device{} : devices_.front().second; }

 private:
  struct Range {
    const char* name;
    std::uintptr_t begin, end;
    bool is_output;
  };
  const char* op_;
  std::vector<std::pair<const char*, Device>> devices_;
  std::vector<Range> ranges_;
};

void check_deg(const Checker& c, int deg) {
  if (deg < 1 || deg > 4)
    c.fail(ErrorKind::kValue, "argument 'deg': expected 1, 2, 3 or 4, got " + std::to_string(deg));
}

// The (d, e, deg) support of the backend that will run the op.
int64_t check_support(const Checker& c, Device device, int64_t d, int64_t e, int deg) {
  check_deg(c, deg);
  const int64_t D = state_dim(d, deg);
  if (device.type == DeviceType::kCPU) {
    if (D > kMaxCpuStateDim)
      c.fail(ErrorKind::kValue, "(d, deg) = (" + std::to_string(d) + ", " + std::to_string(deg) +
                                    "): expected a state dimension C(d+deg-1, deg) <= 2^20 on the CPU, got " +
                                    std::to_string(D));
    return D;
  }
#ifdef POWERRET_WITH_CUDA
  if (!cuda::supports(d, e, deg))
    c.fail(ErrorKind::kValue, "(d, e, deg) = (" + std::to_string(d) + ", " + std::to_string(e) + ", " +
                                  std::to_string(deg) + ") is not supported on the GPU: " +
                                  cuda::supported_text());
#else
  (void)e;
  c.fail(ErrorKind::kValue, "got tensors on " + device_name(device) +
                                ", but this build of powerret has no CUDA backend (rebuild with nvcc present, "
                                "POWERRET_CUDA=ON)");
#endif
  return D;
}

float resolve_scale(const Checker& c, const std::optional<double>& scale, int64_t d) {
  if (!scale) return static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  if (!std::isfinite(*scale))
    c.fail(ErrorKind::kValue, "argument 'scale': expected a finite number, got " + std::to_string(*scale));
  return static_cast<float>(*scale);
}

std::initializer_list<DType> input_dtypes(Device device) {
  static const std::initializer_list<DType> cpu = {DType::kFloat16, DType::kBFloat16, DType::kFloat32,
                                                   DType::kFloat64};
  static const std::initializer_list<DType> gpu = {DType::kFloat16, DType::kBFloat16, DType::kFloat32};
  return device.type == DeviceType::kCPU ? cpu : gpu;
}

void check_positive_dims(const Checker& c, const char* name, const Tensor& t, int rank, const char* dims) {
  if (t.ndim != rank)
    c.fail(ErrorKind::kValue, std::string("argument '") + name + "': expected rank " + std::to_string(rank) +
                                  " " + dims + ", got rank " + std::to_string(t.ndim) + " with shape " +
                                  shape_text(t));
  for (int i = 0; i < rank; ++i)
    if (t.shape[i] < 1)
      c.fail(ErrorKind::kValue, std::string("argument '") + name + "': expected every dimension >= 1 " + dims +
                                    ", got shape " + shape_text(t));
}

// hq query heads share h kv heads in groups (GQA): h must divide hq.
void check_heads(const Checker& c, int64_t hq, int64_t h) {
  if (hq % h != 0)
    c.fail(ErrorKind::kValue, "argument 'k': expected a number of kv heads h dividing hq = " + std::to_string(hq) +
                                  ", got h = " + std::to_string(h));
}

// Where every problem runs: its tensors' device.
template <typename Problem>
void place(Problem& r, Device dev) {
  r.device = dev.index;
  r.on_gpu = dev.type == DeviceType::kCUDA;
}

// The fields ForwardProblem and DecodeProblem share, from their params (validated by then).
template <typename Problem, typename Params>
void fill_common(Problem& r, const Params& p, Device dev, float scale) {
  place(r, dev);
  r.deg = p.deg;
  r.scale = scale;
  r.normalize = p.normalize;
  r.dtype = p.q.dtype;
  r.q = p.q.data, r.k = p.k.data, r.v = p.v.data;
  r.log_g = p.log_g ? static_cast<const float*>(p.log_g->data) : nullptr;
  r.y = p.y.data;
}

}  // namespace

SympowProblem validate(const SympowParams& p) {
  Checker c("sympow");
  if (p.x.ndim < 1 || p.x.ndim > kMaxRank)
    c.fail(ErrorKind::kValue, "argument 'x': expected rank 1.." + std::to_string(kMaxRank) + " [..., d], got rank " +
                                  std::to_string(p.x.ndim));
  const Device dev = p.x.device;
  const int64_t d = p.x.shape[p.x.ndim - 1];
  if (d < 1) c.fail(ErrorKind::kValue, "argument 'x': expected a last dimension d >= 1, got " + std::to_string(d));
  std::vector<int64_t> xshape(p.x.shape.begin(), p.x.shape.begin() + p.x.ndim);
  c.tensor("x", p.x, xshape, "[..., d]", input_dtypes(dev), false);
  check_deg(c, p.deg);
  const int64_t D = state_dim(d, p.deg);
  if (dev.type == DeviceType::kCPU) {
    check_support(c, dev, d, 0, p.deg);
  } else {
#ifdef POWERRET_WITH_CUDA
    if (D > kMaxCpuStateDim)
      c.fail(ErrorKind::kValue, "(d, deg) = (" + std::to_string(d) + ", " + std::to_string(p.deg) +
                                    "): expected a state dimension <= 2^20, got " + std::to_string(D));
#else
    check_support(c, dev, d, 0, p.deg);
#endif
  }
  std::vector<int64_t> oshape = xshape;
  oshape.back() = D;
  c.tensor("out", p.out, oshape, "[..., D]", {p.x.dtype}, true);
  SympowProblem r;
  r.rows = p.x.numel() / d;
  r.d = d;
  r.D = D;
  r.deg = p.deg;
  r.dtype = p.x.dtype;
  r.x = p.x.data;
  r.out = p.out.data;
  place(r, dev);
  return r;
}

ForwardProblem validate(const ForwardParams& p, bool check_workspace) {
  Checker c("power_retention");
  check_positive_dims(c, "q", p.q, 4, "[b, t, hq, d]");
  const Device dev = p.q.device;
  const int64_t b = p.q.shape[0], t = p.q.shape[1], hq = p.q.shape[2], d = p.q.shape[3];
  c.tensor("q", p.q, {b, t, hq, d}, "[b, t, hq, d]", input_dtypes(dev), false);
  check_positive_dims(c, "k", p.k, 4, "[b, t, h, d]");
  const int64_t h = p.k.shape[2];
  c.tensor("k", p.k, {b, t, h, d}, "[b, t, h, d]", {p.q.dtype}, false);
  check_heads(c, hq, h);
  check_positive_dims(c, "v", p.v, 4, "[b, t, h, e]");
  const int64_t e = p.v.shape[3];
  c.tensor("v", p.v, {b, t, h, e}, "[b, t, h, e]", {p.q.dtype}, false);
  if (p.log_g) c.tensor("log_g", *p.log_g, {b, t, h}, "[b, t, h]", {DType::kFloat32}, false);
  const int64_t D = check_support(c, dev, d, e, p.deg);
  const float scale = resolve_scale(c, p.scale, d);
  if (p.initial_s.has_value() != p.initial_z.has_value())
    c.fail(ErrorKind::kValue, std::string("argument 'initial_state': expected both S and z, or neither; got only ") +
                                  (p.initial_s ? "S" : "z"));
  if (p.initial_s) {
    c.tensor("initial_state.S", *p.initial_s, {b, h, D, e}, "[b, h, D, e]", {DType::kFloat32}, false);
    c.tensor("initial_state.z", *p.initial_z, {b, h, D}, "[b, h, D]", {DType::kFloat32}, false);
  }
  c.tensor("y", p.y, {b, t, hq, e}, "[b, t, hq, e]", {p.q.dtype}, true);
  if (p.final_s.has_value() != p.final_z.has_value())
    c.fail(ErrorKind::kValue, std::string("argument 'final_state': expected both S and z, or neither; got only ") +
                                  (p.final_s ? "S" : "z"));
  if (p.final_s) {
    c.tensor("final_state.S", *p.final_s, {b, h, D, e}, "[b, h, D, e]", {DType::kFloat32}, true);
    c.tensor("final_state.z", *p.final_z, {b, h, D}, "[b, h, D]", {DType::kFloat32}, true);
  }

  ForwardProblem r;
  r.b = b, r.t = t, r.hq = hq, r.h = h, r.d = d, r.e = e, r.D = D;
  fill_common(r, p, dev, scale);
  r.s0 = p.initial_s ? static_cast<const float*>(p.initial_s->data) : nullptr;
  r.z0 = p.initial_z ? static_cast<const float*>(p.initial_z->data) : nullptr;
  r.s_out = p.final_s ? static_cast<float*>(p.final_s->data) : nullptr;
  r.z_out = p.final_z ? static_cast<float*>(p.final_z->data) : nullptr;

  // Chunk size: any positive integer on the CPU; the GPU's documented set on the GPU.
  if (p.chunk_size < 0)
    c.fail(ErrorKind::kValue, "argument 'chunk_size': expected a positive integer (or 0/None for the default), got " +
                                  std::to_string(p.chunk_size));
  if (dev.type == DeviceType::kCPU) {
    r.chunk = p.chunk_size > 0 ? p.chunk_size : 64;
  } else {
#ifdef POWERRET_WITH_CUDA
    if (p.chunk_size == 0) {
      r.chunk = cuda::default_chunk(r);
    } else {
      int n = 0;
      const int* sizes = cuda::chunk_sizes(&n);
      bool ok = false;
      std::string allowed;
      for (int i = 0; i < n; ++i) {
        ok |= sizes[i] == p.chunk_size;
        allowed += (i ? ", " : "") + std::to_string(sizes[i]);
      }
      if (!ok)
        c.fail(ErrorKind::kValue, "argument 'chunk_size': expected one of {" + allowed + "} on the GPU, got " +
                                      std::to_string(p.chunk_size));
      r.chunk = p.chunk_size;
    }
#endif
  }
  r.n_chunks = (t + r.chunk - 1) / r.chunk;

  if (check_workspace) {
    const std::size_t need = workspace_bytes(r);
    if (need > 0) {
      if (!p.workspace)
        c.fail(ErrorKind::kValue, "argument 'workspace': expected a uint8 buffer of at least " + std::to_string(need) +
                                      " bytes (forward_workspace_bytes), got none");
      const Tensor& w = *p.workspace;
      if (w.ndim != 1 || w.dtype != DType::kUInt8 || w.numel() < static_cast<int64_t>(need))
        c.fail(ErrorKind::kValue, "argument 'workspace': expected a 1-d uint8 buffer of at least " +
                                      std::to_string(need) + " bytes, got " + dtype_name(w.dtype) + " of shape " +
                                      shape_text(w));
      if (reinterpret_cast<std::uintptr_t>(w.data) % 256 != 0)
        c.fail(ErrorKind::kValue, "argument 'workspace': expected an address aligned to 256 bytes, got a misaligned one");
      c.tensor("workspace", w, {w.shape[0]}, "[bytes]", {DType::kUInt8}, true);
      r.workspace = w.data;
    }
  }
  return r;
}

std::size_t workspace_bytes(const ForwardProblem& r) {
#ifdef POWERRET_WITH_CUDA
  if (r.on_gpu) return cuda::forward_workspace_bytes(r);
#endif
  (void)r;
  return 0;
}

DecodeProblem validate(const DecodeParams& p) {
  Checker c("decode_step");
  check_positive_dims(c, "q", p.q, 3, "[b, hq, d]");
  const Device dev = p.q.device;
  const int64_t b = p.q.shape[0], hq = p.q.shape[1], d = p.q.shape[2];
  c.tensor("q", p.q, {b, hq, d}, "[b, hq, d]", input_dtypes(dev), false);
  check_positive_dims(c, "k", p.k, 3, "[b, h, d]");
  const int64_t h = p.k.shape[1];
  c.tensor("k", p.k, {b, h, d}, "[b, h, d]", {p.q.dtype}, false);
  check_heads(c, hq, h);
  check_positive_dims(c, "v", p.v, 3, "[b, h, e]");
  const int64_t e = p.v.shape[2];
  c.tensor("v", p.v, {b, h, e}, "[b, h, e]", {p.q.dtype}, false);
  if (p.log_g) c.tensor("log_g", *p.log_g, {b, h}, "[b, h]", {DType::kFloat32}, false);
  const int64_t D = check_support(c, dev, d, e, p.deg);
  const float scale = resolve_scale(c, p.scale, d);
  int64_t num_slots = b;
  if (p.slots) {
    c.tensor("slots", *p.slots, {b}, "[b]", {DType::kInt32}, false);
    if (p.s.ndim != 4 || p.s.shape[0] < 1)
      c.fail(ErrorKind::kValue, "argument 'state.S': expected rank 4 [num_slots, h, D, e] with num_slots >= 1, got shape " +
                                    shape_text(p.s));
    num_slots = p.s.shape[0];
  }
  c.tensor("state.S", p.s, {num_slots, h, D, e}, p.slots ? "[num_slots, h, D, e]" : "[b, h, D, e]",
           {DType::kFloat32}, true);
  c.tensor("state.z", p.z, {num_slots, h, D}, p.slots ? "[num_slots, h, D]" : "[b, h, D]", {DType::kFloat32}, true);
  c.tensor("y", p.y, {b, hq, e}, "[b, hq, e]", {p.q.dtype}, true);

  DecodeProblem r;
  r.b = b, r.hq = hq, r.h = h, r.d = d, r.e = e, r.D = D, r.num_slots = num_slots;
  fill_common(r, p, dev, scale);
  r.s = static_cast<float*>(p.s.data);
  r.z = static_cast<float*>(p.z.data);
  r.slots = p.slots ? static_cast<const int32_t*>(p.slots->data) : nullptr;
  return r;
}

}  // namespace powerret::detail
