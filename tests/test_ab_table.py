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


FIELDS = ROOT / "bench" / "diag" / "bench_fields.py"


def bench_fields(text):
    return subprocess.run([sys.executable, str(FIELDS)], input=text, capture_output=True, text=True).stdout.strip()


def csv_row(verified, err="0.00217", tol="0.02"):
    # one powerret-bench --format csv row (bench/report.cpp's 35 columns; numbers where ab.sh keeps them)
    cols = [str(i) for i in range(35)]
    cols[0], cols[19], cols[20], cols[21], cols[24], cols[30] = "forward", "1110.9", "1107.3", "1112.6", "270.7", "0.34"
    cols[32], cols[33], cols[34] = f'"{verified}"', err, tol
    return ",".join(cols)


def test_bench_fields_parses_the_verified_column_as_csv():
    # the verified column holds commas (one per slice): the fields after it must not shift
    for verified in ["y[0,:512]", "y[0,:512] y[7,:64]", "y[0,:512] final_s[0] final_z[0]"]:
        assert bench_fields("header\n" + csv_row(verified) + "\n") == "forward,1110.9,1107.3,1112.6,270.7,0.34,0.00217,0.02"
    unchecked = csv_row("UNCHECKED (failed: y[0,:512]) y[0,:512]", err="0.9")
    assert bench_fields(unchecked) == "forward,1110.9,1107.3,1112.6,270.7,0.34,0.9,0.02,unchecked"
    assert bench_fields("powerret-bench: verification failed: y[0,:512] ...\n") == (
        "powerret-bench: verification failed: y[0,:512] ...")


def test_unchecked_sides_keep_their_numbers(tmp_path):
    case = "--op forward --b 1 --h 8 --d 64 --dtype bf16 --gated --t 65536 --deg 2 --unchecked"
    out = run(tmp_path, "\n".join([f"ref [{case}]: forward,1100,1,2,3,4,0.001,0.02",
                                   f"ref2 [{case}]: forward,1055,1,2,3,4,0.9,0.02,unchecked",
                                   f"new [{case}]: forward,1090,1,2,3,4,0.001,0.02"]) + "\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[2] == (
        "| b=1 h=8 d=64 dtype=bf16 t=65536 deg=2 unchecked | 1100.0 | 1055.0u | 1090.0 | 0.991 |")


def test_bench_fields_columns_match_the_binary():
    # the column numbers of bench_fields.py against the header that powerret-bench prints (when it is built)
    import os
    import shutil
    import pytest
    binary = os.environ.get("POWERRET_BENCH_BIN") or shutil.which("powerret-bench")
    if not binary:
        pytest.skip("powerret-bench not found: put it on PATH or set POWERRET_BENCH_BIN")
    proc = subprocess.run([binary, "--device", "cpu", "--t", "40", "--h", "2", "--d", "8", "--chunk", "16", "--iters",
                           "1", "--warmup", "0", "--format", "csv"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.strip().splitlines()[0].split(",")
    sys.path.insert(0, str(FIELDS.parent))
    import bench_fields as bf
    for name, index in bf.COLUMNS.items():
        assert header[index] == name, (name, index, header[index])
