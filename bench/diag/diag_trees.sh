#!/usr/bin/env bash
# Diagnostic copies of a commit, for a same-run A/B of "what if this part cost nothing" (on the development machine):
#   bench/diag/diag_trees.sh REF DEST VARIANT [VARIANT ...]
# writes `git archive REF` into DEST/<variant> for each variant and applies its switch there:
#   plain    REF as it is (the reference side)
#   nocopy   the library launches the state kernel with kDiagNoCopies (its K / V copies stop after the prologue:
#            the walks' L2 reads and their shared-memory writes gone)
#   halfw    the output kernel loads half of each W stage (the other half stays stale: half its W traffic)
#   nointra  the output kernel skips the intra-chunk part (its key loads and products)
# Every variant but plain computes wrong results: give ab.sh's case lines --unchecked, e.g.
#   bench/diag/diag_trees.sh main _alt plain nocopy halfw nointra      then, on the device (carry _alt, .whl):
#   POWERRET_AB_CASES="--op forward ... --unchecked" bench/diag/ab.sh OUT _alt/plain,_alt/nocopy,_alt/halfw,_alt/nointra 2
# A switch whose anchor text is gone from REF stops the script (the source moved on: update the anchor here).
set -euo pipefail
ref=${1:?usage: bench/diag/diag_trees.sh REF DEST VARIANT...}
dest=${2:?usage: bench/diag/diag_trees.sh REF DEST VARIANT...}
shift 2
[ $# -gt 0 ] || { echo "usage: bench/diag/diag_trees.sh REF DEST VARIANT..." >&2; exit 2; }
cd "$(dirname "$0")/../.."
for variant in "$@"; do
  tree="$dest/$variant"
  rm -rf "$tree"
  mkdir -p "$tree"
  git archive "$ref" | tar -x -C "$tree"
  python3 - "$tree" "$variant" <<'EOF'
import sys
tree, variant = sys.argv[1], sys.argv[2]
state = "src/cuda/chunk_state/chunk_state_wgmma.cuh"
output = "src/cuda/chunk_output/chunk_output_mma.cuh"
# variant: (file, anchor, replacement); the anchor must occur exactly once
switches = {
    "plain": [],
    "nocopy": [(state, "const auto kernel = chunk_state_wgmma_kernel<T, kD, kE, kDeg, kStages>;",
                "const auto kernel = chunk_state_wgmma_kernel<T, kD, kE, kDeg, kStages, kDiagNoCopies>;  // DIAG")],
    "halfw": [(output, "const uint32_t w_bytes = static_cast<uint32_t>(rows * Shared::kCols * 2);",
               "const uint32_t w_bytes = static_cast<uint32_t>(rows * Shared::kCols * 2) / 32 * 16;  // DIAG: half")],
    "nointra": [(output, "  if (!prev_reset) {\n    // Every key tile of the block at once",
                 "  if (true) {  // DIAG: no intra part\n  } else if (!prev_reset) {\n    // Every key tile of the block at once")],
}
if variant not in switches:
    sys.exit(f"unknown variant {variant!r}: one of {', '.join(switches)}")
for rel, anchor, new in switches[variant]:
    path = f"{tree}/{rel}"
    text = open(path).read()
    if text.count(anchor) != 1:
        sys.exit(f"{variant}: the anchor occurs {text.count(anchor)} times in {rel} (expected once): update diag_trees.sh")
    open(path, "w").write(text.replace(anchor, new))
print(f"{tree}: {variant}")
EOF
done
