#!/usr/bin/env bash
# Forward kernels on the GPU machine, after bench/run_gpu.sh built and installed powerret:
#   bench/diag/forward.sh OUT_DIR [T...]     (default T: 4096 65536)
# Chunk-size sweep at the reference shape (p = 2) and p = 1, for each forward kernel set
# (POWERRET_FORWARD_KERNELS: sm80 = the mma.sync kernels, wgmma = the default on sm_90a), then ncu
# (speed of light, occupancy) of each forward kernel at t = 65536; writes OUT_DIR/forward.tar.gz and
# prints the summaries. POWERRET_DIAG_KERNELS="" skips the sweep, POWERRET_DIAG_NCU=0 ncu,
# POWERRET_DIAG_SASS=0 the per-line profile of the state kernel (POWERRET_DIAG_SASS_DEGS: "2" by default;
# POWERRET_DIAG_SASS_KERNEL=chunk_output profiles the output kernel instead);
# POWERRET_DIAG_CHUNKS: the chunk sizes of the sweep ("64 128 256" by default).
set -uo pipefail
top=${1:?usage: bench/diag/forward.sh OUT_DIR [T...]}
shift
ts=${*:-4096 65536}
name=forward
source "$(dirname "$0")/common.sh"
ref="--b 1 --h 8 --d 64 --dtype bf16 --gated"
for kernels in ${POWERRET_DIAG_KERNELS-sm80 wgmma}; do
  export POWERRET_FORWARD_KERNELS=$kernels
  for t in $ts; do
    for c in ${POWERRET_DIAG_CHUNKS:-64 128 256}; do
      echo "$kernels p=2 t=$t chunk=$c: $("$bin" --op forward $ref --t "$t" --deg 2 --chunk $c --iters 30 --format csv | tail -1)"
    done
    echo "$kernels p=1 t=$t: $("$bin" --op forward $ref --t "$t" --deg 1 --iters 30 --format csv | tail -1)"
    echo "$kernels p=2 d=128 t=$t: $("$bin" --op forward --b 1 --h 8 --d 128 --dtype bf16 --gated --t "$t" --deg 2 --iters 10 --format csv | tail -1)"
  done
done 2>&1 | tee "$out/sweep.txt"
unset POWERRET_FORWARD_KERNELS
for p in $([ "${POWERRET_DIAG_NCU:-1}" = 1 ] && echo 2 1); do
  timeout 200 ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    -k regex:chunk -c 2 "$bin" --op forward $ref --t 65536 --deg $p --iters 1 --warmup 0 > "$out/ncu-p$p.txt" 2>&1
  grep -E "chunk_.*Context|Duration|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Dynamic Shared" "$out/ncu-p$p.txt"
done
# Per-instruction stall samples of the state kernel: the 40 hottest SASS lines per degree
[ "${POWERRET_DIAG_SASS:-1}" = 1 ] || exit 0
kern=${POWERRET_DIAG_SASS_KERNEL:-chunk_state}
for p in ${POWERRET_DIAG_SASS_DEGS:-2}; do
  echo "== $kern kernel, p=$p"
  timeout 120 ncu --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' -k regex:$kern -c 1 \
    "$bin" --op forward $ref --t 65536 --deg $p --iters 1 --warmup 0 2>&1 | grep -E "stalled" | sort -k3 -n -r | head -12
  timeout 200 ncu --section SourceCounters --section WarpStateStats -k regex:$kern -c 1 -f -o /tmp/$kern \
    "$bin" --op forward $ref --t 65536 --deg $p --iters 1 --warmup 0 > /dev/null 2>&1
  ncu --import /tmp/$kern.ncu-rep --page source --print-source sass --csv > "$out/$kern-sass-p$p.csv" 2>&1
  python3 bench/diag/sass_lines.py "$out/$kern-sass-p$p.csv" --mix --wavefronts
done
