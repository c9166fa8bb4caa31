// XLA FFI handlers for JAX (jax.ffi.ffi_call): XLA allocates every output (the forward's
// workspace included) and hands over its stream, so the ops work eagerly and under jax.jit, and decode_step
// updates donated state buffers in place (input/output aliasing). Built only when the XLA FFI
// headers are found at build time (jax installed in the build environment).
//
// Optional inputs/outputs travel as zero-size placeholder buffers with a boolean attribute
// saying whether the real one is present; the FFI has no optional buffers.
#include "xla_ffi.hpp"

#include <optional>
#include <utility>
#include <string>

#include "powerret/powerret.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace powerret::xla {
namespace {

DType to_dtype(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F16: return DType::kFloat16;
    case ffi::DataType::BF16: return DType::kBFloat16;
    case ffi::DataType::F32: return DType::kFloat32;
    case ffi::DataType::F64: return DType::kFloat64;
    case ffi::DataType::S32: return DType::kInt32;
    case ffi::DataType::U8: return DType::kUInt8;
    default:
      throw Error(ErrorKind::kType, "unsupported XLA element type " + std::to_string(static_cast<int>(t)));
  }
}

Tensor to_tensor(const ffi::AnyBuffer& buf, Device device) {
  Tensor t;
  const auto dims = buf.dimensions();
  if (dims.size() > static_cast<std::size_t>(kMaxRank))
    throw Error(ErrorKind::kValue, "XLA buffer of rank " + std::to_string(dims.size()) + " exceeds " +
                                       std::to_string(kMaxRank));
  t.data = buf.untyped_data();
  t.dtype = to_dtype(buf.element_type());
  t.ndim = static_cast<int>(dims.size());
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.shape[i] = dims[i];
    t.strides[i] = stride;
    stride *= dims[i];
  }
  t.device = device;
  return t;
}

std::optional<Tensor> maybe(bool present, const ffi::AnyBuffer& buf, Device device) {
  if (!present) return std::nullopt;
  return to_tensor(buf, device);
}

ffi::Error to_ffi_error(const std::exception& e) { return ffi::Error::InvalidArgument(e.what()); }

struct ForwardAttrs {
  int64_t deg, chunk;
  float scale;
  bool has_scale, normalize, has_log_g, has_initial, has_final;
};

// The workspace is one more XLA-allocated result (uint8, sized while tracing), so nothing here
// allocates and the call needs no scratch-allocator support from the runtime.
ffi::Error forward(void* stream, Device device, ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                   ffi::AnyBuffer log_g, ffi::AnyBuffer s0, ffi::AnyBuffer z0, ffi::Result<ffi::AnyBuffer> y,
                   ffi::Result<ffi::AnyBuffer> s_out, ffi::Result<ffi::AnyBuffer> z_out,
                   ffi::Result<ffi::AnyBuffer> workspace, const ForwardAttrs& a) {
  try {
    ForwardParams params{
        .q = to_tensor(q, device),
        .k = to_tensor(k, device),
        .v = to_tensor(v, device),
        .log_g = maybe(a.has_log_g, log_g, device),
        .initial_s = maybe(a.has_initial, s0, device),
        .initial_z = maybe(a.has_initial, z0, device),
        .y = to_tensor(*y, device),
        .final_s = maybe(a.has_final, *s_out, device),
        .final_z = maybe(a.has_final, *z_out, device),
        .deg = static_cast<int>(a.deg),
        .scale = a.has_scale ? std::optional<double>(a.scale) : std::nullopt,
        .normalize = a.normalize,
        .chunk_size = static_cast<int>(a.chunk),
    };
    if (forward_workspace_bytes(params) > 0) params.workspace = to_tensor(*workspace, device);
    power_retention(params, stream);
  } catch (const std::exception& e) {
    return to_ffi_error(e);
  }
  return ffi::Error::Success();
}

ffi::Error decode(void* stream, Device device, ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                  ffi::AnyBuffer log_g, ffi::AnyBuffer slots, ffi::AnyBuffer /*s_in*/, ffi::AnyBuffer /*z_in*/,
                  ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> s, ffi::Result<ffi::AnyBuffer> z,
                  int64_t deg, float scale, bool has_scale, bool normalize, bool has_log_g, bool has_slots) {
  // s_in / z_in are aliased to the s / z results: XLA has put the incoming state there.
  try {
    const DecodeParams params{
        .q = to_tensor(q, device),
        .k = to_tensor(k, device),
        .v = to_tensor(v, device),
        .log_g = maybe(has_log_g, log_g, device),
        .s = to_tensor(*s, device),
        .z = to_tensor(*z, device),
        .slots = maybe(has_slots, slots, device),
        .y = to_tensor(*y, device),
        .deg = static_cast<int>(deg),
        .scale = has_scale ? std::optional<double>(scale) : std::nullopt,
        .normalize = normalize,
    };
    decode_step(params, stream);
  } catch (const std::exception& e) {
    return to_ffi_error(e);
  }
  return ffi::Error::Success();
}

ffi::Error sym(void* stream, Device device, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> out, int64_t deg) {
  try {
    sympow(SympowParams{.x = to_tensor(x, device), .out = to_tensor(*out, device), .deg = static_cast<int>(deg)},
           stream);
  } catch (const std::exception& e) {
    return to_ffi_error(e);
  }
  return ffi::Error::Success();
}

constexpr Device kCpu{DeviceType::kCPU, 0};
Device cuda_device(int32_t ordinal) { return Device{DeviceType::kCUDA, ordinal}; }

// b.Arg<AnyBuffer>() n times, then .Ret<AnyBuffer>() m times (m >= 1). Bindings only move
// through their own member functions, hence the rvalue reference.
template <int n, int m, class Binding>
auto buffers(Binding&& b) {
  static_assert(m >= 1, "every handler has a result");
  if constexpr (n > 0) return buffers<n - 1, m>(std::move(b).template Arg<ffi::AnyBuffer>());
  else if constexpr (m > 1) return buffers<0, m - 1>(std::move(b).template Ret<ffi::AnyBuffer>());
  else return std::move(b).template Ret<ffi::AnyBuffer>();
}

// q, k, v, log_g, S0, z0 -> y, S, z, workspace; then the attributes.
template <class Binding>
auto forward_args(Binding b) {
  return buffers<6, 4>(std::move(b))
      .template Attr<int64_t>("deg")
      .template Attr<int64_t>("chunk")
      .template Attr<float>("scale")
      .template Attr<bool>("has_scale")
      .template Attr<bool>("normalize")
      .template Attr<bool>("has_log_g")
      .template Attr<bool>("has_initial")
      .template Attr<bool>("has_final");
}

// q, k, v, log_g, slots, S, z -> y, S, z (S and z aliased); then the attributes.
template <class Binding>
auto decode_args(Binding b) {
  return buffers<7, 3>(std::move(b))
      .template Attr<int64_t>("deg")
      .template Attr<float>("scale")
      .template Attr<bool>("has_scale")
      .template Attr<bool>("normalize")
      .template Attr<bool>("has_log_g")
      .template Attr<bool>("has_slots");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER(kForwardCpu,
                       ([](ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer g, ffi::AnyBuffer s0,
                           ffi::AnyBuffer z0, ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> s,
                           ffi::Result<ffi::AnyBuffer> z, ffi::Result<ffi::AnyBuffer> w, int64_t deg, int64_t chunk,
                           float scale, bool has_scale, bool normalize, bool has_log_g, bool has_initial,
                           bool has_final) {
                         return forward(nullptr, kCpu, q, k, v, g, s0, z0, y, s, z, w,
                                        {deg, chunk, scale, has_scale, normalize, has_log_g, has_initial, has_final});
                       }),
                       forward_args(ffi::Ffi::Bind()));

XLA_FFI_DEFINE_HANDLER(kForwardCuda,
                       ([](void* stream, int32_t ordinal, ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                           ffi::AnyBuffer g, ffi::AnyBuffer s0, ffi::AnyBuffer z0, ffi::Result<ffi::AnyBuffer> y,
                           ffi::Result<ffi::AnyBuffer> s, ffi::Result<ffi::AnyBuffer> z, ffi::Result<ffi::AnyBuffer> w,
                           int64_t deg, int64_t chunk, float scale, bool has_scale, bool normalize, bool has_log_g,
                           bool has_initial, bool has_final) {
                         return forward(stream, cuda_device(ordinal), q, k, v, g, s0, z0, y, s, z, w,
                                        {deg, chunk, scale, has_scale, normalize, has_log_g, has_initial, has_final});
                       }),
                       forward_args(ffi::Ffi::Bind().Ctx<ffi::PlatformStream<void*>>().Ctx<ffi::DeviceOrdinal>()));

XLA_FFI_DEFINE_HANDLER(kDecodeCpu,
                       ([](ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer g,
                           ffi::AnyBuffer slots, ffi::AnyBuffer s_in, ffi::AnyBuffer z_in,
                           ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> s, ffi::Result<ffi::AnyBuffer> z,
                           int64_t deg, float scale, bool has_scale, bool normalize, bool has_log_g, bool has_slots) {
                         return decode(nullptr, kCpu, q, k, v, g, slots, s_in, z_in, y, s, z, deg, scale, has_scale,
                                       normalize, has_log_g, has_slots);
                       }),
                       decode_args(ffi::Ffi::Bind()));

XLA_FFI_DEFINE_HANDLER(kDecodeCuda,
                       ([](void* stream, int32_t ordinal, ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                           ffi::AnyBuffer g, ffi::AnyBuffer slots, ffi::AnyBuffer s_in, ffi::AnyBuffer z_in,
                           ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> s, ffi::Result<ffi::AnyBuffer> z,
                           int64_t deg, float scale, bool has_scale, bool normalize, bool has_log_g, bool has_slots) {
                         return decode(stream, cuda_device(ordinal), q, k, v, g, slots, s_in, z_in, y, s, z, deg,
                                       scale, has_scale, normalize, has_log_g, has_slots);
                       }),
                       decode_args(ffi::Ffi::Bind().Ctx<ffi::PlatformStream<void*>>().Ctx<ffi::DeviceOrdinal>()));

XLA_FFI_DEFINE_HANDLER(kSympowCpu,
                       ([](ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> out, int64_t deg) {
                         return sym(nullptr, kCpu, x, out, deg);
                       }),
                       ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>().Attr<int64_t>("deg"));

XLA_FFI_DEFINE_HANDLER(kSympowCuda,
                       ([](void* stream, int32_t ordinal, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> out,
                           int64_t deg) { return sym(stream, cuda_device(ordinal), x, out, deg); }),
                       ffi::Ffi::Bind()
                           .Ctx<ffi::PlatformStream<void*>>()
                           .Ctx<ffi::DeviceOrdinal>()
                           .Arg<ffi::AnyBuffer>()
                           .Ret<ffi::AnyBuffer>()
                           .Attr<int64_t>("deg"));

std::vector<Handler> handlers() {
  return {
      {"powerret_forward", "cpu", reinterpret_cast<void*>(kForwardCpu)},
      {"powerret_forward", "CUDA", reinterpret_cast<void*>(kForwardCuda)},
      {"powerret_decode_step", "cpu", reinterpret_cast<void*>(kDecodeCpu)},
      {"powerret_decode_step", "CUDA", reinterpret_cast<void*>(kDecodeCuda)},
      {"powerret_sympow", "cpu", reinterpret_cast<void*>(kSympowCpu)},
      {"powerret_sympow", "CUDA", reinterpret_cast<void*>(kSympowCuda)},
  };
}

}  // namespace powerret::xla
