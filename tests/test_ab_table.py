"""bench/diag/ab_table.py without a GPU: the table it prints from a synthetic ab.sh result file (sides in
order, rounds per cell, new / ref from the medians of the rounds, failed verifications and missing numbers)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "diag" / "ab_table.py"


def run(tmp_path, text):
    f = tmp_path / "ab.txt"
    f.write_text(text)
    return subprocess.run([sys.executable, str(SCRIPT), str(f)], capture_output=True, text=True)


def test_table(tmp_path):
    case_a = "--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 4096 --deg 2"
    case_b = "--op forward --b 1 --h 8 --d 64 --dtype fp16 --gated --t 65536 --deg 2"
    lines = []
    for r, (ra, ref2a, na, rb, nb) in enumerate([(100, 99, 90, 1000, 1200), (102, 97, 92, 1010, 1210)]):
        lines += [f"ref [{case_a}]: forward,{ra},1,2,3,4,0.001,0.02",
                  f"ref [{case_b}]: forward,{rb},1,2,3,4,0.001,0.02",
                  f"ref2 [{case_a}]: forward,{ref2a},1,2,3,4,0.001,0.02",
                  f"ref2 [{case_b}]: forward,1.5,1,2,3,4,0.5,0.02",  # verification failed
                  f"new [{case_a}]: forward,{na},1,2,3,4,0.001,0.02",
                  f"new [{case_b}]: " + ("forward,%d,1,2,3,4,0.001,0.02" % nb if r == 0 else "error: no GPU")]
    out = run(tmp_path, "\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.strip().splitlines()
    assert rows[0] == "| case | ref | ref2 | new | new / ref |"
    assert rows[2] == "| b=1 h=8 d=64 dtype=bf16 t=4096 deg=2 | 100.0 / 102.0 | 99.0 / 97.0 | 90.0 / 92.0 | 0.901 |"
    assert rows[3] == ("| b=1 h=8 d=64 dtype=fp16 t=65536 deg=2 | 1000.0 / 1010.0 | failed / failed | "
                       "1200.0 / failed | 1.194 |")


def test_no_results(tmp_path):
    out = run(tmp_path, "ref build rc=0\n")
    assert out.returncode == 1 and "no results" in out.stderr
