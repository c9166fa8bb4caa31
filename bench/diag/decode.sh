#!/usr/bin/env bash
# Decode batch 1 on the GPU machine, after bench/run_gpu.sh built and installed powerret:
#   bench/diag/decode.sh OUT_DIR
# Where the ~13.5 us of a b=1 step (h=8, d=e=64, p=2, bf16, fp32 state) go: the step at each cluster split
# (POWERRET_DECODE_MAX_SPLIT caps the CTAs per state: 1 .. 16), on a stream and as CUDA-graph replay, then
# ncu's kernel duration (without the launch) at the default split. Writes OUT_DIR/decode.tar.gz.
set -uo pipefail
top=${1:?usage: bench/diag/decode.sh OUT_DIR}
name=decode
source "$(dirname "$0")/common.sh"
ref="--op decode --h 8 --d 64 --dtype bf16 --gated --deg 2 --format csv"
for split in 16 8 4 2 1; do
  for b in 1 16; do
    for graph in "" --graph; do
      echo "split<=$split b=$b ${graph:-stream}: $(POWERRET_DECODE_MAX_SPLIT=$split "$bin" $ref --b $b $graph | tail -1)"
    done
  done
done 2>&1 | tee "$out/splits.txt"
timeout 120 ncu --section SpeedOfLight --section LaunchStats --section Occupancy -k regex:decode -c 3 \
  "$bin" $ref --b 1 --iters 2 --warmup 1 > "$out/ncu-b1.txt" 2>&1
grep -E "decode_step|Duration|Cluster|Grid Size|Memory Throughput|DRAM Throughput" "$out/ncu-b1.txt" | head -30
