"""The C++ API as a downstream project sees it: install powerret with plain CMake (CPU backend),
then configure, build and run tests/cpp against it through find_package(powerret)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not on PATH")
def test_find_package_consumer(tmp_path):
    build, prefix, consumer = tmp_path / "build", tmp_path / "prefix", tmp_path / "consumer"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run(["cmake", "-S", ROOT, "-B", build, *gen, "-DPOWERRET_CUDA=OFF", "-DPOWERRET_BENCH=OFF",
          f"-DCMAKE_INSTALL_PREFIX={prefix}"])
    _run(["cmake", "--build", build, "--parallel", str(os.cpu_count() or 2)])
    _run(["cmake", "--install", build])
    _run(["cmake", "-S", ROOT / "tests" / "cpp", "-B", consumer, *gen, f"-DCMAKE_PREFIX_PATH={prefix}"])
    _run(["cmake", "--build", consumer])
    out = _run([consumer / "consumer"])
    assert "rejected as expected" in out
