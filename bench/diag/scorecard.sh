#!/usr/bin/env bash
# Issue 4's scorecard in one device call, after bench/run_gpu.sh built and installed powerret (e.g. its check mode:
#   bench/run_gpu.sh OUT check && bench/diag/scorecard.sh OUT):
# compare.py's forward at t = 4096, 16384, 65536 (SDPA, retention, fla, powerret side by side, one run), then
# powerret-bench on the issue's other shapes (d = 128, b = 8 h = 16, p = 1, fp16, time per token 16k .. 1M), then
# the state kernel's per-line stall profile (bench/diag/forward.sh with only its profile part, into
# OUT/forward.tar.gz). POWERRET_SCORECARD_PARTS picks the parts ("compare bench sass" by default),
# POWERRET_SCORECARD_SASS_DEGS the profiled degrees ("2 1"). Writes OUT/scorecard.tar.gz and prints the tables.
set -uo pipefail
top=${1:?usage: bench/diag/scorecard.sh OUT_DIR}
name=scorecard
source "$(dirname "$0")/common.sh"
parts=" ${POWERRET_SCORECARD_PARTS:-compare bench sass} "
[[ $parts == *" compare "* ]] && timeout "${POWERRET_SCORECARD_COMPARE_S:-300}" python3 bench/compare.py --ops forward --ts 4096,16384,65536 \
  --budget-ms 100 --out "$out/compare" ${POWERRET_COMMIT:+--commit "$POWERRET_COMMIT"} 2>&1 | tee "$out/compare.txt" |
  grep -E "^  forward|^\|"
echo "compare done at $SECONDS s"
run() {  # one verified powerret-bench case: median us, TFLOP/s, share of the tensor-core peak
  echo "$* | $(timeout 120 "$bin" "$@" --format csv 2>&1 | tail -1)"
}
ref="--op forward --b 1 --h 8 --dtype bf16 --gated"
[[ $parts == *" bench "* ]] && {
  run $ref --d 128 --deg 2 --t 65536 --iters 10
  run $ref --d 128 --deg 2 --t 16384 --iters 20
  run --op forward --b 8 --h 16 --d 64 --dtype bf16 --gated --deg 2 --t 8192 --iters 20
  run $ref --d 64 --deg 1 --t 65536 --iters 30
  run --op forward --b 1 --h 8 --d 64 --dtype fp16 --gated --deg 2 --t 65536 --iters 30
  for t in 16384 65536 262144 1048576; do run $ref --d 64 --deg 2 --t $t --iters 10; done
} | tee "$out/bench.txt"
echo "bench done at $SECONDS s"
[[ $parts == *" sass "* ]] || exit 0
POWERRET_DIAG_KERNELS= POWERRET_DIAG_NCU=0 POWERRET_DIAG_SASS=1 POWERRET_DIAG_SASS_KERNEL=chunk_state \
  POWERRET_DIAG_SASS_DEGS="${POWERRET_SCORECARD_SASS_DEGS:-2 1}" bash bench/diag/forward.sh "$top"
echo "all done at $SECONDS s"
