"""The hottest SASS lines of one kernel from ncu's source page (`ncu --import R --page source --print-source sass
--csv`), as a share of its stall samples, and optionally its instruction mix (warp instructions executed, by
opcode) and its shared-memory wavefronts by opcode (all and excess: bank conflicts, split lines; one wavefront is a
cycle of the SM's shared-memory data pipe, wgmma operand reads included). Used by bench/diag/forward.sh and
bench/diag/output_profile.sh.

    python3 bench/diag/sass_lines.py CSV [--top N] [--width W] [--mix] [--wavefronts [PER]] [--title TEXT]

--wavefronts PER divides the counts by PER (e.g. the kernel's walk-tiles: 160 walks x 1024 tiles at 64k, h = 8).
"""

import argparse
import collections
import csv
import sys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv")
    p.add_argument("--top", type=int, default=40, help="lines to print (default 40)")
    p.add_argument("--width", type=int, default=90, help="characters of each SASS line (default 90)")
    p.add_argument("--mix", action="store_true", help="also print the instruction mix")
    p.add_argument("--wavefronts", type=float, nargs="?", const=1.0, metavar="PER",
                   help="also print shared-memory wavefronts by opcode, divided by PER (default 1)")
    p.add_argument("--title", help="a heading printed first, with the sample count")
    args = p.parse_args()
    rows = list(csv.reader(open(args.csv)))
    head = next(i for i, r in enumerate(rows) if any("Source" in c for c in r))
    cols = rows[head]
    key = next((i for i, c in enumerate(cols) if "Sampling" in c and "All" in c), None)
    if key is None:
        sys.exit("no sampling column")
    src = cols.index("Source")
    # lines with a sample count (ncu's CSV may write 1,234 or 1234); number() parses both
    data = [r for r in rows[head + 1:] if len(r) > key and r[key].replace(",", "").replace(".", "").isdigit()]
    total = sum(number(r[key]) for r in data) or 1
    if args.title:
        print(f"== {args.title}: {int(total)} samples, hottest SASS lines")
    for r in sorted(data, key=lambda r: -number(r[key]))[:args.top]:
        print(f"{100 * number(r[key]) / total:5.1f}%  {r[src][:args.width]}")
    if args.mix:
        ie = cols.index("Instructions Executed")
        mix, n = collections.Counter(), 0.0
        for r in data:
            if r[ie].replace(",", "").replace(".", "").isdigit():
                op = [o for o in r[src].split() if not o.startswith("@")]
                mix[op[0].split(".")[0] if op else "?"] += number(r[ie])
                n += number(r[ie])
        print(f"== instruction mix (warp instructions executed: {n:.0f})")
        print("  ".join(f"{k} {100 * v / n:.1f}%" for k, v in mix.most_common(20)))
    if args.wavefronts is not None:
        wave_by_opcode(cols, data, src, args.wavefronts)


def number(text: str) -> float:
    """ncu's CSV number ('1,234' or '1234.5'); 0 for an empty or non-numeric cell."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def wave_by_opcode(cols, data, src, per: float) -> None:
    """Shared wavefronts and their excess by opcode (HGMMA, LDSM, LDS.U16, LDGSTS, ...), largest first."""
    if "L1 Wavefronts Shared" not in cols:
        print("== shared wavefronts: not in this profile (ncu's source counters)")
        return
    wi, xi = cols.index("L1 Wavefronts Shared"), cols.index("L1 Wavefronts Shared Excessive")
    waves, excess = collections.Counter(), collections.Counter()
    for r in data:
        w = number(r[wi])
        if w:
            op = [o for o in r[src].split() if not o.startswith("@")]
            name = op[0].split(".")[0] if op else "?"
            if name in ("LDS", "STS") and op and "." in op[0]:  # keep the access width (LDS.U16, STS.128)
                name = op[0]
            waves[name] += w
            excess[name] += number(r[xi])
    total, total_x = sum(waves.values()), sum(excess.values())
    unit = "" if per == 1 else f" per {per:g}"
    print(f"== shared wavefronts{unit}: {total / per:.1f}, excess {total_x / per:.1f}")
    for k, v in waves.most_common():
        print(f"  {k:10s} {v / per:12.1f}  excess {excess[k] / per:12.1f}")


if __name__ == "__main__":
    main()
