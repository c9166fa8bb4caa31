"""The functional API: sympow, power_retention, decode_step.

Every output is allocated here with the caller's framework on the caller's device, and every
kernel runs on that framework's current stream; powerret._core only validates and computes.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional

from powerret import _core, _jax
from powerret._frameworks import Adapter, adapter_for


class State(NamedTuple):
    """A power-retention state in the public layout: S [..., h, D, e] and z [..., h, D], fp32."""

    S: Any
    z: Any


def state_dim(d: int, deg: int) -> int:
    """D = C(d + deg - 1, deg): the number of rows of phi_deg over R^d."""
    _check_int("d", d, minimum=1)
    _check_int("deg", deg, minimum=1)
    return int(_core.state_dim(d, deg))


def built_with_cuda() -> bool:
    """Whether this build of powerret carries the CUDA backend."""
    return bool(_core.built_with_cuda())


def sympow(x: Any, deg: int = 2) -> Any:
    """phi_deg(x) along the last axis: [..., d] -> [..., D], in x's dtype (SPEC §1 layout)."""
    ad = adapter_for(x)
    _check_int("deg", deg, minimum=1)
    _check_rank("sympow", "x", x, None)
    if ad.name == "jax" and _jax.available():
        return _jax.sympow(x, deg)
    x = ad.contiguous(x)
    out = ad.empty(x, (*x.shape[:-1], _core.state_dim(x.shape[-1], deg)))
    with ad.launch(x, out):
        _core.sympow(ad.native(x), ad.native(out), deg, ad.stream(x))
    (out,) = ad.no_backward("sympow", (out,), (x,))
    return out


def power_retention(
    q: Any,
    k: Any,
    v: Any,
    log_g: Any = None,
    *,
    deg: int = 2,
    scale: Optional[float] = None,
    normalize: bool = True,
    initial_state: Any = None,
    return_final_state: bool = False,
    chunk_size: Optional[int] = None,
):
    """Causal power retention over a whole sequence (training forward / prefill).

    q [b, t, hq, d], k [b, t, h, d], v [b, t, h, e] (fp16, bf16 or fp32; one dtype), optional
    log_g [b, t, h] fp32 per-token log gates, optional initial_state (S [b, h, D, e], z [b, h, D])
    fp32. Returns y [b, t, hq, e] in q's dtype, or (y, State(S, z)) with return_final_state.
    """
    ad = adapter_for(q)
    _check_options(deg, scale, normalize, chunk_size)
    _same_framework(ad, k=k, v=v, log_g=log_g)
    s0, z0 = _unpack_state("initial_state", initial_state, ad)
    _check_rank("power_retention", "q", q, 4, "[b, t, hq, d]")
    _check_rank("power_retention", "k", k, 4, "[b, t, h, d]")
    _check_rank("power_retention", "v", v, 4, "[b, t, h, e]")
    if ad.name == "jax" and _jax.available():
        out = _jax.power_retention(q, k, v, log_g, s0, z0, deg, scale, normalize, return_final_state, chunk_size)
        return (out[0], State(*out[1])) if return_final_state else out
    q, k, v = ad.contiguous(q), ad.contiguous(k), ad.contiguous(v)
    log_g = None if log_g is None else ad.contiguous(log_g)
    s0 = None if s0 is None else ad.contiguous(s0)
    z0 = None if z0 is None else ad.contiguous(z0)
    b, t, hq, d = q.shape
    h, e = k.shape[2], v.shape[3]
    y = ad.empty(q, (b, t, hq, e))
    s_out = z_out = None
    if return_final_state:
        D = _core.state_dim(d, deg)
        s_out = ad.empty(q, (b, h, D, e), "float32")
        z_out = ad.empty(q, (b, h, D), "float32")
    chunk = 0 if chunk_size is None else chunk_size
    n = ad.native  # a fresh DLPack capsule per call (a capsule is consumed once)
    need = _core.forward_workspace_bytes(
        n(q), n(k), n(v), n(log_g), n(s0), n(z0), n(y), n(s_out), n(z_out), deg, scale, normalize, chunk
    )
    workspace = ad.empty(q, (need,), "uint8") if need else None
    with ad.launch(q, k, v, log_g, s0, z0, y, s_out, z_out, workspace):
        _core.power_retention(
            n(q), n(k), n(v), n(log_g), n(s0), n(z0), n(y), n(s_out), n(z_out), n(workspace), deg, scale, normalize,
            chunk, ad.stream(q)
        )
    outs = ad.no_backward("power_retention", (y, s_out, z_out)[: 3 if return_final_state else 1],
                          (q, k, v, log_g, s0, z0))
    return (outs[0], State(outs[1], outs[2])) if return_final_state else outs[0]


def decode_step(
    q: Any,
    k: Any,
    v: Any,
    state: Any,
    log_g: Any = None,
    *,
    deg: int = 2,
    scale: Optional[float] = None,
    normalize: bool = True,
    slots: Any = None,
    out: Any = None,
):
    """One generation step: q [b, hq, d], k [b, h, d], v [b, h, e], optional log_g [b, h] fp32.

    state = (S [b, h, D, e], z [b, h, D]) fp32 is updated in place (NumPy, PyTorch, CuPy); with
    slots (int32 [b]) state is a pool [num_slots, ...] and row i uses slot slots[i] (-1 or out of
    range: skipped, y = 0). Returns y [b, hq, e] (written into `out` when given). JAX arrays are
    immutable: for them this returns (y, State(S_new, z_new)).
    """
    ad = adapter_for(q)
    _check_options(deg, scale, normalize, None)
    tq = type(q)
    # the common call: every array of q's own type (one check; the named checks below say which argument differs)
    if (type(state) is State or type(state) is tuple) and len(state) == 2 and type(state[0]) is tq \
            and type(state[1]) is tq and type(k) is tq and type(v) is tq and (log_g is None or type(log_g) is tq) \
            and slots is None and out is None:
        s, z = state
    else:
        s, z = _unpack_state("state", state, ad, required=True)
        _same_framework(ad, k=k, v=v, log_g=log_g, slots=slots, out=out)
    _check_rank("decode_step", "q", q, 3, "[b, hq, d]")
    _check_rank("decode_step", "v", v, 3, "[b, h, e]")
    if ad.name == "jax" and _jax.available():
        if out is not None:
            raise ValueError("argument 'out': JAX arrays are immutable; expected None, got an array")
        y, s, z = _jax.decode_step(q, k, v, s, z, log_g, slots, deg, scale, normalize)
        return y, State(s, z)
    if ad.immutable:  # JAX: the step writes fresh copies of the state, returned with y
        s, z = ad.copy(s), ad.copy(z)
    q, k, v = ad.contiguous(q), ad.contiguous(k), ad.contiguous(v)
    log_g = None if log_g is None else ad.contiguous(log_g)
    slots = None if slots is None else ad.contiguous(slots)
    y = out if out is not None else ad.empty(q, (q.shape[0], q.shape[1], v.shape[2]))
    try:
        with ad.launch(q, k, v, log_g, s, z, slots, y):
            n = ad.native
            _core.decode_step(n(q), n(k), n(v), n(log_g), n(s), n(z), n(slots), n(y), deg, scale, normalize,
                              ad.stream(q))
    except (ValueError, TypeError) as ex:
        if out is None:
            raise
        # The C++ API calls the output y; the caller passed it as `out`.
        raise type(ex)(str(ex).replace("argument 'y'", "argument 'out'")) from None
    if ad.immutable:
        return y, State(s, z)
    (y,) = ad.no_backward("decode_step", (y,), (q, k, v, log_g, s, z))
    return y


# ---- argument checks that must happen before anything is allocated ----------------------------


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"argument '{name}': expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"argument '{name}': expected an int >= {minimum}, got {value}")


def _check_options(deg, scale, normalize, chunk_size) -> None:
    # the common call (ints, no scale, a bool) in a few type checks: this runs on every decode step
    if type(deg) is int and 1 <= deg <= 4 and scale is None and type(normalize) is bool and chunk_size is None:
        return
    _check_int("deg", deg, minimum=1)
    if deg > 4:
        raise ValueError(f"argument 'deg': expected 1, 2, 3 or 4, got {deg}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        raise TypeError(f"argument 'scale': expected a float or None, got {type(scale).__name__}")
    if not isinstance(normalize, bool):
        raise TypeError(f"argument 'normalize': expected a bool, got {type(normalize).__name__}")
    if chunk_size is not None:
        _check_int("chunk_size", chunk_size, minimum=1)


def _check_rank(op: str, name: str, x: Any, rank: Optional[int], dims: str = "[..., d]") -> None:
    if rank is None:
        if x.ndim < 1:
            raise ValueError(f"{op}: argument '{name}': expected rank >= 1 {dims}, got rank 0")
    elif x.ndim != rank:
        raise ValueError(f"{op}: argument '{name}': expected rank {rank} {dims}, got rank {x.ndim} "
                         f"with shape {list(x.shape)}")


def _same_framework(ad: Adapter, **arrays: Any) -> None:
    for name, x in arrays.items():
        if x is None:
            continue
        other = adapter_for(x)
        if other is not ad:
            raise TypeError(f"argument '{name}': expected a {ad.name} array like 'q', got a {other.name} array")


def _unpack_state(name: str, state: Any, ad: Adapter, required: bool = False):
    if state is None:
        if required:
            raise TypeError(f"argument '{name}': expected a State(S, z) pair, got None")
        return None, None
    try:
        s, z = state
    except (TypeError, ValueError):
        raise TypeError(f"argument '{name}': expected a State(S, z) pair, got {type(state).__name__}") from None
    if s is None or z is None:
        raise ValueError(f"argument '{name}': expected both S and z, got "
                         f"{'S' if s is not None else 'z' if z is not None else 'neither'}")
    _same_framework(ad, **{f"{name}.S": s, f"{name}.z": z})
    return s, z
