"""bench/diag/diag_trees.sh on this checkout, without a GPU: every variant's anchor still occurs exactly once in the
source (a variant whose anchor moved would stop the script on the development machine, or worse, time the wrong
thing on the device), and each variant changes exactly the file it names and nothing else."""

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "diag" / "diag_trees.sh"
CHANGED = {
    "nocopy": "src/cuda/chunk_state/chunk_state_wgmma.cuh",
    "halfw": "src/cuda/chunk_output/chunk_output_mma.cuh",
    "nointra": "src/cuda/chunk_output/chunk_output_mma.cuh",
}


def _git_head_ok():
    if shutil.which("git") is None or shutil.which("bash") is None:
        return False
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _git_head_ok(), reason="needs git and a checkout with a HEAD commit")
def test_every_variant_applies_to_head(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "HEAD", str(tmp_path), "plain", *CHANGED], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for variant, rel in CHANGED.items():
        cmp = filecmp.dircmp(tmp_path / "plain", tmp_path / variant)
        differing = []

        def walk(c, prefix=""):
            differing.extend(prefix + name for name in c.diff_files + c.left_only + c.right_only)
            for name, sub in c.subdirs.items():
                walk(sub, prefix + name + "/")

        walk(cmp)
        assert differing == [rel], (variant, differing)
        assert "DIAG" in (tmp_path / variant / rel).read_text()


def test_an_unknown_variant_is_refused(tmp_path):
    if not _git_head_ok():
        pytest.skip("needs git and a checkout with a HEAD commit")
    proc = subprocess.run(["bash", str(SCRIPT), "HEAD", str(tmp_path), "bogus"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "unknown variant" in proc.stderr
