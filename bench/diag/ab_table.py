"""The markdown table of a bench/diag/ab.sh run: one row per case, one column per side (ref, ref2, ..., new) with
the median of each round ("r1 / r2 / ..."), and new / ref from the per-side medians of the rounds. A case whose
verification failed (error above tolerance) or that printed no number is marked; a diagnostic side timed with
--unchecked that failed verification keeps its numbers, marked "u" (bench_fields.py's `unchecked`).

    python3 bench/diag/ab_table.py OUT_DIR/ab.txt
"""

import re
import statistics
import sys

LINE = re.compile(r"^(\w+) \[(.*)\]: (.*)$")


def short(args: str) -> str:
    """The case's arguments without the ones every A/B case shares."""
    drop = {"--op", "--gated"}
    words, out, skip = args.split(), [], False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w in drop:
            skip = w == "--op"
            continue
        out.append(w.lstrip("-") + ("=" if i + 1 < len(words) and not words[i + 1].startswith("--") else ""))
    return " ".join(out).replace("= ", "=")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    sides, cases, cells = [], [], {}
    for raw in open(sys.argv[1]):
        m = LINE.match(raw.strip())
        if not m:
            continue
        side, args, rest = m.groups()
        if side not in sides:
            sides.append(side)
        if args not in cases:
            cases.append(args)
        fields = rest.split(",")
        unchecked = fields[-1] == "unchecked"
        if unchecked:
            fields = fields[:-1]
        try:
            median = float(fields[1])
        except (IndexError, ValueError):
            cells.setdefault((args, side), []).append(None)
            continue
        ok = True
        try:
            ok = unchecked or float(fields[-2]) <= float(fields[-1])
        except (IndexError, ValueError):
            pass  # no verification columns: keep the number
        cells.setdefault((args, side), []).append((median, unchecked) if ok else None)
    if not cases:
        print("no results", file=sys.stderr)
        return 1
    order = [s for s in sides if s != "new"] + (["new"] if "new" in sides else [])
    ratio = "ref" in order and "new" in order
    print("| case | " + " | ".join(order) + (" | new / ref |" if ratio else " |"))
    print("|---|" + "---:|" * (len(order) + (1 if ratio else 0)))
    for args in cases:
        row = []
        for side in order:
            vals = cells.get((args, side), [])
            row.append(" / ".join("failed" if v is None else f"{v[0]:.1f}" + ("u" if v[1] else "") for v in vals) or "-")
        if ratio:
            ref = [v[0] for v in cells.get((args, "ref"), []) if v is not None]
            new = [v[0] for v in cells.get((args, "new"), []) if v is not None]
            row.append(f"{statistics.median(new) / statistics.median(ref):.3f}" if ref and new else "-")
        print(f"| {short(args)} | " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
