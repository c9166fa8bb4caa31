#!/usr/bin/env bash
# Builds and runs bench/diag/state_loop.cu on the GPU machine (sm_90a): chunk_state_wgmma alone, per
# 64-token tile, in variants that change the copy pipeline or remove one part of the per-tile work.
#   bench/diag/state_loop.sh     (needs the nvidia-cutlass wheel: .whl/ installed into /tmp/site, or pip)
set -euo pipefail
cd "$(dirname "$0")/../.."
if compgen -G ".whl/*.whl" > /dev/null && [ ! -d /tmp/site/cutlass_library ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/nvidia_cutlass*.whl
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
cutlass=$(python3 -c "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__) + '/source')")
nvcc -std=c++20 -O3 -arch=sm_90a --expt-relaxed-constexpr -Isrc -Iinclude -I"$cutlass/include" \
  -o /tmp/state_loop bench/diag/state_loop.cu
/tmp/state_loop
