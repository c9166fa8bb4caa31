"""sympow: phi_p(x) [..., d] -> [..., D] (SPEC §1): the public layout, its identity
phi(x).phi(y) == (x.y)^p, dtypes and leading shapes, on every device."""
import math

import numpy as np
import pytest

import helpers
import reference as ref
import powerret

CPU_DTYPES = ["float16", "bfloat16", "float32", "float64"]
GPU_DTYPES = ["float16", "bfloat16", "float32"]


def dims_for(device, deg):
    """d values a device supports for this degree (the GPU's set; a few awkward ones on the CPU)."""
    if device == "cuda":
        return [32, 64, 128] if deg <= 2 else [16, 32]
    return [1, 3, 7, 16] if deg <= 2 else [1, 3, 6]


def test_state_dim():
    for d in range(1, 40):
        for p in range(1, 5):
            assert powerret.state_dim(d, p) == math.comb(d + p - 1, p)
    assert powerret.state_dim(64, 2) == 2080
    assert powerret.state_dim(128, 2) == 8256


def test_layout_by_hand(device, rng):
    """d=3, p=2: rows (0,0),(0,1),(0,2),(1,1),(1,2),(2,2), cross terms weighted sqrt(2)."""
    fw = helpers.default_framework(device, "float32")
    d = 3 if device == "cpu" else 32
    x = rng.standard_normal((2, d))
    xn = fw.array(x, "float32")
    x = fw.to_numpy(xn)
    out = fw.to_numpy(powerret.sympow(xn, 2))
    r2 = math.sqrt(2.0)
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    if d == 3:
        want = np.stack([a * a, r2 * a * b, r2 * a * c, b * b, r2 * b * c, c * c], -1)
        np.testing.assert_allclose(out, want, rtol=1e-6)
    else:  # the first rows are (0,0), (0,1), (0,2), ..., then (1,1) at row d
        np.testing.assert_allclose(out[:, :3], np.stack([a * a, r2 * a * b, r2 * a * c], -1), rtol=1e-6)
        np.testing.assert_allclose(out[:, d], b * b, rtol=1e-6)
        np.testing.assert_allclose(out[:, -1], x[:, -1] ** 2, rtol=1e-6)


@pytest.mark.parametrize("deg", [1, 2, 3, 4])
def test_matches_reference(device, rng, deg):
    """Every element against the float64 enumeration: layout and weights, several leading shapes."""
    dtypes = CPU_DTYPES if device == "cpu" else GPU_DTYPES
    for dtype in dtypes:
        fw = helpers.default_framework(device, dtype)
        for d in dims_for(device, deg):
            for lead in [(), (5,), (2, 3, 4)]:
                xn = fw.array(rng.standard_normal(lead + (d,)), dtype)
                x = fw.to_numpy(xn)
                out = powerret.sympow(xn, deg)
                D = ref.state_dim(d, deg)
                helpers.check_native(fw, out, lead + (D,), dtype, f"sympow {dtype} d={d}")
                want = ref.sympow(x, deg)
                # the baseline: the exact values rounded once to the dtype
                rounded = helpers._round_to(want, dtype)
                err = ref.rel_err(fw.to_numpy(out), want)
                tol = max(2 * ref.rel_err(rounded, want), 1e-6)
                assert err <= tol, f"{dtype} d={d} lead={lead}: rel err {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("deg", [1, 2, 3, 4])
def test_identity(device, rng, deg):
    """phi_p(x) . phi_p(y) == (x . y)^p over many pairs, fp32 in (fp64 too on the CPU)."""
    for dtype in ["float32"] + (["float64"] if device == "cpu" else []):
        fw = helpers.default_framework(device, dtype)
        for d in dims_for(device, deg):
            xn, yn = fw.array(rng.standard_normal((64, d)), dtype), fw.array(rng.standard_normal((64, d)), dtype)
            x, y = fw.to_numpy(xn), fw.to_numpy(yn)
            lhs = np.sum(fw.to_numpy(powerret.sympow(xn, deg)) * fw.to_numpy(powerret.sympow(yn, deg)), -1)
            rhs = np.sum(x * y, -1) ** deg
            assert ref.rel_err(lhs, rhs) <= 1e-5, (dtype, d)


def test_degree_one_is_identity(device, rng):
    fw = helpers.default_framework(device, "float32")
    d = 5 if device == "cpu" else 64
    xn = fw.array(rng.standard_normal((3, d)), "float32")
    np.testing.assert_array_equal(fw.to_numpy(powerret.sympow(xn, 1)), fw.to_numpy(xn))


def test_default_degree_is_two(device, rng):
    fw = helpers.default_framework(device, "float32")
    d = 4 if device == "cpu" else 32
    xn = fw.array(rng.standard_normal((3, d)), "float32")
    assert tuple(powerret.sympow(xn).shape) == (3, ref.state_dim(d, 2))
    np.testing.assert_array_equal(fw.to_numpy(powerret.sympow(xn)), fw.to_numpy(powerret.sympow(xn, 2)))


def test_non_contiguous_input(device, rng):
    """A strided view gives the same values as its contiguous copy."""
    fw = helpers.framework("torch", device) if device == "cuda" else helpers.framework("numpy", "cpu")
    d = 6 if device == "cpu" else 32
    base = rng.standard_normal((4, 2 * d))
    full = fw.array(base, "float32")
    view = full[:, ::2]
    want = ref.sympow(fw.to_numpy(view), 2)
    assert ref.rel_err(fw.to_numpy(powerret.sympow(view, 2)), want) <= 1e-6


def test_large_state_dims_cpu(rng):
    """The spec's named sizes, and the largest D the CPU accepts (D <= 2^20)."""
    for d, p in [(64, 2), (128, 2), (64, 4), (1447, 2)]:
        x = rng.standard_normal((1, d)).astype(np.float32)
        out = powerret.sympow(x, p)
        assert out.shape == (1, ref.state_dim(d, p))
        if d < 1000:
            assert ref.rel_err(out, ref.sympow(x.astype(np.float64), p)) <= 1e-6
        else:
            i = rng.integers(0, d, 50)
            j = rng.integers(0, d, 50)
            lo, hi = np.minimum(i, j), np.maximum(i, j)
            row = lo * d - lo * (lo - 1) // 2 + (hi - lo)  # index of (lo, hi) in lex order
            w = np.where(lo == hi, 1.0, math.sqrt(2.0))
            np.testing.assert_allclose(out[0, row], w * x[0, lo].astype(np.float64) * x[0, hi], rtol=1e-6)
