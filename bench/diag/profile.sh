#!/usr/bin/env bash
# Profiling pass on the GPU machine, after bench/run_gpu.sh built and installed powerret:
#   bench/diag/profile.sh OUT_DIR      (writes OUT_DIR/profile.tar.gz and prints the summaries)
# Per-kernel ncu sections of the forward (p = 1, 2) and the decode step at the reference shape,
# chunk-size sweep of the forward, the demo, and bench/diag/retention_timing.py.
set -uo pipefail
top=${1:?usage: bench/diag/profile.sh OUT_DIR}
out="$top/profile"; mkdir -p "$out"
trap 'tar -C "$top" -czf "$top/profile.tar.gz" profile && rm -rf "$out"' EXIT
cd "$(dirname "$0")/../.."
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site
bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench"
ref="--b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536"
sections="--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats"
echo "== chunk sweep (p=2, t=65536)"
for c in 64 128 256; do "$bin" --op forward $ref --deg 2 --chunk $c --iters 30 | tail -2; done 2>&1 | tee "$out/chunks.txt"
echo "== ncu forward p=2"
timeout 240 ncu $sections -k regex:chunk -c 2 "$bin" --op forward $ref --deg 2 --iters 1 --warmup 0 > "$out/ncu-forward-p2.txt" 2>&1
grep -E "chunk_|Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Executed Ipc A|Block Limit|Grid Size|Stall|Waves" "$out/ncu-forward-p2.txt" | head -80
echo "== ncu forward p=1"
timeout 120 ncu --section SpeedOfLight --section Occupancy -k regex:chunk -c 2 "$bin" --op forward $ref --deg 1 --iters 1 --warmup 0 > "$out/ncu-forward-p1.txt" 2>&1
grep -E "chunk_|Duration|Throughput|Registers|Achieved Occupancy" "$out/ncu-forward-p1.txt" | head -30
echo "== ncu decode b=1"
timeout 120 ncu $sections -k regex:decode -c 1 "$bin" --op decode --b 1 --h 8 --d 64 --dtype bf16 --gated --deg 2 --iters 1 --warmup 0 > "$out/ncu-decode-b1.txt" 2>&1
grep -E "decode|Duration|Throughput|Registers|Warp Cycles Per Issued|Grid Size|Cluster" "$out/ncu-decode-b1.txt" | head -30
echo "== demo"
timeout 180 python3 -m powerret > "$out/demo.txt" 2>&1; echo "demo rc=$?"; tail -15 "$out/demo.txt"
echo "== retention timing"
timeout 240 python3 bench/diag/retention_timing.py 2>&1 | grep -v Warning | tee "$out/retention_timing.txt"
