// powerret._core: converts DLPack arrays (NumPy, PyTorch, CuPy, JAX) into powerret::Tensor views,
// calls the C++ API with the GIL released, and maps powerret::Error onto ValueError / TypeError /
// RuntimeError. No logic and no allocation here: the Python package allocates every output with
// the caller's framework and passes it in.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>

#include "powerret/powerret.hpp"

#ifdef POWERRET_WITH_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef POWERRET_WITH_XLA_FFI
#include "xla_ffi.hpp"
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// Inputs are read-only views; outputs writable. Neither is ever converted or copied.
using In = nb::ndarray<nb::ro>;
using Out = nb::ndarray<>;

powerret::DType to_dtype(nb::dlpack::dtype t, const char* name) {
  using nb::dlpack::dtype_code;
  const auto code = static_cast<dtype_code>(t.code);
  if (t.lanes == 1) {
    if (code == dtype_code::Float && t.bits == 16) return powerret::DType::kFloat16;
    if (code == dtype_code::Bfloat && t.bits == 16) return powerret::DType::kBFloat16;
    if (code == dtype_code::Float && t.bits == 32) return powerret::DType::kFloat32;
    if (code == dtype_code::Float && t.bits == 64) return powerret::DType::kFloat64;
    if (code == dtype_code::Int && t.bits == 32) return powerret::DType::kInt32;
    if (code == dtype_code::UInt && t.bits == 8) return powerret::DType::kUInt8;
  }
  static const char* kinds[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  const std::string kind = t.code < 7 ? kinds[t.code] : "code" + std::to_string(t.code);
  // What this argument takes (the library checks the exact dtype once it is one it knows).
  const std::string arg = name;
  const char* expected = arg == "slots"       ? "int32"
                         : arg == "workspace" ? "uint8"
                         : arg == "log_g" || arg.rfind("initial_state", 0) == 0 || arg.rfind("final_state", 0) == 0 ||
                                 arg.rfind("state", 0) == 0
                             ? "float32"
                             : "float16, bfloat16, float32 or float64";
  throw nb::type_error((std::string("argument '") + name + "': expected dtype " + expected + ", got " + kind +
                        std::to_string(t.bits) +
                        (t.lanes != 1 ? "x" + std::to_string(t.lanes) : std::string()))
                           .c_str());
}

template <class A>
powerret::Tensor to_tensor(const A& a, const char* name) {
  powerret::Tensor t;
  if (a.ndim() > static_cast<size_t>(powerret::kMaxRank))
    throw nb::value_error((std::string("argument '") + name + "': expected rank <= " +
                           std::to_string(powerret::kMaxRank) + ", got " + std::to_string(a.ndim()))
                              .c_str());
  t.data = const_cast<void*>(static_cast<const void*>(a.data()));
  t.dtype = to_dtype(a.dtype(), name);
  t.ndim = static_cast<int>(a.ndim());
  for (int i = 0; i < t.ndim; ++i) {
    t.shape[i] = static_cast<int64_t>(a.shape(i));
    t.strides[i] = static_cast<int64_t>(a.stride(i));
  }
  const int dev = a.device_type();
  if (dev == nb::device::cpu::value) t.device = {powerret::DeviceType::kCPU, 0};
  else if (dev == nb::device::cuda::value) t.device = {powerret::DeviceType::kCUDA, a.device_id()};
  else
    throw nb::value_error((std::string("argument '") + name + "': expected a CPU or CUDA array, got DLPack device type " +
                           std::to_string(dev))
                              .c_str());
  return t;
}

template <class A>
std::optional<powerret::Tensor> to_tensor(const std::optional<A>& a, const char* name) {
  if (!a) return std::nullopt;
  return to_tensor(*a, name);
}

// A Tensor that only describes (shape, dtype name) on `device`, for validation without memory:
// each gets a distinct, aligned fake address that nothing ever dereferences.
std::optional<powerret::Tensor> describe(const std::optional<std::pair<std::vector<int64_t>, std::string>>& spec,
                                         powerret::Device device, int slot, const char* name) {
  if (!spec) return std::nullopt;
  static const std::pair<const char*, powerret::DType> names[] = {
      {"float16", powerret::DType::kFloat16}, {"bfloat16", powerret::DType::kBFloat16},
      {"float32", powerret::DType::kFloat32}, {"float64", powerret::DType::kFloat64},
      {"int32", powerret::DType::kInt32},     {"uint8", powerret::DType::kUInt8}};
  powerret::Tensor t;
  bool known = false;
  for (const auto& [name, dtype] : names)
    if (spec->second == name) t.dtype = dtype, known = true;
  if (!known)
    throw nb::type_error((std::string("argument '") + name +
                          "': expected dtype float16, bfloat16, float32, float64, int32 or uint8, got " + spec->second)
                             .c_str());
  if (spec->first.size() > static_cast<size_t>(powerret::kMaxRank))
    throw nb::value_error((std::string("argument '") + name + "': expected rank <= " +
                           std::to_string(powerret::kMaxRank) + ", got " + std::to_string(spec->first.size()))
                              .c_str());
  t.ndim = static_cast<int>(spec->first.size());
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.shape[i] = spec->first[i];
    t.strides[i] = stride;
    stride *= spec->first[i];
  }
  t.data = reinterpret_cast<void*>((uintptr_t{1} << 44) + static_cast<uintptr_t>(slot) * (uintptr_t{1} << 40));
  t.device = device;
  return t;
}

powerret::Stream to_stream(uintptr_t stream) { return reinterpret_cast<powerret::Stream>(stream); }

powerret::ForwardParams forward_params(const In& q, const In& k, const In& v, const std::optional<In>& log_g,
                                       const std::optional<In>& initial_s, const std::optional<In>& initial_z,
                                       const Out& y, const std::optional<Out>& final_s,
                                       const std::optional<Out>& final_z, const std::optional<Out>& workspace,
                                       int deg, std::optional<double> scale, bool normalize, int chunk_size) {
  return powerret::ForwardParams{
      .q = to_tensor(q, "q"),
      .k = to_tensor(k, "k"),
      .v = to_tensor(v, "v"),
      .log_g = to_tensor(log_g, "log_g"),
      .initial_s = to_tensor(initial_s, "initial_state.S"),
      .initial_z = to_tensor(initial_z, "initial_state.z"),
      .y = to_tensor(y, "y"),
      .final_s = to_tensor(final_s, "final_state.S"),
      .final_z = to_tensor(final_z, "final_state.z"),
      .workspace = to_tensor(workspace, "workspace"),
      .deg = deg,
      .scale = scale,
      .normalize = normalize,
      .chunk_size = chunk_size,
  };
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "powerret native core: power retention kernels (CPU and CUDA) over DLPack arrays.";

  nb::exception<powerret::Error>(m, "Error");  // replaced by the translator below
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const powerret::Error& e) {
      switch (e.kind()) {
        case powerret::ErrorKind::kValue: PyErr_SetString(PyExc_ValueError, e.what()); break;
        case powerret::ErrorKind::kType: PyErr_SetString(PyExc_TypeError, e.what()); break;
        case powerret::ErrorKind::kRuntime: PyErr_SetString(PyExc_RuntimeError, e.what()); break;
      }
    }
  });

  m.def("state_dim", &powerret::state_dim, "d"_a, "deg"_a, "D = C(d + deg - 1, deg), the rows of phi_deg.");
  m.def("built_with_cuda", &powerret::built_with_cuda, "Whether this build carries the CUDA backend.");
  m.def("version", &powerret::version);
  m.def(
      "xla_handlers",
      [] {
        nb::list out;
#ifdef POWERRET_WITH_XLA_FFI
        for (const auto& h : powerret::xla::handlers())
          out.append(nb::make_tuple(h.name, h.platform, nb::capsule(h.fn)));
#endif
        return out;
      },
      "XLA FFI handlers as (target, platform, capsule); empty when built without the XLA FFI headers.");
  m.def(
      "synchronize",
      [](int device) {
#ifdef POWERRET_WITH_CUDA
        nb::gil_scoped_release release;
        int previous = 0;
        cudaGetDevice(&previous);
        cudaSetDevice(device);
        const cudaError_t status = cudaStreamSynchronize(nullptr);
        cudaSetDevice(previous);
        if (status != cudaSuccess)
          throw powerret::Error(powerret::ErrorKind::kRuntime,
                                std::string("synchronize: ") + cudaGetErrorString(status));
#else
        (void)device;
#endif
      },
      "device"_a, "Waits for the legacy default stream of a CUDA device (JAX's eager path; no-op on CPU builds).");

  m.def(
      "sympow",
      [](const In& x, const Out& out, int deg, uintptr_t stream) {
        const powerret::SympowParams params{.x = to_tensor(x, "x"), .out = to_tensor(out, "out"), .deg = deg};
        nb::gil_scoped_release release;
        powerret::sympow(params, to_stream(stream));
      },
      "x"_a.noconvert(), "out"_a.noconvert(), "deg"_a, "stream"_a = 0,
      "out[..., D] = phi_deg(x[..., d]) (writes `out`).");

  m.def(
      "forward_workspace_bytes",
      [](const In& q, const In& k, const In& v, const std::optional<In>& log_g, const std::optional<In>& initial_s,
         const std::optional<In>& initial_z, const Out& y, const std::optional<Out>& final_s,
         const std::optional<Out>& final_z, int deg, std::optional<double> scale, bool normalize, int chunk_size) {
        return powerret::forward_workspace_bytes(forward_params(q, k, v, log_g, initial_s, initial_z, y, final_s,
                                                                final_z, std::nullopt, deg, scale, normalize,
                                                                chunk_size));
      },
      "q"_a.noconvert(), "k"_a.noconvert(), "v"_a.noconvert(), "log_g"_a.noconvert().none(),
      "initial_s"_a.noconvert().none(), "initial_z"_a.noconvert().none(), "y"_a.noconvert(),
      "final_s"_a.noconvert().none(), "final_z"_a.noconvert().none(), "deg"_a, "scale"_a.none(), "normalize"_a,
      "chunk_size"_a, "Bytes of scratch memory power_retention needs for these arguments (validates them).");

  m.def(
      "power_retention",
      [](const In& q, const In& k, const In& v, const std::optional<In>& log_g, const std::optional<In>& initial_s,
         const std::optional<In>& initial_z, const Out& y, const std::optional<Out>& final_s,
         const std::optional<Out>& final_z, const std::optional<Out>& workspace, int deg, std::optional<double> scale,
         bool normalize, int chunk_size, uintptr_t stream) {
        const auto params = forward_params(q, k, v, log_g, initial_s, initial_z, y, final_s, final_z, workspace, deg,
                                           scale, normalize, chunk_size);
        nb::gil_scoped_release release;
        powerret::power_retention(params, to_stream(stream));
      },
      "q"_a.noconvert(), "k"_a.noconvert(), "v"_a.noconvert(), "log_g"_a.noconvert().none(),
      "initial_s"_a.noconvert().none(), "initial_z"_a.noconvert().none(), "y"_a.noconvert(),
      "final_s"_a.noconvert().none(), "final_z"_a.noconvert().none(), "workspace"_a.noconvert().none(), "deg"_a,
      "scale"_a.none(), "normalize"_a, "chunk_size"_a, "stream"_a = 0,
      "Causal chunked power retention (writes y and, when given, the final state).");

  m.def(
      "default_chunk_size",
      [](const In& q, const In& k, const In& v, const Out& y, int deg) {
        powerret::ForwardParams params{.q = to_tensor(q, "q"), .k = to_tensor(k, "k"), .v = to_tensor(v, "v"),
                                       .y = to_tensor(y, "y"), .deg = deg};
        return powerret::default_chunk_size(params);
      },
      "q"_a.noconvert(), "k"_a.noconvert(), "v"_a.noconvert(), "y"_a.noconvert(), "deg"_a,
      "The chunk size power_retention picks for these arguments.");

  // Validation without memory (JAX tracing): each spec is (shape, dtype name) or None.
  using Spec = std::optional<std::pair<std::vector<int64_t>, std::string>>;
  m.def(
      "check_forward",
      [](Spec q, Spec k, Spec v, Spec log_g, Spec s0, Spec z0, Spec y, Spec s_out, Spec z_out, bool cuda, int device,
         int deg, std::optional<double> scale, bool normalize, int chunk_size) {
        const powerret::Device dev{cuda ? powerret::DeviceType::kCUDA : powerret::DeviceType::kCPU, device};
        powerret::ForwardParams params{.q = *describe(q, dev, 0, "q"),
                                       .k = *describe(k, dev, 1, "k"),
                                       .v = *describe(v, dev, 2, "v"),
                                       .log_g = describe(log_g, dev, 3, "log_g"),
                                       .initial_s = describe(s0, dev, 4, "initial_state.S"),
                                       .initial_z = describe(z0, dev, 5, "initial_state.z"),
                                       .y = *describe(y, dev, 6, "y"),
                                       .final_s = describe(s_out, dev, 7, "final_state.S"),
                                       .final_z = describe(z_out, dev, 8, "final_state.z"),
                                       .deg = deg, .scale = scale, .normalize = normalize, .chunk_size = chunk_size};
        return powerret::forward_workspace_bytes(params);
      },
      "q"_a.none(), "k"_a.none(), "v"_a.none(), "log_g"_a.none(), "initial_s"_a.none(), "initial_z"_a.none(),
      "y"_a.none(), "final_s"_a.none(), "final_z"_a.none(), "cuda"_a, "device"_a, "deg"_a, "scale"_a.none(),
      "normalize"_a, "chunk_size"_a, "Validates power_retention arguments described by (shape, dtype) pairs; returns the workspace bytes.");
  m.def(
      "check_decode",
      [](Spec q, Spec k, Spec v, Spec log_g, Spec s, Spec z, Spec slots, Spec y, bool cuda, int device, int deg,
         std::optional<double> scale, bool normalize) {
        const powerret::Device dev{cuda ? powerret::DeviceType::kCUDA : powerret::DeviceType::kCPU, device};
        const powerret::DecodeParams params{.q = *describe(q, dev, 0, "q"), .k = *describe(k, dev, 1, "k"),
                                            .v = *describe(v, dev, 2, "v"), .log_g = describe(log_g, dev, 3, "log_g"),
                                            .s = *describe(s, dev, 4, "state.S"), .z = *describe(z, dev, 5, "state.z"),
                                            .slots = describe(slots, dev, 6, "slots"), .y = *describe(y, dev, 7, "y"),
                                            .deg = deg, .scale = scale, .normalize = normalize};
        powerret::check(params);
      },
      "q"_a.none(), "k"_a.none(), "v"_a.none(), "log_g"_a.none(), "s"_a.none(), "z"_a.none(), "slots"_a.none(),
      "y"_a.none(), "cuda"_a, "device"_a, "deg"_a, "scale"_a.none(), "normalize"_a,
      "Validates decode_step arguments described by (shape, dtype) pairs.");

  m.def(
      "decode_step",
      [](const In& q, const In& k, const In& v, const std::optional<In>& log_g, const Out& s, const Out& z,
         const std::optional<In>& slots, const Out& y, int deg, std::optional<double> scale, bool normalize,
         uintptr_t stream) {
        const powerret::DecodeParams params{
            .q = to_tensor(q, "q"),
            .k = to_tensor(k, "k"),
            .v = to_tensor(v, "v"),
            .log_g = to_tensor(log_g, "log_g"),
            .s = to_tensor(s, "state.S"),
            .z = to_tensor(z, "state.z"),
            .slots = to_tensor(slots, "slots"),
            .y = to_tensor(y, "y"),
            .deg = deg,
            .scale = scale,
            .normalize = normalize,
        };
        nb::gil_scoped_release release;
        powerret::decode_step(params, to_stream(stream));
      },
      "q"_a.noconvert(), "k"_a.noconvert(), "v"_a.noconvert(), "log_g"_a.noconvert().none(), "s"_a.noconvert(),
      "z"_a.noconvert(), "slots"_a.noconvert().none(), "y"_a.noconvert(), "deg"_a, "scale"_a.none(), "normalize"_a,
      "stream"_a = 0, "One decode step: updates (s, z) in place and writes y.");
}
