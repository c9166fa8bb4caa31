#!/usr/bin/env bash
# Builds and runs bench/diag/wgmma_check.cu on the GPU machine (sm_90a): the RS wgmma building block
# (A in registers, B MN-major in 128-byte-swizzled shared memory) the next forward kernels need.
#   bench/diag/wgmma_check.sh     (needs the nvidia-cutlass wheel: .whl/ installed into /tmp/site, or pip)
set -euo pipefail
source "$(dirname "$0")/nvcc_env.sh"
nvcc -std=c++17 -O2 -arch=sm_90a --expt-relaxed-constexpr -I"$cutlass/include" -o /tmp/wgmma_check bench/diag/wgmma_check.cu
/tmp/wgmma_check
