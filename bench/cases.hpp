// cases: one benchmark case per op (forward, decode, sympow). Each allocates and fills its inputs
// on the host (bench/data.hpp), copies them to the device, runs the op once and checks the result
// against the CPU backend of the same library on a slice (forward: the first min(t, 512) tokens
// of batch row 0 and the first min(t, 64) of the last row, which causality makes independent of
// the rest; decode: rows 0 and b-1 replayed on copies of their states; sympow: the first 4096
// rows), and only then times it (bench/timing.hpp).
#pragma once

#include <stdexcept>
#include <string>

#include "metrics.hpp"
#include "options.hpp"
#include "timing.hpp"

namespace powerret_bench {

struct CaseResult {
  Shape shape;
  Cost cost;
  Timings timings;
  int64_t workspace_bytes = 0;
  bool flushed = false;
  std::string mode;         // "stream" or "graph" on CUDA, "cpu" on the host
  double verify_err = 0;    // the worst ||out - ref|| / ||ref|| over the checked slices
  double verify_tol = 0;    // 2e-2 for fp16/bf16 inputs, 1e-4 for fp32
  std::string verified;     // what was compared, e.g. "y[0,:512] y[3,:64]"
  std::string failed;       // --unchecked: the slices that failed verification (empty: none)
};

// The op's result disagreed with the CPU backend: main exits with status 3 and reports nothing.
class VerificationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

CaseResult run_case(const Options& options, const DeviceInfo& device, void* stream);

}  // namespace powerret_bench
