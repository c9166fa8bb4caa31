"""bench/diag/sass_lines.py without a GPU: the hot-line table and the shared-wavefront summary it prints from a
synthetic ncu source-page CSV (shares of the stall samples, wavefronts and excess by opcode, the PER divisor, and
a profile without the wavefront columns)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "diag" / "sass_lines.py"

HEAD = '"Kernel Name","k"\n"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed"'
WAVE = ',"L1 Wavefronts Shared","L1 Wavefronts Shared Excessive"'
LINES = [("0x10", "LDS.U16 R1, [R2]", "10", "4", "32", "28"),
         ("0x20", "@P0 HGMMA.64x64x16.F32.BF16 R0, R8, gdesc[UR4], R0", "30", "4", "1,600", "0"),
         ("0x30", "LDS.U16 R3, [R2+0x90]", "0", "4", "32", "28"),
         ("0x40", "FADD R1, R2, R3", "60", "8", "0", "0")]


def run(tmp_path, text, *args):
    f = tmp_path / "sass.csv"
    f.write_text(text)
    return subprocess.run([sys.executable, str(SCRIPT), str(f), *args], capture_output=True, text=True)


def test_wavefronts(tmp_path):
    rows = "\n".join(",".join(f'"{c}"' for c in line) for line in LINES)
    out = run(tmp_path, HEAD + WAVE + "\n" + rows + "\n", "--top", "2", "--wavefronts", "4")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["60.0%", "FADD", "R1,", "R2,", "R3"]
    assert lines[1].startswith(" 30.0%") and "HGMMA" in lines[1]
    assert lines[2] == "== shared wavefronts per 4: 416.0, excess 14.0"
    assert lines[3].split() == ["HGMMA", "400.0", "excess", "0.0"]
    assert lines[4].split() == ["LDS.U16", "16.0", "excess", "14.0"]
    assert len(lines) == 5


def test_without_wavefront_columns(tmp_path):
    rows = "\n".join(",".join(f'"{c}"' for c in line[:4]) for line in LINES)
    out = run(tmp_path, HEAD + "\n" + rows + "\n", "--top", "1", "--wavefronts")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "== shared wavefronts: not in this profile (ncu's source counters)"
