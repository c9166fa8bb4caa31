// report: prints one verified, timed case as a human table, CSV (header + row) or one JSON object.
// Derived rates use the median time: TFLOP/s = flops / median, GB/s = bytes / median, and the
// fractions divide them by the device's ceilings (bench/timing.hpp).
#pragma once

#include <ostream>

#include "cases.hpp"
#include "options.hpp"
#include "timing.hpp"

namespace powerret_bench {

void print_report(std::ostream& out, const Options& options, const DeviceInfo& device, const CaseResult& result);

}  // namespace powerret_bench
