#!/usr/bin/env bash
# Decode profile, the demo and the retention timing probe on the GPU machine, after bench/run_gpu.sh
# built and installed powerret (the forward kernels: bench/diag/forward.sh):
#   bench/diag/profile.sh OUT_DIR      (writes OUT_DIR/profile.tar.gz and prints the summaries)
set -uo pipefail
top=${1:?usage: bench/diag/profile.sh OUT_DIR}
name=profile
source "$(dirname "$0")/common.sh"
sections="--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats"
echo "== ncu decode b=1"
timeout 120 ncu $sections -k regex:decode -c 1 "$bin" --op decode --b 1 --h 8 --d 64 --dtype bf16 --gated --deg 2 --iters 1 --warmup 0 > "$out/ncu-decode-b1.txt" 2>&1
grep -E "decode|Duration|Throughput|Registers|Warp Cycles Per Issued|Grid Size|Cluster" "$out/ncu-decode-b1.txt" | head -30
echo "== demo"
timeout 180 python3 -m powerret > "$out/demo.txt" 2>&1; echo "demo rc=$?"; tail -15 "$out/demo.txt"
echo "== retention timing"
timeout 240 python3 bench/diag/retention_timing.py 2>&1 | grep -v Warning | tee "$out/retention_timing.txt"
