// report: table / csv / json output of powerret-bench. The JSON and CSV keys are the same; the
// JSON is what tests/test_bench_metrics.py and scripts read.
#include "report.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace powerret_bench {
namespace {

// A field value already rendered for JSON (numbers bare, strings quoted, null).
struct Field {
  std::string key;
  std::string json;
  std::string csv;
};

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

std::string csv_text(const std::string& s) {
  return s.find_first_of(",\"") == std::string::npos ? s : quote(s);
}

struct Derived {
  double tflops = 0, gbps = 0, tc_fraction = NAN, bw_fraction = NAN;
};

Derived derive(const DeviceInfo& device, const CaseResult& r) {
  Derived x;
  const double seconds = r.timings.median_us * 1e-6;
  x.tflops = static_cast<double>(r.cost.flops) / seconds * 1e-12;
  x.gbps = static_cast<double>(r.cost.bytes) / seconds * 1e-9;
  if (device.peak_tflops > 0) x.tc_fraction = x.tflops / device.peak_tflops;
  if (device.copy_gbps > 0) x.bw_fraction = x.gbps / device.copy_gbps;
  return x;
}

std::vector<Field> fields(const Options& o, const DeviceInfo& device, const CaseResult& r) {
  const Derived x = derive(device, r);
  const Shape& s = r.shape;
  std::vector<Field> f;
  auto add_int = [&](const char* key, int64_t v) { f.push_back({key, std::to_string(v), std::to_string(v)}); };
  auto add_num = [&](const char* key, double v) { f.push_back({key, num(v), num(v) == "null" ? "" : num(v)}); };
  auto add_str = [&](const char* key, const std::string& v) { f.push_back({key, quote(v), csv_text(v)}); };
  auto add_bool = [&](const char* key, bool v) { f.push_back({key, v ? "true" : "false", v ? "true" : "false"}); };
  add_str("op", op_name(o.op));
  add_str("device", device.cuda ? "cuda" : "cpu");
  add_str("device_name", device.name);
  add_str("mode", r.mode);
  add_str("dtype", o.dtype);
  add_int("b", s.b);
  add_int("t", s.t);
  add_int("hq", s.hq);
  add_int("h", s.h);
  add_int("d", s.d);
  add_int("e", s.e);
  add_int("deg", s.deg);
  add_int("D", s.D);
  add_bool("gated", s.gated);
  if (o.op == Op::kForward) add_int("chunk", s.chunk);
  else f.push_back({"chunk", "null", ""});
  add_bool("state", s.with_state);
  add_int("slots", o.slots);
  add_int("iters", r.timings.iters);
  add_bool("flush_l2", r.flushed);
  add_num("us_median", r.timings.median_us);
  add_num("us_min", r.timings.min_us);
  add_num("us_max", r.timings.max_us);
  add_int("flops", r.cost.flops);
  add_int("bytes", r.cost.bytes);
  add_num("tflops", x.tflops);
  add_num("gbps", x.gbps);
  add_num("copy_gbps", device.copy_gbps);
  add_num("bw_fraction", x.bw_fraction);
  add_num("peak_tflops", device.peak_tflops > 0 ? device.peak_tflops : NAN);
  add_str("peak_source", device.peak_source);
  add_num("tc_fraction", x.tc_fraction);
  add_int("workspace_bytes", r.workspace_bytes);
  add_str("verified", r.verified);
  add_num("verify_err", r.verify_err);
  add_num("verify_tol", r.verify_tol);
  return f;
}

void print_table(std::ostream& out, const Options& o, const DeviceInfo& device, const CaseResult& r) {
  const Derived x = derive(device, r);
  const Shape& s = r.shape;
  char line[512];
  std::string shape = "b=" + std::to_string(s.b);
  if (o.op != Op::kDecode) shape += " t=" + std::to_string(s.t);
  if (o.op != Op::kSympow) shape += " hq=" + std::to_string(s.hq);
  shape += " h=" + std::to_string(s.h) + " d=" + std::to_string(s.d);
  if (o.op != Op::kSympow) shape += " e=" + std::to_string(s.e);
  shape += " p=" + std::to_string(s.deg) + " (D=" + std::to_string(s.D) + ")";
  if (s.gated) shape += " gated";
  if (o.op == Op::kForward) shape += " chunk=" + std::to_string(s.chunk);
  if (s.with_state) shape += " +state";
  if (o.slots > 0) shape += " slots=" + std::to_string(o.slots);
  out << "powerret-bench  " << op_name(o.op) << "  " << o.dtype << "  " << shape << "\n";
  out << "device     " << device.name;
  if (device.cuda) out << " (" << r.mode << (r.flushed ? ", L2 flushed between runs" : "") << ")";
  out << "\n";
  std::snprintf(line, sizeof line, "verified   %s: rel err %.2e <= %.0e vs the CPU backend\n",
                r.verified.c_str(), r.verify_err, r.verify_tol);
  out << line;
  std::snprintf(line, sizeof line, "time       median %.2f us   min %.2f   max %.2f   (%d runs)\n",
                r.timings.median_us, r.timings.min_us, r.timings.max_us, r.timings.iters);
  out << line;
  std::snprintf(line, sizeof line, "compute    %.4g FLOP   %.4g TFLOP/s", static_cast<double>(r.cost.flops), x.tflops);
  out << line;
  if (std::isfinite(x.tc_fraction)) {
    std::snprintf(line, sizeof line, "   %.1f %% of %.0f TFLOP/s (%s)", 100 * x.tc_fraction, device.peak_tflops,
                  device.peak_source.c_str());
    out << line;
  }
  out << "\n";
  std::snprintf(line, sizeof line, "memory     %.4g B   %.4g GB/s", static_cast<double>(r.cost.bytes), x.gbps);
  out << line;
  if (std::isfinite(x.bw_fraction)) {
    std::snprintf(line, sizeof line, "   %.1f %% of %.0f GB/s (measured copy, read + write)", 100 * x.bw_fraction,
                  device.copy_gbps);
    out << line;
  }
  out << "\n";
  if (r.workspace_bytes > 0) {
    std::snprintf(line, sizeof line, "workspace  %.4g B\n", static_cast<double>(r.workspace_bytes));
    out << line;
  }
}

}  // namespace

void print_report(std::ostream& out, const Options& options, const DeviceInfo& device, const CaseResult& result) {
  if (options.format == Format::kTable) {
    print_table(out, options, device, result);
    return;
  }
  const std::vector<Field> f = fields(options, device, result);
  if (options.format == Format::kJson) {
    out << "{";
    for (std::size_t i = 0; i < f.size(); ++i) out << (i ? ", " : "") << quote(f[i].key) << ": " << f[i].json;
    out << "}\n";
  } else {
    for (std::size_t i = 0; i < f.size(); ++i) out << (i ? "," : "") << f[i].key;
    out << "\n";
    for (std::size_t i = 0; i < f.size(); ++i) out << (i ? "," : "") << f[i].csv;
    out << "\n";
  }
}

}  // namespace powerret_bench
