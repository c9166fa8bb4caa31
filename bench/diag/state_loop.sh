#!/usr/bin/env bash
# Builds and runs bench/diag/state_loop.cu on the GPU machine (sm_90a): chunk_state_wgmma alone, per
# 64-token tile, in variants that change the copy pipeline or remove one part of the per-tile work.
#   bench/diag/state_loop.sh [H [DEG]]    (heads, default 8; degree 1, 2 or both) (needs the nvidia-cutlass wheel: .whl/ installed into /tmp/site, or pip)
set -euo pipefail
source "$(dirname "$0")/nvcc_env.sh"
nvcc -std=c++20 -O3 -arch=sm_90a --expt-relaxed-constexpr -Isrc -Iinclude -I"$cutlass/include" \
  -o /tmp/state_loop bench/diag/state_loop.cu
/tmp/state_loop "$@"
