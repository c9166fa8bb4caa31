#!/usr/bin/env bash
# The benchmarks on a GPU machine, once powerret is installed (pip install . with CUDA; bench/run_gpu.sh
# does that and then calls this). Every published number in bench/RESULTS.md comes from here.
#   bench/gpu_bench.sh OUT_DIR [quick|full]
# Writes ONE file, OUT_DIR/bench-results.tar.gz (powerret-bench.jsonl: one JSON object per
# powerret-bench case; compare/<gpu>.json, .md, -forward.png, -decode.png from bench/compare.py),
# and prints a summary table of the binary's cases and compare.py's table on stdout.
set -uo pipefail
out=${1:?usage: bench/gpu_bench.sh OUT_DIR [quick|full]}
mode=${2:-quick}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
mkdir -p "$out" "$work/compare"

bin=$(command -v powerret-bench || true)
if [ -z "$bin" ]; then
  bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench"
fi
[ -x "$bin" ] || { echo "powerret-bench not found (PATH or the Python scripts folder)"; exit 1; }

failures=0
bench() {  # one verified case, appended to the JSON lines; a wrong kernel exits 3 and reports nothing
  echo "+ powerret-bench $*"
  "$bin" --format json "$@" >> "$work/powerret-bench.jsonl"
  local rc=$?
  [ $rc -eq 0 ] || { echo "  rc=$rc"; failures=$((failures + 1)); }
}

# compare.py first, on a cool GPU: in the a804e90 run it came after the binary's cases and read retention's
# forward 1.11-1.16x slower than on a fresh machine (bench/RESULTS.md).
echo "== compare.py"
extra=""
[ "$mode" = quick ] && extra="--quick"
# POWERRET_COMPARE_ARGS adds compare.py flags (e.g. --budget-ms 150); the timeout keeps one device call bounded.
timeout "${POWERRET_COMPARE_TIMEOUT:-1200}" python3 bench/compare.py --out "$work/compare" $extra \
  ${POWERRET_COMMIT:+--commit "$POWERRET_COMMIT"} ${POWERRET_COMPARE_ARGS:-}
rc_compare=$?


ref="--b 1 --h 8 --d 64 --dtype bf16 --gated"   # issue 3's reference shape (t varies)
if [ "$mode" = quick ]; then
  ts="4096 65536"
else
  ts="1024 2048 4096 8192 16384 32768 65536 131072 262144 524288 1048576"
fi
ts=${POWERRET_BENCH_TS:-$ts}   # the forward lengths, overridable (e.g. to fit one device call)
echo "== powerret-bench: forward p=2 (b=1, h=8, d=64, bf16, gated)"
for t in $ts; do bench --op forward $ref --deg 2 --t "$t"; done
echo "== powerret-bench: decode p=2 (h=8, d=64, bf16, gated), stream and CUDA-graph replay"
for b in 1 16 64; do
  bench --op decode --b "$b" --h 8 --d 64 --dtype bf16 --gated --deg 2
  bench --op decode --b "$b" --h 8 --d 64 --dtype bf16 --gated --deg 2 --graph
done
if [ "$mode" != quick ]; then
  echo "== powerret-bench: other shapes"
  for t in 4096 65536 1048576; do bench --op forward $ref --deg 1 --t "$t"; done
  bench --op forward --b 1 --h 8 --d 128 --dtype bf16 --gated --deg 2 --t 65536
  bench --op forward --b 1 --hq 32 --h 8 --d 64 --dtype bf16 --gated --deg 2 --t 65536
  bench --op forward $ref --deg 2 --t 65536 --state
  # short multi-token steps from a state (speculative decoding, issue 5): prefill of t tokens onto a state
  for b in 1 16 64; do for t in 2 16; do
    bench --op forward --b "$b" --h 8 --d 64 --dtype bf16 --gated --deg 2 --t "$t" --state
  done; done
  bench --op forward --b 1 --h 8 --d 64 --dtype fp32 --gated --deg 2 --t 16384
  bench --op decode --b 64 --h 8 --d 128 --dtype bf16 --gated --deg 2 --graph
  bench --op decode --b 64 --h 8 --d 64 --dtype bf16 --gated --deg 2 --slots 256 --graph
  bench --op sympow --b 1 --t 65536 --h 8 --d 64 --dtype bf16 --deg 2
fi

echo "== powerret-bench summary"
python3 - "$work/powerret-bench.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{'op':8} {'mode':6} {'b':>3} {'t':>8} {'hq':>3} {'d':>4} {'p':>2} {'dtype':5} {'chunk':>5} "
      f"{'median us':>11} {'TFLOP/s':>8} {'%peak':>6} {'GB/s':>8} {'%copy':>6}")
for r in rows:
    pct = lambda x: "" if x is None else f"{100 * x:.1f}"
    print(f"{r['op']:8} {r['mode']:6} {r['b']:>3} {r['t']:>8} {r['hq']:>3} {r['d']:>4} {r['deg']:>2} {r['dtype']:5} "
          f"{r['chunk'] if r['chunk'] is not None else '':>5} {r['us_median']:>11.2f} {r['tflops']:>8.2f} "
          f"{pct(r['tc_fraction']):>6} {r['gbps']:>8.1f} {pct(r['bw_fraction']):>6}")
if rows:
    print(f"device {rows[0]['device_name']}; copy {rows[0]['copy_gbps']:.0f} GB/s measured; "
          f"peak {rows[0]['peak_tflops']} TFLOP/s ({rows[0]['peak_source']})")
EOF

tar -C "$work" -czf "$out/bench-results.tar.gz" .
echo "wrote $out/bench-results.tar.gz; powerret-bench failures: $failures; compare.py rc=$rc_compare"
[ $failures -eq 0 ] && [ $rc_compare -eq 0 ]
