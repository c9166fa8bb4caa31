"""The fields of one powerret-bench --format csv result that bench/diag/ab.sh keeps, parsed as CSV (the `verified`
column holds commas, "y[0,:512] y[7,:64]", so a plain split by commas shifts the columns after it):

    op,us_median,us_min,us_max,tflops,tc_fraction,verify_err,verify_tol[,unchecked]

`unchecked` ends the line when the run was timed with --unchecked and failed verification (a diagnostic build). A
last line that is not a result (an error message) is printed as it is, for ab_table.py to mark the case failed.

    powerret-bench ... --format csv 2>&1 | python3 bench/diag/bench_fields.py
"""

import csv
import sys

KEEP = ["op", "us_median", "us_min", "us_max", "tflops", "tc_fraction", "verify_err", "verify_tol"]
# the column order of bench/report.cpp's CSV (its header line names them; checked by tests/test_ab_table.py)
COLUMNS = {"op": 0, "us_median": 19, "us_min": 20, "us_max": 21, "tflops": 24, "tc_fraction": 30,
           "verified": 32, "verify_err": 33, "verify_tol": 34}


def fields(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    try:
        row = next(csv.reader([last]))
        out = [row[COLUMNS[k]] for k in KEEP]
        float(out[1])
    except (IndexError, ValueError, StopIteration):
        return last
    if row[COLUMNS["verified"]].startswith("UNCHECKED"):
        out.append("unchecked")
    return ",".join(out)


if __name__ == "__main__":
    print(fields(sys.stdin.read()))
