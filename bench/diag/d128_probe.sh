#!/usr/bin/env bash
# d = 128 probe (one device call, ~3 min; session 17): a full build, then p = 2, bf16, gated forwards at d = 128:
# 16k over h = 1, 2, 4, 8 (72 state walks per head, one per SM: 0.55 .. 4.4 waves; skipped with
# POWERRET_D128_QUICK=1), 64k h = 8 at chunk 128 and 256, and ncu (launch stats, speed of light) of each kernel
# alone at 64k h = 8. Prints the numbers; build.log and ncu128.txt leave in OUT_DIR/d128_probe.tar.gz (common.sh).
#   bash bench/diag/d128_probe.sh OUT_DIR
set -u
top=${1:?usage: bench/diag/d128_probe.sh OUT_DIR}
name=d128_probe
source "$(dirname "$0")/common.sh"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
POWERRET_CUDA=ON POWERRET_INSTANTIATIONS=full python3 -m pip install -q --no-build-isolation --no-deps . \
  -C build-dir=/tmp/powerret-build-d128 > "$out/build.log" 2>&1
echo "build rc=$? at $SECONDS s"
case="--op forward --b 1 --d 128 --dtype bf16 --gated --deg 2"
run() {  # label, then powerret-bench arguments: median, min, max (us), TFLOP/s
  local label=$1; shift
  echo "$label $(timeout 120 "$bin" "$@" --format csv 2>&1 | tail -1 | cut -d, -f20-22,25)"
}
if [ "${POWERRET_D128_QUICK:-0}" != 1 ]; then
  for h in 1 2 4 8; do run "t=16384 h=$h:" $case --h "$h" --t 16384 --iters 10; done
fi
for c in 128 256; do run "t=65536 h=8 chunk=$c:" $case --h 8 --t 65536 --chunk "$c" --iters 5; done
echo "at $SECONDS s"
timeout 150 ncu --section SpeedOfLight --section LaunchStats --section Occupancy -k regex:chunk -c 2 \
  "$bin" $case --h 8 --t 65536 --iters 1 --warmup 0 > "$out/ncu128.txt" 2>&1
grep -E "chunk_.*Context|Duration|Throughput|Waves Per SM|Registers Per|Block Limit|Achieved Occupancy|Grid Size|Shared Memory Per" \
  "$out/ncu128.txt"
echo "done at $SECONDS s"
