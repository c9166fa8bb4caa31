#!/usr/bin/env bash
# The output kernel (chunk_output_mma) at short t on the GPU machine: builds and installs a ci build of
# powerret (bf16, d = e = 64, p = 1, 2), then ncu's launch, occupancy, warp-state and speed-of-light sections
# of the forward kernels at t = T (default 4096) for p = 1 and 2, then per degree in POWERRET_DIAG_SASS_DEGS
# (default 1) the kernel's hottest SASS lines (stall samples) and its instruction mix; POWERRET_DIAG_SASS_KERNEL
# names another kernel (e.g. chunk_state). Written when one 128-query output block lived ~40 us at p = 1 (41 us
# for 256 blocks, one wave) for a few hundred mma.sync per warp: the block is instruction-bound (~4500
# instructions per warp, 3 % of them HMMA; session 7).
#   bench/diag/output_profile.sh OUT_DIR [T]
set -uo pipefail
top=${1:?usage: bench/diag/output_profile.sh OUT_DIR [T]}
t=${2:-4096}
name=output_profile
source "$(dirname "$0")/common.sh"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
  export PYTHONPATH=/tmp/site
fi
POWERRET_CUDA=ON POWERRET_INSTANTIATIONS=ci python3 -m pip install --no-build-isolation --no-deps . \
  -C build-dir=/tmp/op_build > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
ref="--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t $t --iters 1 --warmup 0"
for p in 1 2; do
  timeout 200 ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats -k regex:chunk -c 2 "$bin" $ref --deg $p > "$out/ncu-p$p.txt" 2>&1
  echo "== p=$p t=$t"
  grep -E "chunk_.*Context|Duration|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Limit|Warp Cycles Per Issued|Dynamic Shared|Waves Per SM|Stall|Active Warps|Eligible" "$out/ncu-p$p.txt"
done
for p in ${POWERRET_DIAG_SASS_DEGS:-1}; do
  timeout 200 ncu --section SourceCounters --section WarpStateStats -k regex:${POWERRET_DIAG_SASS_KERNEL:-chunk_output} -c 1 -f -o /tmp/op_out \
    "$bin" $ref --deg $p > /dev/null 2>&1
  ncu --import /tmp/op_out.ncu-rep --page source --print-source sass --csv > "$out/output-sass-p$p.csv" 2>&1
  python3 bench/diag/sass_lines.py "$out/output-sass-p$p.csv" --top 25 --width 100 --mix --wavefronts --title "kernel p=$p"
done
