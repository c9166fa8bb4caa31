#!/usr/bin/env bash
# session 15's short call: r2 (default) against one-group (main's kernel) in one ci build, then checks
set -u
out=$1; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
POWERRET_CUDA=ON POWERRET_INSTANTIATIONS=ci python3 -m pip install --no-build-isolation --no-deps . -C build-dir=/tmp/qb > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
echo "built at $SECONDS s"
bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench"
for args in "--h 8 --t 65536" "--h 4 --t 65536" "--h 8 --t 16384" "--h 8 --t 65536" "--h 8 --t 4096"; do
  for round in 1; do
    for sk in r2 one-group; do
      line=$(POWERRET_STATE_KERNEL=$sk timeout 30 "$bin" --op forward --b 1 --d 64 --dtype bf16 --gated --deg 2 $args --iters 30 --format csv 2>&1 | tail -1 | cut -d, -f1,20-22,25,31,35,36)
      echo "$sk [$args]: $line"
    done
  done
done | tee "$out/ab.txt"
echo "bench done at $SECONDS s"
timeout 120 python3 -m pytest -q -x tests/test_forward.py -k bfloat16 > "$out/tf.txt" 2>&1
echo "test_forward: $(tail -n 1 "$out/tf.txt")"; grep -m2 -A25 "^____" "$out/tf.txt" | head -40
timeout 90 compute-sanitizer --tool memcheck python3 tests/sanitize_cases.py --quick > "$out/memcheck.txt" 2>&1
echo "memcheck: $(tail -n 1 "$out/memcheck.txt") at $SECONDS s"
[ $SECONDS -lt 200 ] && { timeout 90 compute-sanitizer --tool racecheck python3 tests/sanitize_cases.py --quick > "$out/racecheck.txt" 2>&1; echo "racecheck: $(tail -n 1 "$out/racecheck.txt") at $SECONDS s"; }
