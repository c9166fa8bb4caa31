#!/usr/bin/env bash
# L2 and DRAM traffic of each forward kernel alone (ncu serialises them), after powerret is installed:
#   bench/diag/l2_traffic.sh OUT_DIR [powerret-bench arguments ...]   (OUT_DIR/l2_traffic.tar.gz; common.sh)
# Default case: issue 4's target shape (b = 1, t = 65536, h = 8, d = e = 64, p = 2, gated, bf16). In the forward
# both kernels run at once, so their bytes add up over the forward's time: the sum against the L2's sustained
# peak (ncu's pct_of_peak of each kernel alone gives the peak) says whether the walks' K / V reads and the output
# kernel's S_enter reads could bound the forward.
set -u
top=${1:?usage: bench/diag/l2_traffic.sh OUT_DIR [powerret-bench args]}
shift
name=l2_traffic
source "$(dirname "$0")/common.sh"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536 --deg 2)
m=gpu__time_duration.sum,lts__t_bytes.sum,lts__t_sectors.avg.pct_of_peak_sustained_elapsed
m=$m,lts__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sector_hit_rate.pct
m=$m,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed
timeout 150 ncu --clock-control none --metrics "$m" -k regex:"chunk_(state|output)" -c 2 \
  "$bin" "${args[@]}" --iters 1 --warmup 0 2>&1 | grep -E "chunk_|__" | tee "$out/l2_traffic.txt"
