#!/usr/bin/env bash
# Same-run A/B on the GPU machine: powerret-bench on the working tree against a reference tree, in
# alternating rounds, so both sides see the same GPU, clocks and inputs.
#   bench/diag/ab.sh OUT_DIR REF_TREE[,REF_TREE...] [ROUNDS]      (default 2 rounds; sides ref, ref2, ..., new)
# REF_TREE is a copy of the reference commit made on the development machine and carried to the device
# (the device's copy of the checkout has no usable git history), e.g.
#   git archive <ref> | tar -x -C _alt/ref        then carry ["_alt", ".whl"]
# Both trees are built in parallel with POWERRET_INSTANTIATIONS=ci (bf16 tensor-core configurations d = e = 64,
# p = 1, 2; others run on the CUDA-core path), unless POWERRET_AB_FULL=1 (full instantiations: d = 128 too).
# POWERRET_AB_CASES replaces the default cases (one powerret-bench argument list per line). A reference tree that is
# wrong by design (a diagnostic switch wired into a copy of main, e.g. the state kernel without its K / V copies)
# needs --unchecked in the case lines (POWERRET_AB_UNCHECKED=1 adds it to every line), or its cases report
# "failed" (every side's powerret-bench must know the flag: main from 2026-12-07 on); ab.md marks its numbers "u".
# POWERRET_AB_NEW_ENV="VAR=value ..." adds a side newenv: the working tree's build run with those variables (a
# diagnostic switch of the library, e.g. POWERRET_STATE_BLOCK_ROWS=128), in the same rounds.
# Writes OUT_DIR/ab.txt: "<side> <case>: op,us_median,us_min,us_max,tflops,tc_fraction,verify_err,verify_tol",
# and OUT_DIR/ab.md, the same as a markdown table (bench/diag/ab_table.py).
set -uo pipefail
out=${1:?usage: bench/diag/ab.sh OUT_DIR REF_TREE [ROUNDS]}
# REF_TREE may list several trees, comma-separated: sides ref, ref2, ref3, ... and new, same rounds
refs_arg=${2:?usage: bench/diag/ab.sh OUT_DIR REF_TREE[,REF_TREE...] [ROUNDS]}
rounds=${3:-2}
IFS=, read -r -a ref_list <<< "$refs_arg"
ref_trees=()
for r in "${ref_list[@]}"; do ref_trees+=("$(cd "$r" && pwd)"); done
mkdir -p "$out"
cd "$(dirname "$0")/../.."
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
  for r in "${ref_trees[@]}"; do [ -e "$r/.whl" ] || ln -sfn "$PWD/.whl" "$r/.whl"; done
fi
inst=ci; [ "${POWERRET_AB_FULL:-0}" = 1 ] && inst=full
build() {  # build <tree> <name>
  (cd "$1" && POWERRET_CUDA=ON POWERRET_INSTANTIATIONS=$inst python3 -m pip wheel --no-build-isolation --no-deps \
    -w "/tmp/ab_wheel_$2" . -C build-dir="/tmp/ab_build_$2" > "$out/build_$2.log" 2>&1)
  echo "$2 build rc=$?"
}
sides=()
for i in "${!ref_trees[@]}"; do
  name=ref; [ "$i" -gt 0 ] && name=ref$((i + 1))
  sides+=("$name")
  rm -rf "/tmp/ab_wheel_$name"
  build "${ref_trees[$i]}" "$name" &
done
sides+=(new)
[ -n "${POWERRET_AB_NEW_ENV:-}" ] && sides+=(newenv)
rm -rf /tmp/ab_wheel_new
build "$PWD" new &
wait
cases=${POWERRET_AB_CASES:-"--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 4096 --deg 2
--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 16384 --deg 2
--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536 --deg 2
--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536 --deg 1
--op forward --b 8 --h 16 --d 64 --dtype bf16 --gated --t 8192 --deg 2
--op decode --b 1 --h 8 --d 64 --dtype bf16 --gated --deg 2
--op decode --b 64 --h 8 --d 64 --dtype bf16 --gated --deg 2 --graph"}
# POWERRET_AB_UNCHECKED=1: every case with --unchecked (for diagnostic trees, bench/diag/diag_trees.sh)
[ "${POWERRET_AB_UNCHECKED:-0}" = 1 ] && cases=$(sed '/^$/!s/$/ --unchecked/' <<< "$cases")
bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench"
: > "$out/ab.txt"
for round in $(seq "$rounds"); do
  for side in "${sides[@]}"; do
    wheel=$side envs=()
    [ "$side" = newenv ] && { wheel=new; read -r -a envs <<< "$POWERRET_AB_NEW_ENV"; }
    python3 -m pip install -q --no-deps --force-reinstall /tmp/ab_wheel_$wheel/*.whl > /dev/null 2>&1 ||
      { echo "$side: install failed"; continue; }
    while IFS= read -r args; do
      [ -n "$args" ] || continue
      # columns: op, median, min, max (us), TFLOP/s, tensor-core fraction, verify error and tolerance, and
      # "unchecked" for a diagnostic build timed with --unchecked that failed verification (bench_fields.py)
      # a case that hangs (a kernel waiting forever) costs POWERRET_AB_TIMEOUT seconds, not the device call
      line=$(timeout "${POWERRET_AB_TIMEOUT:-120}" env "${envs[@]}" "$bin" $args --iters 30 --format csv 2>&1 |
        python3 bench/diag/bench_fields.py)
      echo "$side [$args]: $line" | tee -a "$out/ab.txt"
    done <<< "$cases"
  done
done
# the same numbers as a markdown table (rounds per cell, new / ref from the medians of the rounds)
python3 bench/diag/ab_table.py "$out/ab.txt" | tee "$out/ab.md"  # (the working directory is the repository root)
