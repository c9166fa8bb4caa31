// options: the command line of powerret-bench (one benchmark case per run).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace powerret_bench {

enum class Op { kForward, kDecode, kSympow };
enum class Format { kTable, kCsv, kJson };
enum class Flush { kAuto, kOn, kOff };

struct Options {
  Op op = Op::kForward;
  int64_t b = 1, t = 4096, hq = 0, h = 8, d = 64, e = 0;  // hq, e: 0 means "same as h, d"
  int deg = 2;
  std::string dtype = "bf16";  // fp16 | bf16 | fp32
  bool gated = false;
  int chunk = 0;               // forward: 0 = the library's choice
  bool state = false;          // forward: pass an initial state and request the final state
  int64_t slots = 0;           // decode: state pool of this many slots (0: one state per row)
  bool graph = false;          // CUDA: time replays of a captured CUDA graph of one call
  int iters = -1;              // timed runs; -1: 100 on CUDA, 5 on the CPU
  int warmup = -1;             // untimed runs first; -1: 10 on CUDA, 1 on the CPU
  Format format = Format::kTable;
  std::string device;          // cpu | cuda; empty: cuda when built with it and a GPU is present
  Flush flush = Flush::kAuto;  // L2 flush between timed runs; auto: when the working set fits
  double peak_tflops = 0;      // tensor-core ceiling; 0: the documented default for the device
  uint64_t seed = 1234;
  bool unchecked = false;      // diagnostic builds: time even when verification fails (marked in "verified")
  bool help = false;
};

// A bad command line; main prints the message and the usage, and exits with status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Options parse_options(int argc, char** argv);
const char* usage_text();
const char* op_name(Op op);

}  // namespace powerret_bench
