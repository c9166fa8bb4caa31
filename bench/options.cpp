// options: parsing of the powerret-bench command line into Options (no defaults resolved here
// that need the device; see powerret_bench.cpp).
#include "options.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

namespace powerret_bench {
namespace {

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min_value) {
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') throw UsageError(flag + " expects an integer, got '" + text + "'");
  if (value < min_value)
    throw UsageError(flag + " must be >= " + std::to_string(min_value) + ", got " + text);
  return value;
}

double parse_double(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value >= 0))
    throw UsageError(flag + " expects a non-negative number, got '" + text + "'");
  return value;
}

}  // namespace

const char* op_name(Op op) {
  switch (op) {
    case Op::kForward: return "forward";
    case Op::kDecode: return "decode";
    case Op::kSympow: return "sympow";
  }
  return "?";
}

const char* usage_text() {
  return R"(powerret-bench: time one powerret op, verified against the CPU backend first.

  --op forward|decode|sympow   the op (default forward)
  --b N --t N                  batch, tokens (decode: t is ignored; default 1, 4096)
  --hq N --h N                 query heads (default = h), key/value heads (default 8)
  --d N --e N                  q/k head dim (default 64), v head dim (default = d)
  --deg P                      degree p (default 2)
  --dtype fp16|bf16|fp32       input dtype (default bf16)
  --gated                      pass a per-token log gate log_g [b, t, h]
  --chunk N                    forward chunk size (default 0: the library's choice)
  --state                      forward: pass an initial state and request the final state
  --slots N                    decode: a state pool of N >= b slots, rows use distinct slots
  --graph                      CUDA: time replays of a CUDA graph holding one call
  --iters N --warmup N         timed / untimed runs (default 100 / 10 on CUDA, 5 / 1 on the CPU)
  --format table|csv|json      output (default table)
  --device cpu|cuda            backend (default cuda when built with it and a GPU is present)
  --flush auto|on|off          L2 flush between timed runs (auto: when the working set would
                               fit in twice the L2; default auto)
  --peak-tflops X              tensor-core ceiling for the "% of peak" column (default: the
                               documented 798 TFLOP/s on H100/H200, none elsewhere)
  --seed N                     input seed (default 1234)
  --unchecked                  time even when verification fails, for diagnostic builds whose
                               results are wrong by design (bench/diag); "verified" then starts
                               with UNCHECKED and names the failing slice
  --help                       this text

Exit status: 0 reported, 2 bad command line, 3 the result was wrong (nothing reported),
1 any other error. FLOP and byte conventions: bench/metrics.hpp and bench/RESULTS.md.
)";
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " expects a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--op") {
      const std::string v = value();
      if (v == "forward") o.op = Op::kForward;
      else if (v == "decode") o.op = Op::kDecode;
      else if (v == "sympow") o.op = Op::kSympow;
      else throw UsageError("--op expects forward, decode or sympow, got '" + v + "'");
    } else if (flag == "--b") {
      o.b = parse_int(flag, value(), 1);
    } else if (flag == "--t") {
      o.t = parse_int(flag, value(), 1);
    } else if (flag == "--hq") {
      o.hq = parse_int(flag, value(), 1);
    } else if (flag == "--h") {
      o.h = parse_int(flag, value(), 1);
    } else if (flag == "--d") {
      o.d = parse_int(flag, value(), 1);
    } else if (flag == "--e") {
      o.e = parse_int(flag, value(), 1);
    } else if (flag == "--deg") {
      o.deg = static_cast<int>(parse_int(flag, value(), 1));
    } else if (flag == "--dtype") {
      o.dtype = value();
      if (o.dtype != "fp16" && o.dtype != "bf16" && o.dtype != "fp32")
        throw UsageError("--dtype expects fp16, bf16 or fp32, got '" + o.dtype + "'");
    } else if (flag == "--gated") {
      o.gated = true;
    } else if (flag == "--chunk") {
      o.chunk = static_cast<int>(parse_int(flag, value(), 0));
    } else if (flag == "--state") {
      o.state = true;
    } else if (flag == "--slots") {
      o.slots = parse_int(flag, value(), 0);
    } else if (flag == "--graph") {
      o.graph = true;
    } else if (flag == "--iters") {
      o.iters = static_cast<int>(parse_int(flag, value(), 1));
    } else if (flag == "--warmup") {
      o.warmup = static_cast<int>(parse_int(flag, value(), 0));
    } else if (flag == "--format") {
      const std::string v = value();
      if (v == "table") o.format = Format::kTable;
      else if (v == "csv") o.format = Format::kCsv;
      else if (v == "json") o.format = Format::kJson;
      else throw UsageError("--format expects table, csv or json, got '" + v + "'");
    } else if (flag == "--device") {
      o.device = value();
      if (o.device != "cpu" && o.device != "cuda")
        throw UsageError("--device expects cpu or cuda, got '" + o.device + "'");
    } else if (flag == "--flush") {
      const std::string v = value();
      if (v == "auto") o.flush = Flush::kAuto;
      else if (v == "on") o.flush = Flush::kOn;
      else if (v == "off") o.flush = Flush::kOff;
      else throw UsageError("--flush expects auto, on or off, got '" + v + "'");
    } else if (flag == "--peak-tflops") {
      o.peak_tflops = parse_double(flag, value());
    } else if (flag == "--unchecked") {
      o.unchecked = true;
    } else if (flag == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(flag, value(), 0));
    } else {
      throw UsageError("unknown flag '" + flag + "'");
    }
  }
  if (o.hq == 0) o.hq = o.h;
  if (o.e == 0) o.e = o.d;
  if (o.slots != 0 && o.slots < o.b)
    throw UsageError("--slots must be >= --b (" + std::to_string(o.b) + "), got " +
                     std::to_string(o.slots));
  if (o.slots != 0 && o.op != Op::kDecode) throw UsageError("--slots applies to --op decode only");
  if (o.state && o.op != Op::kForward) throw UsageError("--state applies to --op forward only");
  return o;
}

}  // namespace powerret_bench
