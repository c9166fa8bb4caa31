// powerret-bench: times one powerret op (forward, decode or sympow) on the CUDA or the CPU
// backend, after checking its result against the CPU backend, and reports µs, TFLOP/s and GB/s
// (bench/metrics.hpp) with the fraction of the device's ceilings. bench/RESULTS.md shows how every
// published number was produced with it.
//
//   powerret-bench --op forward --b 1 --t 65536 --h 8 --d 64 --deg 2 --dtype bf16 --gated
//   powerret-bench --op decode --b 64 --h 8 --d 64 --gated --graph --format json
#include <cstdio>
#include <exception>
#include <iostream>

#include "cases.hpp"
#include "options.hpp"
#include "report.hpp"
#include "timing.hpp"

namespace powerret_bench {
namespace {

// Owns the bench's CUDA stream (none on the CPU).
class StreamGuard {
 public:
  explicit StreamGuard(const DeviceInfo& device) : stream_(create_stream(device)) {}
  ~StreamGuard() { destroy_stream(stream_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;
  void* get() const { return stream_; }

 private:
  void* stream_;
};

int run(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  if (options.help) {
    std::cout << usage_text();
    return 0;
  }
  bool cuda = cuda_available();
  if (options.device == "cuda" && !cuda)
    throw UsageError("--device cuda: this powerret-bench was built without CUDA or sees no GPU");
  if (options.device == "cpu") cuda = false;
  if (options.graph && !cuda) throw UsageError("--graph needs --device cuda");

  const DeviceInfo device = probe_device(cuda, options.peak_tflops);
  StreamGuard stream(device);
  const CaseResult result = run_case(options, device, stream.get());
  print_report(std::cout, options, device, result);
  return 0;
}

}  // namespace
}  // namespace powerret_bench

int main(int argc, char** argv) {
  using namespace powerret_bench;
  try {
    return run(argc, argv);
  } catch (const UsageError& err) {
    std::fprintf(stderr, "powerret-bench: %s (see --help)\n", err.what());
    return 2;
  } catch (const VerificationError& err) {
    std::fprintf(stderr, "powerret-bench: %s\n", err.what());
    return 3;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "powerret-bench: %s\n", err.what());
    return 1;
  }
}
