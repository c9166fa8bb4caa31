// cases: inputs, verification against the CPU backend, and timing of forward / decode / sympow.
//
// Input distributions (never zeros): q, k ~ U(-0.5, 1.5) (a positive mean keeps the normaliser
// phi(q).z well away from 0 for every degree, so the relative error of y is meaningful),
// v, sympow's x ~ U(-1, 1), log_g = log(sigmoid(4 + U(-1, 1))). States (decode, forward --state)
// are real ones: the final state of a 16-token CPU prefill, scaled per row by U(0.5, 1.5).
#include "cases.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <tuple>
#include <vector>

#include "data.hpp"
#include "powerret/powerret.hpp"

namespace powerret_bench {
namespace {

using powerret::DType;

struct Env {
  const Options& o;
  const DeviceInfo& device;
  void* stream;
  DType dtype;
  int64_t es;             // bytes of one q/k/v/y element
  powerret::Device where;  // the device the timed op runs on
};

powerret::Tensor view(const Buffer& buf, DType dtype, std::initializer_list<int64_t> shape, powerret::Device where) {
  return powerret::make_tensor(buf.data(), dtype, shape, where);
}

powerret::Tensor host_view(void* data, DType dtype, std::initializer_list<int64_t> shape) {
  return powerret::make_tensor(data, dtype, shape, powerret::Device{});
}

// A host array of n elements of `dtype` with uniform(lo, hi) values.
Buffer host_uniform(DType dtype, int64_t n, float lo, float hi, uint64_t seed) {
  Buffer b(static_cast<std::size_t>(n * dtype_bytes(dtype)), false);
  fill_uniform(dtype, b.data(), n, lo, hi, seed);
  return b;
}

// A device (or, for --device cpu, a second host) copy of a host array.
Buffer to_device(const Env& env, const Buffer& host) {
  Buffer b(host.bytes(), env.device.cuda);
  if (host.bytes() != 0) b.upload(host.data(), host.bytes());
  return b;
}

// `n` elements from element `offset` of a host array of `dtype`, as fp32.
std::vector<float> slice_float(DType dtype, const Buffer& host, int64_t offset, int64_t n) {
  return to_float(dtype, static_cast<const char*>(host.data()) + offset * dtype_bytes(dtype), n);
}

// The same from a device (or host) buffer.
std::vector<float> download_float(DType dtype, const Buffer& buf, int64_t offset, int64_t n) {
  std::vector<char> raw(static_cast<std::size_t>(n * dtype_bytes(dtype)));
  buf.download(raw.data(), raw.size(), static_cast<std::size_t>(offset * dtype_bytes(dtype)));
  return to_float(dtype, raw.data(), n);
}

// ||out - ref|| / ||ref|| in fp64 (||out - ref|| alone when ref is 0); NaN anywhere gives NaN.
double rel_err(const std::vector<float>& out, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double delta = static_cast<double>(out[i]) - ref[i];
    diff += delta * delta;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

double tolerance(DType dtype) { return dtype == DType::kFloat32 ? 1e-4 : 2e-2; }

Shape base_shape(const Env& env) {
  const Options& o = env.o;
  Shape s;
  s.b = o.b;
  s.t = o.t;
  s.hq = o.hq;
  s.h = o.h;
  s.d = o.d;
  s.e = o.e;
  s.deg = o.deg;
  s.D = powerret::state_dim(o.d, o.deg);
  s.elem_bytes = env.es;
  s.gated = o.gated;
  return s;
}

// States S [rows, h, D, e], z [rows, h, D] (fp32, host): the final state of a 16-token prefill on
// the CPU backend, scaled per row by U(0.5, 1.5) (S and z alike, so each row's y stays O(1)).
std::pair<Buffer, Buffer> make_states(const Shape& s, int64_t rows, uint64_t seed) {
  constexpr int64_t kPrefill = 16;
  const int64_t D = s.D, h = s.h, d = s.d, e = s.e;
  Buffer q = host_uniform(DType::kFloat32, kPrefill * h * d, -0.5f, 1.5f, seed + 101);
  Buffer k = host_uniform(DType::kFloat32, kPrefill * h * d, -0.5f, 1.5f, seed + 102);
  Buffer v = host_uniform(DType::kFloat32, kPrefill * h * e, -1.0f, 1.0f, seed + 103);
  std::vector<float> y(static_cast<std::size_t>(kPrefill * h * e));
  std::vector<float> base_s(static_cast<std::size_t>(h * D * e)), base_z(static_cast<std::size_t>(h * D));
  powerret::ForwardParams prefill{
      .q = host_view(q.data(), DType::kFloat32, {1, kPrefill, h, d}),
      .k = host_view(k.data(), DType::kFloat32, {1, kPrefill, h, d}),
      .v = host_view(v.data(), DType::kFloat32, {1, kPrefill, h, e}),
      .y = host_view(y.data(), DType::kFloat32, {1, kPrefill, h, e}),
      .final_s = host_view(base_s.data(), DType::kFloat32, {1, h, D, e}),
      .final_z = host_view(base_z.data(), DType::kFloat32, {1, h, D}),
      .deg = s.deg,
  };
  powerret::power_retention(prefill);

  Buffer S(static_cast<std::size_t>(rows * h * D * e * 4), false), z(static_cast<std::size_t>(rows * h * D * 4), false);
  std::vector<float> factor(static_cast<std::size_t>(rows));
  fill_uniform(DType::kFloat32, factor.data(), rows, 0.5f, 1.5f, seed + 104);
  float* ps = static_cast<float*>(S.data());
  float* pz = static_cast<float*>(z.data());
  const int64_t per_s = h * D * e, per_z = h * D;
  parallel_for(rows * per_s, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) ps[i] = factor[i / per_s] * base_s[i % per_s];
  });
  for (int64_t i = 0; i < rows * per_z; ++i) pz[i] = factor[i / per_z] * base_z[i % per_z];
  return {std::move(S), std::move(z)};
}

// The batch rows whose slices are checked: the first, and the last when there is more than one.
std::vector<int64_t> checked_rows(int64_t b) { return b > 1 ? std::vector<int64_t>{0, b - 1} : std::vector<int64_t>{0}; }

// Throws VerificationError when err exceeds tol; with --unchecked (diagnostic builds whose results are wrong by
// design) records the slice in result.failed instead, and the timing goes on.
void require(double err, double tol, const std::string& what, const Options& o, CaseResult& result) {
  if (!(err <= tol)) {
    if (o.unchecked) {
      result.failed += (result.failed.empty() ? "" : " ") + what;
      return;
    }
    throw VerificationError("verification failed: " + what + ": ||out - ref|| / ||ref|| = " +
                            std::to_string(err) + " > " + std::to_string(tol) +
                            " against the CPU backend; no timing reported");
  }
}

TimingPlan plan_for(const Env& env, int64_t working_set, CaseResult& result) {
  const Options& o = env.o;
  TimingPlan plan;
  plan.warmup = o.warmup >= 0 ? o.warmup : (env.device.cuda ? 10 : 1);
  plan.iters = o.iters > 0 ? o.iters : (env.device.cuda ? 100 : 5);
  plan.graph = env.device.cuda && o.graph;
  if (env.device.cuda) {
    plan.flush_l2 = o.flush == Flush::kOn ||
                    (o.flush == Flush::kAuto && working_set <= 2 * env.device.l2_bytes);
  }
  result.flushed = plan.flush_l2;
  result.mode = !env.device.cuda ? "cpu" : (plan.graph ? "graph" : "stream");
  return plan;
}

// ---- forward ------------------------------------------------------------------------------------
CaseResult forward_case(const Env& env) {
  const Options& o = env.o;
  CaseResult result;
  Shape s = base_shape(env);
  s.with_state = o.state;
  const int64_t b = s.b, t = s.t, hq = s.hq, h = s.h, d = s.d, e = s.e, D = s.D;

  Buffer host_q = host_uniform(env.dtype, b * t * hq * d, -0.5f, 1.5f, o.seed + 1);
  Buffer host_k = host_uniform(env.dtype, b * t * h * d, -0.5f, 1.5f, o.seed + 2);
  Buffer host_v = host_uniform(env.dtype, b * t * h * e, -1.0f, 1.0f, o.seed + 3);
  Buffer host_g(static_cast<std::size_t>(o.gated ? b * t * h * 4 : 0), false);
  if (o.gated) fill_log_gate(static_cast<float*>(host_g.data()), b * t * h, o.seed + 4);
  Buffer host_s0, host_z0;
  if (o.state) std::tie(host_s0, host_z0) = make_states(s, b, o.seed + 5);

  Buffer dq = to_device(env, host_q), dk = to_device(env, host_k), dv = to_device(env, host_v), dg = to_device(env, host_g);
  Buffer ds0 = to_device(env, host_s0), dz0 = to_device(env, host_z0);
  Buffer dy(static_cast<std::size_t>(b * t * hq * e * env.es), env.device.cuda);
  Buffer ds1(static_cast<std::size_t>(o.state ? b * h * D * e * 4 : 0), env.device.cuda);
  Buffer dz1(static_cast<std::size_t>(o.state ? b * h * D * 4 : 0), env.device.cuda);

  const auto w = env.where;
  powerret::ForwardParams params{
      .q = view(dq, env.dtype, {b, t, hq, d}, w),
      .k = view(dk, env.dtype, {b, t, h, d}, w),
      .v = view(dv, env.dtype, {b, t, h, e}, w),
      .y = view(dy, env.dtype, {b, t, hq, e}, w),
      .deg = o.deg,
      .chunk_size = o.chunk,
  };
  if (o.gated) params.log_g = view(dg, DType::kFloat32, {b, t, h}, w);
  if (o.state) {
    params.initial_s = view(ds0, DType::kFloat32, {b, h, D, e}, w);
    params.initial_z = view(dz0, DType::kFloat32, {b, h, D}, w);
    params.final_s = view(ds1, DType::kFloat32, {b, h, D, e}, w);
    params.final_z = view(dz1, DType::kFloat32, {b, h, D}, w);
  }
  result.workspace_bytes = static_cast<int64_t>(powerret::forward_workspace_bytes(params));
  Buffer workspace(static_cast<std::size_t>(result.workspace_bytes), env.device.cuda);
  if (result.workspace_bytes > 0)
    params.workspace = view(workspace, DType::kUInt8, {result.workspace_bytes}, w);
  s.chunk = o.chunk > 0 ? o.chunk : powerret::default_chunk_size(params);

  // ---- verify: causal slices of rows 0 and b-1 against the CPU backend (fp32 in, fp64 inside)
  dy.poison();
  ds1.poison();
  dz1.poison();
  powerret::power_retention(params, env.stream);
  synchronize(env.device, env.stream);
  const double tol = tolerance(env.dtype);
  for (int64_t row : checked_rows(b)) {
    const int64_t tv = std::min<int64_t>(t, row == 0 ? 512 : 64);
    const bool whole = tv == t && o.state;  // the slice is the whole row: its final state is comparable
    std::vector<float> q = slice_float(env.dtype, host_q, row * t * hq * d, tv * hq * d);
    std::vector<float> k = slice_float(env.dtype, host_k, row * t * h * d, tv * h * d);
    std::vector<float> v = slice_float(env.dtype, host_v, row * t * h * e, tv * h * e);
    std::vector<float> y(static_cast<std::size_t>(tv * hq * e)), fs, fz;
    powerret::ForwardParams ref{
        .q = host_view(q.data(), DType::kFloat32, {1, tv, hq, d}),
        .k = host_view(k.data(), DType::kFloat32, {1, tv, h, d}),
        .v = host_view(v.data(), DType::kFloat32, {1, tv, h, e}),
        .y = host_view(y.data(), DType::kFloat32, {1, tv, hq, e}),
        .deg = o.deg,
    };
    std::vector<float> g;
    if (o.gated) {
      const float* pg = static_cast<const float*>(host_g.data()) + row * t * h;
      g.assign(pg, pg + tv * h);
      ref.log_g = host_view(g.data(), DType::kFloat32, {1, tv, h});
    }
    if (o.state) {
      ref.initial_s = host_view(static_cast<float*>(host_s0.data()) + row * h * D * e, DType::kFloat32, {1, h, D, e});
      ref.initial_z = host_view(static_cast<float*>(host_z0.data()) + row * h * D, DType::kFloat32, {1, h, D});
    }
    if (whole) {
      fs.resize(static_cast<std::size_t>(h * D * e));
      fz.resize(static_cast<std::size_t>(h * D));
      ref.final_s = host_view(fs.data(), DType::kFloat32, {1, h, D, e});
      ref.final_z = host_view(fz.data(), DType::kFloat32, {1, h, D});
    }
    powerret::power_retention(ref);
    const std::string what = "y[" + std::to_string(row) + ",:" + std::to_string(tv) + "]";
    const double err = rel_err(download_float(env.dtype, dy, row * t * hq * e, tv * hq * e), y);
    require(err, tol, what, o, result);
    result.verify_err = std::max(result.verify_err, err);
    result.verified += (result.verified.empty() ? "" : " ") + what;
    if (whole) {
      const double err_s = rel_err(download_float(DType::kFloat32, ds1, row * h * D * e, h * D * e), fs);
      const double err_z = rel_err(download_float(DType::kFloat32, dz1, row * h * D, h * D), fz);
      const std::string state_what = "final_s[" + std::to_string(row) + "] final_z[" + std::to_string(row) + "]";
      require(std::max(err_s, err_z), tol, state_what, o, result);
      result.verify_err = std::max({result.verify_err, err_s, err_z});
      result.verified += " " + state_what;
    }
  }
  result.verify_tol = tol;

  // ---- time
  result.shape = s;
  result.cost = forward_cost(s);
  const TimingPlan plan = plan_for(env, result.cost.bytes + result.workspace_bytes, result);
  result.timings = time_op([&] { powerret::power_retention(params, env.stream); }, env.device, plan, env.stream);
  return result;
}

// ---- decode -------------------------------------------------------------------------------------
CaseResult decode_case(const Env& env) {
  const Options& o = env.o;
  CaseResult result;
  Shape s = base_shape(env);
  s.t = 1;
  s.slots = o.slots > 0;
  const int64_t b = s.b, hq = s.hq, h = s.h, d = s.d, e = s.e, D = s.D;
  const int64_t rows = o.slots > 0 ? o.slots : b;

  Buffer host_q = host_uniform(env.dtype, b * hq * d, -0.5f, 1.5f, o.seed + 11);
  Buffer host_k = host_uniform(env.dtype, b * h * d, -0.5f, 1.5f, o.seed + 12);
  Buffer host_v = host_uniform(env.dtype, b * h * e, -1.0f, 1.0f, o.seed + 13);
  Buffer host_g(static_cast<std::size_t>(o.gated ? b * h * 4 : 0), false);
  if (o.gated) fill_log_gate(static_cast<float*>(host_g.data()), b * h, o.seed + 14);
  auto [host_s, host_z] = make_states(s, rows, o.seed + 15);
  // Slots: the first b entries of a seeded shuffle of [0, rows): distinct, in no particular order.
  std::vector<int32_t> slot_of(static_cast<std::size_t>(b));
  Buffer host_slots(static_cast<std::size_t>(o.slots > 0 ? b * 4 : 0), false);
  {
    std::vector<int32_t> perm(static_cast<std::size_t>(rows));
    std::iota(perm.begin(), perm.end(), 0);
    if (o.slots > 0) {
      std::vector<float> u(static_cast<std::size_t>(rows));
      fill_uniform(DType::kFloat32, u.data(), rows, 0.0f, 1.0f, o.seed + 16);
      for (int64_t i = rows - 1; i > 0; --i)
        std::swap(perm[i], perm[std::min<int64_t>(i, static_cast<int64_t>(u[i] * static_cast<float>(i + 1)))]);
      std::memcpy(host_slots.data(), perm.data(), static_cast<std::size_t>(b * 4));
    }
    std::copy(perm.begin(), perm.begin() + b, slot_of.begin());
  }

  Buffer dq = to_device(env, host_q), dk = to_device(env, host_k), dv = to_device(env, host_v), dg = to_device(env, host_g);
  Buffer ds = to_device(env, host_s), dz = to_device(env, host_z), dslots = to_device(env, host_slots);
  Buffer dy(static_cast<std::size_t>(b * hq * e * env.es), env.device.cuda);

  const auto w = env.where;
  powerret::DecodeParams params{
      .q = view(dq, env.dtype, {b, hq, d}, w),
      .k = view(dk, env.dtype, {b, h, d}, w),
      .v = view(dv, env.dtype, {b, h, e}, w),
      .s = view(ds, DType::kFloat32, {rows, h, D, e}, w),
      .z = view(dz, DType::kFloat32, {rows, h, D}, w),
      .y = view(dy, env.dtype, {b, hq, e}, w),
      .deg = o.deg,
  };
  if (o.gated) params.log_g = view(dg, DType::kFloat32, {b, h}, w);
  if (o.slots > 0) params.slots = view(dslots, DType::kInt32, {b}, w);

  // ---- verify: one step, then rows 0 and b-1 replayed on the CPU from copies of their states
  dy.poison();
  powerret::decode_step(params, env.stream);
  synchronize(env.device, env.stream);
  const double tol = tolerance(env.dtype);
  for (int64_t row : checked_rows(b)) {
    const int64_t slot = slot_of[static_cast<std::size_t>(row)];
    std::vector<float> q = slice_float(env.dtype, host_q, row * hq * d, hq * d);
    std::vector<float> k = slice_float(env.dtype, host_k, row * h * d, h * d);
    std::vector<float> v = slice_float(env.dtype, host_v, row * h * e, h * e);
    const float* ps = static_cast<const float*>(host_s.data()) + slot * h * D * e;
    const float* pz = static_cast<const float*>(host_z.data()) + slot * h * D;
    std::vector<float> S(ps, ps + h * D * e), z(pz, pz + h * D), y(static_cast<std::size_t>(hq * e));
    powerret::DecodeParams ref{
        .q = host_view(q.data(), DType::kFloat32, {1, hq, d}),
        .k = host_view(k.data(), DType::kFloat32, {1, h, d}),
        .v = host_view(v.data(), DType::kFloat32, {1, h, e}),
        .s = host_view(S.data(), DType::kFloat32, {1, h, D, e}),
        .z = host_view(z.data(), DType::kFloat32, {1, h, D}),
        .y = host_view(y.data(), DType::kFloat32, {1, hq, e}),
        .deg = o.deg,
    };
    std::vector<float> g;
    if (o.gated) {
      const float* pg = static_cast<const float*>(host_g.data()) + row * h;
      g.assign(pg, pg + h);
      ref.log_g = host_view(g.data(), DType::kFloat32, {1, h});
    }
    powerret::decode_step(ref);
    const std::string r = std::to_string(row), sl = std::to_string(slot);
    const double err_y = rel_err(download_float(env.dtype, dy, row * hq * e, hq * e), y);
    const double err_s = rel_err(download_float(DType::kFloat32, ds, slot * h * D * e, h * D * e), S);
    const double err_z = rel_err(download_float(DType::kFloat32, dz, slot * h * D, h * D), z);
    require(err_y, tol, "y[" + r + "]", o, result);
    require(std::max(err_s, err_z), tol, "S[" + sl + "] z[" + sl + "] after the step", o, result);
    result.verify_err = std::max({result.verify_err, err_y, err_s, err_z});
    result.verified += (result.verified.empty() ? "" : " ") + ("y[" + r + "] S[" + sl + "] z[" + sl + "]");
  }
  result.verify_tol = tol;

  // ---- time (each call steps the states once more: gates < 1 keep them bounded)
  result.shape = s;
  result.cost = decode_cost(s);
  const TimingPlan plan = plan_for(env, result.cost.bytes, result);
  result.timings = time_op([&] { powerret::decode_step(params, env.stream); }, env.device, plan, env.stream);
  return result;
}

// ---- sympow -------------------------------------------------------------------------------------
CaseResult sympow_case(const Env& env) {
  const Options& o = env.o;
  CaseResult result;
  Shape s = base_shape(env);
  const int64_t b = s.b, t = s.t, h = s.h, d = s.d, D = s.D;
  const int64_t rows = b * t * h;

  Buffer host_x = host_uniform(env.dtype, rows * d, -1.0f, 1.0f, o.seed + 21);
  Buffer dx = to_device(env, host_x);
  Buffer dout(static_cast<std::size_t>(rows * D * env.es), env.device.cuda);
  const auto w = env.where;
  powerret::SympowParams params{
      .x = view(dx, env.dtype, {b, t, h, d}, w),
      .out = view(dout, env.dtype, {b, t, h, D}, w),
      .deg = o.deg,
  };

  dout.poison();
  powerret::sympow(params, env.stream);
  synchronize(env.device, env.stream);
  const int64_t rv = std::min<int64_t>(rows, 4096);
  std::vector<float> x = slice_float(env.dtype, host_x, 0, rv * d), ref_out(static_cast<std::size_t>(rv * D));
  powerret::SympowParams ref{
      .x = host_view(x.data(), DType::kFloat32, {rv, d}),
      .out = host_view(ref_out.data(), DType::kFloat32, {rv, D}),
      .deg = o.deg,
  };
  powerret::sympow(ref);
  const double tol = tolerance(env.dtype);
  result.verify_err = rel_err(download_float(env.dtype, dout, 0, rv * D), ref_out);
  result.verified = "out[:" + std::to_string(rv) + " rows]";
  require(result.verify_err, tol, result.verified, o, result);
  result.verify_tol = tol;

  result.shape = s;
  result.cost = sympow_cost(s);
  const TimingPlan plan = plan_for(env, result.cost.bytes, result);
  result.timings = time_op([&] { powerret::sympow(params, env.stream); }, env.device, plan, env.stream);
  return result;
}

}  // namespace

CaseResult run_case(const Options& options, const DeviceInfo& device, void* stream) {
  const DType dtype = parse_dtype(options.dtype);
  const Env env{
      .o = options,
      .device = device,
      .stream = stream,
      .dtype = dtype,
      .es = dtype_bytes(dtype),
      .where = device.cuda ? powerret::Device{powerret::DeviceType::kCUDA, device.index} : powerret::Device{},
  };
  CaseResult result;
  switch (options.op) {
    case Op::kForward: result = forward_case(env); break;
    case Op::kDecode: result = decode_case(env); break;
    case Op::kSympow: result = sympow_case(env); break;
    default: throw UsageError("unknown op");
  }
  if (!result.failed.empty()) result.verified = "UNCHECKED (failed: " + result.failed + ") " + result.verified;
  return result;
}

}  // namespace powerret_bench
