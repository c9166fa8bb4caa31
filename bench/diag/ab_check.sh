#!/usr/bin/env bash
# One device call for a state or output kernel change: ab.sh (the working tree against reference trees, ci
# builds, the forward cases of the issue-4 scorecard), then on the new build test_forward's bf16 cases, memcheck and
# racecheck (tests/sanitize_cases.py --quick), the heads sweep at 64k, p = 2 (h = 4, 6, 7, 8: whether output
# blocks run beside the walks; bench/diag/overlap_model.py models it) and ncu of each forward kernel alone.
#   git archive <ref> | tar -x -C _alt/ref      (on the development machine; carry _alt and .whl)
#   bench/diag/ab_check.sh OUT_DIR _alt/ref[,_alt/other ...] [ROUNDS]
set -u
out=${1:?usage: bench/diag/ab_check.sh OUT_DIR REF_TREE[,REF_TREE...] [ROUNDS]}
ref=${2:?usage: bench/diag/ab_check.sh OUT_DIR REF_TREE[,REF_TREE...] [ROUNDS]}
cd "$(dirname "$0")/../.."
mkdir -p "$out"
export POWERRET_AB_CASES="${POWERRET_AB_CASES:-"--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536 --deg 2
--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 16384 --deg 2
--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 4096 --deg 2
--op forward --b 1 --h 4 --d 64 --dtype bf16 --gated --t 65536 --deg 2
--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536 --deg 1
--op forward --b 8 --h 16 --d 64 --dtype bf16 --gated --t 8192 --deg 2"}"
# POWERRET_AB_EXTRA_CASES: more case lines after these (e.g. the chunk re-sweep: "... --t 4096 --deg 2 --chunk 128")
[ -z "${POWERRET_AB_EXTRA_CASES:-}" ] || POWERRET_AB_CASES="$POWERRET_AB_CASES"$'\n'"$POWERRET_AB_EXTRA_CASES"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
bench/diag/ab.sh "$out/ab" "$ref" "${3:-2}" | grep -v "^\(ref[0-9]*\|new\|newenv\) \["
echo "ab done at $SECONDS s"
# ab.sh installed the new build last
export PYTHONPATH=/tmp/site
# test_forward's cases selected by POWERRET_CHECK_K (default bf16: a ci build carries bf16 tensor-core kernels only,
# so its fp16 and fp32 cases fail by design; with POWERRET_AB_FULL=1, POWERRET_CHECK_K="" runs every case), then
# memcheck and racecheck on the quick cases; check TAG [VAR=value ...] runs them with those library switches and
# names the logs after TAG
check() {
  local tag=$1; shift
  local k=()
  [ -z "${POWERRET_CHECK_K-bfloat16}" ] || k=(-k "${POWERRET_CHECK_K-bfloat16}")
  env "$@" timeout 240 python3 -m pytest -q -x tests/test_forward.py "${k[@]}" > "$out/tf$tag.txt" 2>&1
  echo "test_forward$tag: $(tail -1 "$out/tf$tag.txt")"; grep -m2 -A25 "^____" "$out/tf$tag.txt" | head -60
  for tool in memcheck racecheck; do
    env "$@" timeout 120 compute-sanitizer --tool $tool python3 tests/sanitize_cases.py --quick > "$out/$tool$tag.txt" 2>&1
    echo "$tool$tag: $(tail -1 "$out/$tool$tag.txt")"
  done
}
check ""
# POWERRET_CHECK_ENV="VAR=value ...": the same checks once more with library switches (e.g. the mma.sync state
# kernel on the sm_90 GPU: POWERRET_FORWARD_KERNELS=sm80)
if [ -n "${POWERRET_CHECK_ENV:-}" ]; then
  read -r -a envs <<< "$POWERRET_CHECK_ENV"
  check _env "${envs[@]}"
fi
# POWERRET_CHECK_LOOP="H DEG": bench/diag/state_loop.sh (the state kernel alone, per 64-token tile, and its kDiag
# variants) on the first reference tree, then on the working tree
if [ -n "${POWERRET_CHECK_LOOP:-}" ]; then
  for side in ref new; do
    tree=$PWD; [ "$side" = ref ] && tree=${ref%%,*}
    # shellcheck disable=SC2086
    timeout 150 bash "$tree/bench/diag/state_loop.sh" $POWERRET_CHECK_LOOP 2>&1 | sed "s/^/$side /"
  done | tee "$out/state_loop.txt"
fi
# POWERRET_CHECK_EXTRAS=0 stops here (a call short of device time)
[ "${POWERRET_CHECK_EXTRAS:-1}" = 1 ] || { echo "all done at $SECONDS s"; exit 0; }
bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench"
p2_64k="--op forward --b 1 --d 64 --dtype bf16 --gated --t 65536 --deg 2"  # the heads (--h) vary below
for h in 4 6 7 8; do
  echo "h=$h $(timeout 120 "$bin" $p2_64k --h $h --iters 30 --format csv 2>&1 |
    tail -1 | cut -d, -f20-22)"
done | tee "$out/hsweep.txt"
# each forward kernel alone (ncu serialises them; fixed clocks off): the state kernel's lone walks (h = 4: 80
# blocks) and walks sharing SMs (h = 8: 160 blocks on 132 SMs), and the output kernel on a GPU to itself
for h in 4 8; do
  timeout 120 ncu --clock-control none --metrics gpu__time_duration.sum -k regex:"chunk_(state|output)" -c 2 \
    "$bin" $p2_64k --h $h --iters 1 --warmup 0 2>&1 | grep -E "chunk_|duration" | sed "s/^/h=$h /"
done | tee "$out/ncu_alone.txt"
# shared-memory counters of the state kernel alone (h = 4: lone walks) on the first reference side and the new
# build (session 14 used them to rule out the shared-memory pipe as the walk's bound); POWERRET_CHECK_SMEM=0 skips it
if [ "${POWERRET_CHECK_SMEM:-1}" = 1 ]; then
  m=gpu__time_duration.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum
  m=$m,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum
  m=$m,smsp__sass_inst_executed_op_shared_ld.sum,sm__cycles_elapsed.avg
  for side in ref new; do  # the new build is installed again last
    python3 -m pip install -q --no-deps --force-reinstall /tmp/ab_wheel_$side/*.whl > /dev/null 2>&1 || continue
    timeout 150 ncu --clock-control none --metrics "$m" -k regex:"chunk_state" -c 1 \
      "$bin" $p2_64k --h 4 --iters 1 --warmup 0 2>&1 | grep -E "chunk_|__" | sed "s/^/$side /"
  done | tee "$out/ncu_smem.txt"
fi
echo "all done at $SECONDS s"
