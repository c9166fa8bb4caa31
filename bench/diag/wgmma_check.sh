#!/usr/bin/env bash
# Builds and runs bench/diag/wgmma_check.cu on the GPU machine (sm_90a): the RS wgmma building block
# (A in registers, B MN-major in 128-byte-swizzled shared memory) the next forward kernels need.
#   bench/diag/wgmma_check.sh     (needs the nvidia-cutlass wheel: .whl/ installed into /tmp/site, or pip)
set -euo pipefail
cd "$(dirname "$0")/../.."
if compgen -G ".whl/*.whl" > /dev/null && [ ! -d /tmp/site/cutlass_library ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/nvidia_cutlass*.whl
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
src=$(python3 -c "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__) + '/source')")
nvcc -std=c++17 -O2 -arch=sm_90a --expt-relaxed-constexpr -I"$src/include" -o /tmp/wgmma_check bench/diag/wgmma_check.cu
/tmp/wgmma_check
