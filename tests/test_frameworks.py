"""Framework adapters: NumPy, PyTorch (CPU, CUDA), JAX, CuPy. Outputs come back in the caller's
framework, on its device, in its dtype; the same inputs give the same result everywhere; states
are interchangeable across frameworks and devices (SPEC §1: one public layout)."""
import subprocess
import sys

import numpy as np
import pytest

import helpers
import reference as ref
import powerret

FRAMEWORKS = [("numpy", "cpu"), ("torch", "cpu"), ("jax", "cpu"), ("torch", "cuda"), ("cupy", "cuda"),
              ("jax", "cuda")]
FW_PARAMS = [pytest.param(n, dev, id=f"{n}-{dev}", marks=[pytest.mark.gpu] if dev == "cuda" else [])
             for n, dev in FRAMEWORKS]


def dims(device):
    return (8, 8) if device == "cpu" else (64, 64)


def test_torch_imports_after_powerret():
    """`import powerret`, then `import torch`, in a fresh process: the CUDA build once exported the
    process-wide libstdc++ symbols it linked in, and torch crashed on import (CMakeLists.txt keeps
    them inside the module now)."""
    pytest.importorskip("torch")
    run = subprocess.run([sys.executable, "-c", "import powerret; import torch"], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]


def test_public_names():
    assert isinstance(powerret.built_with_cuda(), bool)
    st = powerret.State(1, 2)
    assert st.S == 1 and st.z == 2 and tuple(st) == (1, 2)


@pytest.mark.parametrize("name,device", FW_PARAMS)
def test_sympow(rng, name, device):
    fw = helpers.framework(name, device)
    d = 8 if device == "cpu" else 32
    for dtype in fw.dtypes:
        x = fw.array(rng.standard_normal((3, d)), dtype)
        out = powerret.sympow(x, 2)
        helpers.check_native(fw, out, (3, ref.state_dim(d, 2)), dtype, f"sympow {dtype}")
        want = ref.sympow(fw.to_numpy(x), 2)
        assert ref.rel_err(fw.to_numpy(out), want) <= 2 * ref.rel_err(helpers._round_to(want, dtype), want) + 1e-6


@pytest.mark.parametrize("name,device", FW_PARAMS)
def test_forward_same_result_in_every_framework(rng, name, device):
    """Same inputs in this framework and in the stage tests' framework of that device (NumPy on
    the CPU, torch on CUDA): the same y and final state, each within SPEC §5 of the reference."""
    fw = helpers.framework(name, device)
    d, e = dims(device)
    for dtype in fw.dtypes:
        f = helpers.make_forward(rng, fw, dtype, b=2, t=97, hq=4, h=2, d=d, e=e, gate="gated", init=True)
        y, st = powerret.power_retention(f.q, f.k, f.v, f.log_g, initial_state=f.initial_state,
                                         return_final_state=True)
        helpers.check_forward(f, y, st)
        home = helpers.default_framework(device, dtype)
        g = helpers.forward_from(home, dtype, f.q64, f.k64, f.v64, f.lg64, f.st64)
        y2, st2 = powerret.power_retention(g.q, g.k, g.v, g.log_g, initial_state=g.initial_state,
                                           return_final_state=True)
        same = 1e-6 if dtype in ("float32", "float64") else 4e-3  # lowp: a rounding step at most
        assert ref.rel_err(fw.to_numpy(y), home.to_numpy(y2)) <= same, f"{fw} vs {home}, {dtype}"
        assert ref.rel_err(fw.to_numpy(st.S), home.to_numpy(st2.S)) <= 1e-5


@pytest.mark.parametrize("name,device", FW_PARAMS)
def test_decode_step(rng, name, device):
    """In place for NumPy, torch and CuPy; JAX returns (y, State) and leaves its inputs alone."""
    fw = helpers.framework(name, device)
    d, e = dims(device)
    for dtype in fw.dtypes:
        b, hq, h = 3, 4, 2
        q = fw.array(rng.standard_normal((b, hq, d)), dtype)
        k = fw.array(rng.standard_normal((b, h, d)), dtype)
        v = fw.array(rng.standard_normal((b, h, e)), dtype)
        lg64 = helpers.gates(rng, b, 1, h, "gated")[:, 0]
        S64, z64 = helpers.realistic_state(rng, b, h, d, e, 2)
        S, z = fw.array(S64, "float32"), fw.array(z64, "float32")
        res = powerret.decode_step(q, k, v, powerret.State(S, z), fw.array(lg64, "float32"))
        y_ref, S_ref, z_ref = ref.decode_step(fw.to_numpy(q), fw.to_numpy(k), fw.to_numpy(v), (S64, z64), lg64)
        tol = ref.tolerance(dtype, None)
        if fw.mutable:
            y, S1, z1 = res, S, z
        else:
            y, (S1, z1) = res
            np.testing.assert_array_equal(fw.to_numpy(S), S64)  # the caller's arrays are unchanged
            np.testing.assert_array_equal(fw.to_numpy(z), z64)
        helpers.check_native(fw, y, (b, hq, e), dtype, "y")
        helpers.check_native(fw, S1, S64.shape, "float32", "S")
        helpers.check_native(fw, z1, z64.shape, "float32", "z")
        assert ref.rel_err(fw.to_numpy(y), y_ref) <= tol, dtype
        assert ref.rel_err(fw.to_numpy(S1), S_ref) <= tol, dtype
        assert ref.rel_err(fw.to_numpy(z1), z_ref) <= tol, dtype


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_state_moves_between_frameworks(rng, device):
    """A final state from one framework continues in another (NumPy <-> torch, torch <-> CuPy)."""
    helpers.require_device(device)
    pytest.importorskip("torch")
    a = helpers.default_framework(device, "float32")
    bfw = helpers.framework("torch", "cpu") if device == "cpu" else helpers.framework("cupy", "cuda")
    d, e = dims(device)
    f = helpers.make_forward(rng, a, "float32", b=1, t=80, hq=2, h=1, d=d, e=e, gate="gated")
    r = f.reference()
    _, st = powerret.power_retention(f.q[:, :50], f.k[:, :50], f.v[:, :50], f.log_g[:, :50],
                                     return_final_state=True)
    st_b = (bfw.array(a.to_numpy(st.S), "float32"), bfw.array(a.to_numpy(st.z), "float32"))
    g = helpers.forward_from(bfw, "float32", f.q64[:, 50:], f.k64[:, 50:], f.v64[:, 50:], f.lg64[:, 50:])
    y = powerret.power_retention(g.q, g.k, g.v, g.log_g, initial_state=st_b)
    helpers.assert_close(bfw.to_numpy(y), r.y[:, 50:], "float32")


@pytest.mark.gpu
def test_cpu_and_cuda_agree(rng):
    """The same inputs on the CPU and on the GPU: both within SPEC §5 of the reference, and the
    CPU's final state continues on the GPU."""
    helpers.require_device("cuda")
    cpu, gpu = helpers.framework("torch", "cpu"), helpers.framework("torch", "cuda")
    for dtype in ["float32", "bfloat16", "float16"]:
        f = helpers.make_forward(rng, cpu, dtype, b=1, t=200, hq=2, h=1, d=64, e=64, gate="gated", init=True)
        g = helpers.forward_from(gpu, dtype, f.q64, f.k64, f.v64, f.lg64, f.st64)
        y_c, st_c = powerret.power_retention(f.q, f.k, f.v, f.log_g, initial_state=f.initial_state,
                                             return_final_state=True)
        y_g, st_g = powerret.power_retention(g.q, g.k, g.v, g.log_g, initial_state=g.initial_state,
                                             return_final_state=True)
        r = helpers.check_forward(f, y_c, st_c)
        helpers.check_forward(g, y_g, st_g, r)
        S_c, z_c = cpu.to_numpy(st_c.S), cpu.to_numpy(st_c.z)
        y2 = powerret.decode_step(g.q[:, -1], g.k[:, -1], g.v[:, -1], (st_c.S.cuda(), st_c.z.cuda()))
        y2_ref, _, _ = ref.decode_step(g.q64[:, -1], g.k64[:, -1], g.v64[:, -1], (S_c, z_c))
        helpers.check_native(gpu, y2, y2_ref.shape, dtype, "y of a GPU step from a CPU state")
        helpers.assert_close(gpu.to_numpy(y2), y2_ref, dtype, None)


def test_jax_under_jit(rng):
    """SPEC §3: JAX works under jit (XLA FFI), decode with donated state buffers."""
    jax = pytest.importorskip("jax")
    fw = helpers.framework("jax", "cpu")
    f = helpers.make_forward(rng, fw, "float32", b=1, t=40, hq=2, h=1, d=8, e=8, gate="gated")
    fwd = jax.jit(lambda q, k, v, g: powerret.power_retention(q, k, v, g))
    helpers.assert_close(fw.to_numpy(fwd(f.q, f.k, f.v, f.log_g)), f.reference(with_state=False).y, "float32")
    S64, z64 = helpers.realistic_state(rng, 1, 1, 8, 8, 2)
    step = jax.jit(lambda q, k, v, S, z: powerret.decode_step(q, k, v, (S, z)), donate_argnums=(3, 4))
    y, st = step(f.q[:, 0], f.k[:, 0], f.v[:, 0], fw.array(S64, "float32"), fw.array(z64, "float32"))
    y_ref, S_ref, _ = ref.decode_step(f.q64[:, 0], f.k64[:, 0], f.v64[:, 0], (S64, z64))
    helpers.assert_close(fw.to_numpy(y), y_ref, "float32")
    helpers.assert_close(fw.to_numpy(st.S), S_ref, "float32")


@pytest.mark.parametrize("which", ["q", "k", "v", "log_g", "initial_state"])
def test_torch_autograd_has_no_silent_backward(rng, which):
    """No backward exists yet (SPEC §4): outputs of inputs that require grad carry a grad_fn whose backward
    raises, instead of coming back detached (a training step would silently get no gradient); values are
    those of the detached call, and under no_grad nothing is attached."""
    torch = pytest.importorskip("torch")
    fw = helpers.framework("torch", "cpu")
    f = helpers.make_forward(rng, fw, "float32", b=1, t=40, hq=2, h=1, d=8, e=8, gate="gated", init=True)
    args = dict(q=f.q, k=f.k, v=f.v, log_g=f.log_g, initial_state=f.initial_state)
    if which == "initial_state":
        args[which] = tuple(x.clone().requires_grad_(True) for x in f.initial_state)
    else:
        args[which] = args[which].clone().requires_grad_(True)
    y, st = powerret.power_retention(**args, return_final_state=True)
    y0, st0 = powerret.power_retention(f.q, f.k, f.v, f.log_g, initial_state=f.initial_state, return_final_state=True)
    for out, plain in [(y, y0), (st.S, st0.S), (st.z, st0.z)]:
        assert out.requires_grad and out.grad_fn is not None
        assert torch.equal(out.detach(), plain)
    with pytest.raises(NotImplementedError, match="no backward"):
        (y.sum() + st.S.sum()).backward()
    with torch.no_grad():
        assert powerret.power_retention(**args).grad_fn is None


def test_torch_autograd_decode_and_sympow_have_no_silent_backward(rng):
    """decode_step's y and sympow's output follow the same rule as power_retention's outputs."""
    torch = pytest.importorskip("torch")
    fw = helpers.framework("torch", "cpu")
    x = fw.array(rng.standard_normal((3, 8)), "float32").requires_grad_(True)
    phi = powerret.sympow(x)
    assert phi.grad_fn is not None and torch.equal(phi.detach(), powerret.sympow(x.detach()))
    with pytest.raises(NotImplementedError, match="no backward"):
        phi.sum().backward()
    S64, z64 = helpers.realistic_state(rng, 1, 1, 8, 8, 2)
    q = fw.array(rng.standard_normal((1, 1, 8)), "float32").requires_grad_(True)
    k, v = (fw.array(rng.standard_normal((1, 1, 8)), "float32") for _ in range(2))
    y = powerret.decode_step(q, k, v, (fw.array(S64, "float32"), fw.array(z64, "float32")))
    y_plain = powerret.decode_step(q.detach(), k, v, (fw.array(S64, "float32"), fw.array(z64, "float32")))
    assert y.grad_fn is not None and torch.equal(y.detach(), y_plain)
    with pytest.raises(NotImplementedError, match="no backward"):
        y.sum().backward()
