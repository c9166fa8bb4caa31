"""bench/diag/overlap_model.py without a GPU: the model reproduces session 10's heads sweep (output blocks only on SMs
without a walk) and behaves like a throughput model (room beside the walks never makes the forward slower; more output
work never makes it faster; nothing ends before the walks)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "diag" / "overlap_model.py"
spec = importlib.util.spec_from_file_location("overlap_model", SCRIPT)
model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model)


def test_reproduces_the_heads_sweep():
    for h, measured in model.MEASURED.items():
        assert abs(model.forward_us(h) / measured - 1) < 0.07, (h, model.forward_us(h), measured)


def test_monotone():
    for h in range(1, 13):
        base = model.forward_us(h)
        assert base >= model.WALK_US - 1e-9
        assert model.forward_us(h, beside=0.5) <= base + 1e-9
        assert model.forward_us(h, beside=1.0) <= model.forward_us(h, beside=0.5) + 1e-9
        assert model.forward_us(h, output_us_h8=2 * model.OUTPUT_US_H8) >= base - 1e-9
    # more heads, more work: never faster
    assert all(model.forward_us(h + 1) >= model.forward_us(h) - 1e-9 for h in range(1, 12))


def test_cli_prints_a_table():
    out = subprocess.run([sys.executable, str(SCRIPT), "--heads", "8", "--beside", "0.8"], capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines()[0].startswith("| h |") and "| 8 |" in out
