"""powerret-bench and bench/metrics.py report from one FLOP / byte formula: run the built binary
(`powerret-bench` on PATH, or the path in POWERRET_BENCH_BIN) on tiny CPU cases with --format json
and check its flops and bytes against metrics.py for the same shape. Also the CI smoke run of the
binary: it must verify against the CPU backend and exit 0."""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _metrics():
    spec = importlib.util.spec_from_file_location("powerret_bench_metrics", ROOT / "bench" / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _binary():
    path = os.environ.get("POWERRET_BENCH_BIN") or shutil.which("powerret-bench")
    if not path or not os.path.exists(path):
        pytest.skip("powerret-bench not found: put it on PATH or set POWERRET_BENCH_BIN")
    return path


def _run(*args):
    cmd = [_binary(), "--device", "cpu", "--iters", "1", "--warmup", "0", "--format", "json", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout)
    assert report["verify_err"] <= report["verify_tol"], report
    assert report["us_median"] > 0
    return report


# Awkward shapes: t not a multiple of the chunk, GQA, e != d, odd degree, fp32 and fp16.
FORWARD_CASES = [
    dict(b=2, t=50, hq=4, h=2, d=8, e=12, deg=2, dtype="bf16", gated=True, chunk=16, state=False),
    dict(b=1, t=33, hq=2, h=2, d=6, e=6, deg=3, dtype="fp32", gated=False, chunk=8, state=True),
    dict(b=1, t=20, hq=3, h=1, d=4, e=5, deg=1, dtype="fp16", gated=True, chunk=0, state=False),
]


@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: f"t{c['t']}-p{c['deg']}-{c['dtype']}")
def test_forward_matches_metrics(case):
    args = ["--op", "forward"]
    for k in ("b", "t", "hq", "h", "d", "e", "deg", "dtype", "chunk"):
        args += [f"--{k}", str(case[k])]
    args += (["--gated"] if case["gated"] else []) + (["--state"] if case["state"] else [])
    report = _run(*args)
    m = _metrics()
    if case["chunk"]:
        assert report["chunk"] == case["chunk"]
    shape = {k: case[k] for k in ("b", "t", "hq", "h", "d", "e", "deg")}
    assert report["D"] == m.state_dim(case["d"], case["deg"])
    assert report["flops"] == m.forward_flops(**shape, chunk=report["chunk"])
    assert report["bytes"] == m.forward_bytes(**shape, dtype=case["dtype"], gated=case["gated"],
                                              with_state=case["state"])


@pytest.mark.parametrize("slots", [0, 7])
def test_decode_matches_metrics(slots):
    shape = dict(b=3, hq=4, h=2, d=8, e=6, deg=2)
    args = ["--op", "decode", "--gated", "--dtype", "bf16"]
    for k, v in shape.items():
        args += [f"--{k}", str(v)]
    if slots:
        args += ["--slots", str(slots)]
    report = _run(*args)
    m = _metrics()
    assert report["flops"] == m.decode_flops(**shape)
    assert report["bytes"] == m.decode_bytes(**shape, dtype="bf16", gated=True, slots=bool(slots))


def test_sympow_matches_metrics():
    report = _run("--op", "sympow", "--b", "2", "--t", "5", "--h", "3", "--d", "7", "--deg", "3", "--dtype", "fp32")
    m = _metrics()
    assert report["flops"] == m.sympow_flops(b=2, t=5, h=3, d=7, deg=3)
    assert report["bytes"] == m.sympow_bytes(b=2, t=5, h=3, d=7, deg=3, dtype="fp32")


def test_bad_flag_is_a_usage_error():
    proc = subprocess.run([_binary(), "--op", "backward"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--op" in proc.stderr


def test_unchecked_keeps_a_passing_verification_clean():
    # --unchecked only changes what a failed verification does (diagnostic builds, bench/diag): a correct result
    # is reported exactly as without it, with no UNCHECKED mark
    plain = _run("--t", "40", "--h", "2", "--d", "8", "--chunk", "16")
    unchecked = _run("--t", "40", "--h", "2", "--d", "8", "--chunk", "16", "--unchecked")
    assert unchecked["verified"] == plain["verified"]
    assert "UNCHECKED" not in unchecked["verified"]
    assert unchecked["verify_err"] == plain["verify_err"]
