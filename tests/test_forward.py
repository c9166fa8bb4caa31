"""power_retention, the chunked forward (SPEC §2), against the float64 reference: ragged t, GQA,
e != d, gates and resets, normalize on/off, every degree, initial and final states, chunk-size
independence, split prefill, large scores, NaN propagation and den == 0."""
import math

import numpy as np
import pytest

import helpers
import reference as ref
import powerret


def case(b, t, hq, h, d, e, deg=2, gate="gated", init=False, normalize=True, dtype="float32",
         scale=None):
    return dict(b=b, t=t, hq=hq, h=h, d=d, e=e, deg=deg, gate=gate, init=init,
                normalize=normalize, dtype=dtype, scale=scale)


def _id(c):
    s = f"b{c['b']}t{c['t']}hq{c['hq']}h{c['h']}d{c['d']}e{c['e']}p{c['deg']}-{c['gate']}"
    s += "-init" * c["init"] + "-nonorm" * (not c["normalize"]) + f"-{c['dtype']}"
    return s + ("" if c["scale"] is None else f"-s{c['scale']}")


# Small d on the CPU (the suite runs on 2 cores); a few d = 32/64 at small t.
CPU_CASES = [
    case(1, 1, 1, 1, 8, 8, gate="none"),
    case(1, 1, 2, 1, 8, 8, init=True),
    case(2, 63, 2, 1, 8, 6),
    case(1, 64, 4, 4, 4, 4, gate="none"),
    case(1, 65, 4, 2, 4, 12, gate="reset"),
    case(1, 500, 4, 1, 4, 8, init=True),
    case(2, 1029, 2, 2, 8, 4),
    case(1, 1100, 4, 2, 4, 4, gate="reset", init=True),
    case(1, 300, 2, 1, 8, 8, gate="deep"),
    case(1, 130, 2, 1, 8, 8, deg=1),
    case(1, 130, 2, 1, 8, 8, deg=1, normalize=False),
    case(2, 130, 2, 2, 6, 8, deg=3, init=True),
    case(1, 130, 2, 1, 6, 5, deg=3, normalize=False, gate="reset"),
    case(1, 130, 4, 2, 4, 8, deg=4, init=True),
    case(1, 130, 2, 1, 4, 8, deg=4, normalize=False, gate="none"),
    case(1, 100, 2, 2, 16, 3),
    case(1, 100, 1, 1, 3, 16, deg=3),
    case(1, 50, 1, 1, 1, 1, gate="none"),
    case(1, 33, 2, 1, 32, 32, init=True),
    case(1, 20, 1, 1, 64, 64),
    case(1, 90, 2, 1, 8, 8, normalize=False, scale=0.3),
    case(1, 90, 2, 1, 8, 8, normalize=False),  # default scale 1/sqrt(d) shows with normalize off
    case(2, 200, 2, 1, 8, 8, dtype="float64", init=True),
    case(2, 200, 2, 1, 8, 8, dtype="float16", init=True),
    case(2, 200, 2, 1, 8, 8, dtype="bfloat16"),
    case(1, 300, 4, 2, 16, 16, dtype="float16", gate="reset"),
    case(1, 300, 4, 2, 16, 16, dtype="bfloat16", gate="reset", init=True),
    case(1, 150, 2, 1, 6, 6, deg=3, dtype="bfloat16"),
    case(1, 150, 2, 1, 4, 4, deg=4, dtype="float16", normalize=False),
]


def _gpu_cases():
    """Every compiled (d, e, p) in fp16, bf16 and fp32, t not a chunk multiple: 300..1100 for
    p <= 2, 200..600 for p >= 3 (D = 52360 at d = 32, p = 4 makes the float64 reference the cost);
    GQA, gates, initial states and normalize off rotate through them."""
    cases = []
    for n, (d, e, p) in enumerate(helpers.GPU_CONFIGS):
        for m, dtype in enumerate(["float16", "bfloat16", "float32"]):
            i = 3 * n + m
            t = (300 + (i * 97) % 800 if p <= 2 else 200 + (i * 97) % 400) | 1
            hq, h = [(2, 1), (2, 2), (4, 1)][i % 3]
            cases.append(case(1 + i % 2 if p <= 2 else 1, t, hq, h, d, e, deg=p, dtype=dtype,
                              gate=["gated", "none", "reset", "deep"][i % 4], init=i % 2 == 0,
                              normalize=i % 5 != 4))
    return cases


GPU_CASES = _gpu_cases()
FORWARD_PARAMS = [pytest.param("cpu", c, id="cpu-" + _id(c)) for c in CPU_CASES] + [
    pytest.param("cuda", c, id="cuda-" + _id(c)) for c in GPU_CASES
]


def fwd(rng, device, dtype="float32", **kw):
    fw = helpers.default_framework(device, dtype)
    return helpers.make_forward(rng, fw, dtype, **kw)


@pytest.mark.parametrize("device,c", FORWARD_PARAMS)
def test_forward_matches_reference(rng, device, c):
    c = dict(c)
    dtype = c.pop("dtype")
    f = fwd(rng, device, dtype, **c)
    y, state = powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs(return_final_state=True))
    helpers.check_forward(f, y, state)
    y_only = powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs())
    helpers.check_forward(f, y_only)


def test_inputs_are_not_modified(rng, device):
    d = 8 if device == "cpu" else 64
    f = fwd(rng, device, b=1, t=70, hq=2, h=1, d=d, e=d, gate="gated", init=True)
    before = [f.fw.to_numpy(a) for a in (f.q, f.k, f.v, f.log_g, *f.initial_state)]
    powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs(return_final_state=True))
    after = [f.fw.to_numpy(a) for a in (f.q, f.k, f.v, f.log_g, *f.initial_state)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def valid_chunks(device, f):
    """The CPU takes any chunk >= 1; the GPU a documented set, probed over 16, 32, ..., 512."""
    if device == "cpu":
        t = f.q64.shape[1]
        return [1, 3, 16, 64, t, t + 7]
    ok = []
    for c in (16, 32, 64, 128, 256, 512):
        try:
            powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs(chunk_size=c))
            ok.append(c)
        except ValueError:
            pass
    assert ok, "the GPU backend accepts none of chunk_size 16..512"
    return ok


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_chunk_size_independence(rng, device, dtype):
    d, t = (8, 150) if device == "cpu" else (64, 333)
    f = fwd(rng, device, dtype, b=2, t=t, hq=2, h=1, d=d, e=d, gate="reset", init=True)
    r = f.reference()
    outs = []
    for c in valid_chunks(device, f):
        y, st = powerret.power_retention(f.q, f.k, f.v, f.log_g,
                                         **f.kwargs(return_final_state=True, chunk_size=c))
        helpers.check_forward(f, y, st, r, what=f" chunk_size={c}")
        outs.append(f.fw.to_numpy(y))
    default = f.fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs()))
    base = f.baseline_y()
    pair_tol = 2 * ref.tolerance(dtype, None if base is None else ref.rel_err(base, r.y))
    for o in outs:  # any two chunkings agree as well as each agrees with the reference
        assert ref.rel_err(o, default) <= pair_tol


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_operands_one_element_past_alignment(rng, device, dtype):
    """q, k and v that start one element into their buffers: aligned to their element, as validation asks,
    but not to the 16 bytes the GPU's tensor-core kernels copy at a time; they take the CUDA-core path there
    (the same forward), and nothing faults."""
    torch = pytest.importorskip("torch")
    d = 8 if device == "cpu" else 64
    f = helpers.make_forward(rng, helpers.framework("torch", device), dtype, b=1, t=300, hq=2, h=1, d=d, e=d,
                             gate="gated", init=True)

    def shifted(x):
        buf = torch.empty(x.numel() + 8, dtype=x.dtype, device=x.device)
        out = buf[1:1 + x.numel()].view(x.shape)
        out.copy_(x)
        assert out.data_ptr() % 16 != 0
        return out

    y, state = powerret.power_retention(shifted(f.q), shifted(f.k), shifted(f.v), f.log_g,
                                        **f.kwargs(return_final_state=True))
    helpers.check_forward(f, y, state)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_more_heads_than_sms(rng, device, dtype):
    """p = 1 with b * h = 160 state blocks, more than an H100 or H200 has SMs (132): the tensor-core state
    kernel then takes its 4-stage K/V ring; with one block per SM or fewer (every other test) the deep one."""
    d, t = (4, 70) if device == "cpu" else (32, 333)
    f = fwd(rng, device, dtype, b=2, t=t, hq=80, h=80, d=d, e=d, deg=1, gate="gated", init=True)
    y, state = powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs(return_final_state=True))
    helpers.check_forward(f, y, state)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("deg", [2, 3])
def test_split_prefill_equals_one_prefill(rng, device, dtype, deg):
    """Prefill in pieces, each starting from the previous piece's final state == one prefill."""
    d, t, cuts = (6, 300, [1, 78, 299]) if device == "cpu" else (32, 700, [1, 200, 577])
    f = fwd(rng, device, dtype, b=2, t=t, hq=4, h=2, d=d, e=d + 8 if device == "cpu" else 64,
            deg=deg, gate="gated", init=True)
    r = f.reference()
    whole, whole_st = powerret.power_retention(f.q, f.k, f.v, f.log_g, **f.kwargs(return_final_state=True))
    state = f.initial_state
    ys = []
    for lo, hi in zip([0] + cuts, cuts + [t]):
        y, state = powerret.power_retention(f.q[:, lo:hi], f.k[:, lo:hi], f.v[:, lo:hi], f.log_g[:, lo:hi],
                                            deg=deg, normalize=True, initial_state=state,
                                            return_final_state=True)
        ys.append(f.fw.to_numpy(y))
    pieces = np.concatenate(ys, axis=1)
    base = f.baseline_y()
    helpers.assert_close(pieces, r.y, dtype, base, "y of the split prefill")
    helpers.assert_close(f.fw.to_numpy(whole), r.y, dtype, base, "y of one prefill")
    helpers.check_state(f, state, r)
    helpers.check_state(f, whole_st, r)


def test_reset_at_first_token_ignores_initial_state(rng, device):
    d = 8 if device == "cpu" else 64
    f = fwd(rng, device, b=1, t=90, hq=2, h=2, d=d, e=d, gate="reset", init=True)
    lg = f.lg64.copy()
    lg[:, 0] = -np.inf
    log_g = f.fw.array(lg, "float32")
    with_init = powerret.power_retention(f.q, f.k, f.v, log_g, initial_state=f.initial_state)
    without = powerret.power_retention(f.q, f.k, f.v, log_g)
    r = ref.power_retention(f.q64, f.k64, f.v64, lg)
    helpers.assert_close(f.fw.to_numpy(with_init), r.y, "float32")
    helpers.assert_close(f.fw.to_numpy(without), r.y, "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_query_after_a_reset_on_a_chunks_last_token(rng, device, dtype):
    """A reset on the last token of chunk 1 leaves chunk 2 an entering state of that one token,
    phi(k) v^T. The first query of chunk 2 is made orthogonal to its own key and nearly orthogonal
    to that one, so y there is v of the reset token while den is ~1e-3 of the state's terms: in
    state form phi(q)^T S cancels (relative error ~ (sum_i |q_i k_i|)^2 / (q . k)^2). For every
    chunk size, so the reset lands on a chunk boundary of each (bench/diag/emulate_forward.py)."""
    d = 8 if device == "cpu" else 64
    fw = helpers.default_framework(device, dtype)
    probe = helpers.make_forward(rng, fw, dtype, b=1, t=130, hq=2, h=1, d=d, e=d, gate="gated")
    for c in valid_chunks(device, probe):
        t = 2 * c + 9
        q = rng.standard_normal((1, t, 2, d))
        k = rng.standard_normal((1, t, 1, d))
        v = rng.standard_normal((1, t, 1, d))
        lg = helpers.gates(rng, 1, t, 1, "gated")
        lg[0, 2 * c - 1, 0] = -np.inf  # chunk 1's last token resets
        kr, ko = k[0, 2 * c - 1, 0], k[0, 2 * c, 0]
        basis, _ = np.linalg.qr(np.stack([kr, ko], axis=1))  # orthonormal span of both keys
        for head in range(2):
            x = q[0, 2 * c, head]
            x = x - basis @ (basis.T @ x)  # orthogonal to both keys
            x = x / np.linalg.norm(x) * np.sqrt(d) + 0.4 * kr / np.linalg.norm(kr)  # score ~0.05 with kr
            q[0, 2 * c, head] = x
        f = helpers.forward_from(fw, dtype, q, k, v, lg)
        y = powerret.power_retention(f.q, f.k, f.v, f.log_g, chunk_size=c)
        r = f.reference(with_state=False)
        helpers.assert_close(fw.to_numpy(y), r.y, dtype, f.baseline_y(), f"y (chunk_size={c})")


@pytest.mark.parametrize("deg", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_large_scores_stay_finite(rng, device, deg, dtype):
    """|scale q.k| up to 30 gives finite outputs (normalize=True) close to the reference."""
    if device == "cpu":
        d, e = 8, 8
    else:
        d, e = (64, 64) if deg <= 2 else (32, 64)
    b, t, hq, h = 1, 257, 2, 1
    q = rng.standard_normal((b, t, hq, d))
    k = rng.standard_normal((b, t, h, d))
    if deg % 2:
        q, k = np.abs(q), np.abs(k)
    scale = 1 / math.sqrt(d)
    s = np.einsum("bihd,bjd->bhij", q, k[:, :, 0]) * scale
    q *= 29.0 / np.abs(np.tril(s)).max()
    v = rng.standard_normal((b, t, h, e))
    fw = helpers.default_framework(device, dtype)
    f = helpers.forward_from(fw, dtype, q, k, v, helpers.gates(rng, b, t, h, "gated"), deg=deg)
    y = powerret.power_retention(f.q, f.k, f.v, f.log_g, deg=deg)
    out = fw.to_numpy(y)
    assert np.isfinite(out).all()
    r = f.reference(with_state=False)
    base = f.baseline_y()
    if base is not None and not np.isfinite(base).all():
        base = None  # the baseline overflows in fp16 (30^4 > 65504); the 2e-2 cap still holds
    helpers.assert_close(out, r.y, dtype, base)
    if dtype != "float16":  # SPEC §5: bf16 / fp32 outputs stay finite with normalize=False too
        y = powerret.power_retention(f.q, f.k, f.v, f.log_g, deg=deg, normalize=False)
        f.normalize = False
        helpers.assert_close(fw.to_numpy(y), f.reference(with_state=False).y, dtype, f.baseline_y())


@pytest.mark.parametrize("where", ["v", "q", "k"])
def test_nan_propagates_to_affected_outputs_only(rng, device, where):
    """A NaN token (v or k at j: outputs i >= j of that kv head; q at j: that one output) leaves
    every other output finite and equal to a clean run."""
    d = 8 if device == "cpu" else 64
    b, t, hq, h = 2, 200, 4, 2
    fw = helpers.default_framework(device, "float32")
    f = helpers.make_forward(rng, fw, "float32", b=b, t=t, hq=hq, h=h, d=d, e=d, gate="gated")
    clean = fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, f.log_g))
    j, bi, hi = 77, 1, 1
    arr = {"q": f.q64, "k": f.k64, "v": f.v64}[where].copy()
    arr[bi, j, hi] = np.nan
    inputs = {"q": f.q, "k": f.k, "v": f.v}
    inputs[where] = fw.array(arr, "float32")
    y = fw.to_numpy(powerret.power_retention(inputs["q"], inputs["k"], inputs["v"], f.log_g))
    affected = np.zeros(y.shape, dtype=bool)
    if where == "q":
        affected[bi, j, hi] = True
    else:
        group = slice(hi * (hq // h), (hi + 1) * (hq // h))
        affected[bi, j:, group] = True
    assert np.isnan(y[affected]).all(), "NaN did not propagate to the outputs it affects"
    assert np.isfinite(y[~affected]).all(), "NaN leaked into unaffected outputs"
    np.testing.assert_allclose(y[~affected], clean[~affected], rtol=1e-5, atol=1e-6)
    helpers.assert_close(clean, f.reference(with_state=False).y, "float32", what="clean y")


def test_zero_den_gives_zero(rng, device):
    """den == 0 gives y == 0, not NaN: scale = 0, and tokens whose q is 0 (even p)."""
    d = 8 if device == "cpu" else 64
    fw = helpers.default_framework(device, "float32")
    q = rng.standard_normal((1, 100, 2, d))
    zero_rows = [0, 5, 63, 64, 99]
    q[:, zero_rows] = 0.0
    f = helpers.forward_from(fw, "float32", q, rng.standard_normal((1, 100, 1, d)),
                             rng.standard_normal((1, 100, 1, d)))
    y = fw.to_numpy(powerret.power_retention(f.q, f.k, f.v))
    assert np.all(y[:, zero_rows] == 0)
    helpers.assert_close(y, f.reference(with_state=False).y, "float32")
    y0 = fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, scale=0.0))
    assert np.all(y0 == 0)


def test_default_scale_is_inverse_sqrt_d(rng, device):
    d = 8 if device == "cpu" else 64
    f = fwd(rng, device, b=1, t=70, hq=2, h=1, d=d, e=d, gate="gated", normalize=False)
    y_default = f.fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, f.log_g, normalize=False))
    y_explicit = f.fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, f.log_g, normalize=False,
                                                        scale=1 / math.sqrt(d)))
    r = f.reference(with_state=False)
    helpers.assert_close(y_default, r.y, "float32")
    helpers.assert_close(y_explicit, r.y, "float32")
    y_other = f.fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, f.log_g, normalize=False, scale=2.0))
    assert ref.rel_err(y_other, r.y) > 1e-2  # the scale is used at all


def test_final_state_of_t1_from_zero_is_phi_k_v(rng, device):
    """One token from no state: S = phi(k) v^T, z = phi(k), in the public layout."""
    d = 5 if device == "cpu" else 32
    f = fwd(rng, device, b=2, t=1, hq=2, h=2, d=d, e=3 if device == "cpu" else 32, gate="none")
    _, st = powerret.power_retention(f.q, f.k, f.v, return_final_state=True)
    phi = ref.sympow(f.k64[:, 0], 2)  # [b, h, D]
    helpers.assert_close(f.fw.to_numpy(st.z), phi, "float32", what="z")
    helpers.assert_close(f.fw.to_numpy(st.S), phi[..., None] * f.v64[:, 0, :, None, :], "float32", what="S")


@pytest.mark.parametrize("dtype,deg", [("bfloat16", 2), ("float16", 2), ("float16", 4), ("float32", 3)])
def test_long_sequence_large_scores(rng, device, dtype, deg):
    """SPEC §5: long sequences with |scale q.k| up to 30 give finite outputs (normalize=True);
    sampled rows, late ones included, match the reference."""
    if device == "cpu":
        t, d, e = 20000, 4, 4
    else:
        t, d, e = (65536, 64, 64) if deg <= 2 else (16384, 32, 32)
    b, hq, h = 1, 2, 1
    q = rng.standard_normal((b, t, hq, d))
    k = rng.standard_normal((b, t, h, d))
    if deg % 2:
        q, k = np.abs(q), np.abs(k)
    # q.k up to 30 * sqrt(d): |scale q.k| reaches 30 for aligned pairs (checked on a sample)
    q *= 30.0 / (np.abs(q).max() * np.abs(k).max() * math.sqrt(d))
    q[:, :: 97] = k[:, :: 97, :1] * (30.0 / np.sum(k[:, :: 97, :1] ** 2, -1, keepdims=True) * math.sqrt(d))
    v = rng.standard_normal((b, t, h, e))
    fw = helpers.default_framework(device, dtype)
    f = helpers.forward_from(fw, dtype, q, k, v, deg=deg)
    y = fw.to_numpy(powerret.power_retention(f.q, f.k, f.v, deg=deg))
    assert np.isfinite(y).all(), "non-finite outputs on a long sequence"
    rows = np.concatenate([[0, 1, 97, 97 * 5], rng.integers(0, t, 8), np.arange(t - 4, t)])
    want = ref.power_retention_rows(f.q64, f.k64, f.v64, None, rows, deg=deg)
    base = None
    if dtype in helpers.LOWP:
        import torch

        tq, tk, tv = (torch.from_numpy(a).to(getattr(torch, dtype)) for a in (f.q64, f.k64, f.v64))
        base = ref.lowp_baseline(tq, tk, tv, deg=deg, rows=rows)
        if not np.isfinite(base).all():
            base = None  # fp16 powered scores overflow (30^4 > 65504): the 2e-2 cap applies
    helpers.assert_close(y[:, rows], want, dtype, base, "sampled rows")


def test_zero_initial_state_equals_none(rng, device):
    d = 8 if device == "cpu" else 64
    f = fwd(rng, device, b=2, t=100, hq=2, h=1, d=d, e=d, gate="gated")
    D = ref.state_dim(d, 2)
    zeros = (f.fw.array(np.zeros((2, 1, D, d)), "float32"), f.fw.array(np.zeros((2, 1, D)), "float32"))
    y0, st0 = powerret.power_retention(f.q, f.k, f.v, f.log_g, initial_state=zeros, return_final_state=True)
    helpers.check_forward(f, y0, st0)
