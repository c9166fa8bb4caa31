#!/usr/bin/env bash
# d = 128 probe (one device call, ~3 min; session 17): full build, the forward at 16k over h = 1, 2, 4, 8 (state
# walks 72 per head, one block per SM: 0.55 .. 4.4 waves), 64k at chunk 128 and 256, and ncu of each kernel alone.
#   OUT=<dir> bash bench/diag/d128_probe.sh
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site
POWERRET_CUDA=ON POWERRET_INSTANTIATIONS=full python3 -m pip install -q --no-build-isolation --no-deps . -C build-dir=/tmp/pb > $OUT/build.log 2>&1; echo "build $? at $SECONDS s"
bin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench
for h in 1 2 4 8; do echo "d128 t16k h=$h $($bin --op forward --b 1 --h $h --d 128 --dtype bf16 --gated --deg 2 --t 16384 --iters 10 --format csv | tail -1 | cut -d, -f20-22,25)"; done
for c in 128 256; do echo "d128 64k h=8 c=$c $($bin --op forward --b 1 --h 8 --d 128 --dtype bf16 --gated --deg 2 --t 65536 --chunk $c --iters 5 --format csv | tail -1 | cut -d, -f20-22,25)"; done
echo "at $SECONDS s"
timeout 120 ncu --section SpeedOfLight --section LaunchStats --section Occupancy -k regex:chunk -c 2 $bin --op forward --b 1 --h 8 --d 128 --dtype bf16 --gated --deg 2 --t 65536 --iters 1 --warmup 0 > $OUT/ncu128.txt 2>&1
grep -E "chunk_.*Context|Duration|Throughput|Waves Per SM|Registers Per|Block Limit|Achieved Occupancy|Grid Size|Shared Memory Config" $OUT/ncu128.txt
echo "done at $SECONDS s"
