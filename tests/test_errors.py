"""SPEC §6: every bad argument raises ValueError/TypeError naming the argument (and, where it is a
plain value, the actual value), before anything is written: the caller's state and out buffers,
and every input, are unchanged afterwards."""
import math

import numpy as np
import pytest

import helpers
import reference as ref
import powerret

ERRORS = (ValueError, TypeError)


def raises(fn, names, actual=()):
    """fn() raises ValueError/TypeError whose message names one of `names` and, when given,
    contains one of the `actual` strings."""
    with pytest.raises(ERRORS) as info:
        fn()
    msg = str(info.value)
    assert helpers.names_argument(msg, *names), f"message does not name {names}: {msg!r}"
    if actual:
        assert any(a.lower() in msg.lower() for a in actual), f"message lacks the actual value {actual}: {msg!r}"
    return msg


def snapshot(fw, *arrays):
    return [None if a is None else fw.to_numpy(a).copy() for a in arrays]


def assert_unchanged(fw, before, arrays):
    for i, (b, a) in enumerate(zip(before, arrays)):
        if b is not None:
            assert np.array_equal(b, fw.to_numpy(a), equal_nan=True), f"buffer {i} was written"


# ---- power_retention --------------------------------------------------------------------------

class Fwd:
    """Valid forward arguments on a device; each test breaks one."""

    def __init__(self, rng, device, dtype="float32"):
        self.fw = helpers.default_framework(device, dtype)
        self.device, self.dtype = device, dtype
        self.b, self.t, self.hq, self.h = 2, 9, 4, 2
        self.d, self.e = (8, 6) if device == "cpu" else (64, 64)
        self.D = ref.state_dim(self.d, 2)
        self.rng = rng
        self.q = self.rand((self.b, self.t, self.hq, self.d))
        self.k = self.rand((self.b, self.t, self.h, self.d))
        self.v = self.rand((self.b, self.t, self.h, self.e))
        self.log_g = self.fw.array(helpers.gates(rng, self.b, self.t, self.h, "gated"), "float32")
        S, z = helpers.realistic_state(rng, self.b, self.h, self.d, self.e, 2)
        self.S, self.z = self.fw.array(S, "float32"), self.fw.array(z, "float32")

    def rand(self, shape, dtype=None):
        return self.fw.array(self.rng.standard_normal(shape), dtype or self.dtype)

    def args(self):
        return dict(q=self.q, k=self.k, v=self.v, log_g=self.log_g, initial_state=(self.S, self.z))

    def call(self, **changes):
        a = self.args()
        a.update(changes)
        before = snapshot(self.fw, self.q, self.k, self.v, self.log_g, self.S, self.z)
        try:
            return powerret.power_retention(a.pop("q"), a.pop("k"), a.pop("v"), a.pop("log_g"), **a)
        finally:
            assert_unchanged(self.fw, before, [self.q, self.k, self.v, self.log_g, self.S, self.z])


def test_forward_valid_call_works(rng, device):
    f = Fwd(rng, device)
    y = f.call(return_final_state=True)[0]
    assert tuple(y.shape) == (f.b, f.t, f.hq, f.e)


def test_forward_wrong_dtype(rng, device):
    f = Fwd(rng, device)
    bad = f.fw.array(np.ones((f.b, f.t, f.hq, f.d)), "float32")
    ints = bad.astype(np.int32) if f.fw.name == "numpy" else bad.to(dtype=f.fw.torch.int32)
    raises(lambda: f.call(q=ints, k=ints[:, :, :f.h], v=ints[:, :, :f.h, :f.e]), ["q"], ["int32"])


@pytest.mark.parametrize("which,other", [("k", "float16"), ("v", "float64"), ("q", "float16")])
def test_forward_mismatched_dtypes(rng, device, which, other):
    f = Fwd(rng, device)
    if device == "cuda" and other == "float64":
        other = "bfloat16"
    shape = {"q": (f.b, f.t, f.hq, f.d), "k": (f.b, f.t, f.h, f.d), "v": (f.b, f.t, f.h, f.e)}[which]
    raises(lambda: f.call(**{which: f.rand(shape, other)}), [which, "q", "k", "v"], [other])


@pytest.mark.gpu
def test_forward_float64_on_gpu_rejected(rng):
    helpers.require_device("cuda")
    f = Fwd(rng, "cuda")
    q, k, v = (a.double() for a in (f.q, f.k, f.v))
    raises(lambda: f.call(q=q, k=k, v=v), ["q", "k", "v"], ["float64", "double"])


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_forward_wrong_rank(rng, device, which):
    f = Fwd(rng, device)
    good = getattr(f, which)
    raises(lambda: f.call(**{which: good[0]}), [which])


@pytest.mark.parametrize("which,shape_fn,actual", [
    ("k", lambda f: (f.b, f.t, f.h, 13), "13"),          # d differs from q's
    ("v", lambda f: (f.b, 11, f.h, f.e), "11"),          # t differs
    ("k", lambda f: (3, f.t, f.h, f.d), "3"),            # b differs
    ("v", lambda f: (f.b, f.t, 1, f.e), "1"),            # kv heads differ between k and v
    ("k", lambda f: (f.b, f.t, 3, f.d), "3"),            # hq = 4 is not a multiple of h = 3
])
def test_forward_wrong_shape(rng, device, which, shape_fn, actual):
    f = Fwd(rng, device)
    bad = f.rand(shape_fn(f))
    kw = {which: bad}
    if which == "k" and bad.shape[2] != f.h:  # keep v consistent with k so only GQA is wrong
        kw["v"] = f.rand((f.b, f.t, bad.shape[2], f.e))
        kw["log_g"] = None
        kw["initial_state"] = None
    raises(lambda: f.call(**kw), [which, "q", "k", "v", "h", "hq"], [actual])


@pytest.mark.parametrize("bad", ["dtype", "shape", "rank"])
def test_forward_bad_log_g(rng, device, bad):
    f = Fwd(rng, device)
    lg = {"dtype": lambda: f.rand((f.b, f.t, f.h), "float16"),
          "shape": lambda: f.rand((f.b, f.t, f.hq), "float32"),
          "rank": lambda: f.rand((f.b, f.t), "float32")}[bad]()
    raises(lambda: f.call(log_g=lg), ["log_g"])


@pytest.mark.parametrize("bad", ["only_S", "only_z", "D", "e", "b", "dtype", "z_shape", "not_a_pair"])
def test_forward_bad_initial_state(rng, device, bad):
    f = Fwd(rng, device)
    st = {
        "only_S": lambda: (f.S, None),
        "only_z": lambda: (None, f.z),
        "D": lambda: (f.rand((f.b, f.h, f.D + 1, f.e), "float32"), f.rand((f.b, f.h, f.D + 1), "float32")),
        "e": lambda: (f.rand((f.b, f.h, f.D, f.e + 1), "float32"), f.z),
        "b": lambda: (f.rand((f.b + 1, f.h, f.D, f.e), "float32"), f.rand((f.b + 1, f.h, f.D), "float32")),
        "dtype": lambda: (f.rand((f.b, f.h, f.D, f.e), "float16"), f.rand((f.b, f.h, f.D), "float16")),
        "z_shape": lambda: (f.S, f.rand((f.b, f.h, f.D - 1), "float32")),
        "not_a_pair": lambda: (f.S,),
    }[bad]()
    raises(lambda: f.call(initial_state=st), ["initial_state", "S", "z", "s0", "z0", "initial_s", "initial_z"])


@pytest.mark.parametrize("scale", [math.nan, math.inf, -math.inf])
def test_forward_non_finite_scale(rng, device, scale):
    f = Fwd(rng, device)
    raises(lambda: f.call(scale=scale), ["scale"], [str(scale)])


@pytest.mark.parametrize("deg", [0, -1, 5])
def test_forward_bad_degree(rng, device, deg):
    f = Fwd(rng, device)
    raises(lambda: f.call(deg=deg, initial_state=None), ["deg"], [str(deg)])


@pytest.mark.parametrize("chunk", [0, -4])
def test_forward_bad_chunk_size(rng, device, chunk):
    f = Fwd(rng, device)
    raises(lambda: f.call(chunk_size=chunk), ["chunk_size"], [str(chunk)])


@pytest.mark.gpu
def test_forward_gpu_chunk_size_outside_its_set(rng):
    helpers.require_device("cuda")
    f = Fwd(rng, "cuda")
    raises(lambda: f.call(chunk_size=17), ["chunk_size"], ["17"])


def test_cpu_state_dim_too_large(rng):
    """CPU: D <= 2^20 (d = 1447, p = 2 is the largest d for p = 2; d = 1448 is not)."""
    fw = helpers.framework("numpy", "cpu")
    for d, p in [(1448, 2), (70, 4), (200, 3)]:
        assert ref.state_dim(d, p) > 2 ** 20
        q = fw.array(rng.standard_normal((1, 2, 1, d)), "float32")
        v = fw.array(rng.standard_normal((1, 2, 1, 1)), "float32")
        raises(lambda: powerret.power_retention(q, q, v, deg=p), ["q", "k", "d", "deg", "D"])
        raises(lambda: powerret.sympow(q, p), ["x", "d", "deg", "D"])
    d = 1447  # the largest accepted for p = 2
    q = fw.array(rng.standard_normal((1, 2, 1, d)) * 0.1, "float32")
    v = fw.array(rng.standard_normal((1, 2, 1, 1)), "float32")
    y = powerret.power_retention(q, q, v, deg=2)
    helpers.assert_close(y, ref.power_retention_attention(q, q, v, deg=2, with_state=False).y, "float32")


UNSUPPORTED_GPU = [(48, 64, 2), (64, 64, 3), (32, 16, 2), (16, 32, 2), (64, 32, 4), (32, 256, 1), (8, 32, 3)]


@pytest.mark.gpu
@pytest.mark.parametrize("d,e,p", UNSUPPORTED_GPU)
def test_gpu_unsupported_configuration(rng, d, e, p):
    helpers.require_device("cuda")
    fw = helpers.framework("torch", "cuda")
    q = fw.array(rng.standard_normal((1, 5, 1, d)), "float16")
    v = fw.array(rng.standard_normal((1, 5, 1, e)), "float16")
    raises(lambda: powerret.power_retention(q, q, v, deg=p), ["q", "k", "v", "d", "e", "deg", "p"])
    S = fw.array(np.zeros((1, 1, ref.state_dim(d, p), e)), "float32")
    z = fw.array(np.zeros((1, 1, ref.state_dim(d, p))), "float32")
    before = snapshot(fw, S, z)
    raises(lambda: powerret.decode_step(q[:, 0], q[:, 0], v[:, 0], (S, z), deg=p),
           ["q", "k", "v", "d", "e", "deg", "p"])
    assert_unchanged(fw, before, [S, z])


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["k", "v", "log_g", "initial_state"])
def test_forward_mismatched_devices(rng, which):
    helpers.require_device("cuda")
    f = Fwd(rng, "cuda")
    moved = {"k": lambda: f.k.cpu(), "v": lambda: f.v.cpu(), "log_g": lambda: f.log_g.cpu(),
             "initial_state": lambda: (f.S.cpu(), f.z.cpu())}[which]()
    raises(lambda: f.call(**{which: moved}), [which, "S", "z"])


def test_forward_mismatched_frameworks(rng):
    pytest.importorskip("torch")
    f = Fwd(rng, "cpu")
    import torch

    raises(lambda: f.call(k=torch.from_numpy(f.k)), ["k"])


# ---- decode_step ------------------------------------------------------------------------------

SENTINEL = 7.0


class Dec:
    """Valid decode arguments, with an out buffer filled with a sentinel; each test breaks one."""

    def __init__(self, rng, device, dtype="float32", slots=False, e=None):
        self.fw = helpers.default_framework(device, dtype)
        self.device, self.dtype, self.rng = device, dtype, rng
        self.b, self.hq, self.h = 3, 4, 2
        self.d, self.e = (8, 6) if device == "cpu" else (64, 64)
        self.e = e or self.e
        self.D = ref.state_dim(self.d, 2)
        self.q = self.rand((self.b, self.hq, self.d))
        self.k = self.rand((self.b, self.h, self.d))
        self.v = self.rand((self.b, self.h, self.e))
        self.log_g = self.fw.array(helpers.gates(rng, self.b, 1, self.h, "gated")[:, 0], "float32")
        S, z = helpers.realistic_state(rng, 5 if slots else self.b, self.h, self.d, self.e, 2)
        self.S, self.z = self.fw.array(S, "float32"), self.fw.array(z, "float32")
        self.slots = self.fw.int32([4, 0, 2]) if slots else None
        self.out = self.fw.full((self.b, self.hq, self.e), SENTINEL, dtype)

    def rand(self, shape, dtype=None):
        return self.fw.array(self.rng.standard_normal(shape), dtype or self.dtype)

    def call(self, watch=(), **changes):
        a = dict(q=self.q, k=self.k, v=self.v, state=(self.S, self.z), log_g=self.log_g, out=self.out)
        if self.slots is not None:
            a["slots"] = self.slots
        a.update(changes)
        bufs = [self.q, self.k, self.v, self.log_g, self.S, self.z, self.out, *watch]
        before = snapshot(self.fw, *bufs)
        try:
            return powerret.decode_step(a.pop("q"), a.pop("k"), a.pop("v"), a.pop("state"), a.pop("log_g"), **a)
        finally:
            assert_unchanged(self.fw, before, bufs)


def test_decode_valid_call_works(rng, device):
    g = Dec(rng, device)
    S_before = g.fw.to_numpy(g.S).copy()
    y = powerret.decode_step(g.q, g.k, g.v, (g.S, g.z), g.log_g, out=g.out)
    assert tuple(y.shape) == (g.b, g.hq, g.e)
    assert not np.array_equal(S_before, g.fw.to_numpy(g.S))


@pytest.mark.parametrize("bad", ["none", "only_S", "only_z", "S_dtype", "z_dtype", "D", "deg_mismatch",
                                 "e", "batch", "z_shape", "S_rank"])
def test_decode_bad_state(rng, device, bad):
    g = Dec(rng, device)
    st = {
        "none": lambda: None,
        "only_S": lambda: (g.S, None),
        "only_z": lambda: (None, g.z),
        "S_dtype": lambda: (g.rand((g.b, g.h, g.D, g.e), "float16"), g.z),
        "z_dtype": lambda: (g.S, g.rand((g.b, g.h, g.D), "float16")),
        "D": lambda: (g.rand((g.b, g.h, g.D + 1, g.e), "float32"), g.rand((g.b, g.h, g.D + 1), "float32")),
        "deg_mismatch": lambda: (g.S, g.z),  # a deg=2 state with deg=1 below
        "e": lambda: (g.rand((g.b, g.h, g.D, g.e + 1), "float32"), g.z),
        "batch": lambda: (g.rand((g.b + 1, g.h, g.D, g.e), "float32"), g.rand((g.b + 1, g.h, g.D), "float32")),
        "z_shape": lambda: (g.S, g.rand((g.b, g.h, g.D, 1), "float32")),
        "S_rank": lambda: (g.S[0], g.z),
    }[bad]()
    deg = 1 if bad == "deg_mismatch" else 2
    raises(lambda: g.call(state=st, deg=deg), ["state", "S", "z", "s"])


@pytest.mark.parametrize("which", ["S", "z"])
def test_decode_non_contiguous_state(rng, device, which):
    """A strided state cannot be updated in place by the library: rejected, and left as it was."""
    g = Dec(rng, device)
    if which == "S":
        big = g.fw.array(np.tile(g.fw.to_numpy(g.S), 2), "float32")  # [b, h, D, 2e]
        view = big[..., ::2]
        raises(lambda: g.call(state=(view, g.z), watch=[big]), ["state", "S", "s"])
    else:
        big = g.fw.array(np.tile(g.fw.to_numpy(g.z), 2), "float32")  # [b, h, 2D]
        view = big[..., ::2]
        raises(lambda: g.call(state=(g.S, view), watch=[big]), ["state", "z"])


@pytest.mark.parametrize("bad", ["q_dtype", "k_dtype", "v_dtype", "q_rank", "k_shape", "v_shape", "gqa"])
def test_decode_bad_inputs(rng, device, bad):
    g = Dec(rng, device)
    other = "float16"
    kw, names = {
        "q_dtype": ({"q": g.fw.array(np.ones((g.b, g.hq, g.d)), "float32").astype(np.int32)
                     if g.fw.name == "numpy" else g.q.to(dtype=g.fw.torch.int32)}, ["q"]),
        "k_dtype": ({"k": g.rand((g.b, g.h, g.d), other)}, ["k", "q"]),
        "v_dtype": ({"v": g.rand((g.b, g.h, g.e), other)}, ["v", "q"]),
        "q_rank": ({"q": g.rand((g.b, 1, g.hq, g.d))}, ["q"]),
        "k_shape": ({"k": g.rand((g.b, g.h, g.d + 1))}, ["k", "q"]),
        "v_shape": ({"v": g.rand((g.b, g.h + 1, g.e))}, ["v", "k"]),
        "gqa": ({"q": g.rand((g.b, 3, g.d)), "out": g.fw.full((g.b, 3, g.e), SENTINEL, "float32")},
                ["q", "k", "hq", "h"]),
    }[bad]
    raises(lambda: g.call(**kw), names)


@pytest.mark.parametrize("bad", ["dtype", "shape"])
def test_decode_bad_log_g(rng, device, bad):
    g = Dec(rng, device)
    lg = g.rand((g.b, g.h), "float16") if bad == "dtype" else g.rand((g.b, g.hq), "float32")
    raises(lambda: g.call(log_g=lg), ["log_g"])


@pytest.mark.parametrize("bad", ["int64", "float32", "shape", "rank"])
def test_decode_bad_slots(rng, device, bad):
    g = Dec(rng, device, slots=True)
    vals = np.array([4, 0, 2])
    fw = g.fw
    if bad == "int64":
        s = vals.astype(np.int64) if fw.name == "numpy" else fw.torch.tensor(vals, dtype=fw.torch.int64, device=device)
    elif bad == "float32":
        s = fw.array(vals, "float32")
    elif bad == "shape":
        s = fw.int32([4, 0, 2, 1])
    else:
        s = fw.int32([[4, 0, 2]])
    raises(lambda: g.call(slots=s), ["slots"], [bad] if bad in ("int64", "float32") else ())


@pytest.mark.parametrize("bad", ["dtype", "shape", "non_contiguous", "overlaps_q", "overlaps_state"])
def test_decode_bad_out(rng, device, bad):
    g = Dec(rng, device, e=8 if device == "cpu" else 64)  # e == d: q and out have one shape
    watch = []
    if bad == "dtype":
        out = g.fw.full((g.b, g.hq, g.e), SENTINEL, "float16")
    elif bad == "shape":
        out = g.fw.full((g.b, g.hq, g.e + 1), SENTINEL, "float32")
    elif bad == "non_contiguous":
        big = g.fw.full((g.b, g.hq, 2 * g.e), SENTINEL, "float32")
        out, watch = big[..., ::2], [big]
    elif bad == "overlaps_q":  # an out that is q itself
        out = g.q
    else:  # an out that aliases the start of the state S (both fp32)
        n = g.b * g.hq * g.e
        out = g.S.reshape(-1)[:n].reshape(g.b, g.hq, g.e)
    raises(lambda: g.call(out=out, watch=watch), ["out"])


@pytest.mark.parametrize("scale", [math.nan, math.inf])
def test_decode_non_finite_scale(rng, device, scale):
    g = Dec(rng, device)
    raises(lambda: g.call(scale=scale), ["scale"], [str(scale)])


@pytest.mark.parametrize("deg", [0, 5])
def test_decode_bad_degree(rng, device, deg):
    g = Dec(rng, device)
    raises(lambda: g.call(deg=deg), ["deg"], [str(deg)])


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["state", "out", "k", "slots", "log_g"])
def test_decode_mismatched_devices(rng, which):
    helpers.require_device("cuda")
    g = Dec(rng, "cuda", slots=which == "slots")
    moved = {"state": lambda: (g.S.cpu(), g.z.cpu()), "out": lambda: g.out.cpu(), "k": lambda: g.k.cpu(),
             "slots": lambda: g.slots.cpu(), "log_g": lambda: g.log_g.cpu()}[which]()
    watch = list(moved) if which == "state" else [moved]
    raises(lambda: g.call(watch=watch, **{which: moved}), [which, "S", "z"])


@pytest.mark.parametrize("which", ["k", "v", "log_g", "S", "z"])
def test_decode_mismatched_frameworks(rng, which):
    """Without out or slots (the call decode_step checks with one type test first), an argument of another
    framework than q still raises TypeError naming it, before the state changes."""
    pytest.importorskip("torch")
    g = Dec(rng, "cpu")
    torch_fw = helpers.framework("torch", "cpu")
    t = {name: torch_fw.array(g.fw.to_numpy(getattr(g, name)), dt)
         for name, dt in [("q", "float32"), ("k", "float32"), ("v", "float32"), ("log_g", "float32"),
                          ("S", "float32"), ("z", "float32")]}
    t[which] = g.fw.to_numpy(t[which]).copy()  # the one NumPy array among PyTorch tensors
    def host(a):
        return np.array(a if isinstance(a, np.ndarray) else torch_fw.to_numpy(a), copy=True)

    before = [host(t["S"]), host(t["z"])]
    raises(lambda: powerret.decode_step(t["q"], t["k"], t["v"], (t["S"], t["z"]), t["log_g"]), [which, "state.S", "state.z"])
    np.testing.assert_array_equal(host(t["S"]), before[0])
    np.testing.assert_array_equal(host(t["z"]), before[1])


# ---- sympow -----------------------------------------------------------------------------------

def test_sympow_errors(rng, device):
    fw = helpers.default_framework(device, "float32")
    d = 8 if device == "cpu" else 32
    x = fw.array(rng.standard_normal((3, d)), "float32")
    for deg in (0, 5):
        raises(lambda: powerret.sympow(x, deg), ["deg"], [str(deg)])
    ints = x.astype(np.int32) if fw.name == "numpy" else x.to(dtype=fw.torch.int32)
    raises(lambda: powerret.sympow(ints, 2), ["x"], ["int32"])
    if device == "cuda":
        raises(lambda: powerret.sympow(x.double(), 2), ["x"], ["float64", "double"])
