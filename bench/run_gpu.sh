#!/usr/bin/env bash
# One call on the GPU machine: build powerret (full instantiations, sm_90a), run the GPU test
# suite, compute-sanitizer on small cases, then the benchmarks; everything lands in OUT_DIR.
#   usage: bench/run_gpu.sh OUT_DIR [MODE]      (device tool: bench/run_gpu.sh "$OUT" quick)
#   MODE: quick (default: build, tests, sanitizers, quick benchmarks) | full (the same with the full
#   benchmarks) | tests (build, tests) | check (build, tests, sanitizers) | bench (build, full benchmarks)
# The machine has no network: wheels it lacks (nvidia-cutlass; retention and fla for the
# comparisons) travel in .whl/ (../shared/tools/gpu-wheels puts them there; carry .whl).
set -uo pipefail
top=${1:?usage: bench/run_gpu.sh OUT_DIR [quick|full|tests]}
mode=${2:-quick}
# The device tool returns few files: logs go to OUT_DIR/logs and leave as one tarball at the end.
out="$top/logs"
mkdir -p "$out"
trap 'tar -C "$top" -czf "$top/logs.tar.gz" logs && rm -rf "$out"' EXIT
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv > "$out/device.txt" 2>&1
# POWERRET_BUILD_DIR: the CMake build folder (default /tmp/powerret-build; one per source tree).
# The device copy of the tree may carry stale git metadata: pass POWERRET_COMMIT=<sha> from the checkout.
# Exported, so bench/gpu_bench.sh records the same commit.
export POWERRET_COMMIT=${POWERRET_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}
echo "$POWERRET_COMMIT" > "$out/commit.txt"

echo "== build" | tee "$out/summary.txt"
start=$(date +%s)
POWERRET_CUDA=ON POWERRET_INSTANTIATIONS=full \
  python3 -m pip install --no-build-isolation --no-deps -v . -C cmake.define.POWERRET_PTXAS_VERBOSE=ON \
  -C build-dir="${POWERRET_BUILD_DIR:-/tmp/powerret-build}" \
  > "$out/build.log" 2>&1
rc_build=$?
echo "build rc=$rc_build in $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
grep -E "spill|Used [0-9]+ registers" "$out/build.log" | sort | uniq -c | sort -rn | head -40 > "$out/ptxas.txt"
# ptxas's wgmma performance notes (C7510-C7519: serialised or fenced wgmmas) name real slowdowns; the build
# should have none (docs/DESIGN.md "chunk_state_wgmma"). Spilling kernels are listed too.
wgmma_notes=$(grep -c "C751[0-9]" "$out/build.log")
spilling=$(grep -B3 -E "[1-9][0-9]* bytes spill stores" "$out/build.log" | grep -c "Function properties")
echo "ptxas: $wgmma_notes wgmma serialisation notes, $spilling kernels with spills" | tee -a "$out/summary.txt"
grep "C751[0-9]" "$out/build.log" | sort | uniq -c | head -20 >> "$out/ptxas.txt"
[ $rc_build -eq 0 ] || { tail -60 "$out/build.log"; exit 1; }

if [ "$mode" != bench ]; then
echo "== tests" | tee -a "$out/summary.txt"
# One process per test file, so a crash in one cannot hide the others' results.
# POWERRET_GPU_TESTS="tests/test_a.py ..." runs a subset.
for f in ${POWERRET_GPU_TESTS:-tests/test_*.py}; do
  timeout 300 python3 -X faulthandler -m pytest "$f" -q -p no:cacheprovider --tb=short -rfE >> "$out/tests.log" 2>&1
  echo "$(basename "$f") rc=$? $(tail -1 "$out/tests.log")" | tee -a "$out/summary.txt"
done
# The mma.sync state kernel (POWERRET_FORWARD_KERNELS=sm80 on an sm_90 GPU: kept for A/B runs) is chosen once per
# process, so it gets its own pass of test_forward (POWERRET_GPU_TESTS_SM80=0 skips it).
if [ "${POWERRET_GPU_TESTS_SM80:-1}" = 1 ] && [[ "${POWERRET_GPU_TESTS:-tests/test_forward.py}" == *test_forward.py* ]]; then
  POWERRET_FORWARD_KERNELS=sm80 timeout 300 python3 -X faulthandler -m pytest tests/test_forward.py -q -p no:cacheprovider \
    --tb=short -rfE >> "$out/tests.log" 2>&1
  echo "test_forward.py[sm80] rc=$? $(tail -1 "$out/tests.log")" | tee -a "$out/summary.txt"
fi
grep -E "^(FAILED|ERROR)|Fatal Python|File \"/work" "$out/tests.log" | head -60
[ "$mode" = tests ] && exit 0

echo "== compute-sanitizer" | tee -a "$out/summary.txt"
for tool in memcheck racecheck; do
  quick=""; [ $tool = racecheck ] && quick=--quick
  timeout 240 compute-sanitizer --tool $tool --error-exitcode 9 python3 tests/sanitize_cases.py $quick > "$out/sanitizer-$tool.log" 2>&1
  echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/sanitizer-$tool.log" | tail -1)" | tee -a "$out/summary.txt"
done

fi
[ "$mode" = check ] && { cp "$out/summary.txt" "$top/summary.txt"; exit 0; }

echo "== bench" | tee -a "$out/summary.txt"
bench_mode=$mode; [ "$mode" = bench ] && bench_mode=full
bash bench/gpu_bench.sh "$top" "$bench_mode" > "$out/bench.log" 2>&1
echo "bench rc=$?" | tee -a "$out/summary.txt"
tail -70 "$out/bench.log"
cp "$out/summary.txt" "$top/summary.txt"
cat "$out/summary.txt"
